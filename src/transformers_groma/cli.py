"""`groma` command line: grounded answers (text + pixel boxes) for images and questions.

groma predict --model NATIVE_DIR --image dog.jpg --query "Locate <p>the dog</p> in the image." --output out.png
groma predict --model NATIVE_DIR --image dog.jpg --query "What is this?" --box 10,20,200,240
groma predict --tiny            # a tiny random model built in memory: the whole pipeline, offline, in seconds
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm
from transformers import AutoModelForImageTextToText, AutoProcessor

from .processing import draw_grounding, draw_proposals, normalized_cxcywh_to_pixel_xyxy


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TINY_QUERY = "[grounding]Please briefly describe this image."


def load_model_and_processor(model_path: str | None, tiny: bool, device: str, dtype: torch.dtype):
    """The model (eval mode, on `device`) and processor from a converted folder, or the in-memory tiny pair."""
    if tiny:
        from .tiny import tiny_groma_model, tiny_groma_processor

        # Keep every proposal above a zero score so the demo picture shows the proposer's regions.
        return tiny_groma_model(box_score_threshold=0.0).to(device=device, dtype=dtype), tiny_groma_processor()
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise SystemExit(
            f"error: --model {model_path} is not a model folder (no config.json). Pass a folder written by "
            "`groma-convert` or `save_pretrained`, or use --tiny."
        )
    config = json.loads((path / "config.json").read_text())
    if "perceiver_cfg" in config or config.get("model_type") in ("ddetr", "gvllm"):
        raise SystemExit(
            f"error: {model_path} is an original (unconverted) Groma checkpoint. Convert it first:\n"
            f"  groma-convert --input_dir {model_path} --output_dir {path.name}-native"
        )
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).to(device).eval()
    return model, AutoProcessor.from_pretrained(path)


def demo_image(size: int = 448) -> Image.Image:
    """A synthetic picture (sky, ground, a red box and a blue disc) for runs without an --image."""
    image = Image.new("RGB", (size, size), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, size * 0.65, size, size], fill=(90, 160, 70))
    draw.rectangle([size * 0.15, size * 0.45, size * 0.4, size * 0.75], fill=(200, 40, 40))
    draw.ellipse([size * 0.55, size * 0.3, size * 0.85, size * 0.6], fill=(40, 70, 200))
    return image


def parse_box(text: str) -> list[float]:
    """`x1,y1,x2,y2` in pixels -> list of 4 floats."""
    values = text.split(",")
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"--box takes x1,y1,x2,y2 in pixels, got {text!r}")
    try:
        return [float(v) for v in values]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--box takes four numbers, got {text!r}") from error


def build_jobs(images: list[str], queries: list[str], boxes: list[list[float]]) -> list[tuple[str | None, str]]:
    """Pair images and queries: one query for all images, one image for all queries, or one query per image."""
    images = images or [None]
    if boxes and len(images) != 1:
        raise SystemExit("error: --box refers to one image; give a single --image with it.")
    if len(queries) == 1 or len(images) == 1:
        return [(image, query) for image in images for query in queries]
    if len(queries) != len(images):
        raise SystemExit(
            f"error: got {len(images)} images and {len(queries)} queries; give one query, one image, "
            "or as many queries as images."
        )
    return list(zip(images, queries))


def chat_prompt(processor, query: str, num_boxes: int) -> str:
    """The original inference prompt around `query`; referred boxes go after the query unless it places them."""
    content = [{"type": "image"}, {"type": "text", "text": query}]
    if num_boxes and "<refer_box>" not in query:
        content += [{"type": "text", "text": " "}, *[{"type": "box"}] * num_boxes]
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def predict(args: argparse.Namespace) -> list[dict]:
    """Run every (image, query) job; returns one result dict per job."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")]
    model, processor = load_model_and_processor(args.model, args.tiny, device, dtype)
    queries = args.query or [TINY_QUERY]
    jobs = build_jobs(args.image or [], queries, args.box or [])
    results = []
    batches = [jobs[i : i + args.batch_size] for i in range(0, len(jobs), args.batch_size)]
    for batch in tqdm(batches, desc="groma", disable=len(jobs) <= 3):
        images = [Image.open(path).convert("RGB") if path else demo_image() for path, _ in batch]
        prompts = [chat_prompt(processor, query, len(args.box or [])) for _, query in batch]
        boxes = [args.box] * len(batch) if args.box else None
        inputs = processor(images=images, text=prompts, boxes=boxes, return_tensors="pt").to(device)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        output = model.generate(
            **inputs, max_new_tokens=args.max_new_tokens, do_sample=False, return_dict_in_generate=True
        )
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        sizes = [image.size[::-1] for image in images]
        parsed = processor.post_process_grounding(new_tokens, output.region_boxes, target_sizes=sizes)
        for (path, query), image, answer, regions in zip(batch, images, parsed, output.region_boxes):
            region_pixels = normalized_cxcywh_to_pixel_xyxy(regions.float().cpu(), image.size[::-1])
            results.append(
                {
                    "image": path or "<demo image>",
                    "query": query,
                    **answer,
                    "regions": region_pixels.tolist(),
                    "_image": image,
                    "_regions": regions.float().cpu(),
                }
            )
    return results


def save_pictures(results: list[dict], output: str) -> None:
    """Annotated pictures: the grounded phrases' boxes, or the selected regions when the answer grounds nothing."""
    target = Path(output)
    for i, result in enumerate(results):
        if result["entities"]:
            picture = draw_grounding(result["_image"], result["entities"])
        else:
            picture = draw_proposals(result["_image"], result["_regions"])
        path = target if len(results) == 1 else target.with_name(f"{target.stem}_{i}{target.suffix}")
        picture.save(path)
        result["picture"] = str(path)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `groma` console script."""
    parser = argparse.ArgumentParser(prog="groma", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict_parser = commands.add_parser("predict", help="Answer questions about images, with boxes.")
    source = predict_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Folder of a converted (native) Groma checkpoint.")
    source.add_argument("--tiny", action="store_true", help="Use a tiny random model built in memory (offline demo).")
    predict_parser.add_argument("--image", action="append", help="Image file (repeat for several).")
    predict_parser.add_argument("--query", action="append", help="Question or instruction (repeat for several).")
    predict_parser.add_argument(
        "--box",
        action="append",
        type=parse_box,
        metavar="X1,Y1,X2,Y2",
        help="A pixel box the query refers to (repeat for several).",
    )
    predict_parser.add_argument("--output", help="Save the annotated picture(s) here (PNG/JPEG).")
    predict_parser.add_argument("--json", action="store_true", help="Print results as JSON.")
    predict_parser.add_argument("--max_new_tokens", type=int, default=128)
    predict_parser.add_argument("--batch_size", type=int, default=4)
    predict_parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available).")
    predict_parser.add_argument("--dtype", choices=sorted(DTYPES), help="Default: bfloat16 on CUDA, else float32.")
    args = parser.parse_args(argv)

    try:
        results = predict(args)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    if args.output:
        save_pictures(results, args.output)
    for result in results:
        del result["_image"], result["_regions"]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    for result in results:
        print(f"[{result['image']}] {result['query']}\n  -> {result['text']}")
        for entity in result["entities"]:
            boxes = ", ".join("[" + ", ".join(f"{v:.0f}" for v in box) + "]" for box in entity["boxes"])
            print(f"     {entity['phrase'] or '(answer)'}: {boxes}")
        if "picture" in result:
            print(f"  picture: {result['picture']}")


if __name__ == "__main__":
    main()
