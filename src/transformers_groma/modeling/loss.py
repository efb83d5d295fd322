"""Detection loss of the region proposer (stage 1): Hungarian matching, sigmoid focal, L1 and GIoU terms on the
final decoder layer, every auxiliary layer and the two-stage encoder, with the original weights (spec §6.2).

The matcher and per-term losses are transformers' Deformable-DETR ones; box counts are averaged over processes.
"""

import re

import torch
from transformers.loss.loss_deformable_detr import DeformableDetrHungarianMatcher, DeformableDetrImageLoss

from ..configuration_groma import GromaRegionProposerConfig
from .outputs import GromaRegionProposerOutput


HEAD_SOURCES = ("coco", "sa1b")


def detection_loss(
    proposals: GromaRegionProposerOutput, labels: list[dict], config: GromaRegionProposerConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted detection loss and its terms.

    Args:
        proposals: the proposer output for B images.
        labels: one dict per image: `boxes` (n, 4) normalized cxcywh, optional `source` in {"coco", "sa1b"}
            (default "coco") choosing which objectness head that image trains.
    """
    if len(labels) != proposals.pred_boxes.shape[0]:
        raise ValueError(f"`labels` has {len(labels)} entries for {proposals.pred_boxes.shape[0]} images.")
    device = proposals.pred_boxes.device
    targets, use_sa1b = [], []
    for i, label in enumerate(labels):
        source = label.get("source", "coco")
        if source not in HEAD_SOURCES:
            raise ValueError(f"`labels[{i}]['source']` must be one of {HEAD_SOURCES}, got {source!r}.")
        boxes = torch.as_tensor(label["boxes"], dtype=torch.float32, device=device).reshape(-1, 4)
        targets.append({"boxes": boxes, "class_labels": torch.zeros(len(boxes), dtype=torch.long, device=device)})
        use_sa1b.append(source == "sa1b")
    use_sa1b = torch.tensor(use_sa1b, device=device)[:, None, None]
    logits = torch.where(use_sa1b, proposals.all_logits_sa1b, proposals.all_logits_coco)  # (B, L, Q)

    outputs = {"logits": logits[:, -1, :, None], "pred_boxes": proposals.all_pred_boxes[:, -1]}
    if config.auxiliary_loss:
        outputs["auxiliary_outputs"] = [
            {"logits": logits[:, layer, :, None], "pred_boxes": proposals.all_pred_boxes[:, layer]}
            for layer in range(logits.shape[1] - 1)
        ]
    matcher = DeformableDetrHungarianMatcher(config.class_cost, config.bbox_cost, config.giou_cost)
    criterion = DeformableDetrImageLoss(
        matcher, num_classes=1, focal_alpha=config.focal_alpha, losses=["labels", "boxes", "cardinality"]
    )
    loss_dict = criterion(outputs, targets)
    encoder_outputs = {"logits": proposals.encoder_logits, "pred_boxes": proposals.encoder_pred_boxes}
    encoder_terms = criterion(encoder_outputs, targets)
    loss_dict.update({f"{name}_enc": value for name, value in encoder_terms.items()})

    weights = {
        "loss_ce": config.cls_loss_coefficient,
        "loss_bbox": config.bbox_loss_coefficient,
        "loss_giou": config.giou_loss_coefficient,
    }
    # Terms are named e.g. loss_ce, loss_ce_3 (auxiliary layer 3), loss_ce_enc; cardinality_error is logged only.
    term = re.compile(r"^(loss_ce|loss_bbox|loss_giou)(_\d+|_enc)?$")
    loss = sum(value * weights[match.group(1)] for name, value in loss_dict.items() if (match := term.match(name)))
    return loss, loss_dict
