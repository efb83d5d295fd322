"""Vision side of Groma: DINOv2 tower helpers, the 2x2 patch merge and the image-to-text bridge (spec §1.3-1.4)."""

import math

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings

from .dtypes import compute_dtype


class GromaLegacyDinov2Embeddings(Dinov2Embeddings):
    """DINOv2 embeddings whose position table is resized as transformers 4.32 did.

    4.32 called `interpolate(scale_factor=(grid + 0.1) / table_size, mode="bicubic")`, which samples the table at
    slightly different positions than today's `size=grid` call. The released Groma weights were trained with the old
    sampling (spec §8.1 Q5), so [`GromaModel`] swaps this class in when `config.legacy_position_interpolation` is set.
    Parameters and their names are those of [`~transformers.Dinov2Embeddings`].
    """

    def interpolate_pos_encoding(self, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
        num_patches = embeddings.shape[1] - 1
        num_positions = self.position_embeddings.shape[1] - 1
        if num_patches == num_positions and height == width:
            return self.position_embeddings
        table_size = math.sqrt(num_positions)
        class_pos_embed = self.position_embeddings[:, :1]
        patch_pos_embed = self.position_embeddings[:, 1:]
        dim = embeddings.shape[-1]
        patch_pos_embed = patch_pos_embed.reshape(1, int(table_size), int(table_size), dim).permute(0, 3, 1, 2)
        grid_height, grid_width = height // self.patch_size, width // self.patch_size
        patch_pos_embed = nn.functional.interpolate(
            patch_pos_embed.to(torch.float32),
            scale_factor=((grid_height + 0.1) / table_size, (grid_width + 0.1) / table_size),
            mode="bicubic",
            align_corners=False,
        ).to(embeddings.dtype)
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed.to(embeddings.dtype), patch_pos_embed), dim=1)


def tokens_to_feature_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, height*width, C) patch tokens (CLS already dropped) -> (B, C, height, width) feature map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


def merge_patches_2x2(feature_map: torch.Tensor) -> torch.Tensor:
    """Space-to-depth of a (B, C, h, w) map into (B, h*w/4, 4C) tokens, in the original channel order.

    The four channel blocks are the patches at (even row, even col), (odd row, even col), (even row, odd col) and
    (odd row, odd col) of every 2x2 cell; cells are flattened row-major (spec §1.4).
    """
    height, width = feature_map.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(
            f"The image gives a {height}x{width} patch grid; Groma merges 2x2 patches, so the grid must be even "
            "(e.g. 448 px images with patch size 14)."
        )
    grid = feature_map.permute(0, 2, 3, 1)  # (B, h, w, C)
    merged = torch.cat(
        [grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], dim=-1
    )  # (B, h/2, w/2, 4C)
    return merged.flatten(1, 2)


class GromaMultiModalProjector(nn.Module):
    """The image-to-text bridge: Linear(4C -> D) -> GELU -> Linear(D -> D)."""

    def __init__(self, in_features: int, out_features: int, hidden_act: str = "gelu"):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, out_features)
        self.act = ACT2FN[hidden_act]
        self.linear_2 = nn.Linear(out_features, out_features)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """(..., 4C) merged patches, in any dtype (the vision path may run in float32) -> (..., D) in the bridge's."""
        return self.linear_2(self.act(self.linear_1(image_features.to(compute_dtype(self.linear_1)))))
