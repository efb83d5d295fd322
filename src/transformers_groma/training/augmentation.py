"""Image and box transforms of detection pretraining (stage 1), after the original's mmdet pipeline (spec §3.1).

Training: keep-ratio resize with the shorter side drawn from {400, 500, 600} (longer side at most 4200), a random
crop whose sides are drawn from [448, 896] px (retried until it keeps a box), a squash to the model input size, the
per-source box filter, a horizontal flip with probability 0.5, ImageNet normalization. Evaluation: squash and
normalize only. Images are `tv_tensors.Image` (uint8, CHW) and boxes `tv_tensors.BoundingBoxes` in pixel XYXY, so
every geometric step moves the boxes with the image.
"""

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


Sample = tuple[tv_tensors.Image, tv_tensors.BoundingBoxes]


def randint(low: int, high: int) -> int:
    """Uniform integer in [low, high] (both included), from torch's global RNG (seeded per dataloader worker)."""
    return int(torch.randint(low, high + 1, ()))


def _select(boxes: tv_tensors.BoundingBoxes, keep: torch.Tensor) -> tv_tensors.BoundingBoxes:
    """`boxes[keep]`, still a `BoundingBoxes` (plain indexing returns a bare tensor)."""
    return tv_tensors.wrap(boxes[keep], like=boxes)


def squash(image: tv_tensors.Image, boxes: tv_tensors.BoundingBoxes, size: int) -> Sample:
    """Resize to `size` x `size` ignoring the aspect ratio, as Groma's image processor does."""
    return F.resize(image, [size, size]), F.resize(boxes, [size, size])


def normalize(image: tv_tensors.Image) -> torch.Tensor:
    """uint8 image -> float pixel values normalized with the ImageNet mean and std."""
    return F.normalize(F.to_dtype(image, torch.float32, scale=True), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)


def filter_boxes(
    boxes: tv_tensors.BoundingBoxes,
    min_side: float | None = None,
    area_range: tuple[float, float] | None = None,
) -> tv_tensors.BoundingBoxes:
    """Keep boxes whose width and height exceed `min_side` and/or whose area lies strictly inside `area_range`.

    The original drops boxes with a side <= 2 px (COCO-style sources) or an area outside (14^2, 400^2) px (SA-1B),
    measured on the model input.
    """
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = torch.ones(len(boxes), dtype=torch.bool)
    if min_side is not None:
        keep &= (widths > min_side) & (heights > min_side)
    if area_range is not None:
        keep &= (widths * heights > area_range[0]) & (widths * heights < area_range[1])
    return _select(boxes, keep)


class DetectionAugmentation:
    """The training transform of detection pretraining, before the box filter (see the module docstring).

    Args:
        output_size: Side of the square model input (448 for Groma).
        short_sides: Candidate shorter sides of the keep-ratio resize.
        max_long_side: Upper bound of the longer side after that resize.
        crop_size_range: Range of the crop's height and width (clipped to the image).
        flip_prob: Probability of a horizontal flip.
        max_crop_attempts: Crops tried before giving up and keeping the whole image; a crop must keep at least one
            box (the original resamples such images, `allow_negative_crop=False`).
    """

    def __init__(
        self,
        output_size: int,
        short_sides: Sequence[int] = (400, 500, 600),
        max_long_side: int = 4200,
        crop_size_range: tuple[int, int] = (448, 896),
        flip_prob: float = 0.5,
        max_crop_attempts: int = 10,
    ):
        self.output_size = output_size
        self.short_sides = list(short_sides)
        self.max_long_side = max_long_side
        self.crop_size_range = crop_size_range
        self.flip_prob = flip_prob
        self.max_crop_attempts = max_crop_attempts

    def __call__(self, image: tv_tensors.Image, boxes: tv_tensors.BoundingBoxes) -> Sample:
        image, boxes = self.resize_keep_ratio(image, boxes)
        image, boxes = self.random_crop(image, boxes)
        image, boxes = squash(image, boxes, self.output_size)
        if torch.rand(()) < self.flip_prob:
            image, boxes = F.horizontal_flip(image), F.horizontal_flip(boxes)
        return image, boxes

    def resize_keep_ratio(self, image: tv_tensors.Image, boxes: tv_tensors.BoundingBoxes) -> Sample:
        """mmdet `Resize(img_scale=[(s, max_long_side)], keep_ratio=True)` with `s` drawn from `short_sides`."""
        short_side = self.short_sides[randint(0, len(self.short_sides) - 1)]
        height, width = image.shape[-2:]
        scale = min(short_side / min(height, width), self.max_long_side / max(height, width))
        size = [int(height * scale + 0.5), int(width * scale + 0.5)]
        return F.resize(image, size), F.resize(boxes, size)

    def random_crop(self, image: tv_tensors.Image, boxes: tv_tensors.BoundingBoxes) -> Sample:
        """mmdet `RandomCrop(crop_type="absolute_range")`: boxes are clipped to the crop, empty ones dropped."""
        height, width = image.shape[-2:]
        low, high = self.crop_size_range
        for _ in range(self.max_crop_attempts):
            crop_height = randint(min(height, low), min(height, high))
            crop_width = randint(min(width, low), min(width, high))
            top, left = randint(0, height - crop_height), randint(0, width - crop_width)
            cropped = F.crop(boxes, top, left, crop_height, crop_width)
            cropped = _select(cropped, (cropped[:, 2] > cropped[:, 0]) & (cropped[:, 3] > cropped[:, 1]))
            if len(cropped) or not len(boxes):
                return F.crop(image, top, left, crop_height, crop_width), cropped
        return image, boxes
