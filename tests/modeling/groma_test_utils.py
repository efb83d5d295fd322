"""Shared helpers of the modeling tests: tiny random models, prompts, padding and boxes (no downloads)."""

import torch

from transformers_groma import GromaForConditionalGeneration
from transformers_groma.tiny import tiny_groma_config


BOS = 1
PAD = 1000
ROI_START, ROI_END = 1004, 1005
IMAGE = 1008
REGION = 1009
REFER_BOX = 1010
GROUND_BOX = 1011
REFER_FEAT = 1012
R0 = 1014
IMAGE_SIZE = 112
NUM_IMAGE_TOKENS = 16  # 112 px / 14 = 8x8 patches, 2x2-merged
NO_DROPOUT = {"dropout": 0.0}


def proposer_overrides(**fields) -> dict:
    """The tiny proposer settings with `fields` changed (a `proposer_config` override replaces the whole dict)."""
    return {**tiny_groma_config().proposer_config.to_dict(), **fields}


def vision_overrides(**fields) -> dict:
    """The tiny DINOv2 settings with `fields` changed."""
    return {**tiny_groma_config().vision_config.to_dict(), **fields}


def make_model(seed: int = 0, **overrides) -> GromaForConditionalGeneration:
    """A tiny random Groma in eval mode, built from a fresh config and a fixed seed."""
    torch.manual_seed(seed)
    return GromaForConditionalGeneration(tiny_groma_config(**overrides)).eval()


def text_ids(n: int, start: int = 0) -> list[int]:
    """`n` distinct plain-text ids in [3, 999]."""
    return [3 + (start + 37 * k) % 997 for k in range(n)]


def make_prompt(
    before: int = 2, middle: int = 2, after: int = 3, refer: int = 0, refer_feat: bool = True, seed: int = 0
):
    """`[BOS] text <image> text <region> text`, plus one `<roi><refer_box></roi><refer_feat>` per referred box."""
    ids = [BOS, *text_ids(before, seed), IMAGE, *text_ids(middle, seed + 5), REGION, *text_ids(after, seed + 11)]
    for _ in range(refer):
        ids += [ROI_START, REFER_BOX, ROI_END] + ([REFER_FEAT] if refer_feat else [])
    return torch.tensor(ids)


def pad_batch(sequences: list[torch.Tensor], side: str, value: int = PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D sequences padded on `side`; returns (ids, attention_mask)."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), value, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for i, seq in enumerate(sequences):
        window = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
        ids[i, window] = seq
        mask[i, window] = 1
    return ids, mask


def pixels(batch_size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def cxcywh(*boxes) -> torch.Tensor:
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def xyxy_to_cxcywh(x1, y1, x2, y2) -> list[float]:
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def perturb_parameters(model: torch.nn.Module, std: float = 0.05, seed: int = 1) -> None:
    """Add noise to every parameter, so zero-initialized layers (box-delta heads, attention weights) matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * std)


# Four disjoint boxes on a 2x2 grid (normalized cxcywh).
GRID = cxcywh([0.25, 0.25, 0.2, 0.2], [0.75, 0.25, 0.2, 0.2], [0.25, 0.75, 0.2, 0.2], [0.75, 0.75, 0.2, 0.2])
