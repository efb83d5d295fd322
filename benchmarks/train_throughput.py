"""Training throughput: padded vs padding-free batches, per LLM attention implementation, side by side.

Every variant runs forward + backward on the same multimodal batches (variable-length answers, so padding
matters), rounds interleaved. Padded variants call the model as the Trainer does; padding-free ones pass
`padding_free=True`, which packs the expanded sequences into one row with restarting `position_ids`
(FlashAttention-2 runs its varlen kernels on them; sdpa and eager get a block-diagonal mask over the packed row).
The vision tower and proposer are frozen (as in instruction finetuning); float32 weights under bf16 autocast on
CUDA (the Trainer's `--bf16`), float32 on the CPU. Reported: tokens/s (real expanded tokens, padding excluded) and
its ratio to `sdpa padded` (round by round), peak memory, and the mean loss (padding-free must match padded).

    python benchmarks/train_throughput.py                 # CPU: small model
    python benchmarks/train_throughput.py --size full     # CUDA: Groma-7B shapes
"""

import argparse
import statistics

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
    to_device,
    training_batch,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, repeats=4)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 on CUDA, 4 on CPU")
    parser.add_argument("--max-answer-tokens", type=int, default=None, help="default: 400 on CUDA, 120 on CPU")
    parser.add_argument("--num-batches", type=int, default=2, help="distinct batches, used in turn by the rounds")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    deadline = Deadline(args.time_budget)
    cuda = device.type == "cuda"
    batch_size = args.batch_size or (8 if cuda else 4)
    max_answer = args.max_answer_tokens or (400 if cuda else 120)

    config = groma_config(args.size)
    print(f"building the {args.size} model on {device} ...", flush=True)
    model = build_model(config, device, torch.float32)
    model.model.vision_tower.requires_grad_(False)
    model.model.region_proposer.requires_grad_(False)
    batches = [
        to_device(training_batch(config, args.size, batch_size, max_answer, seed), device)
        for seed in range(args.num_batches)
    ]
    implementations, skipped = attention_implementations(device)
    implementations = [impl for impl in implementations if impl != "eager"]
    tokens, losses, turn = {}, {}, {}

    def step(impl: str, padding_free: bool, name: str):
        def run():
            batch = batches[turn.setdefault(name, 0) % len(batches)]
            turn[name] += 1
            model.set_attn_implementation({"text_config": impl})
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                outputs = model(**batch, padding_free=padding_free, use_cache=False)
            outputs.loss.backward()
            real = outputs.expanded_attention_mask
            tokens.setdefault(name, []).append(
                outputs.expanded_input_ids.shape[1] if padding_free else int(real.sum())
            )
            losses.setdefault(name, []).append(float(outputs.loss))

        return run

    variants = {}
    for impl in implementations:
        for padding_free in (False, True):
            name = f"{impl} {'padding-free' if padding_free else 'padded'}"
            variants[name] = step(impl, padding_free, name)
    peaks = {}
    times, complete = interleaved(variants, device, args.repeats, deadline, progress="train throughput: ", peaks=peaks)
    table = ResultTable(
        "train_throughput",
        "Training throughput: padded vs padding-free",
        args,
        device,
        notes=[
            f"batch {batch_size}, answers of 1-{max_answer} tokens, {len(batches)} batches used in turn; "
            f"{'float32 weights, bf16 autocast' if cuda else 'float32'}; vision tower and proposer frozen",
            "tokens/s: real expanded tokens (padding excluded) per second of forward + backward; median (min-max); "
            "ratios against sdpa padded, round by round",
            *[f"not measured: {reason}" for reason in skipped],
        ],
    )
    rates = {name: [n / t for n, t in zip(tokens[name][-len(times[name]) :], times[name])] for name in times}
    for name in variants:
        table.add_row(
            {
                "variant": name,
                "tokens/s": spread(rates[name], digits=0),
                "vs sdpa padded": spread(ratios(rates[name], rates["sdpa padded"]), suffix="x"),
                "mean loss": f"{statistics.mean(losses[name]):.4f}" if losses.get(name) else "n/a",
                "peak memory (GiB)": format_memory(peaks.get(name)),
            }
        )
    table.write(complete)


if __name__ == "__main__":
    main()
