"""What `vision_autocast_dtype` changes in the answers: boxes and tokens with the vision path in bf16 / fp16 autocast
against float32, on the same images and prompts.

REC queries ("Locate <p>...</p> in the image.") over the images of a groma_data-style REC file are answered
greedily twice per image, with `vision_autocast_dtype=None` (float32) and with `--dtype`; reported: how many
answers have the same selected regions (count and every box within `--box-tolerance`), the largest box difference,
and how many generated token sequences are identical. A trained model is needed for the numbers to mean
anything (random weights score every proposal alike, so any rounding reorders them).

    python benchmarks/vision_precision.py --model MODEL_DIR --rec-json rec.json --image-dir images/ --num 32
"""

import argparse
import json
from pathlib import Path

import torch
from common import ResultTable, add_common_arguments
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

import transformers_groma  # noqa: F401  (registers Groma with the Auto classes)
from transformers_groma.processing import rec_prompt


def answer(model, processor, image: Image.Image, expression: str, device: torch.device):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": rec_prompt(expression)}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[image], text=[prompt], return_tensors="pt").to(device)
    output = model.generate(**inputs, do_sample=False, max_new_tokens=24, return_dict_in_generate=True)
    return output.sequences[0, inputs["input_ids"].shape[1] :], output.region_boxes[0]


def answer_box(tokens: torch.Tensor, boxes: torch.Tensor, config) -> torch.Tensor | None:
    """The region the first generated `<rK>` points at, or None without one."""
    index = tokens - config.region_index_token_id
    pointers = index[(index >= 0) & (index < len(boxes))]
    return boxes[pointers[0]] if len(pointers) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--model", required=True, help="a Groma model folder (save_pretrained / groma-convert)")
    parser.add_argument("--rec-json", type=Path, required=True, help="REC file: `images` with file_name and caption")
    parser.add_argument("--image-dir", type=Path, required=True)
    parser.add_argument("--num", type=int, default=32, help="queries to answer")
    parser.add_argument("--dtype", choices=("bfloat16", "float16"), default="bfloat16")
    parser.add_argument("--box-tolerance", type=float, default=1e-3, help="normalized units")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    processor = AutoProcessor.from_pretrained(args.model)
    model = AutoModelForImageTextToText.from_pretrained(args.model).to(device).eval()
    queries = json.loads(args.rec_json.read_text())["images"][: args.num]
    same_regions = same_order = same_tokens = answered = same_answer_box = 0
    largest = 0.0
    for index, query in enumerate(queries):
        with Image.open(args.image_dir / query["file_name"]) as file:
            image = file.convert("RGB")
        results = []
        for dtype in (None, args.dtype):
            model.config.vision_autocast_dtype = dtype
            results.append(answer(model, processor, image, query["caption"], device))
        (tokens, boxes), (fast_tokens, fast_boxes) = results
        if boxes.shape == fast_boxes.shape:
            # order-free: every float32 region has a counterpart among the fast regions, and vice versa
            distance = (boxes[:, None] - fast_boxes[None]).abs().amax(-1)
            difference = float(max(distance.amin(1).max(), distance.amin(0).max()))
            largest = max(largest, difference)
            same_regions += difference <= args.box_tolerance
            same_order += bool((boxes - fast_boxes).abs().max() <= args.box_tolerance)
        same_tokens += torch.equal(tokens, fast_tokens)
        answer_boxes = [answer_box(t, b, model.config) for t, b in ((tokens, boxes), (fast_tokens, fast_boxes))]
        if None not in answer_boxes:
            answered += 1
            same_answer_box += bool((answer_boxes[0] - answer_boxes[1]).abs().max() <= args.box_tolerance)
        print(f"vision precision: {index + 1}/{len(queries)}", flush=True)
    table = ResultTable(
        "vision_precision",
        f"vision_autocast_dtype={args.dtype} against float32: boxes and tokens",
        args,
        device,
        model=f"`{Path(args.model).name}` (trained weights)",
        notes=[
            f"{len(queries)} REC queries, greedy, 24 new tokens at most",
            f"same regions: same number of selected regions, every box within {args.box_tolerance} (normalized) of "
            "one on the other side; same order: also at the same index (so the same <rK> names the same box)",
            "answer box: the region the first generated <rK> points at, where both answers have one",
        ],
    )
    table.add_row(
        {
            "queries": len(queries),
            "same regions (any order)": f"{same_regions}/{len(queries)}",
            "same regions, same order": f"{same_order}/{len(queries)}",
            "largest box difference (normalized)": f"{largest:.1e}",
            "identical answers (tokens)": f"{same_tokens}/{len(queries)}",
            "same answer box": f"{same_answer_box}/{answered}",
        }
    )
    table.write()


if __name__ == "__main__":
    main()
