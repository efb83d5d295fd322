"""The papers' numbers, and the Markdown summary that puts a run's metrics beside them.

Groma: arXiv 2404.13013 (REC table as in the released README; LVIS-Ground, region captioning and LLaVA-Bench from the
paper's tables). GroundingGPT: arXiv 2401.06071 (REC). Numbers are percentages (CIDEr x100), as printed.
"""

from pathlib import Path
from typing import Any


PAPER_NUMBERS: dict[tuple[str, str], dict[str, float]] = {
    # (model family, benchmark) -> {metric: value}
    ("groma", "refcoco_val"): {"accuracy@0.5": 89.53},
    ("groma", "refcoco_testA"): {"accuracy@0.5": 92.09},
    ("groma", "refcoco_testB"): {"accuracy@0.5": 86.26},
    ("groma", "refcoco+_val"): {"accuracy@0.5": 83.90},
    ("groma", "refcoco+_testA"): {"accuracy@0.5": 88.91},
    ("groma", "refcoco+_testB"): {"accuracy@0.5": 78.05},
    ("groma", "refcocog_val"): {"accuracy@0.5": 86.37},
    ("groma", "refcocog_test"): {"accuracy@0.5": 87.01},
    ("groma", "lvis_ground"): {"AR": 28.8, "AR@0.5": 37.9, "AR@0.75": 30.3, "ARs": 8.7, "ARm": 35.6, "ARl": 64.3},
    ("groma", "refcocog_cap"): {"METEOR": 16.8, "CIDEr": 107.3},
    ("groma", "vg"): {"METEOR": 19.0, "CIDEr": 158.4},
    ("groundinggpt", "refcoco_val"): {"accuracy@0.5": 88.02},
    ("groundinggpt", "refcoco_testA"): {"accuracy@0.5": 91.55},
    ("groundinggpt", "refcoco_testB"): {"accuracy@0.5": 82.47},
    ("groundinggpt", "refcoco+_val"): {"accuracy@0.5": 81.61},
    ("groundinggpt", "refcoco+_testA"): {"accuracy@0.5": 87.18},
    ("groundinggpt", "refcoco+_testB"): {"accuracy@0.5": 73.18},
    ("groundinggpt", "refcocog_val"): {"accuracy@0.5": 81.67},
    ("groundinggpt", "refcocog_test"): {"accuracy@0.5": 81.99},
}
# LLaVA-Bench (COCO) relative scores of the GPT-4 review, which `groma-eval` does not run (see the README).
GROMA_LLAVA_BENCH = {"conversation": 82.6, "detail": 84.0, "reasoning": 88.8, "all": 85.2}
# Counts and other values shown as they are, not x100.
_PLAIN = ("num_samples", "num_without_box", "num_phrases", "num_empty_answers")


def _format(name: str, value: Any) -> str:
    if name in _PLAIN:
        return str(value)
    return f"{100 * value:.2f}" if value >= 0 else "n/a"


def summary_markdown(task: str, metrics: dict[str, Any], run: dict[str, Any]) -> str:
    """A short Markdown report of a run: its settings, and a table of its metrics (x100) beside the paper's."""
    family, benchmark = run.get("family", "groma"), run.get("benchmark")
    paper = PAPER_NUMBERS.get((family, benchmark), {})
    model_name = "GroundingGPT" if family == "groundinggpt" else "Groma"
    lines = [
        f"# groma-eval {task}",
        "",
        f"- model: `{run.get('model', '?')}`",
        f"- annotation file: `{run.get('annotation_file', '?')}`",
        f"- benchmark: {benchmark or 'not one of the paper (no paper number)'}; seed {run.get('seed', 0)}",
        "",
        f"| metric | this run | paper ({model_name}{', ' + benchmark if benchmark else ''}) |",
        "|---|---|---|",
    ]
    for name, value in metrics.items():
        if name in ("task", "skipped_metrics"):
            continue
        reference = paper.get(name)
        lines.append(f"| {name} | {_format(name, value)} | {'' if reference is None else f'{reference:.2f}'} |")
    lines += ["", "Scores are x100 (`metrics.json` holds the fractions the reference tools return)."]
    for name, reason in metrics.get("skipped_metrics", {}).items():
        lines.append(f"- {name} not computed: {reason}.")
    if task == "conversation":
        scores = ", ".join(f"{k} {v}" for k, v in GROMA_LLAVA_BENCH.items())
        lines.append(
            f"- LLaVA-Bench is scored by a GPT-4 review of `predictions.jsonl` (see the README); Groma's paper: {scores}."
        )
    return "\n".join(lines) + "\n"


def write_report(output_dir: Path, task: str, metrics: dict[str, Any], run: dict[str, Any]) -> None:
    """Write `summary.md` into `output_dir`."""
    (output_dir / "summary.md").write_text(summary_markdown(task, metrics, run), encoding="utf-8")


__all__ = ["GROMA_LLAVA_BENCH", "PAPER_NUMBERS", "summary_markdown", "write_report"]
