"""GroundingGPT's text grounding formats (spec §2): boxes `[x1, y1, x2, y2]` normalised to the padded square image
the model sees (3 decimals), and time spans `{t1, t2}` as fractions of the whole video (2 decimals)."""

import math
import re
from collections.abc import Sequence
from typing import TypedDict


_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+))"
BOX_PATTERN = re.compile(r"\[\s*" + r"\s*,\s*".join([_NUMBER] * 4) + r"\s*\]")
TIME_SPAN_PATTERN = re.compile(r"\{\s*" + _NUMBER + r"\s*,\s*" + _NUMBER + r"\s*\}")


class GroundedBox(TypedDict):
    """A box found in a generated text.

    `span` is its `(start, end)` character range in the text; `group` numbers runs of boxes written back to back
    (`[..][..]`, one phrase with several boxes, one colour in the original demo); `normalized_box` is the box as
    written (padded-square coordinates) with its corners ordered (`x1 <= x2`, `y1 <= y2`: a box written
    `[0.5, 0.5, 0.2, 0.2]` gives `[0.2, 0.2, 0.5, 0.5]`); `box` is the same `[x1, y1, x2, y2]` in pixels of the
    original, unpadded image (`None` when the image size is unknown).
    """

    span: tuple[int, int]
    group: int
    normalized_box: list[float]
    box: list[float] | None


class GroundedTimeSpan(TypedDict):
    """A time span found in a generated text: its character `span`, the written `fraction` of the video (clamped to
    [0, 1], ordered) and the same in `seconds` (`None` when the duration is unknown)."""

    span: tuple[int, int]
    fraction: tuple[float, float]
    seconds: tuple[float, float] | None


def _padding_offsets(image_size: Sequence[int]) -> tuple[int, int, int]:
    """`(side, x_offset, y_offset)` of an image of `(height, width)` pasted centred on its padded square."""
    height, width = image_size
    side = max(height, width)
    return side, (side - width) // 2, (side - height) // 2


def padded_square_box_to_pixels(box: Sequence[float], image_size: Sequence[int]) -> list[float]:
    """Convert a padded-square normalised box to `[x1, y1, x2, y2]` pixels of the original `(height, width)` image.

    Like the original `postprocess_output`: scale by the square's side, round to whole pixels, remove the padding
    offset of the short axis; then clip to the image.
    """
    height, width = image_size
    side, x_offset, y_offset = _padding_offsets(image_size)
    offsets, limits = (x_offset, y_offset) * 2, (width, height) * 2
    return [
        float(min(max(round(value * side) - offset, 0), limit)) for value, offset, limit in zip(box, offsets, limits)
    ]


def pixels_to_padded_square_box(box: Sequence[float], image_size: Sequence[int]) -> list[float]:
    """Convert `[x1, y1, x2, y2]` pixels of an original `(height, width)` image to padded-square normalised
    coordinates, rounded to the 3 decimals the model reads and writes."""
    side, x_offset, y_offset = _padding_offsets(image_size)
    return [round((value + offset) / side, 3) for value, offset in zip(box, (x_offset, y_offset) * 2)]


def format_box(box: Sequence[float]) -> str:
    """A normalised box as the model writes it, e.g. `[0.167, 0.250, 0.500, 0.583]` (append it to a phrase)."""
    return "[" + ", ".join(f"{value:.3f}" for value in box) + "]"


def parse_boxes(text: str, image_size: Sequence[int] | None = None) -> list[GroundedBox]:
    """Every `[x1, y1, x2, y2]` in `text` (spaces around the numbers are optional), corners ordered so that
    `x1 <= x2` and `y1 <= y2`, with pixel boxes when the original `(height, width)` is given."""
    boxes: list[GroundedBox] = []
    group, previous_end = -1, None
    for match in BOX_PATTERN.finditer(text):
        group += match.start() != previous_end
        previous_end = match.end()
        x1, y1, x2, y2 = (float(value) for value in match.groups())
        normalized = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        boxes.append(
            {
                "span": match.span(),
                "group": group,
                "normalized_box": normalized,
                "box": padded_square_box_to_pixels(normalized, image_size) if image_size is not None else None,
            }
        )
    return boxes


def parse_time_spans(text: str, duration: float | None = None) -> list[GroundedTimeSpan]:
    """Every `{t1, t2}` in `text`, clamped to [0, 1] and ordered, in seconds when the video `duration` is known."""
    spans: list[GroundedTimeSpan] = []
    known = duration is not None and math.isfinite(duration)
    for match in TIME_SPAN_PATTERN.finditer(text):
        start, end = sorted(min(max(float(value), 0.0), 1.0) for value in match.groups())
        spans.append(
            {
                "span": match.span(),
                "fraction": (start, end),
                "seconds": (start * duration, end * duration) if known else None,
            }
        )
    return spans


__all__ = [
    "BOX_PATTERN",
    "TIME_SPAN_PATTERN",
    "GroundedBox",
    "GroundedTimeSpan",
    "format_box",
    "padded_square_box_to_pixels",
    "parse_boxes",
    "parse_time_spans",
    "pixels_to_padded_square_box",
]
