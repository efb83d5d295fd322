"""Region selection (spec §1.6): merge proposals with user/ground-truth boxes, filter, NMS, top-k."""

import torch
from torchvision.ops import batched_nms, box_convert, box_iou
from transformers.utils import logging


logger = logging.get_logger(__name__)


def select_regions(
    proposal_boxes: torch.Tensor,
    proposal_scores: torch.Tensor,
    refer_boxes: list[torch.Tensor],
    ground_boxes: list[torch.Tensor],
    *,
    nms_threshold: float,
    score_threshold: float,
    max_regions: int,
    refer_box_score: float = 1.0,
    ground_box_score: float = 0.2,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Choose the regions each image is described by.

    Per image, the candidates are the proposals, the user boxes (score `refer_box_score`) and the ground-truth boxes
    (score `ground_box_score`). Candidates scoring strictly above `score_threshold` go through NMS (suppress IoU >
    `nms_threshold`), and the best `max_regions` survivors are kept, in score-descending order with ties broken by
    candidate order (proposals, then user boxes, then ground-truth boxes). If nothing survives, the single best
    candidate is kept. With `shuffle`, the kept regions are randomly permuted (the original's training behaviour).
    NMS runs once for the whole batch. `generator` (a CPU `torch.Generator`) seeds the shuffle.

    Args:
        proposal_boxes: (B, Q, 4) normalized cxcywh.
        proposal_scores: (B, Q).
        refer_boxes / ground_boxes: per image, (n_i, 4) normalized cxcywh (may be empty).

    Returns:
        Per image, the kept boxes (N_i, 4) normalized cxcywh and their scores (N_i,), 1 <= N_i <= max_regions.
    """
    candidates, scores = [], []
    for boxes, box_scores, refer, ground in zip(proposal_boxes, proposal_scores, refer_boxes, ground_boxes):
        candidates.append(torch.cat([boxes, refer.to(boxes), ground.to(boxes)]))
        scores.append(
            torch.cat(
                [
                    box_scores,
                    box_scores.new_full((len(refer),), refer_box_score),
                    box_scores.new_full((len(ground),), ground_box_score),
                ]
            )
        )
    device = proposal_boxes.device
    sizes = [len(s) for s in scores]  # host-side shapes: no device synchronisation
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    # NMS on stable ranks instead of raw scores, so equal scores keep candidate order on every device.
    flat_ranks = torch.cat([s.argsort(descending=True, stable=True).argsort() for s in scores])
    image_index = torch.arange(len(sizes), device=device).repeat_interleave(
        torch.tensor(sizes, device=device), output_size=sum(sizes)
    )
    flat_boxes, flat_scores = torch.cat(candidates), torch.cat(scores)
    passing = (flat_scores > score_threshold).nonzero()[:, 0]
    keep = passing[
        batched_nms(
            box_convert(flat_boxes[passing], "cxcywh", "xyxy").float(),
            -flat_ranks[passing].float(),
            image_index[passing],
            nms_threshold,
        )
    ]  # sorted by score (= rank), all images mixed
    keep = keep[image_index[keep].sort(stable=True).indices]  # grouped by image, score order kept within each
    counts = torch.bincount(image_index[keep], minlength=len(sizes)).tolist()  # one synchronisation per batch
    region_boxes, region_scores = [], []
    for boxes, box_scores, kept, offset in zip(candidates, scores, keep.split(counts), offsets):
        kept = kept[:max_regions] - offset if len(kept) else box_scores.argmax()[None]
        if shuffle:
            kept = kept[torch.randperm(len(kept), generator=generator).to(kept.device)]
        region_boxes.append(boxes[kept])
        region_scores.append(box_scores[kept])
    return region_boxes, region_scores


def match_boxes_to_regions(boxes: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Index of the region with the highest IoU for every box ((n, 4) and (N, 4) normalized cxcywh) -> (n,)."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=regions.device)
    return _iou(boxes, regions).argmax(dim=-1)


def warn_about_unmatched_boxes(boxes: list[torch.Tensor], regions: list[torch.Tensor]) -> None:
    """Warn when a referred box overlaps none of the caller-given regions: it would point at region 0.

    Selected regions always contain the referred boxes themselves; only regions passed by the caller can miss them.
    """
    if any(len(b) and (_iou(b, r).amax(dim=-1) == 0).any() for b, r in zip(boxes, regions)):
        logger.warning(
            "A referred box overlaps none of the given `region_boxes` and will refer to region 0; include the boxes "
            "in `region_boxes` (as `propose_regions(pixel_values, refer_boxes)` does)."
        )


def _iou(boxes: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    return box_iou(box_convert(boxes.float(), "cxcywh", "xyxy"), box_convert(regions.float(), "cxcywh", "xyxy"))
