"""Drawing helpers for grounded generations and region proposals."""

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from transformers.image_transforms import to_pil_image

from .grounding import BoxesInput, GroundedEntity, _as_boxes, normalized_cxcywh_to_pixel_xyxy


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


def _check_colors(colors: Sequence[Color]) -> list[Color]:
    """`colors` as a list of RGB tuples: a TypeError for a wrong type, a ValueError for no color or a value outside
    [0, 255]."""
    if isinstance(colors, str) or not isinstance(colors, (Sequence, np.ndarray)):
        raise TypeError(f"`colors` must be a sequence of (r, g, b) tuples, got {type(colors).__name__}.")
    if len(colors) == 0:
        raise ValueError("`colors` must hold at least one (r, g, b) color.")
    checked = []
    for index, color in enumerate(colors):
        values = list(color) if isinstance(color, (Sequence, np.ndarray)) and not isinstance(color, str) else None
        if values is None or len(values) != 3 or not all(isinstance(v, numbers.Integral) for v in values):
            raise TypeError(f"`colors[{index}]` must be an (r, g, b) tuple of ints, got {color!r}.")
        if not all(0 <= value <= 255 for value in values):
            raise ValueError(f"`colors[{index}]` values must be in [0, 255], got {color!r}.")
        checked.append(tuple(int(value) for value in values))
    return checked


def _first_undrawable_box(pixel_boxes: torch.Tensor) -> int | None:
    """Row of the first `[x1, y1, x2, y2]` box that is not finite or has `x2 < x1` or `y2 < y1`, or None."""
    bad = ~torch.isfinite(pixel_boxes).all(dim=-1)
    bad |= (pixel_boxes[:, 2] < pixel_boxes[:, 0]) | (pixel_boxes[:, 3] < pixel_boxes[:, 1])
    return int(bad.nonzero()[0]) if bad.any() else None


def _draw_labelled_box(
    draw: ImageDraw.ImageDraw,
    box: Sequence[float],
    label: str | None,
    color: Color,
    line_width: int,
    font: ImageFont.ImageFont,
) -> None:
    """Outlines `box` (`[x1, y1, x2, y2]` pixels) and writes `label` (if any) on a filled tab above it (inside if no
    room)."""
    x1, y1, x2, y2 = box
    draw.rectangle((x1, y1, x2, y2), outline=color, width=line_width)
    if label is None:
        return
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
            Entities with pixel boxes, e.g. the `entities` of a [`~GromaProcessor.post_process_grounding`] result:
            mappings whose `boxes` are `[x1, y1, x2, y2]` pixels. Every box is drawn, labelled with the `phrase`; a box
            of an entity without a phrase (a bare `<roi>` answer) is labelled with its region token (e.g. `"<r3>"`)
            when `region_indices` has one for it, else not at all.
        colors (`Sequence[tuple[int, int, int]]`, *optional*, defaults to `BOX_COLORS`):
            RGB colors (at least one); entity `i` uses `colors[i % len(colors)]` for all its boxes.
        line_width (`int`, *optional*, defaults to 3):
            Width of the box outlines in pixels.
        font_size (`int`, *optional*, defaults to 14):
            Size of the labels.

    Returns:
        `PIL.Image.Image`: An RGB copy of `image` with the labelled boxes.

    Raises:
        `TypeError`: if `entities` is not a sequence of mappings with `boxes` (e.g. a whole post-processing result).
        `ValueError`: for empty `colors`, or a box that is not `(4,)`, not finite, or has `x2 < x1` or `y2 < y1`.
    """
    colors = _check_colors(colors)
    if isinstance(entities, (str, Mapping)) or not isinstance(entities, Sequence):
        hint = " (pass `result['entities']`, not the whole result)" if isinstance(entities, Mapping) else ""
        raise TypeError(f"`entities` must be a sequence of entities{hint}, got {type(entities).__name__}.")
    entity_boxes = []
    for entity_index, entity in enumerate(entities):
        if not isinstance(entity, Mapping) or "boxes" not in entity:
            raise TypeError(
                f"`entities[{entity_index}]` must be a mapping with a 'boxes' list of [x1, y1, x2, y2] pixels, got "
                f"{entity!r}."
            )
        boxes = _as_boxes(entity["boxes"], f"entities[{entity_index}]['boxes']")
        bad = _first_undrawable_box(boxes)
        if bad is not None:
            raise ValueError(
                f"`entities[{entity_index}]['boxes'][{bad}]` = {boxes[bad].tolist()} must be finite [x1, y1, x2, y2] "
                "pixels with x1 <= x2 and y1 <= y2."
            )
        entity_boxes.append(boxes.tolist())

    canvas = _to_rgb_image(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=font_size)
    for entity_index, (entity, boxes) in enumerate(zip(entities, entity_boxes)):
        region_indices = entity.get("region_indices") or []
        for box_index, box in enumerate(boxes):
            label = entity.get("phrase")
            if label is None and box_index < len(region_indices):
                label = f"<r{region_indices[box_index]}>"
            _draw_labelled_box(draw, box, label, colors[entity_index % len(colors)], line_width, font)
    return canvas


def draw_proposals(
    image: Image.Image | np.ndarray | torch.Tensor,
    boxes: BoxesInput,
    scores: Sequence[float] | torch.Tensor | None = None,
    top_k: int | None = 20,
    colors: Sequence[Color] = BOX_COLORS,
    line_width: int = 2,
    font_size: int = 12,
) -> Image.Image:
    """Draws region boxes (proposals or the regions selected by the model), labelled `r{K}` with `K` their row.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The image the boxes refer to (uint8, channels first or last); it is not modified.
        boxes (`torch.Tensor` of shape `(num_boxes, 4)`):
            Boxes as normalized `(center_x, center_y, width, height)` (finite, width and height >= 0), mapped onto
            the size of `image`.
        scores (`torch.Tensor` or `Sequence[float]` of shape `(num_boxes,)`, *optional*):
            If given, only the `top_k` best-scoring boxes are drawn, and the labels show the scores.
        top_k (`int` or `None`, *optional*, defaults to 20):
            Most boxes to draw, at least 1 (the first `top_k` rows when `scores` is not given); `None` draws all.
        colors (`Sequence[tuple[int, int, int]]`, *optional*, defaults to `BOX_COLORS`):
            RGB colors (at least one); box `K` uses `colors[K % len(colors)]`.
        line_width (`int`, *optional*, defaults to 2):
            Width of the box outlines in pixels.
        font_size (`int`, *optional*, defaults to 12):
            Size of the labels.

    Returns:
        `PIL.Image.Image`: An RGB copy of `image` with the labelled boxes.

    Raises:
        `TypeError`: if `top_k` is neither an int nor None.
        `ValueError`: for `top_k < 1`, empty `colors`, a box that is not finite or has a negative width or height,
            or a number of `scores` that differs from the number of boxes.
    """
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
            raise TypeError(f"`top_k` must be an int or None (all boxes), got {type(top_k).__name__}.")
        if top_k < 1:
            raise ValueError(f"`top_k` must be at least 1 (or None for all boxes), got {top_k}.")
    colors = _check_colors(colors)
    canvas = _to_rgb_image(image)
    pixel_boxes = normalized_cxcywh_to_pixel_xyxy(boxes, (canvas.height, canvas.width))
    bad = _first_undrawable_box(pixel_boxes)
    if bad is not None:
        raise ValueError(
            f"`boxes[{bad}]` = {_as_boxes(boxes, 'boxes')[bad].tolist()} must be finite normalized (center_x, "
            "center_y, width, height) with width >= 0 and height >= 0."
        )
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
        _draw_labelled_box(draw, pixel_boxes[index].tolist(), label, colors[index % len(colors)], line_width, font)
    return canvas


__all__ = ["BOX_COLORS", "draw_grounding", "draw_proposals"]
