"""Class-agnostic COCO AP/AR of proposals (the detection task and the detection trainer)."""

import json
from pathlib import Path

import pytest
import torch

from transformers_groma.evaluation import (
    class_agnostic_coco,
    coco_box_metrics,
    proposals_to_detections,
    top_proposals,
)
from transformers_groma.modeling.outputs import GromaRegionProposerOutput


def test_perfect_shifted_and_missing_detections(benchmarks):
    coco_gt = class_agnostic_coco(benchmarks["detection"])
    assert coco_gt.getCatIds() == [1]
    annotations = json.loads(Path(benchmarks["detection"]).read_text())["annotations"]
    perfect = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in annotations]
    metrics = coco_box_metrics(coco_gt, perfect)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR100"] == pytest.approx(1.0)
    if all(a["area"] >= 32**2 for a in annotations):
        assert metrics["APs"] == -1.0  # no small ground-truth box: undefined, as in pycocotools
    # Each box moved right by its own width overlaps nothing of its object.
    shifted = [{**d, "bbox": [x + w, y, w, h]} for d, (x, y, w, h) in zip(perfect, (d["bbox"] for d in perfect))]
    assert coco_box_metrics(coco_gt, shifted)["AP50"] < 0.5
    assert coco_box_metrics(coco_gt, [])["AR100"] == 0.0
    # Restricted to the first image, its own detections are perfect; over all images they find only its boxes.
    first = [d for d in perfect if d["image_id"] == 1]
    assert coco_box_metrics(coco_gt, first, image_ids=[1])["AR100"] == pytest.approx(1.0)
    assert coco_box_metrics(coco_gt, first)["AR100"] < 1.0


def test_top_proposals_keeps_the_best_in_pixels():
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]])
    pixel, scores = top_proposals(boxes, torch.tensor([0.2, 0.9, 0.1]), [100, 200], max_detections=2)
    assert scores.tolist() == pytest.approx([0.9, 0.2])
    assert pixel.tolist() == [pytest.approx([40, 20, 60, 30]), pytest.approx([50, 25, 150, 75])]


def test_proposals_become_pixel_detections():
    proposals = GromaRegionProposerOutput(
        pred_boxes=torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]]]),
        scores=torch.tensor([[0.2, 0.9, 0.1]]),
    )
    labels = [{"image_id": 7, "orig_size": torch.tensor([100, 200])}]
    (detections,) = proposals_to_detections(proposals, labels, max_detections=2)
    assert [d["score"] for d in detections] == pytest.approx([0.9, 0.2])
    assert detections[1] == {
        "image_id": 7,
        "category_id": 1,
        "bbox": pytest.approx([50, 25, 100, 50]),
        "score": pytest.approx(0.2),
    }
