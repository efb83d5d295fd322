"""`groma` command line: grounded answers about images (Groma), and about images, videos and audio (GroundingGPT).

groma predict --model NATIVE_DIR --image dog.jpg --query "Locate <p>the dog</p> in the image." --output out.png
groma predict --model NATIVE_DIR --image dog.jpg --query "What is this?" --box 10,20,200,240
groma predict --model GROUNDINGGPT_DIR --video clip.mp4 --query "When does the man open the door?" --json
groma predict --model GROUNDINGGPT_DIR --image dog.jpg --audio bark.wav --output out.png
groma predict --tiny                 # a tiny random Groma built in memory: the whole pipeline, offline, in seconds
groma predict --tiny-groundinggpt    # the same with a tiny random GroundingGPT (add --video / --audio / --image)
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm
from transformers import AutoModelForImageTextToText, AutoProcessor

from .conversion.checkpoint_io import DTYPES
from .processing import draw_grounding, draw_proposals, normalized_cxcywh_to_pixel_xyxy


TINY_QUERY = "[grounding]Please briefly describe this image."
MEDIA_OPTIONS = ("image", "video", "audio")


def read_model_type(model_path: str) -> str:
    """The `model_type` of a converted model folder; exits with a hint for anything else."""
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise SystemExit(
            f"error: --model {model_path} is not a model folder (no config.json). Pass a folder written by "
            "`groma-convert` or `save_pretrained`, or use --tiny / --tiny-groundinggpt."
        )
    config = json.loads((path / "config.json").read_text())
    model_type = config.get("model_type")
    if "perceiver_cfg" in config or model_type in ("ddetr", "gvllm"):
        raise SystemExit(
            f"error: {model_path} is an original (unconverted) Groma checkpoint. Convert it first:\n"
            f"  groma-convert --input_dir {model_path} --output_dir {path.name}-native"
        )
    if model_type == "LEGO":
        raise SystemExit(
            f"error: {model_path} is an original (unconverted) GroundingGPT checkpoint. Convert it first:\n"
            f"  groma-convert --input_dir {model_path} --output_dir {path.name}-native "
            "--vision_tower clip-vit-large-patch14-336"
        )
    if model_type not in ("groma", "groundinggpt"):
        raise SystemExit(f"error: {model_path} holds a {model_type!r} model, neither Groma nor GroundingGPT.")
    return model_type


def model_family(args: argparse.Namespace) -> str:
    """`"groma"` or `"groundinggpt"`: the tiny model asked for, or the `model_type` of `--model`."""
    if args.tiny:
        return "groma"
    if args.tiny_groundinggpt:
        return "groundinggpt"
    return read_model_type(args.model)


def check_options(args: argparse.Namespace, family: str) -> None:
    """Exit with a clear message for missing media files and options the model family cannot take."""
    for option in MEDIA_OPTIONS:
        for path in getattr(args, option) or []:
            if not os.path.isfile(path):
                raise SystemExit(f"error: --{option} {path}: no such file.")
    if family == "groma" and (args.video or args.audio):
        raise SystemExit("error: Groma reads images only; --video and --audio need a GroundingGPT model.")
    if family == "groundinggpt" and args.box:
        raise SystemExit(
            "error: --box is for Groma. GroundingGPT reads boxes written in the query as [x1, y1, x2, y2] "
            "normalised to the padded square image (see `format_box` in docs/groundinggpt.md)."
        )


def load_model_and_processor(args: argparse.Namespace, device: str, dtype: torch.dtype):
    """The model (eval mode, on `device`) and processor from a converted folder, or an in-memory tiny pair."""
    if args.tiny:
        from .tiny import tiny_groma_model, tiny_groma_processor

        # Keep every proposal above a zero score so the demo picture shows the proposer's regions.
        return tiny_groma_model(box_score_threshold=0.0).to(device=device, dtype=dtype), tiny_groma_processor()
    if args.tiny_groundinggpt:
        from .tiny import tiny_groundinggpt_model, tiny_groundinggpt_processor

        return tiny_groundinggpt_model().to(device=device, dtype=dtype), tiny_groundinggpt_processor()
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=dtype).to(device).eval()
    return model, AutoProcessor.from_pretrained(args.model)


def demo_image(size: int = 448) -> Image.Image:
    """A synthetic picture (sky, ground, a red box and a blue disc) for runs without an --image."""
    image = Image.new("RGB", (size, size), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, size * 0.65, size, size], fill=(90, 160, 70))
    draw.rectangle([size * 0.15, size * 0.45, size * 0.4, size * 0.75], fill=(200, 40, 40))
    draw.ellipse([size * 0.55, size * 0.3, size * 0.85, size * 0.6], fill=(40, 70, 200))
    return image


def open_image(path: str | None) -> Image.Image:
    """The RGB image at `path`, or the demo image for None; a ValueError names a file that is not an image."""
    if path is None:
        return demo_image()
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise ValueError(f"--image {path} cannot be read as an image ({error}).") from error


def parse_box(text: str) -> list[float]:
    """`x1,y1,x2,y2` in pixels -> list of 4 floats."""
    values = text.split(",")
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"--box takes x1,y1,x2,y2 in pixels, got {text!r}")
    try:
        return [float(v) for v in values]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--box takes four numbers, got {text!r}") from error


def build_jobs(args: argparse.Namespace) -> list[dict]:
    """One job per query and set of media: an option given once applies to every job, an option given several times
    gives one value per job (so all such options must be given the same number of times). Returns dicts with the
    keys `image`, `video`, `audio` (paths, or None) and `query` (None: the family's default question)."""
    columns = {name: getattr(args, name) or [] for name in (*MEDIA_OPTIONS, "query")}
    if args.box and len(columns["image"]) > 1:
        raise SystemExit("error: --box refers to one image; give a single --image with it.")
    counts = {name: len(values) for name, values in columns.items() if len(values) > 1}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{count} --{name}" for name, count in counts.items())
        raise SystemExit(f"error: got {listing}; give each option once or the same number of times.")
    num_jobs = max(counts.values(), default=1)
    return [
        {name: values[index if len(values) > 1 else 0] if values else None for name, values in columns.items()}
        for index in range(num_jobs)
    ]


def batched(jobs: list[dict], batch_size: int, desc: str) -> Iterable[list[dict]]:
    """`jobs` in batches of `batch_size`, with a progress bar for more than 3 jobs."""
    batches = [jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)]
    return tqdm(batches, desc=desc, disable=len(jobs) <= 3)


def chat_prompt(processor, query: str, num_boxes: int) -> str:
    """The original inference prompt around `query`; referred boxes go after the query unless it places them."""
    content = [{"type": "image"}, {"type": "text", "text": query}]
    if num_boxes and "<refer_box>" not in query:
        content += [{"type": "text", "text": " "}, *[{"type": "box"}] * num_boxes]
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def predict(args: argparse.Namespace, model, processor, jobs: list[dict]) -> list[dict]:
    """Run every (image, query) job on a Groma model; returns one result dict per job."""
    results = []
    for batch in batched(jobs, args.batch_size, desc="groma"):
        images = [open_image(job["image"]) for job in batch]
        queries = [job["query"] or TINY_QUERY for job in batch]
        prompts = [chat_prompt(processor, query, len(args.box or [])) for query in queries]
        boxes = [args.box] * len(batch) if args.box else None
        inputs = processor(images=images, text=prompts, boxes=boxes, return_tensors="pt").to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        output = model.generate(
            **inputs, max_new_tokens=args.max_new_tokens, do_sample=False, return_dict_in_generate=True
        )
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        sizes = [image.size[::-1] for image in images]
        parsed = processor.post_process_grounding(new_tokens, output.region_boxes, target_sizes=sizes)
        for job, query, image, answer, regions in zip(batch, queries, images, parsed, output.region_boxes):
            region_pixels = normalized_cxcywh_to_pixel_xyxy(regions.float().cpu(), image.size[::-1])
            results.append(
                {
                    "image": job["image"] or "<demo image>",
                    "query": query,
                    **answer,
                    "regions": region_pixels.tolist(),
                    "_image": image,
                    "_regions": regions.float().cpu(),
                }
            )
    return results


def draw_picture(result: dict) -> Image.Image:
    """The grounded phrases' boxes, or the selected regions when the answer grounds nothing."""
    if result["entities"]:
        return draw_grounding(result["_image"], result["entities"])
    return draw_proposals(result["_image"], result["_regions"])


def describe(result: dict) -> str:
    """A Groma result as text: the answer, then each grounded phrase with its pixel boxes."""
    lines = [f"[{result['image']}] {result['query']}", f"  -> {result['text']}"]
    for entity in result["entities"]:
        boxes = ", ".join("[" + ", ".join(f"{v:.0f}" for v in box) + "]" for box in entity["boxes"])
        lines.append(f"     {entity['phrase'] or '(answer)'}: {boxes}")
    return "\n".join(lines)


def save_pictures(results: list[dict], output: str, draw: Callable[[dict], Image.Image | None]) -> None:
    """Save `draw(result)` of every result that has a picture (`output`, or `output` with `_i` for several results)
    and record its path under `picture`."""
    target = Path(output)
    for i, result in enumerate(results):
        picture = draw(result)
        if picture is not None:
            path = target if len(results) == 1 else target.with_name(f"{target.stem}_{i}{target.suffix}")
            picture.save(path)
            result["picture"] = str(path)


def family_handlers(family: str) -> tuple[Callable, Callable, Callable]:
    """`(predict, draw_picture, describe)` of a model family (see this module's Groma versions)."""
    if family == "groundinggpt":
        # `cli_groundinggpt` builds on this module, so it is imported on demand.
        from . import cli_groundinggpt

        return cli_groundinggpt.predict, cli_groundinggpt.draw_picture, cli_groundinggpt.describe
    return predict, draw_picture, describe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groma", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict_parser = commands.add_parser("predict", help="Answer questions about images, videos and audio.")
    source = predict_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Folder of a converted (native) Groma or GroundingGPT checkpoint.")
    source.add_argument("--tiny", action="store_true", help="Use a tiny random Groma built in memory (offline demo).")
    source.add_argument(
        "--tiny-groundinggpt", action="store_true", help="Use a tiny random GroundingGPT built in memory."
    )
    predict_parser.add_argument("--image", action="append", help="Image file (repeat for several).")
    predict_parser.add_argument("--video", action="append", help="Video file, GroundingGPT only (repeat for several).")
    predict_parser.add_argument("--audio", action="append", help="Audio file, GroundingGPT only (repeat for several).")
    predict_parser.add_argument("--query", action="append", help="Question or instruction (repeat for several).")
    predict_parser.add_argument(
        "--box",
        action="append",
        type=parse_box,
        metavar="X1,Y1,X2,Y2",
        help="Groma: a pixel box the query refers to (repeat for several).",
    )
    predict_parser.add_argument(
        "--output", help="Save the annotated picture(s) here (PNG/JPEG); a timeline for GroundingGPT video answers."
    )
    predict_parser.add_argument("--json", action="store_true", help="Print results as JSON.")
    predict_parser.add_argument("--max_new_tokens", type=int, default=128)
    predict_parser.add_argument("--batch_size", type=int, default=4)
    predict_parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available).")
    predict_parser.add_argument("--dtype", choices=sorted(DTYPES), help="Default: bfloat16 on CUDA, else float32.")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `groma` console script."""
    args = build_parser().parse_args(argv)
    family = model_family(args)
    check_options(args, family)
    run, draw, show = family_handlers(family)
    jobs = build_jobs(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")]
    model, processor = load_model_and_processor(args, device, dtype)
    try:
        results = run(args, model, processor, jobs)
    except (ImportError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    if args.output:
        save_pictures(results, args.output, draw)
    results = [{key: value for key, value in result.items() if not key.startswith("_")} for result in results]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    for result in results:
        print(show(result))
        if "picture" in result:
            print(f"  picture: {result['picture']}")


if __name__ == "__main__":
    main()
