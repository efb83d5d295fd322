"""`groma-eval`: the paper's benchmarks on a converted Groma or GroundingGPT checkpoint.

groma-eval rec --model groma-7b-finetune-native --annotation_file refcoco_val.json --image_dir coco/train2017 \\
    --output_dir eval/refcoco_val
accelerate launch --num_processes 8 -m transformers_groma.evaluation rec --model ... (same options)
groma-eval rec --tiny --annotation_file ... (the demo model, or a tiny random one: an offline smoke run)
"""

import argparse
import json
import os
from pathlib import Path

import torch
from accelerate import PartialState

from transformers_groma_cli import positive_int

from ..cli import dtype_for, load_model_and_processor, read_model_type
from ..conversion.checkpoint_io import DTYPES
from .annotations import AnnotationError
from .metrics import CAPTION_METRIC_NAMES
from .predictors import GromaPredictor, GroundingGPTPredictor, ProposalPredictor
from .report import PAPER_NUMBERS
from .runner import OutputFolderError, evaluate
from .tasks import TASKS, infer_benchmark


BENCHMARKS = sorted({benchmark for _, benchmark in PAPER_NUMBERS} | {"llava_bench"})


def demo_model_folder() -> str | None:
    """The shipped demo model's folder, or None when this installation has none."""
    try:
        from ..synthetic import demo_model_path

        return str(demo_model_path())
    except (ImportError, OSError, ValueError):
        return None


def model_description(args: argparse.Namespace) -> str:
    """How `run.json` names the model: its folder, or the tiny model used."""
    if args.tiny_groundinggpt:
        return "tiny random GroundingGPT"
    if args.tiny:
        return "tiny random Groma"
    return os.path.abspath(args.model)


def is_proposer_folder(model_path: str) -> bool:
    """Whether a converted folder holds a `GromaForRegionProposal` (detection pretraining) model."""
    config = json.loads((Path(model_path) / "config.json").read_text())
    return "GromaForRegionProposal" in (config.get("architectures") or [])


def build_predictor(args: argparse.Namespace, family: str, device: torch.device, dtype: torch.dtype):
    """The predictor of the task and model: the proposer for `detection`, else generation."""
    if args.task == "detection" and args.model and is_proposer_folder(args.model):
        from ..modeling import GromaForRegionProposal
        from ..processing import GromaImageProcessor

        model = GromaForRegionProposal.from_pretrained(args.model).to(device).eval()
        return ProposalPredictor(model, GromaImageProcessor.from_pretrained(args.model), args.max_detections)
    model, processor = load_model_and_processor(args, device, dtype)
    if args.task == "detection":
        return ProposalPredictor(model, processor.image_processor, args.max_detections)
    return (GroundingGPTPredictor if family == "groundinggpt" else GromaPredictor)(model, processor)


def caption_metric_list(text: str) -> list[str]:
    """argparse type: comma-separated caption metric names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CAPTION_METRIC_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected names among {', '.join(CAPTION_METRIC_NAMES)}, got {text!r}")
    return names


def process_state() -> PartialState:
    """The process group of a `torchrun` / `accelerate launch` run (one process without a launcher): NCCL on GPUs,
    gloo on CPU (on a machine without an accelerator, or under `ACCELERATE_USE_CPU`)."""
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return PartialState(cpu=use_cpu or not torch.accelerator.is_available())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groma-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=sorted(TASKS), help="The benchmark protocol.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Folder of a converted Groma or GroundingGPT checkpoint.")
    source.add_argument(
        "--tiny", action="store_true", help="The shipped demo model (a tiny random Groma where there is none)."
    )
    source.add_argument("--tiny-groundinggpt", action="store_true", help="A tiny random GroundingGPT (REC only).")
    parser.add_argument("--annotation_file", required=True, help="The benchmark's annotation file.")
    parser.add_argument("--image_dir", required=True, help="Folder the annotation file's image names are relative to.")
    parser.add_argument("--output_dir", required=True, help="Predictions, metrics.json and summary.md go here.")
    parser.add_argument("--batch_size", type=positive_int, default=8, help="Queries per generate call (default 8).")
    parser.add_argument(
        "--max_samples",
        type=positive_int,
        help="Evaluate only the first N samples (lvis_ground: an image whose categories are cut off counts the "
        "ones not asked as missed).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seeds each sample's choice of phrasing (default 0).")
    parser.add_argument("--max_new_tokens", type=positive_int, help="Override the protocol's generation budget.")
    parser.add_argument(
        "--benchmark",
        choices=BENCHMARKS,
        help="Which paper benchmark the file is (for the paper's number and, for region_caption, the phrasing: "
        "refcocog_cap asks for detailed captions); default: guessed from the file name.",
    )
    parser.add_argument(
        "--caption_metrics",
        type=caption_metric_list,
        help=f"Comma-separated subset of {','.join(CAPTION_METRIC_NAMES)} (default: all this machine can compute).",
    )
    parser.add_argument("--max_detections", type=positive_int, default=100, help="detection: proposals per image.")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="Default: bfloat16 on CUDA, else float32.")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of `groma-eval` and `python -m transformers_groma.evaluation`."""
    args = build_parser().parse_args(argv)
    if args.tiny and (demo := demo_model_folder()) is not None:
        args.tiny, args.model = False, demo
    family = "groundinggpt" if args.tiny_groundinggpt else "groma" if args.tiny else read_model_type(args.model)
    task_class = TASKS[args.task]
    if family not in task_class.families:
        supported = ", ".join(name for name, task in sorted(TASKS.items()) if family in task.families)
        raise SystemExit(f"error: {args.task} evaluates Groma models; {family} models run: {supported}.")
    benchmark = args.benchmark or infer_benchmark(args.task, args.annotation_file)
    model_name = model_description(args)
    task = task_class(
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        benchmark=benchmark,
        caption_metrics=args.caption_metrics,
        model_id=Path(model_name).name,
    )
    try:
        samples = task.read(args.annotation_file, args.image_dir)
    except AnnotationError as error:
        raise SystemExit(f"error: {error}") from error
    samples = samples[: args.max_samples] if args.max_samples else samples
    state = process_state()
    predictor = build_predictor(args, family, state.device, dtype_for(state.device, args.dtype))
    run = {
        "task": args.task,
        "annotation_file": os.path.abspath(args.annotation_file),
        "model": model_name,
        "family": family,
        "benchmark": benchmark,
        "seed": args.seed,
        "max_new_tokens": args.max_new_tokens,
    }
    try:
        with torch.inference_mode():
            metrics = evaluate(
                task, samples, predictor, args.output_dir, family, args.batch_size, run, args.annotation_file, state
            )
    except (OutputFolderError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if metrics is not None:
        print(json.dumps(metrics, indent=2))
        print(f"Wrote {Path(args.output_dir) / 'metrics.json'} and summary.md")


if __name__ == "__main__":
    main()
