"""The benchmarks: how each reads its annotations, asks the model (the original protocol's prompts and generation
budgets, spec §7.1), records an answer and computes its metrics.

The phrasing of a query is drawn from the protocol's templates with a generator seeded by `(seed, sample id)`, so a
run is reproducible and a sample gets the same phrasing whichever process or batch it lands in.
"""

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..processing.prompts import (
    CATEGORY_GROUNDING_TEMPLATES,
    DETAILED_REGION_CAPTION_TEMPLATES,
    GROUNDED_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REGION_CAPTION_TEMPLATES,
    category_grounding_prompt,
    grounded_caption_prompt,
    rec_prompt,
    region_caption_prompt,
)
from . import annotations
from .annotations import Sample
from .detection import class_agnostic_coco, coco_box_metrics
from .metrics import caption_metrics, lvis_recall, pairwise_iou, phrase_grounding_hits, rec_metrics
from .predictors import Answer, Query


# GroundingGPT's REC question (the LLaVA-1.5 phrasing its REC data uses); the answer is a written box such as
# `[0.123, 0.456, 0.789, 0.987]` (about 30 tokens).
GROUNDINGGPT_REC_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {}."
GROUNDINGGPT_REC_MAX_NEW_TOKENS = 64


def _xyxy_to_xywh(box: Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


class Task:
    """A benchmark. Subclasses set `name`, `families` (the model families it evaluates), `max_new_tokens` (the
    protocol's budget) and `templates` (its phrasings), and implement `read`, `query`, `record` and `metrics`.

    Args:
        seed (`int`, *optional*, defaults to 0): Seeds the per-sample choice of phrasing.
        max_new_tokens (`int`, *optional*): Overrides the protocol's generation budget.
        benchmark (`str`, *optional*): The paper benchmark the data is (`region_caption`: `"refcocog_cap"` asks
            for detailed captions).
        caption_metrics (`list[str]`, *optional*): Caption metrics to compute (default: all).
        model_id (`str`, *optional*, defaults to `"groma"`): The model's name in LLaVA answer files.
    """

    name: str
    families: tuple[str, ...] = ("groma",)
    max_new_tokens: int = 0
    templates: tuple[str, ...] = ()

    def __init__(
        self,
        seed: int = 0,
        max_new_tokens: int | None = None,
        benchmark: str | None = None,
        caption_metrics: Sequence[str] | None = None,
        model_id: str = "groma",
    ):
        self.seed = seed
        self.max_new_tokens_override = max_new_tokens
        self.benchmark = benchmark
        self.caption_metrics = caption_metrics
        self.model_id = model_id

    def budget(self, protocol_max_new_tokens: int | None = None) -> int:
        """The generation budget: `--max_new_tokens` when given, else the protocol's."""
        return self.max_new_tokens_override or protocol_max_new_tokens or self.max_new_tokens

    def read(self, annotation_file: str, image_dir: str) -> list[Sample]:
        """The samples of `annotation_file` (see [`annotations`])."""
        raise NotImplementedError

    def template_index(self, sample: Sample) -> int:
        """The phrasing of `sample`: a draw from a generator seeded by the run's seed and the sample's id."""
        return random.Random(f"{self.seed}:{sample.id}").randrange(len(self.templates))

    def query(self, sample: Sample, family: str) -> tuple[Query, dict[str, Any]]:
        """The query of `sample` for a model of `family`, and the fields it adds to the sample's record."""
        raise NotImplementedError

    def record(self, sample: Sample, answer: Answer) -> dict[str, Any]:
        """The prediction line of `sample` (JSON-serializable; `id` is added by the runner)."""
        raise NotImplementedError

    def metrics(self, samples: list[Sample], records: list[dict], annotation_file: str) -> dict[str, Any]:
        """The metrics of `records` (one per sample, in sample order)."""
        raise NotImplementedError


class RecTask(Task):
    """Referring expression comprehension (RefCOCO/+/g): the first `<rK>` of the answer is the box (GroundingGPT:
    the first written box); a hit is IoU > 0.5; a no-box answer is a miss."""

    name = "rec"
    families = ("groma", "groundinggpt")
    max_new_tokens = 3
    templates = REC_TEMPLATES

    def read(self, annotation_file, image_dir):
        return annotations.read_rec(annotation_file, image_dir)

    def query(self, sample, family):
        expression = sample.target["expression"]
        if family == "groundinggpt":
            text = GROUNDINGGPT_REC_PROMPT.format(expression.strip())
            return Query(sample.image, text, max_new_tokens=self.budget(GROUNDINGGPT_REC_MAX_NEW_TOKENS)), {}
        index = self.template_index(sample)
        return Query(sample.image, rec_prompt(expression, index), max_new_tokens=self.budget()), {"template": index}

    def record(self, sample, answer):
        box = answer["boxes"][0] if answer["boxes"] else None
        iou = None if box is None else float(pairwise_iou([box], [sample.target["box"]])[0, 0])
        return {
            "expression": sample.target["expression"],
            "answer": answer["raw"],
            "box": box,
            "target": sample.target["box"],
            "iou": iou,
        }

    def metrics(self, samples, records, annotation_file):
        return rec_metrics([record["iou"] for record in records])


class LvisGroundTask(Task):
    """LVIS-Ground, the "as many" protocol: every `<rK>` of the answer to "Locate all <p>category</p> ..." is a
    detection of that category with score 1.0; LVIS average recall."""

    name = "lvis_ground"
    max_new_tokens = 10
    templates = CATEGORY_GROUNDING_TEMPLATES

    def read(self, annotation_file, image_dir):
        return annotations.read_lvis(annotation_file, image_dir)

    def query(self, sample, family):
        index = self.template_index(sample)
        text = category_grounding_prompt(sample.target["category"], index)
        return Query(sample.image, text, max_new_tokens=self.budget()), {"template": index}

    def record(self, sample, answer):
        target = sample.target
        return {"image_id": target["image_id"], "category_id": target["category_id"], "answer": answer["raw"],
                "boxes": answer["boxes"]}  # fmt: skip

    def metrics(self, samples, records, annotation_file):
        detections = [
            {"image_id": r["image_id"], "category_id": r["category_id"], "bbox": _xyxy_to_xywh(box), "score": 1.0}
            for r in records
            for box in r["boxes"]
        ]
        image_ids = [sample.target["image_id"] for sample in samples]
        return {**lvis_recall(annotation_file, detections, image_ids), "num_samples": len(samples)}


class _CaptionMixin:
    def caption_scores(self, samples, records) -> dict[str, Any]:
        references = {sample.id: sample.target["references"] for sample in samples}
        predictions = {record["id"]: record["caption"] for record in records}
        scores, skipped = caption_metrics(references, predictions, self.caption_metrics)
        return {**scores, "num_samples": len(samples), **({"skipped_metrics": skipped} if skipped else {})}


class RegionCaptionTask(_CaptionMixin, Task):
    """Region captioning (RefCOCOg-cap: detailed phrasings; Visual Genome: short ones): the ground-truth box is the
    referred region; COCO caption metrics."""

    name = "region_caption"
    max_new_tokens = 100

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.detailed = self.benchmark == "refcocog_cap"
        self.templates = DETAILED_REGION_CAPTION_TEMPLATES if self.detailed else REGION_CAPTION_TEMPLATES

    def read(self, annotation_file, image_dir):
        return annotations.read_region_captions(annotation_file, image_dir)

    def query(self, sample, family):
        index = self.template_index(sample)
        text = region_caption_prompt(self.detailed, index)
        return Query(sample.image, text, [sample.target["box"]], self.budget()), {"template": index}

    def record(self, sample, answer):
        return {"answer": answer["raw"], "caption": answer["caption"], "references": sample.target["references"]}

    def metrics(self, samples, records, annotation_file):
        return self.caption_scores(samples, records)


class GroundedCaptionTask(_CaptionMixin, Task):
    """Grounded captioning (Flickr30k Entities): COCO caption metrics of the caption without markup, and the recall
    of the ground-truth phrases (see [`phrase_grounding_hits`])."""

    name = "grounded_caption"
    max_new_tokens = 100
    templates = GROUNDED_CAPTION_TEMPLATES

    def read(self, annotation_file, image_dir):
        return annotations.read_grounded_captions(annotation_file, image_dir)

    def query(self, sample, family):
        index = self.template_index(sample)
        return Query(sample.image, grounded_caption_prompt(index), max_new_tokens=self.budget()), {"template": index}

    def record(self, sample, answer):
        entities = [{"phrase": e["phrase"], "boxes": e["boxes"]} for e in answer["entities"]]
        return {
            "answer": answer["raw"],
            "caption": answer["caption"],
            "entities": entities,
            "phrase_hits": phrase_grounding_hits(sample.target["phrases"], entities),
        }

    def metrics(self, samples, records, annotation_file):
        hits = [hit for record in records for hit in record["phrase_hits"]]
        recall = sum(hits) / len(hits) if hits else 0.0
        return {**self.caption_scores(samples, records), "phrase_recall@0.5": recall, "num_phrases": len(hits)}


class DetectionTask(Task):
    """The region proposer alone as a class-agnostic detector: COCO box AP/AR (pycocotools) of its best
    `max_detections` proposals per image."""

    name = "detection"

    def read(self, annotation_file, image_dir):
        return annotations.read_detection(annotation_file, image_dir)

    def query(self, sample, family):
        return Query(sample.image), {}

    def record(self, sample, answer):
        detections = [{"bbox": _xyxy_to_xywh(b), "score": s} for b, s in zip(answer["boxes"], answer["scores"])]
        return {"image_id": sample.target["image_id"], "detections": detections}

    def metrics(self, samples, records, annotation_file):
        detections = [
            {"image_id": record["image_id"], "category_id": 1, **detection}
            for record in records
            for detection in record["detections"]
        ]
        image_ids = [sample.target["image_id"] for sample in samples]
        return {
            **coco_box_metrics(class_agnostic_coco(annotation_file), detections, image_ids),
            "num_samples": len(samples),
        }


class ConversationTask(Task):
    """LLaVA-Bench (COCO): answers in LLaVA's answer-file format (`question_id`, `prompt`, `text`, `answer_id`,
    `model_id`, `metadata`), for the GPT-4 review of LLaVA's evaluation scripts (optional, see the README)."""

    name = "conversation"
    max_new_tokens = 1024

    def read(self, annotation_file, image_dir):
        return annotations.read_llava_bench(annotation_file, image_dir)

    def query(self, sample, family):
        text = sample.target["text"].replace("<image>", "").replace("\n", " ").strip()
        return Query(sample.image, text, max_new_tokens=self.budget()), {}

    def record(self, sample, answer):
        model_id, question_id = self.model_id, sample.target["question_id"]
        return {
            "question_id": question_id,
            "prompt": sample.target["text"],
            "text": answer["text"].strip(),
            "answer_id": f"{model_id}:{question_id}",
            "model_id": model_id,
            "metadata": {"category": sample.target["category"]},
        }

    def metrics(self, samples, records, annotation_file):
        return {"num_samples": len(samples), "num_empty_answers": sum(not record["text"] for record in records)}


TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (RecTask, LvisGroundTask, RegionCaptionTask, GroundedCaptionTask, DetectionTask, ConversationTask)
}


def infer_benchmark(task_name: str, annotation_file: str) -> str | None:
    """The benchmark an annotation file is, from its name (`refcoco+_testA.json` -> `"refcoco+_testA"`), or None."""
    stem = Path(annotation_file).stem.lower()
    if task_name == "rec":
        for split in ("refcoco_val", "refcoco_testa", "refcoco_testb", "refcoco+_val", "refcoco+_testa",
                      "refcoco+_testb", "refcocog_val", "refcocog_test"):  # fmt: skip
            if stem == split:
                return split.replace("testa", "testA").replace("testb", "testB")
    if task_name == "region_caption":
        if stem.startswith("refcocog"):
            return "refcocog_cap"
        if stem.startswith("vg"):
            return "vg"
    if task_name == "lvis_ground" and "lvis" in stem:
        return "lvis_ground"
    if task_name == "conversation" and ("qa90" in stem or "llava" in stem):
        return "llava_bench"
    return None


__all__ = ["GROUNDINGGPT_REC_PROMPT", "TASKS", "Task", "infer_benchmark"]
