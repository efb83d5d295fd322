"""Drawing helpers for grounded generations and region proposals."""

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from transformers.image_transforms import to_pil_image

from .grounding import BoxesInput, GroundedEntity, normalized_cxcywh_to_pixel_xyxy


Color = tuple[int, int, int]

# Distinct colors (Sasha Trubetskoy's palette); entity `i` gets color `i % 10`.
BOX_COLORS: tuple[Color, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
)


def _to_rgb_image(image: Image.Image | np.ndarray | torch.Tensor) -> Image.Image:
    """A new RGB PIL image from a PIL image, or from a uint8 array/tensor (channels first or last)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return to_pil_image(image).convert("RGB")
    raise TypeError(f"`image` must be a PIL image, a numpy array or a torch tensor, got {type(image).__name__}.")


def _draw_labelled_box(
    draw: ImageDraw.ImageDraw,
    box: Sequence[float],
    label: str,
    color: Color,
    line_width: int,
    font: ImageFont.ImageFont,
) -> None:
    """Outlines `box` (`[x1, y1, x2, y2]` pixels) and writes `label` on a filled tab above it (inside if no room)."""
    x1, y1, x2, y2 = box
    draw.rectangle((x1, y1, x2, y2), outline=color, width=line_width)
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    tab_width, tab_height = right - left + 4, bottom - top + 4
    tab_top = y1 - tab_height if y1 >= tab_height else y1
    draw.rectangle((x1, tab_top, x1 + tab_width, tab_top + tab_height), fill=color)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    text_color = (0, 0, 0) if luminance > 150 else (255, 255, 255)
    draw.text((x1 + 2 - left, tab_top + 2 - top), label, fill=text_color, font=font)


def draw_grounding(
    image: Image.Image | np.ndarray | torch.Tensor,
    entities: Sequence[GroundedEntity],
    colors: Sequence[Color] = BOX_COLORS,
    line_width: int = 3,
    font_size: int = 14,
) -> Image.Image:
    """Draws the boxes of grounded entities, each labelled with its phrase.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The image the boxes refer to (uint8, channels first or last); it is not modified.
        entities (`Sequence[GroundedEntity]`):
            Entities with pixel boxes, e.g. from [`~GromaProcessor.post_process_grounding`]. An entity without a
            phrase (a bare `<roi>` answer) is labelled with its region tokens, e.g. `"<r3>"`.
        colors (`Sequence[tuple[int, int, int]]`, *optional*, defaults to `BOX_COLORS`):
            RGB colors; entity `i` uses `colors[i % len(colors)]` for all its boxes.
        line_width (`int`, *optional*, defaults to 3):
            Width of the box outlines in pixels.
        font_size (`int`, *optional*, defaults to 14):
            Size of the labels.

    Returns:
        `PIL.Image.Image`: An RGB copy of `image` with the labelled boxes.
    """
    canvas = _to_rgb_image(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=font_size)
    for entity_index, entity in enumerate(entities):
        color = tuple(colors[entity_index % len(colors)])
        for box, region_index in zip(entity["boxes"], entity["region_indices"]):
            label = entity["phrase"] if entity["phrase"] is not None else f"<r{region_index}>"
            _draw_labelled_box(draw, box, label, color, line_width, font)
    return canvas


def draw_proposals(
    image: Image.Image | np.ndarray | torch.Tensor,
    boxes: BoxesInput,
    scores: Sequence[float] | torch.Tensor | None = None,
    top_k: int = 20,
    colors: Sequence[Color] = BOX_COLORS,
    line_width: int = 2,
    font_size: int = 12,
) -> Image.Image:
    """Draws region boxes (proposals or the regions selected by the model), labelled `r{K}` with `K` their row.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The image the boxes refer to (uint8, channels first or last); it is not modified.
        boxes (`torch.Tensor` of shape `(num_boxes, 4)`):
            Boxes as normalized `(center_x, center_y, width, height)`, mapped onto the size of `image`.
        scores (`torch.Tensor` or `Sequence[float]` of shape `(num_boxes,)`, *optional*):
            If given, only the `top_k` best-scoring boxes are drawn, and the labels show the scores.
        top_k (`int`, *optional*, defaults to 20):
            Most boxes to draw (the first `top_k` rows when `scores` is not given).
        colors (`Sequence[tuple[int, int, int]]`, *optional*, defaults to `BOX_COLORS`):
            RGB colors; box `K` uses `colors[K % len(colors)]`.
        line_width (`int`, *optional*, defaults to 2):
            Width of the box outlines in pixels.
        font_size (`int`, *optional*, defaults to 12):
            Size of the labels.

    Returns:
        `PIL.Image.Image`: An RGB copy of `image` with the labelled boxes.
    """
    canvas = _to_rgb_image(image)
    pixel_boxes = normalized_cxcywh_to_pixel_xyxy(boxes, (canvas.height, canvas.width))
    order = list(range(len(pixel_boxes)))
    if scores is not None:
        scores = torch.as_tensor(scores, dtype=torch.float32).reshape(-1)
        if len(scores) != len(pixel_boxes):
            raise ValueError(f"`scores` must hold one score per box: got {len(scores)} scores for {len(pixel_boxes)}.")
        order = scores.argsort(descending=True).tolist()
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=font_size)
    for index in order[:top_k]:
        label = f"r{index}" if scores is None else f"r{index} {scores[index]:.2f}"
        _draw_labelled_box(
            draw, pixel_boxes[index].tolist(), label, tuple(colors[index % len(colors)]), line_width, font
        )
    return canvas


__all__ = ["BOX_COLORS", "draw_grounding", "draw_proposals"]
