"""`groma` command line: grounded answers about images (Groma), and about images, videos and audio (GroundingGPT).

groma predict --model NATIVE_DIR --image dog.jpg --query "Locate <p>the dog</p> in the image." --output out.png
groma predict --model NATIVE_DIR --image dog.jpg --query "What is this?" --box 10,20,200,240
groma predict --model GROUNDINGGPT_DIR --video clip.mp4 --query "When does the man open the door?" --json
groma predict --model GROUNDINGGPT_DIR --image dog.jpg --audio bark.wav --output out.png
groma predict --tiny                 # the demo model: a tiny Groma trained on a synthetic world of coloured shapes
groma predict --tiny-groundinggpt    # a tiny random GroundingGPT built in memory (add --video / --audio / --image)
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from torchvision.ops import clip_boxes_to_image
from tqdm.auto import tqdm
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin

from .conversion.checkpoint_io import DTYPES
from .folder_checks import read_json_file
from .processing import (
    draw_grounding,
    draw_proposals,
    grounded_caption_prompt,
    normalized_cxcywh_to_pixel_xyxy,
    region_caption_prompt,
    validate_pixel_boxes,
)
from .processing.image_inputs import open_rgb_image
from .synthetic import demo_model_path, generate_scene


TINY_QUERY = grounded_caption_prompt(0)  # "[grounding]Give me a concise description of the image."
DEMO_SCENE_SEED = 16  # the synthetic scene shown when no --image is given
MEDIA_OPTIONS = ("image", "video", "audio")


def read_model_type(model_path: str) -> str:
    """The `model_type` of a converted model folder; exits with a hint for anything else."""
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise SystemExit(
            f"error: --model {model_path} is not a model folder (no config.json). Pass a folder written by "
            "`groma-convert` or `save_pretrained`, or use --tiny / --tiny-groundinggpt."
        )
    try:
        config = read_json_file(path / "config.json")
    except ValueError as error:
        raise SystemExit(f"error: --model {model_path}: {error}") from error
    if not isinstance(config, dict):
        raise SystemExit(f"error: --model {model_path}: {path / 'config.json'} is damaged: not a JSON object.")
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
    if "GromaForRegionProposal" in (config.get("architectures") or []):
        raise SystemExit(
            f"error: {model_path} holds a Groma region proposer (the detector of training stage 1): it proposes boxes "
            "but cannot answer. Load it with `GromaForRegionProposal.from_pretrained`, or pass a chat model (the "
            "output of stage 2 or 3, or a converted Groma)."
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
    if args.describe_regions and family != "groma":
        raise SystemExit("error: --describe_regions is for Groma, whose region proposer finds the regions.")
    if args.describe_regions and args.box:
        raise SystemExit("error: --describe_regions describes the regions the model finds itself; drop --box.")
    if family == "groundinggpt" and args.box:
        raise SystemExit(
            "error: --box is for Groma. GroundingGPT reads boxes written in the query as [x1, y1, x2, y2] "
            "normalised to the padded square image (see `format_box` in docs/groundinggpt.md)."
        )


def check_boxes(args: argparse.Namespace) -> None:
    """Exit with a message naming --box for a box that is empty or not inside the (single) image it refers to."""
    if not args.box:
        return
    try:
        image = open_image(args.image[0] if args.image else None)
        validate_pixel_boxes(args.box, image.size[::-1], argument_name="--box")
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error


def check_output(output: str) -> None:
    """Exit with a clear message, before any model is loaded, for an --output that cannot be saved: a suffix that
    PIL cannot write, a folder, or a path in a folder that does not exist."""
    path = Path(output)
    if Image.registered_extensions().get(path.suffix.lower()) not in Image.SAVE:
        raise SystemExit(f"error: --output {output}: expected a picture file name such as out.png or out.jpg.")
    if path.is_dir():
        raise SystemExit(f"error: --output {output} is a folder; give a picture file name such as {path / 'out.png'}.")
    if not path.parent.is_dir():
        raise SystemExit(f"error: --output {output}: the folder {path.parent} does not exist.")


def load_model_and_processor(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """The model (eval mode, on `device`) and processor from a converted folder (the demo model for `--tiny`), or an
    in-memory tiny GroundingGPT.

    With a 16-bit `dtype`, a Groma model keeps its vision path in float32 when `config.keep_vision_path_fp32` (as
    `from_pretrained` does). A folder whose processor or weights cannot be loaded exits with the reason.
    """
    if args.tiny_groundinggpt:
        from .tiny import tiny_groundinggpt_model, tiny_groundinggpt_processor

        return tiny_groundinggpt_model().to(device=device, dtype=dtype), tiny_groundinggpt_processor()
    try:
        # The processor first: it is quick to load, and a folder without its files fails before the weights load.
        processor = AutoProcessor.from_pretrained(model_folder(args))
        model = AutoModelForImageTextToText.from_pretrained(model_folder(args), dtype=dtype).to(device).eval()
    except (OSError, ValueError, StrictDataclassError) as error:  # missing or damaged files, named by the checks
        raise SystemExit(
            f"error: --model {args.model} cannot be loaded: {error}\nA converted folder holds the weights, "
            "config.json and the processor files (tokenizer, preprocessor_config.json) that `groma-convert` and "
            "`save_pretrained` write."
        ) from error
    return model, processor


def model_folder(args: argparse.Namespace) -> str:
    """The folder to load: `--model`, or the demo model shipped with the package for `--tiny`."""
    if not args.tiny:
        return args.model
    try:
        return str(demo_model_path())
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from error


def demo_image(size: int = 448) -> Image.Image:
    """A `size` x `size` scene of the synthetic world (coloured shapes) for runs without an --image."""
    return generate_scene(DEMO_SCENE_SEED, size=(size, size)).image


def open_image(path: str | None) -> Image.Image:
    """The RGB image at `path`, or the demo image for None; a ValueError names a file that is not an image."""
    if path is None:
        return demo_image()
    return open_rgb_image(path, f"--image {path}")


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


def user_turn(query: str, num_boxes: int) -> dict:
    """A user chat message asking `query`; referred boxes go after the query unless it places them."""
    content = [{"type": "image"}, {"type": "text", "text": query}]
    if num_boxes and "<refer_box>" not in query:
        content += [{"type": "text", "text": " "}, *[{"type": "box"}] * num_boxes]
    return {"role": "user", "content": content}


def chat_prompt(processor: ProcessorMixin, query: str, num_boxes: int) -> str:
    """The original inference prompt around `query` (see [`user_turn`])."""
    messages = [user_turn(query, num_boxes)]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def generate_grounded(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    images: list[Image.Image],
    prompts: list[str],
    boxes: list[list[list[float]]] | None = None,
    **generate_kwargs,
) -> list[dict]:
    """Groma's grounded answers to one prompt per image.

    Args:
        images: RGB images, one per prompt.
        prompts: Chat prompts (e.g. from [`chat_prompt`]).
        boxes: Per image, the pixel `[x1, y1, x2, y2]` boxes filling its prompt's `<refer_box>` placeholders.
        **generate_kwargs: Passed to `model.generate` (`max_new_tokens`, `do_sample`, ...).

    Returns:
        One dict per image: the `text` and `entities` of [`~GromaProcessor.post_process_grounding`], `regions` (the
        selected regions as pixel `[x1, y1, x2, y2]` lists), and the private `_regions` (normalized `(num_regions, 4)`
        cxcywh tensor) and `_generated_ids` (the new token ids, 1-D).
    """
    # pixel_values stay float32: the model casts them to its vision tower's dtype (float32 with a 16-bit LLM when
    # `config.keep_vision_path_fp32`), which `model.dtype` (the LLM's) does not tell.
    inputs = processor(images=images, text=prompts, boxes=boxes, return_tensors="pt").to(model.device)
    output = model.generate(**inputs, return_dict_in_generate=True, **generate_kwargs)
    new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
    sizes = [image.size[::-1] for image in images]
    parsed = processor.post_process_grounding(new_tokens, output.region_boxes, target_sizes=sizes)
    results = []
    for size, answer, regions, ids in zip(sizes, parsed, output.region_boxes, new_tokens):
        regions = regions.float().cpu()
        pixels = normalized_cxcywh_to_pixel_xyxy(regions, size).tolist()
        results.append({**answer, "regions": pixels, "_regions": regions, "_generated_ids": ids.cpu()})
    return results


def describe_regions(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    image: Image.Image,
    query: str | None = None,
    batch_size: int = 4,
    **generate_kwargs,
) -> dict:
    """Groma's description of every region it selects in `image` (dense region captioning): the regions that
    `generate` would select, each asked about in its own region-caption prompt.

    Args:
        image: An RGB image.
        query: The question asked about each region (default: `region_caption_prompt()`, "What is
            <roi><refer_box></roi><refer_feat>?"); the region goes after it unless it places `<refer_box>`.
        batch_size: Regions described together in one `generate` call.
        **generate_kwargs: Passed to `model.generate` (`max_new_tokens`, `do_sample`, ...).

    Returns:
        A dict like [`generate_grounded`]'s: `text` (the descriptions, in region order, joined by spaces),
        `entities` (one per region: its description as `phrase`, its pixel box clipped to the image, its index in
        the selection as `region_indices`, and the `span` of the description in `text`), `regions` (the selected
        regions as pixel `[x1, y1, x2, y2]` lists, unclipped) and the private `_regions`.
    """
    pixel_values = processor.image_processor(image, return_tensors="pt")["pixel_values"].to(model.device)
    (regions,), _ = model.propose_regions(pixel_values)
    regions = regions.float().cpu()
    width, height = image.size
    pixels = normalized_cxcywh_to_pixel_xyxy(regions, (height, width))
    # a proposal may reach a little past the border; the region prompt takes boxes inside the image
    clipped = clip_boxes_to_image(pixels, (height, width)).tolist()
    prompt = chat_prompt(processor, query or region_caption_prompt(), num_boxes=1)
    captions = []
    for start in range(0, len(clipped), batch_size):
        boxes = [[box] for box in clipped[start : start + batch_size]]
        answers = generate_grounded(
            model, processor, [image] * len(boxes), [prompt] * len(boxes), boxes, **generate_kwargs
        )
        captions += [answer["text"] for answer in answers]
    entities, offset = [], 0
    for index, (caption, box) in enumerate(zip(captions, clipped)):
        entities.append(
            {"phrase": caption, "boxes": [box], "region_indices": [index], "span": (offset, offset + len(caption))}
        )
        offset += len(caption) + 1
    return {"text": " ".join(captions), "entities": entities, "regions": pixels.tolist(), "_regions": regions}


def predict(
    args: argparse.Namespace, model: PreTrainedModel, processor: ProcessorMixin, jobs: list[dict]
) -> list[dict]:
    """Run every (image, query) job on a Groma model; returns one result dict per job."""
    if args.describe_regions:
        return [describe_job(args, model, processor, job) for job in jobs]
    results = []
    for batch in batched(jobs, args.batch_size, desc="groma"):
        images = [open_image(job["image"]) for job in batch]
        queries = [job["query"] or TINY_QUERY for job in batch]
        prompts = [chat_prompt(processor, query, len(args.box or [])) for query in queries]
        boxes = [args.box] * len(batch) if args.box else None
        answers = generate_grounded(
            model, processor, images, prompts, boxes, max_new_tokens=args.max_new_tokens, do_sample=False
        )
        for job, query, image, answer in zip(batch, queries, images, answers):
            results.append({"image": job["image"] or "<demo image>", "query": query, **answer, "_image": image})
    return results


def describe_job(args: argparse.Namespace, model: PreTrainedModel, processor: ProcessorMixin, job: dict) -> dict:
    """`--describe_regions`: the result of [`describe_regions`] for one job."""
    image = open_image(job["image"])
    query = job["query"] or region_caption_prompt()
    answer = describe_regions(
        model, processor, image, query, args.batch_size, max_new_tokens=args.max_new_tokens, do_sample=False
    )
    return {"image": job["image"] or "<demo image>", "query": query, **answer, "_image": image}


def public_fields(result: dict) -> dict:
    """`result` without its private (`_`-prefixed) entries: what is printed as JSON."""
    return {key: value for key, value in result.items() if not key.startswith("_")}


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


def draw_pictures(
    results: list[dict], output: str, draw: Callable[[dict], Image.Image | None]
) -> dict[Path, Image.Image]:
    """`draw(result)` of every result that has a picture, by the path to save it at (`output`, or `output` with `_i`
    for several results); each such result records that path under `picture`."""
    target = Path(output)
    pictures = {}
    for i, result in enumerate(results):
        picture = draw(result)
        if picture is not None:
            path = target if len(results) == 1 else target.with_name(f"{target.stem}_{i}{target.suffix}")
            pictures[path] = picture
            result["picture"] = str(path)
    return pictures


def save_pictures(pictures: dict[Path, Image.Image]) -> None:
    """Save the pictures of [`draw_pictures`]; exits with the reason when one cannot be written."""
    for path, picture in pictures.items():
        try:
            picture.save(path)
        except (OSError, ValueError) as error:
            raise SystemExit(f"error: could not save the picture {path}: {error}") from error


def family_handlers(family: str) -> tuple[Callable, Callable, Callable]:
    """`(predict, draw_picture, describe)` of a model family (see this module's Groma versions)."""
    if family == "groundinggpt":
        # `cli_groundinggpt` builds on this module, so it is imported on demand.
        from . import cli_groundinggpt

        return cli_groundinggpt.predict, cli_groundinggpt.draw_picture, cli_groundinggpt.describe
    return predict, draw_picture, describe


def parse_device(text: str) -> torch.device:
    """A torch device that exists on this machine (`cpu`, or the accelerator: `cuda`, `cuda:1`...).

    Raises:
        ValueError: naming the device when it is malformed or absent from this machine.
    """
    try:
        device = torch.device(text)
    except RuntimeError as error:
        raise ValueError(f"expected a device such as cpu, cuda or cuda:1, got {text!r}") from error
    if device.type == "cpu":
        return device
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if accelerator is None or accelerator.type != device.type:
        available = "cpu" if accelerator is None else f"cpu and {accelerator.type}"
        raise ValueError(f"{text!r} is not available on this machine (available: {available})")
    if device.index is not None and device.index >= torch.accelerator.device_count():
        raise ValueError(
            f"{text!r}: this machine has {torch.accelerator.device_count()} {device.type} device(s), numbered from 0"
        )
    return device


def dtype_for(device: torch.device, name: str | None) -> torch.dtype:
    """The `--dtype` named `name`, by default bfloat16 on CUDA and float32 elsewhere."""
    return DTYPES[name or ("bfloat16" if device.type == "cuda" else "float32")]


def device_and_dtype(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """The `--device` (default: cuda if available) and `--dtype` (default: bfloat16 on CUDA, else float32) of `args`;
    exits with a message for a device this machine lacks."""
    try:
        device = parse_device(args.device) if args.device else None
    except ValueError as error:
        raise SystemExit(f"error: --device: {error}") from error
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return device, dtype_for(device, args.dtype)


def main(argv: list[str] | None = None) -> None:
    """The `groma` console script (see `transformers_groma_cli`, which parses the arguments)."""
    from transformers_groma_cli import main as console_main

    console_main(argv)


def predict_command(args: argparse.Namespace) -> None:
    """`groma predict`: answer every job of `args` and print (and draw) the results."""
    family = model_family(args)
    check_options(args, family)
    run, draw, show = family_handlers(family)
    jobs = build_jobs(args)
    check_boxes(args)
    if args.output:
        check_output(args.output)
    device, dtype = device_and_dtype(args)
    model, processor = load_model_and_processor(args, device, dtype)
    try:
        results = run(args, model, processor, jobs)
    except (ImportError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    # Drawn before printing (to print where each picture goes) and saved after it, so a failed save loses no answer.
    pictures = draw_pictures(results, args.output, draw) if args.output else {}
    results = [public_fields(result) for result in results]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        for result in results:
            print(show(result))
            if "picture" in result:
                print(f"  picture: {result['picture']}")
    save_pictures(pictures)


if __name__ == "__main__":
    main()
