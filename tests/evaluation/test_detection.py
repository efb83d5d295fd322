"""Class-agnostic COCO AP/AR of proposals."""

import json
from pathlib import Path

import pytest
import torch

from transformers_groma.modeling.outputs import GromaRegionProposerOutput
from transformers_groma.training import class_agnostic_coco, coco_box_metrics, proposals_to_detections


def test_perfect_and_missing_detections(coco):
    coco_gt = class_agnostic_coco(coco["annotation_file"])
    assert coco_gt.getCatIds() == [1]
    annotations = json.loads(Path(coco["annotation_file"]).read_text())["annotations"]
    perfect = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in annotations]
    metrics = coco_box_metrics(coco_gt, perfect)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR100"] == pytest.approx(1.0)
    assert metrics["APs"] == -1.0  # no small ground-truth box: undefined, as in pycocotools
    shifted = [
        {**detection, "bbox": [x + 200, y, w, h]}
        for detection, (x, y, w, h) in zip(perfect, (d["bbox"] for d in perfect))
    ]
    assert coco_box_metrics(coco_gt, shifted)["AP"] == 0.0
    assert coco_box_metrics(coco_gt, [])["AR100"] == 0.0


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
