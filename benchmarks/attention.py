"""LLM attention implementations side by side: eager vs sdpa vs flash_attention_2, for prefill and a training step.

A right-padded text batch (`--batch-size` rows of 50-100% of `--seq-len` tokens) goes through the LLM of the model
(text-only `forward`): `prefill` is a no-grad forward, `train step` a forward with labels plus backward.
flash_attention_2 joins when a CUDA device and the `flash-attn` package are there. Ratios are against sdpa, taken
round by round.

    python benchmarks/attention.py                # CPU: small model, fp32
    python benchmarks/attention.py --size full    # CUDA: Groma-7B LLM in bf16
"""

import argparse

import torch
from common import (
    Deadline,
    ResultTable,
    add_common_arguments,
    attention_implementations,
    build_model,
    format_memory,
    groma_config,
    interleaved,
    ratios,
    spread,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, repeats=3)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 4 on CUDA, 2 on CPU")
    parser.add_argument("--seq-len", type=int, default=None, help="default: 1024 on CUDA, 256 on CPU")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    deadline = Deadline(args.time_budget)
    cuda = device.type == "cuda"
    batch_size, seq_len = args.batch_size or (4 if cuda else 2), args.seq_len or (1024 if cuda else 256)
    dtype = torch.bfloat16 if cuda else torch.float32

    config = groma_config(args.size)
    print(f"building the {args.size} model on {device} ...", flush=True)
    model = build_model(config, device, dtype)
    for module in (model.model.vision_tower, model.model.region_proposer, model.model.region_encoder):
        module.requires_grad_(False)  # text-only batches: the vision path takes no part
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (batch_size,), generator=generator)
    lengths[0] = seq_len
    mask = (torch.arange(seq_len)[None] < lengths[:, None]).long()
    ids = torch.randint(3, 32000 if args.size != "tiny" else 1000, (batch_size, seq_len), generator=generator)
    ids = ids.masked_fill(mask == 0, config.pad_token_id).to(device)
    labels = ids.masked_fill(mask.to(device) == 0, -100)
    mask = mask.to(device)
    implementations, skipped = attention_implementations(device)

    def prefill(impl: str):
        def run():
            model.set_attn_implementation({"text_config": impl})
            with torch.no_grad():
                model(input_ids=ids, attention_mask=mask, use_cache=False)

        return run

    def train_step(impl: str):
        def run():
            model.set_attn_implementation({"text_config": impl})
            model.zero_grad(set_to_none=True)
            model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss.backward()

        return run

    variants = {}
    for impl in implementations:
        variants[f"{impl} prefill"] = prefill(impl)
        variants[f"{impl} train step"] = train_step(impl)
    peaks = {}
    times, complete = interleaved(variants, device, args.repeats, deadline, progress="attention: ", peaks=peaks)
    tokens = int(mask.sum())
    table = ResultTable(
        "attention",
        "LLM attention implementations: prefill and training step",
        args,
        device,
        notes=[
            f"batch {batch_size} x {seq_len} tokens, right-padded, {tokens} real tokens; LLM in "
            f"{str(dtype).removeprefix('torch.')}",
            "tokens/s counts real tokens; median (min-max) over the rounds; ratios against sdpa, round by round",
            *[f"not measured: {reason}" for reason in skipped],
        ],
    )
    for phase in ("prefill", "train step"):
        for impl in implementations:
            name = f"{impl} {phase}"
            table.add_row(
                {
                    "phase": phase,
                    "attention": impl,
                    "ms per batch": spread(times[name], 1000, 1),
                    "tokens/s": spread([tokens / t for t in times[name]], digits=0),
                    "vs sdpa": spread(ratios(times[f"sdpa {phase}"], times[name]), suffix="x"),
                    "peak memory (GiB)": format_memory(peaks.get(name)),
                }
            )
    table.write(complete)


if __name__ == "__main__":
    main()
