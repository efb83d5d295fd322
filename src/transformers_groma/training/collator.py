"""Batching of Groma training samples."""

from dataclasses import dataclass

import torch

from ..processing import boxes_pixel_xyxy_to_normalized_cxcywh
from ..tokens import IGNORE_INDEX


def pad_text_features(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the 1-D `input_ids` (with `pad_token_id`) and `labels` (with -100) of `features` into `(batch_size,
    max_length)` tensors, with the matching `attention_mask`."""

    def pad(key: str, value: int) -> torch.Tensor:
        return torch.nn.utils.rnn.pad_sequence(
            [feature[key] for feature in features], batch_first=True, padding_value=value
        )

    input_ids = pad("input_ids", pad_token_id)
    lengths = torch.tensor([len(feature["input_ids"]) for feature in features])
    return {
        "input_ids": input_ids,
        "attention_mask": (torch.arange(input_ids.shape[1])[None] < lengths[:, None]).long(),
        "labels": pad("labels", IGNORE_INDEX),
    }


@dataclass
class GromaDataCollator:
    """Batches [`ConversationDataset`] items for [`GromaForConditionalGeneration`].

    Right-pads `input_ids` with `pad_token_id` (`[PAD]`) and `labels` with -100, builds the `attention_mask`, stacks
    `pixel_values`, and turns each sample's pixel `[x1, y1, x2, y2]` boxes into a normalized `(cx, cy, w, h)` tensor
    of the `refer_boxes` / `ground_boxes` lists the model takes.

    Args:
        pad_token_id: Id of `[PAD]`.
        padding_free: Ask the model to pack the expanded batch into one row (`GromaModel.forward(padding_free=)`).
    """

    pad_token_id: int
    padding_free: bool = False

    def __call__(self, features: list[dict]) -> dict:
        batch = {
            **pad_text_features(features, self.pad_token_id),
            "pixel_values": torch.stack([feature["pixel_values"] for feature in features]),
            **{
                key: [
                    boxes_pixel_xyxy_to_normalized_cxcywh(feature[key], feature["image_size"]) for feature in features
                ]
                for key in ("refer_boxes", "ground_boxes")
            },
        }
        if self.padding_free:
            batch["padding_free"] = True
        return batch


@dataclass
class DetectionDataCollator:
    """Batches [`DetectionDataset`] items for [`GromaForRegionProposal`]: stacked `pixel_values` and the list of
    per-image `labels` dicts (`boxes` normalized cxcywh, `source`, `image_id`, `orig_size`)."""

    def __call__(self, features: list[dict]) -> dict:
        return {
            "pixel_values": torch.stack([feature["pixel_values"] for feature in features]),
            "labels": [feature["labels"] for feature in features],
        }
