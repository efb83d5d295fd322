"""Class-agnostic COCO-style box AP/AR of the region proposer, with pycocotools."""

import contextlib
import copy
import io

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..modeling.outputs import GromaRegionProposerOutput
from ..processing import normalized_cxcywh_to_pixel_xyxy
from .annotations import read_json


# The 12 numbers of `COCOeval.summarize()`, in order.
COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def class_agnostic_coco(annotation_file: str) -> COCO:
    """A COCO ground truth with every annotation in one category (id 1, "object")."""
    data = copy.deepcopy(read_json(annotation_file))
    for annotation in data.get("annotations", []):
        annotation["category_id"] = 1
        annotation.setdefault("area", annotation["bbox"][2] * annotation["bbox"][3])
        annotation.setdefault("iscrowd", 0)
    data["categories"] = [{"id": 1, "name": "object"}]
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def proposals_to_detections(
    proposals: GromaRegionProposerOutput, labels: list[dict], max_detections: int = 100
) -> list[list[dict]]:
    """Per image of a batch, its COCO result entries (`image_id`, `category_id` 1, pixel `bbox`, `score`).

    Keeps each image's `max_detections` best proposals by fused objectness score (the score Groma selects regions
    with), mapped to the original image size (`labels[i]["orig_size"]`) as `[x, y, w, h]`.
    """
    detections = []
    for boxes, scores, label in zip(proposals.pred_boxes, proposals.scores, labels):
        pixel, top_scores = top_proposals(boxes, scores, label["orig_size"].tolist(), max_detections)
        pixel[:, 2:] -= pixel[:, :2]
        detections.append(
            [
                {"image_id": int(label["image_id"]), "category_id": 1, "bbox": box, "score": score}
                for box, score in zip(pixel.tolist(), top_scores.tolist())
            ]
        )
    return detections


def top_proposals(
    boxes: torch.Tensor, scores: torch.Tensor, image_size: list[int], max_detections: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `max_detections` best proposals of one image by score, best first.

    Args:
        boxes (`torch.Tensor` of shape `(num_queries, 4)`): Normalized `(center_x, center_y, width, height)`.
        scores (`torch.Tensor` of shape `(num_queries,)`): Their fused objectness scores.
        image_size (`list[int]`): `(height, width)` of the original image.
        max_detections (`int`): How many to keep.

    Returns:
        `(pixel_boxes, scores)`: float32 CPU tensors of shapes `(k, 4)` (pixel `[x1, y1, x2, y2]`) and `(k,)`.
    """
    scores = scores.float().cpu()
    top = scores.topk(min(max_detections, len(scores))).indices
    return normalized_cxcywh_to_pixel_xyxy(boxes.float().cpu()[top], image_size), scores[top]


def coco_box_metrics(coco_gt: COCO, detections: list[dict], image_ids: list | None = None) -> dict[str, float]:
    """Class-agnostic COCO box metrics (`AP`, `AP50`, ..., `AR100`, ...) of `detections` on `coco_gt`.

    Images of `coco_gt` (or of `image_ids`, when given) without detections count as misses; with no detection at
    all every metric is 0. As in pycocotools, a metric is -1 when it is undefined (e.g. `APs` without small
    ground-truth boxes).
    """
    if not detections:
        return dict.fromkeys(COCO_METRIC_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats.tolist())}
