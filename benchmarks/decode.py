"""Decoding at batch 1: dynamic vs static cache, with and without `torch.compile`, against the bandwidth bound.

A decode step must read every LLM weight once, so its floor is (LLM + LM-head parameter bytes) / (device copy
bandwidth), the bandwidth measured here as a large device-to-device copy (bytes read + written). Variants, all
greedy `generate` calls on one text prompt of `--prompt-tokens` tokens, interleaved:

- `dynamic`: the default `DynamicCache`;
- `static`: `cache_implementation="static"` with compilation disabled;
- `static + compile`: static cache with transformers' automatic decode compilation (`CompileConfig`, mode
  `reduce-overhead` = CUDA graphs on a GPU); `fullgraph=True` is tried first, then `False` (the table says which).

Per-token time = (time of an N-token generate - time of a 1-token generate) / (N - 1), round by round.

    python benchmarks/decode.py                 # CPU: small model, fp32
    python benchmarks/decode.py --size full     # CUDA: Groma-7B LLM in bf16
"""

import argparse

import torch
from common import (
    Deadline,
    ResultTable,
    add_common_arguments,
    build_model,
    groma_config,
    interleaved,
    llm_parameter_bytes,
    ratios,
    spread,
    timed,
)
from transformers import CompileConfig


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a large device-to-device copy (read + write), best of 5."""
    numel = (2**28 if device.type == "cuda" else 2**25) // 4 * 4  # 1 GiB / 128 MiB of float32
    source = torch.randn(numel, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    best = min(timed(lambda: target.copy_(source), device) for _ in range(5))
    return 2 * source.numel() * source.element_size() / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, repeats=5)
    parser.add_argument("--prompt-tokens", type=int, default=None, help="default: 600 on CUDA, 256 on CPU")
    parser.add_argument("--new-tokens", type=int, default=None, help="default: 64 on CUDA, 16 on CPU")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled variant")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    deadline = Deadline(args.time_budget)
    cuda = device.type == "cuda"
    prompt_tokens = args.prompt_tokens or (600 if cuda else 256)
    new_tokens = args.new_tokens or (64 if cuda else 16)
    dtype = torch.bfloat16 if cuda else torch.float32

    config = groma_config(args.size)
    print(f"building the {args.size} model on {device} ...", flush=True)
    model = build_model(config, device, dtype)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 32000 if args.size != "tiny" else 1000, (1, prompt_tokens), generator=generator)
    ids = ids.to(device)
    bandwidth = copy_bandwidth(device)
    weight_bytes = llm_parameter_bytes(model)
    bound = weight_bytes / bandwidth

    def generate(count: int, **kwargs):
        return lambda: model.generate(ids, max_new_tokens=count, min_new_tokens=count, do_sample=False, **kwargs)

    settings = {
        "dynamic": {"disable_compile": True},
        "static": {"cache_implementation": "static", "disable_compile": True},
    }
    notes = [
        f"prompt {prompt_tokens} tokens, {new_tokens} new tokens, greedy; LLM in {str(dtype).removeprefix('torch.')}",
        f"bandwidth bound: {weight_bytes / 1e9:.2f} GB of LLM + LM-head weights / {bandwidth / 1e9:.0f} GB/s "
        f"measured copy bandwidth = {bound * 1000:.3f} ms per token",
        "ms/token and ratios: median (min-max) over the rounds, ratios taken round by round",
    ]
    # Without compilation first, so that table exists even if compiling then outlasts the time budget.
    measure(model, ids, settings, new_tokens, bound, args, device, deadline, notes + ["static + compile: not run"])
    if args.no_compile or deadline.remaining() < 0:
        return
    for fullgraph in (True, False):
        compiled = {
            "cache_implementation": "static",
            "compile_config": CompileConfig(fullgraph=fullgraph, mode="reduce-overhead" if cuda else "default"),
        }
        try:
            print(f"decode: compiling (fullgraph={fullgraph}) ...", flush=True)
            model.generate(ids, max_new_tokens=3, do_sample=False, **compiled)
            break
        except Exception as error:  # a graph break under fullgraph=True: retry without
            print(f"decode: fullgraph={fullgraph} failed: {type(error).__name__}: {str(error)[:300]}", flush=True)
            torch._dynamo.reset()
    settings["static + compile"] = compiled
    note = (
        f"static + compile: transformers' CompileConfig(fullgraph={fullgraph}, mode={compiled['compile_config'].mode})"
    )
    measure(model, ids, settings, new_tokens, bound, args, device, deadline, notes + [note])


def measure(model, ids, settings, new_tokens, bound, args, device, deadline, notes) -> None:
    """Time every setting side by side and write the table."""

    def generate(count: int, kwargs: dict):
        return lambda: model.generate(ids, max_new_tokens=count, min_new_tokens=count, do_sample=False, **kwargs)

    variants = {}
    for name, kwargs in settings.items():
        variants[name] = generate(new_tokens, kwargs)
        variants[f"{name} first"] = generate(1, kwargs)
    times, complete = interleaved(variants, device, args.repeats, deadline, progress="decode: ")
    table = ResultTable("decode", "Decode at batch 1: ms per token against the bandwidth bound", args, device, notes)
    per_token = {
        name: [(full - first) / (new_tokens - 1) for full, first in zip(times[name], times[f"{name} first"])]
        for name in settings
    }
    for name in settings:
        table.add_row(
            {
                "variant": name,
                "ms/token": spread(per_token[name], 1000, 3),
                "tokens/s": spread([1 / t for t in per_token[name]], digits=1),
                "vs dynamic": spread(ratios(per_token["dynamic"], per_token[name]), suffix="x"),
                "fraction of bandwidth bound": spread([bound / t for t in per_token[name]], digits=3),
                "prefill + 1 token (ms)": spread(times[f"{name} first"], 1000, 1),
            }
        )
    table.write(complete)


if __name__ == "__main__":
    main()
