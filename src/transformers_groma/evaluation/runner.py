"""Runs a benchmark: shards the samples over the processes, predicts in batches, writes each prediction as it comes,
gathers once, and writes the predictions, `metrics.json` and `summary.md`.

Output folder:
- `predictions.jsonl`: one line per sample, in annotation-file order (written when the run completes).
- `predictions.partial-<rank>.jsonl`: each process's lines, appended and flushed as batches finish; merged into
  `predictions.jsonl` (and removed) at the end. A rerun into the same folder reads both and predicts only the
  samples that are missing, so an interrupted run resumes, and a finished one only recomputes the metrics.
- `run.json`: the task, annotation file, model and seed of the run; a rerun with other values is refused.
- `metrics.json` and `summary.md` (see [`report`]).

Under `accelerate launch` or `torchrun` the remaining samples are dealt to the processes round-robin; the processes
gather their new lines once, and the main process merges them with the earlier ones by sample id, so no sample is
lost or counted twice, and the metrics are those of a single process.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from .annotations import Sample
from .predictors import Predictor
from .report import write_report
from .tasks import Task


PREDICTIONS_FILE = "predictions.jsonl"
PARTIAL_PATTERN = "predictions.partial-*.jsonl"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"


class OutputFolderError(ValueError):
    """An output folder that holds another run's predictions."""


def _read_lines(path: Path, partial: bool) -> list[dict]:
    """The JSON lines of `path`. A partial file may hold a line cut by a killed process: it is skipped (its sample
    is predicted again); in a finished file any invalid line is an error."""
    lines = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                if not partial:
                    raise OutputFolderError(f"{path}: line {number} is not valid JSON.") from None
    return lines


def read_predictions(output_dir: Path, samples: Sequence[Sample]) -> dict[str, dict]:
    """The prediction lines already in `output_dir` (finished and partial files), by sample id.

    Raises:
        OutputFolderError: if a line names a sample that is not in `samples` (another annotation file, or a smaller
            `--max_samples`; rewriting the folder would drop those lines).
    """
    known = {sample.id for sample in samples}
    done: dict[str, dict] = {}
    files = [
        (output_dir / PREDICTIONS_FILE, False),
        *((path, True) for path in sorted(output_dir.glob(PARTIAL_PATTERN))),
    ]
    for path, partial in files:
        if not path.is_file():
            continue
        for line in _read_lines(path, partial):
            if line.get("id") not in known:
                raise OutputFolderError(
                    f"{path} holds a prediction for sample {line.get('id')!r}, which this run does not evaluate "
                    "(another annotation file or a smaller --max_samples?). Use another --output_dir."
                )
            done.setdefault(line["id"], line)
    return done


def check_run_file(output_dir: Path, run: dict[str, Any]) -> None:
    """Refuse a folder written by a different run (task, annotation file, model, seed, ...)."""
    path = output_dir / RUN_FILE
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = {key: (previous.get(key), value) for key, value in run.items() if previous.get(key) != value}
        if changed:
            listing = "; ".join(f"{key}: {old!r} there, {new!r} now" for key, (old, new) in changed.items())
            raise OutputFolderError(f"{output_dir} holds another run ({listing}). Use another --output_dir.")


def _end_cut_line(path: Path) -> None:
    """End a line that a killed run left unfinished at the end of `path`, so that lines appended stay whole."""
    if not path.is_file() or not path.stat().st_size:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            handle.write(b"\n")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def evaluate(
    task: Task,
    samples: Sequence[Sample],
    predictor: Predictor,
    output_dir: str | os.PathLike,
    family: str = "groma",
    batch_size: int = 8,
    run: dict[str, Any] | None = None,
    annotation_file: str = "",
    state: PartialState | None = None,
) -> dict[str, Any] | None:
    """Predict every sample not predicted yet, then compute and write the metrics.

    Args:
        task: The benchmark.
        samples: Its samples (unique ids), in annotation-file order.
        predictor: Maps a batch of queries to answers (see [`predictors`]).
        output_dir: Where the files go (created if needed).
        family: `"groma"` or `"groundinggpt"`: which prompts the task writes.
        batch_size: Queries per `predictor` call.
        run: Identifies the run in `run.json` (task, annotation file, model, seed, ...).
        annotation_file: Passed to `task.metrics` (LVIS and COCO evaluation read the ground truth from it).
        state: The process state (default: `accelerate.PartialState()`; one process without a launcher).

    Returns:
        The metrics on the main process, None on the others.
    """
    state = state or PartialState()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if len({sample.id for sample in samples}) != len(samples):
        raise ValueError("Sample ids must be unique.")
    run = run or {"task": task.name}
    check_run_file(output_dir, run)
    done = read_predictions(output_dir, samples)
    todo = [sample for sample in samples if sample.id not in done]
    # Every process has read the folder (so all deal the same `todo`) before any writes to it.
    state.wait_for_everyone()
    if state.is_main_process and not (output_dir / RUN_FILE).is_file():
        (output_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    mine = todo[state.process_index :: state.num_processes]
    new_lines = []
    partial = output_dir / f"predictions.partial-{state.process_index}.jsonl"
    _end_cut_line(partial)
    where = f" (process 0 of {state.num_processes})" if state.num_processes > 1 else ""
    progress = tqdm(total=len(mine), desc=f"groma-eval {task.name}{where}", disable=not state.is_main_process)
    with open(partial, "a", encoding="utf-8") as handle:
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size]
            queries, extras = zip(*(task.query(sample, family) for sample in batch))
            answers = predictor(list(queries))
            for sample, extra, answer in zip(batch, extras, answers):
                line = {"id": sample.id, **extra, **task.record(sample, answer)}
                handle.write(json.dumps(line) + "\n")
                handle.flush()
                new_lines.append(line)
            progress.update(len(batch))
    progress.close()
    gathered = gather_object(new_lines) if state.num_processes > 1 else new_lines
    metrics = None
    if state.is_main_process:
        for line in gathered:
            if line["id"] in done:
                raise RuntimeError(f"Sample {line['id']!r} was predicted twice; the shards overlap.")
            done[line["id"]] = line
        missing = [sample.id for sample in samples if sample.id not in done]
        if missing:
            raise RuntimeError(f"No prediction for {len(missing)} samples (first: {missing[0]!r}).")
        lines = [done[sample.id] for sample in samples]
        _write_atomically(output_dir / PREDICTIONS_FILE, "".join(json.dumps(line) + "\n" for line in lines))
        for path in output_dir.glob(PARTIAL_PATTERN):
            path.unlink()
        metrics = {"task": task.name, **task.metrics(list(samples), lines, annotation_file)}
        _write_atomically(output_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
        write_report(output_dir, task.name, metrics, run)
    state.wait_for_everyone()
    return metrics


__all__ = ["OutputFolderError", "evaluate", "read_predictions"]
