"""Groma's region encoder (spec §1.7): multi-level fusion of DINOv2 maps, RoIAlign, box position MLP, projection.

Adapted from FoundationVision/Groma `groma/model/roi_align.py` @ d3a95b6 (itself after GPT4RoI).
"""

import torch
from torch import nn
from torchvision.ops import box_convert, roi_align

from ..configuration_groma import GromaConfig
from .dtypes import compute_dtype


class GromaFuseBlock(nn.Module):
    """Conv3x3 (no bias) -> GroupNorm -> ReLU, shared by all levels within one fusion round."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.norm = nn.GroupNorm(groups, channels, eps=1e-5)
        self.act = nn.ReLU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(hidden_states)))


class GromaMultiLevelFusion(nn.Module):
    """Adds (x, y) coordinate channels, projects every level, then mixes neighbouring levels by channel shuffling.

    In each round, level t keeps its first half of the channels and takes the last quarter of level t+1 and the
    third quarter of level t-1 (clamped at the ends), both bilinearly resized to its size.
    """

    def __init__(self, channels: int, num_levels: int, num_rounds: int, groups: int):
        super().__init__()
        self.input_convs = nn.ModuleList([nn.Conv2d(channels + 2, channels, kernel_size=1) for _ in range(num_levels)])
        self.fuse_blocks = nn.ModuleList([GromaFuseBlock(channels, groups) for _ in range(num_rounds)])
        self.shuffle_channels = channels // 4
        self.keep_channels = channels - 2 * self.shuffle_channels

    def forward(self, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        maps = [conv(self._with_coordinates(f)) for conv, f in zip(self.input_convs, feature_maps)]
        last = len(maps) - 1
        for block in self.fuse_blocks:
            maps = [
                block(
                    torch.cat(
                        [
                            maps[level][:, : self.keep_channels],
                            self._resize(
                                maps[min(level + 1, last)][:, self.keep_channels + self.shuffle_channels :],
                                maps[level],
                            ),
                            self._resize(
                                maps[max(level - 1, 0)][
                                    :, self.keep_channels : self.keep_channels + self.shuffle_channels
                                ],
                                maps[level],
                            ),
                        ],
                        dim=1,
                    )
                )
                for level in range(len(maps))
            ]
        return maps

    @staticmethod
    def _with_coordinates(feature_map: torch.Tensor) -> torch.Tensor:
        batch_size, _, height, width = feature_map.shape
        y, x = torch.meshgrid(
            torch.linspace(-1, 1, height, device=feature_map.device),
            torch.linspace(-1, 1, width, device=feature_map.device),
            indexing="ij",
        )
        coordinates = torch.stack([x, y])[None].expand(batch_size, -1, -1, -1).to(feature_map.dtype)
        return torch.cat([feature_map, coordinates], dim=1)

    @staticmethod
    def _resize(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        resized = nn.functional.interpolate(
            source.float(), size=target.shape[-2:], mode="bilinear", align_corners=True
        )
        return resized.to(target.dtype)


class GromaRegionEncoder(nn.Module):
    """Turns regions into LLM-width tokens.

    The DINOv2 maps named by `config.region_feature_layers` are resized to 4x, 2x and 1x the patch grid (finest
    first), fused, RoI-aligned per region on every level, convolved per level and summed, flattened and projected,
    then summed with an MLP embedding of the box and projected to the LLM width.
    """

    def __init__(self, config: GromaConfig):
        super().__init__()
        self.config = config
        channels = config.vision_config.hidden_size
        num_levels = len(config.region_feature_layers)
        self.fusion = GromaMultiLevelFusion(channels, num_levels, config.region_fuse_rounds, config.region_fuse_groups)
        self.level_convs = nn.ModuleList(
            [nn.Conv2d(channels, channels, kernel_size=3, padding=1) for _ in range(num_levels)]
        )
        self.flatten_proj = nn.Linear(channels * config.roi_output_size**2, config.region_hidden_size)
        self.box_embedding = nn.Sequential(
            nn.Linear(4, config.region_position_hidden_size),
            nn.ReLU(),
            nn.LayerNorm(config.region_position_hidden_size),
            nn.Linear(config.region_position_hidden_size, config.region_hidden_size),
            nn.ReLU(),
            nn.LayerNorm(config.region_hidden_size),
        )
        self.output_proj = nn.Linear(config.region_hidden_size, config.text_config.hidden_size)

    def forward(
        self, feature_maps: list[torch.Tensor], region_boxes: list[torch.Tensor], image_size: tuple[int, int]
    ) -> list[torch.Tensor]:
        """Encode regions.

        Args:
            feature_maps: one (B, C, h, w) DINOv2 map per level, at the patch grid.
            region_boxes: per image, (N_i, 4) normalized cxcywh.
            image_size: (height, width) of the pixel input in pixels.

        Returns:
            Per image, (N_i, text_hidden_size) region tokens.
        """
        num_levels = len(feature_maps)
        maps = [
            nn.functional.interpolate(
                f,
                size=[side * 2 ** (num_levels - 1 - level) for side in f.shape[-2:]],
                mode="bilinear",
                align_corners=True,
            )
            for level, f in enumerate(feature_maps)
        ]  # finest first: 4x, 2x, 1x the patch grid
        maps = self.fusion(maps)
        boxes = torch.cat(region_boxes)  # (sum N_i, 4)
        image_index = torch.repeat_interleave(
            torch.arange(len(region_boxes), device=boxes.device),
            torch.tensor([len(b) for b in region_boxes], device=boxes.device),
        )
        rois = torch.cat([image_index[:, None].to(boxes), self._roi_boxes(boxes, image_size)], dim=1)  # (sum N_i, 5)
        pooled = sum(
            conv(
                roi_align(
                    level_map.float(),
                    rois.float(),
                    output_size=self.config.roi_output_size,
                    spatial_scale=self._spatial_scale(level_map, image_size),
                    sampling_ratio=self.config.roi_sampling_ratio,
                    aligned=True,
                ).to(level_map.dtype)
            )
            for conv, level_map in zip(self.level_convs, maps)
        )
        region_features = self.flatten_proj(nn.functional.relu(pooled).flatten(1))
        with torch.autocast(boxes.device.type, enabled=False):  # box coordinates stay in the weights' dtype
            box_features = self.box_embedding(boxes.to(compute_dtype(self.box_embedding)))
        region_features = region_features + box_features.to(region_features.dtype)
        return list(self.output_proj(region_features).split([len(b) for b in region_boxes]))

    def _roi_boxes(self, boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Pixel boxes for RoIAlign; with `legacy_roi_box_format` the cxcywh columns are passed as if xyxy."""
        if not self.config.legacy_roi_box_format:
            boxes = box_convert(boxes, "cxcywh", "xyxy")
        height, width = image_size
        return boxes * boxes.new_tensor([width, height, width, height])

    def _spatial_scale(self, level_map: torch.Tensor, image_size: tuple[int, int]) -> float:
        """Map pixels per image pixel; doubled with `legacy_roi_spatial_scale` as in the released model."""
        scale = level_map.shape[-1] / image_size[1]
        return 2 * scale if self.config.legacy_roi_spatial_scale else scale
