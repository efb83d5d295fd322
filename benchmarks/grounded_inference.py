"""Grounded inference over a set of images: batched `generate` vs an original-style loop, side by side.

REC-style queries (one image, the `<region>` list, a referring question) over N random images. Variants:

- `original-style`: what the original code does: a float32 model, one image at a time (batch 1), TF32 off;
- `batch B` (B in `--batch-sizes`): our batched `generate` over the same images, the LLM in `--dtype` (the vision
  path in float32, as `from_pretrained(..., dtype=...)` loads it);
- `batch B + bf16 vision` (B = `--fast-vision-batch`): the same with `vision_autocast_dtype="bfloat16"`.

Every variant generates exactly `--new-tokens` tokens per image (`min_new_tokens`), greedily. Reported per
variant: images/s and its ratio to the original-style loop (round by round), time to first token of one batch
(a 1-token `generate`), decode tokens/s ((B * (new - 1)) / (time per batch - time to first token)) and peak memory.

    python benchmarks/grounded_inference.py                      # CPU: small model, fp32
    python benchmarks/grounded_inference.py --size full          # CUDA: Groma-7B shapes, bf16 LLM
"""

import argparse
import copy

import torch
from common import (
    Deadline,
    ResultTable,
    add_common_arguments,
    build_model,
    format_memory,
    groma_config,
    interleaved,
    random_pixels,
    ratios,
    rec_prompts,
    spread,
)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def batched_generate(model, ids, mask, pixels, batch_size: int, new_tokens: int, limit: int | None = None):
    """Generate for the first `limit` images (all by default) in batches of `batch_size`."""
    count = len(ids) if limit is None else limit
    for start in range(0, count, batch_size):
        end = min(start + batch_size, count)
        model.generate(
            input_ids=ids[start:end],
            attention_mask=mask[start:end],
            pixel_values=pixels[start:end],
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, repeats=3)
    parser.add_argument("--num-images", type=int, default=None, help="default: the largest batch size")
    parser.add_argument("--original-images", type=int, default=4, help="images per round of the batch-1 loops")
    parser.add_argument(
        "--batch-sizes", default=None, help="comma-separated (default: 1,8,16,32 on CUDA, 1,4,8 on CPU)"
    )
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument(
        "--fast-vision-batch",
        type=int,
        default=None,
        help="also run this batch size with `vision_autocast_dtype='bfloat16'` (default: 16 on CUDA, none on CPU)",
    )
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="default: bfloat16 on CUDA, else float32"
    )
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    deadline = Deadline(args.time_budget)
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    batch_sizes = [
        int(b) for b in (args.batch_sizes or ("1,8,16,32" if device.type == "cuda" else "1,4,8")).split(",")
    ]
    num_images = args.num_images or max(batch_sizes)
    loop_images = min(args.original_images, num_images)
    if args.fast_vision_batch is None and device.type == "cuda":
        args.fast_vision_batch = 16
    torch.backends.cuda.matmul.allow_tf32 = False  # the original's setting; the fp32 vision path stays exact
    torch.backends.cudnn.allow_tf32 = False

    config = groma_config(args.size)
    print(f"building the {args.size} model on {device} ...", flush=True)
    original = build_model(config, device, torch.float32)
    ours = copy.deepcopy(original).cast_to(dtype) if dtype != torch.float32 else original
    ids, mask = rec_prompts(config, num_images)
    ids, mask = ids.to(device), mask.to(device)
    pixels = random_pixels(num_images, args.size).to(device)
    new = args.new_tokens

    variants, images, batch_of = {}, {}, {}
    variants["original-style"] = lambda: batched_generate(original, ids, mask, pixels, 1, new, loop_images)
    variants["original-style first"] = lambda: batched_generate(original, ids, mask, pixels, 1, 1, 1)
    images["original-style"], batch_of["original-style"] = loop_images, 1
    for b in batch_sizes:
        count = loop_images if b == 1 else num_images
        name = f"batch {b}"
        variants[name] = lambda b=b, count=count: batched_generate(ours, ids, mask, pixels, b, new, count)
        variants[f"{name} first"] = lambda b=b: batched_generate(ours, ids, mask, pixels, b, 1, b)
        images[name], batch_of[name] = count, b
    if args.fast_vision_batch:
        b, name = args.fast_vision_batch, f"batch {args.fast_vision_batch} + bf16 vision"
        fast = copy.deepcopy(ours)
        fast.config.vision_autocast_dtype = "bfloat16"
        variants[name] = lambda: batched_generate(fast, ids, mask, pixels, b, new)
        variants[f"{name} first"] = lambda: batched_generate(fast, ids, mask, pixels, b, 1, b)
        images[name], batch_of[name] = num_images, b

    peaks = {}
    times, complete = interleaved(
        variants, device, args.repeats, deadline, progress="grounded inference: ", peaks=peaks
    )
    with torch.no_grad():
        expanded = ours.model.prepare_multimodal_inputs(ids[:1], pixels[:1], mask[:1], padding_side="left")
    table = ResultTable(
        "grounded_inference",
        "Grounded inference: batched generate vs the original-style loop",
        args,
        device,
        notes=[
            f"{num_images} images (batch-1 variants: {loop_images} per round), {new} new tokens each, greedy; "
            f"expanded prompt {expanded.input_ids.shape[1]} tokens ({len(expanded.region_boxes[0])} regions) for "
            "image 0",
            f"original-style: float32, batch 1, TF32 off; batch B: LLM in {str(dtype).removeprefix('torch.')}, "
            "vision path float32",
            "images/s and the ratio: median (min-max) over the rounds; the ratio is taken round by round against the "
            "original-style loop of the same round",
            "time to first token: a 1-token generate of one batch (vision path + prefill)",
        ],
    )
    baseline = [loop_images / t for t in times["original-style"]]
    for name in images:
        per_image = [t / images[name] for t in times[name]]
        rate = [1 / t for t in per_image]
        batches = images[name] / batch_of[name]
        decode = [  # rounds where load noise made the 1-token call the slower one give no decode rate
            batch_of[name] * (new - 1) / (total / batches - first)
            for total, first in zip(times[name], times[f"{name} first"])
            if total / batches > first
        ]
        table.add_row(
            {
                "variant": name,
                "images/s": spread(rate),
                "vs original-style": spread(ratios(rate, baseline), suffix="x"),
                "time to first token (ms)": spread(times[f"{name} first"], 1000, 0),
                "decode tokens/s": spread(decode, digits=0),
                "peak memory (GiB)": format_memory(peaks.get(name)),
            }
        )
    table.write(complete)


if __name__ == "__main__":
    main()
