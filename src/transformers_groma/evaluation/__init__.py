"""Benchmark evaluation of Groma and GroundingGPT (`groma-eval`; needs the `eval` extra for the caption and LVIS
metrics: `pip install transformers-groma[eval]`).

The pieces compose: a task ([`tasks.TASKS`]) reads an annotation file into samples and asks each one with the
original protocol's prompt, a predictor ([`predictors`]) answers batches of queries, and [`runner.evaluate`] shards,
resumes, gathers and writes `predictions.jsonl`, `metrics.json` and `summary.md`. The proposer-only detection metrics
(class-agnostic COCO AP/AR) also serve the detection trainer.
"""

from .annotations import AnnotationError, Sample
from .detection import COCO_METRIC_NAMES, class_agnostic_coco, coco_box_metrics, proposals_to_detections, top_proposals
from .predictors import Answer, GromaPredictor, GroundingGPTPredictor, ProposalPredictor, Query
from .runner import OutputFolderError, evaluate
from .tasks import TASKS, Task


__all__ = [
    "COCO_METRIC_NAMES",
    "TASKS",
    "AnnotationError",
    "Answer",
    "GromaPredictor",
    "GroundingGPTPredictor",
    "OutputFolderError",
    "ProposalPredictor",
    "Query",
    "Sample",
    "Task",
    "class_agnostic_coco",
    "coco_box_metrics",
    "evaluate",
    "proposals_to_detections",
    "top_proposals",
]
