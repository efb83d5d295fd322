"""Drawing GroundingGPT's grounded answers: image boxes on the image, video time spans on a timeline."""

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..grounding import GroundedEntity
from ..visualization import BOX_COLORS, Color, draw_grounding
from .grounding import GroundedBox, GroundedTimeSpan


TRACK_COLOR: Color = (220, 220, 220)
BACKGROUND_COLOR: Color = (255, 255, 255)
TEXT_COLOR: Color = (0, 0, 0)


def draw_grounded_boxes(
    image: Image.Image | np.ndarray | torch.Tensor,
    boxes: Sequence[GroundedBox],
    colors: Sequence[Color] = BOX_COLORS,
    line_width: int = 3,
    font_size: int = 14,
) -> Image.Image:
    """Draws the boxes of a GroundingGPT answer like the original demo: the boxes written back to back (one group,
    one phrase) share a colour and are labelled `[i]`, their group number.

    Args:
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            The original image the answer is about (uint8, channels first or last); it is not modified.
        boxes (`Sequence[GroundedBox]`):
            Boxes from [`~GroundingGPTProcessor.post_process_grounding`] called with the image's size, so that each
            has its `box` in pixels of `image`.
        colors, line_width, font_size:
            As in [`draw_grounding`]; the `i`-th group of `boxes` uses `colors[i % len(colors)]`.

    Returns:
        `PIL.Image.Image`: An RGB copy of `image` with the labelled boxes.

    Raises:
        ValueError: for a box without pixel coordinates.
    """
    groups: dict[int, GroundedEntity] = {}
    for box in boxes:
        if box["box"] is None:
            raise ValueError(
                f"The box {box['normalized_box']} has no pixel coordinates: call `post_process_grounding` with the "
                "`image_sizes` of the images."
            )
        group = groups.setdefault(box["group"], {"phrase": f"[{box['group']}]", "boxes": [], "span": None})
        group["boxes"].append(box["box"])
    return draw_grounding(image, list(groups.values()), colors, line_width, font_size)


def _span_seconds(span: GroundedTimeSpan | Sequence[float], duration: float) -> tuple[float, float]:
    """`(start, end)` seconds of a parsed span (its `seconds`, or its `fraction` of `duration`) or of a pair."""
    if isinstance(span, dict):
        if span["seconds"] is not None:
            return span["seconds"]
        return span["fraction"][0] * duration, span["fraction"][1] * duration
    start, end = span
    return float(start), float(end)


def draw_time_spans(
    duration: float,
    spans: Sequence[GroundedTimeSpan | Sequence[float]],
    width: int = 640,
    height: int = 72,
    colors: Sequence[Color] = BOX_COLORS,
    font_size: int = 12,
) -> Image.Image:
    """Draws time spans of a video on a timeline: a grey track for the whole video, one coloured block per span
    labelled `[i] start-end s` above the track, and the video's start and end below it.

    Args:
        duration (`float`):
            Duration of the video in seconds (e.g. the processor's `video_durations`); positive and finite.
        spans (`Sequence[GroundedTimeSpan]` or `Sequence[tuple[float, float]]`):
            Spans from [`~GroundingGPTProcessor.post_process_grounding`] (their `seconds`, or their `fraction` of
            `duration` when the seconds are unknown), or `(start, end)` pairs in seconds. Parts outside
            `[0, duration]` are clipped.
        width (`int`, *optional*, defaults to 640):
            Width of the picture in pixels; the track spans it but for a margin of `font_size` pixels on each side.
        height (`int`, *optional*, defaults to 72):
            Height of the picture in pixels; the track fills what the two rows of labels leave.
        colors (`Sequence[tuple[int, int, int]]`, *optional*, defaults to `BOX_COLORS`):
            RGB colours; span `i` uses `colors[i % len(colors)]`.
        font_size (`int`, *optional*, defaults to 12):
            Size of the labels.

    Returns:
        `PIL.Image.Image`: An RGB picture of `width` x `height`.

    Raises:
        ValueError: when `duration` is not a positive finite number or the picture leaves no room for the track.
    """
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"`duration` must be a positive number of seconds, got {duration}.")
    label_height = font_size + 6
    track_top, track_bottom = label_height, height - label_height
    if track_bottom - track_top < 2:
        raise ValueError(f"height={height} leaves no room for the track between two rows of {font_size} px labels.")
    canvas = Image.new("RGB", (width, height), BACKGROUND_COLOR)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=font_size)
    left, right = font_size, width - font_size

    def x(seconds: float) -> float:
        return left + (right - left) * min(max(seconds / duration, 0.0), 1.0)

    draw.rectangle((left, track_top, right, track_bottom), fill=TRACK_COLOR)
    for index, span in enumerate(spans):
        start, end = _span_seconds(span, duration)
        color = tuple(colors[index % len(colors)])
        draw.rectangle((x(start), track_top, max(x(end), x(start) + 1), track_bottom), fill=color)
        draw.text((x(start), 2), f"[{index}] {start:.1f}-{end:.1f} s", fill=color, font=font)
    draw.text((left, track_bottom + 3), "0 s", fill=TEXT_COLOR, font=font)
    draw.text((right, track_bottom + 3), f"{duration:.1f} s", fill=TEXT_COLOR, font=font, anchor="ra")
    return canvas


__all__ = ["draw_grounded_boxes", "draw_time_spans"]
