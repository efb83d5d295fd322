"""The vision path (everything before the LLM) per stage: eager vs `torch.compile`, float32 vs TF32 vs bf16 autocast.

One batch of `--batch-size` images goes through the model's own stage methods in order: DINOv2 (`encode_image`),
2x2 merge + bridge (`project_image_features`), region proposer (`get_region_proposals`; its deformable encoder is timed
by a separate call of `region_proposer.encode`, the decoder is the rest), region selection (`select_regions`) and
the region encoder (`get_region_features`); `end-to-end` is one `prepare_multimodal_inputs` call (the stages plus
placeholder expansion and embedding). Variants (all rounds interleaved):

- `eager fp32`: the parity default (TF32 off);
- `eager tf32` (CUDA): TF32 matrix products and convolutions;
- `eager bf16`: the model's `vision_autocast_dtype="bfloat16"` (bf16 autocast; boxes, selection and RoIAlign
  coordinates stay float32);
- `compiled ...`: the same with `torch.compile` applied to the vision tower, bridge, proposer and region encoder.

Also reported: how far each variant's selected boxes are from `eager fp32`'s (max |difference|, normalized units).

    python benchmarks/vision_path.py                          # CPU: small model
    python benchmarks/vision_path.py --size full --batch-size 16
"""

import argparse
import contextlib
import time

import torch
from common import (
    Deadline,
    ResultTable,
    add_common_arguments,
    build_model,
    groma_config,
    interleaved,
    random_pixels,
    ratios,
    rec_prompts,
    spread,
    synchronize,
)


STAGES = ("dinov2", "merge+bridge", "proposer", "selection", "region encoder")
COMPILED_MODULES = ("vision_tower", "multi_modal_projector", "region_proposer", "region_encoder")


class StageClock:
    """Marks between stages: CUDA events on a GPU (no synchronisation inside the path), host time on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.marks: list[tuple[str, object]] = []

    def mark(self, name: str) -> None:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append((name, event))
        else:
            self.marks.append((name, time.perf_counter()))

    def durations(self) -> dict[str, float]:
        """Seconds from each mark to the next, by the later mark's name."""
        synchronize(self.device)
        result = {}
        for (_, start), (name, end) in zip(self.marks, self.marks[1:]):
            result[name] = start.elapsed_time(end) / 1000 if self.device.type == "cuda" else end - start
        return result


@contextlib.contextmanager
def precision(model, mode: str):
    """fp32 (TF32 off), tf32 (TF32 on) or bf16 (the model's `vision_autocast_dtype="bfloat16"`)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, model.config.vision_autocast_dtype
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    model.config.vision_autocast_dtype = "bfloat16" if mode == "bf16" else None
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, model.config.vision_autocast_dtype = (
            saved
        )


@contextlib.contextmanager
def swapped(model: torch.nn.Module, replacements: dict[str, torch.nn.Module]):
    """Temporarily replace submodules (the compiled wrappers) so the model's own methods call them."""
    originals = {name: getattr(model, name) for name in replacements}
    for name, module in replacements.items():
        setattr(model, name, module)
    try:
        yield
    finally:
        for name, module in originals.items():
            setattr(model, name, module)


def run_stages(model, pixels, ids, mask, device, record: list, boxes_out: list) -> None:
    """One pass of the stages, then one end-to-end `prepare_multimodal_inputs`; appends the stage seconds."""
    clock = StageClock(device)
    image_size = tuple(pixels.shape[-2:])
    no_boxes = [torch.zeros(0, 4, device=device)] * len(pixels)
    clock.mark("start")
    states, grid = model.encode_image(pixels)
    clock.mark("dinov2")
    model.project_image_features(states, grid)
    clock.mark("merge+bridge")
    proposer = model.region_proposer
    if not isinstance(proposer, torch._dynamo.eval_frame.OptimizedModule):
        feature_map = model.get_feature_map(states, model.config.proposer_feature_layers, grid)
        proposer.encode(proposer.input_norm(proposer.input_proj(feature_map)))
    clock.mark("proposer encoder")
    proposals = model.get_region_proposals(states, grid)
    clock.mark("proposer")
    boxes, _ = model.select_regions(proposals, no_boxes, no_boxes)
    clock.mark("selection")
    model.get_region_features(states, grid, boxes, image_size)
    clock.mark("region encoder")
    model.prepare_multimodal_inputs(ids, pixels, mask, padding_side="left")
    clock.mark("end-to-end")
    record.append(clock.durations())
    boxes_out[:] = boxes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, repeats=3)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 on CUDA, 4 on CPU")
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated, from: eager-fp32, eager-tf32, eager-bf16, compiled-fp32, compiled-tf32, "
        "compiled-bf16 (default: all but compiled-fp32/tf32 on CUDA; eager-fp32, eager-bf16, compiled-fp32 on CPU)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    deadline = Deadline(args.time_budget)
    batch_size = args.batch_size or (16 if device.type == "cuda" else 4)
    default_variants = (
        "eager-fp32,eager-tf32,eager-bf16,compiled-bf16"
        if device.type == "cuda"
        else "eager-fp32,eager-bf16,compiled-fp32"
    )
    variant_names = (args.variants or default_variants).split(",")

    config = groma_config(args.size)
    print(f"building the {args.size} model on {device} ...", flush=True)
    model = build_model(config, device, torch.float32).model
    pixels = random_pixels(batch_size, args.size).to(device)
    ids, mask = rec_prompts(config, batch_size)
    ids, mask = ids.to(device), mask.to(device)
    compiled = {name: torch.compile(getattr(model, name)) for name in COMPILED_MODULES}

    records = {name: [] for name in variant_names}
    boxes = {name: [] for name in variant_names}

    def variant(name: str):
        kind, mode = name.split("-")
        replacements = compiled if kind == "compiled" else {}

        @torch.no_grad()
        def run():
            with swapped(model, replacements), precision(model, mode):
                run_stages(model, pixels, ids, mask, device, records[name], boxes[name])

        return run

    # Eager variants first, so their table exists even if compilation then outlasts the time budget.
    eager = [name for name in variant_names if name.startswith("eager")]
    for names in (eager, variant_names) if len(eager) < len(variant_names) else (eager,):
        for name in variant_names:
            records[name].clear()
        times, complete = interleaved(
            {name: variant(name) for name in names}, device, args.repeats, deadline, progress="vision path: "
        )
        write_table(args, device, batch_size, names, times, records, boxes, complete and names == variant_names)
        if not complete or deadline.remaining() <= 0:
            break


def write_table(args, device, batch_size, variant_names, times, records, boxes, complete) -> None:
    table = ResultTable(
        "vision_path",
        f"Vision path per stage at batch {batch_size}: ms per image",
        args,
        device,
        notes=[
            "ms per image (stage time / batch size): median (min-max) over the rounds; 'vs <first variant>' is "
            "the end-to-end ratio taken round by round",
            "proposer encoder = a separate call of the deformable encoder; decoder = proposer - encoder (n/a when the "
            "proposer is compiled as a whole)",
            "end-to-end = prepare_multimodal_inputs: the stages + placeholder expansion + embedding merge",
            "boxes vs the first variant: max |difference| of the selected boxes (normalized cxcywh) in the last round; "
            "'differs' when a different number of regions was selected",
        ],
    )
    baseline = variant_names[0]
    for name in variant_names:
        measured = records[name][-len(times[name]) :] if times[name] else []
        row = {"variant": name}
        for stage in STAGES:
            row[stage] = spread([r[stage] for r in measured], 1000 / batch_size)
        if measured and "proposer encoder" in measured[0] and not name.startswith("compiled"):
            row["(proposer encoder)"] = spread([r["proposer encoder"] for r in measured], 1000 / batch_size)
            row["(proposer decoder)"] = spread(
                [r["proposer"] - r["proposer encoder"] for r in measured], 1000 / batch_size
            )
        else:
            row["(proposer encoder)"] = row["(proposer decoder)"] = "n/a"
        end_to_end = [r["end-to-end"] for r in measured]
        row["end-to-end"] = spread(end_to_end, 1000 / batch_size)
        reference = [r["end-to-end"] for r in records[baseline][-len(times[baseline]) :]] if times[baseline] else []
        row[f"vs {baseline}"] = spread(ratios(reference, end_to_end), suffix="x")
        if boxes[name] and boxes[baseline] and len(boxes[name]) == len(boxes[baseline]):
            same_count = all(len(a) == len(b) for a, b in zip(boxes[name], boxes[baseline]))
            delta = max(float((a - b).abs().max()) for a, b in zip(boxes[name], boxes[baseline])) if same_count else 0
            row[f"boxes vs {baseline}"] = f"{delta:.1e}" if same_count else "differs"
        table.add_row(row)
    table.write(complete)


if __name__ == "__main__":
    main()
