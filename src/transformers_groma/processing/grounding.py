"""Box conversions and the parser that turns Groma's grounded generations into phrases and boxes (spec §3.2, §4.2).

Groma answers with region index tokens: `<p>a dog</p><roi><r3></roi>` means "the phrase *a dog* is region 3", where
region 3 is the fourth box that the model selected for that image (normalized `(center_x, center_y, width, height)`).
"""

import math
import numbers
import re
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import torch
from torchvision.ops import box_convert
from transformers.utils import logging

from ..tokens import (
    GROMA_ADDED_TOKENS,
    PHRASE_END_TOKEN,
    PHRASE_START_TOKEN,
    REGION_INDEX_TOKENS,
    ROI_END_TOKEN,
    ROI_START_TOKEN,
)


logger = logging.get_logger(__name__)

BoxesInput = torch.Tensor | np.ndarray | Sequence[Sequence[float]]

# Base Llama tokens that can appear in a decoded generation next to Groma's own tokens.
_LLAMA_SPECIAL_TOKENS = ("<s>", "</s>", "<unk>")
_MARKUP_TOKENS = [token for token in GROMA_ADDED_TOKENS if token not in REGION_INDEX_TOKENS]
_TAG_PATTERN = re.compile(
    r"<r(?P<region>\d+)>|" + "|".join(re.escape(token) for token in [*_MARKUP_TOKENS, *_LLAMA_SPECIAL_TOKENS])
)
# Punctuation that should stick to the previous word once the markup between them is removed.
_CLOSING_PUNCTUATION = tuple(".,;:!?)")
_WORD_CHARACTER = re.compile(r"\w")
# The end of a generation: a `<roi>` group still open here is closed as if `</roi>` followed.
_END_OF_GENERATION_TOKEN = "</s>"


class GroundedEntity(TypedDict):
    """A phrase of a generation and the boxes it was grounded to.

    Attributes:
        phrase (`str` or `None`): The text between `<p>` and `</p>`, or `None` for a `<roi>` group that follows no
            phrase (e.g. a referring-expression answer, whose phrase is in the query).
        boxes (`list[list[float]]`): One `[x1, y1, x2, y2]` box in pixels per entry of `region_indices`.
        region_indices (`list[int]`): The `K` of every `<rK>` token of the group, in order.
        span (`tuple[int, int]` or `None`): `(start, end)` character offsets of `phrase` in the clean text.
    """

    phrase: str | None
    boxes: list[list[float]]
    region_indices: list[int]
    span: tuple[int, int] | None


def _as_boxes(boxes: BoxesInput, argument_name: str) -> torch.Tensor:
    if isinstance(boxes, str) or not isinstance(boxes, (torch.Tensor, np.ndarray, Sequence)):
        raise TypeError(
            f"`{argument_name}` must be a tensor, an array or a sequence of [x1, y1, x2, y2] rows, got "
            f"{type(boxes).__name__}."
        )
    if _holds_bools(boxes):
        raise TypeError(f"`{argument_name}` holds booleans; boxes are numbers [x1, y1, x2, y2].")
    try:
        tensor = boxes.float() if isinstance(boxes, torch.Tensor) else torch.from_numpy(np.asarray(boxes, np.float32))
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{argument_name}` must be numbers of shape (n, 4): {error}") from error
    if tensor.ndim == 1 and tensor.numel() == 0:
        return tensor.reshape(0, 4)
    if tensor.ndim != 2 or tensor.shape[-1] != 4:
        raise ValueError(
            f"`{argument_name}` must have shape (n, 4) (one [x1, y1, x2, y2] row per box), got {tuple(tensor.shape)}."
        )
    return tensor


def _holds_bools(values) -> bool:
    """Whether a tensor, array or (nested) sequence of numbers holds booleans, which would pass as 0 and 1."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        return values.dtype in (torch.bool, np.bool_)
    if isinstance(values, (bool, np.bool_)):
        return True
    return isinstance(values, Sequence) and not isinstance(values, str) and any(_holds_bools(v) for v in values)


def _check_image_size(image_size: Sequence[int], argument_name: str = "image_size") -> tuple[int, int]:
    if isinstance(image_size, (torch.Tensor, np.ndarray)):
        image_size = image_size.tolist()
    if (
        not isinstance(image_size, Sequence)
        or isinstance(image_size, str)
        or len(image_size) != 2
        or not all(
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
            and float(value).is_integer()
            for value in image_size
        )
    ):
        raise ValueError(
            f"`{argument_name}` must be a positive (height, width) pair, got {image_size!r} (whole numbers of pixels)."
        )
    height, width = (int(value) for value in image_size)
    return height, width


def boxes_pixel_xyxy_to_normalized_cxcywh(boxes: BoxesInput, image_size: Sequence[int]) -> torch.Tensor:
    """Converts pixel `(x1, y1, x2, y2)` boxes to the normalized `(center_x, center_y, width, height)` Groma uses.

    Groma squashes every image to a square without padding, so coordinates normalized by the original width and
    height are also valid for the resized image.

    Args:
        boxes (`torch.Tensor`, `np.ndarray` or nested sequence of shape `(num_boxes, 4)`):
            Boxes as `[x1, y1, x2, y2]` in pixels of the original image.
        image_size (`tuple[int, int]`):
            `(height, width)` of the original image.

    Returns:
        `torch.Tensor` of shape `(num_boxes, 4)`, float32: the boxes as normalized `(center_x, center_y, width,
        height)`.
    """
    height, width = _check_image_size(image_size)
    boxes = _as_boxes(boxes, "boxes")
    scale = boxes.new_tensor([width, height, width, height])
    return box_convert(boxes, in_fmt="xyxy", out_fmt="cxcywh") / scale


def normalized_cxcywh_to_pixel_xyxy(boxes: BoxesInput, image_size: Sequence[int]) -> torch.Tensor:
    """Converts normalized `(center_x, center_y, width, height)` boxes to `(x1, y1, x2, y2)` pixels.

    The inverse of [`boxes_pixel_xyxy_to_normalized_cxcywh`]. Boxes are not clipped: a predicted box that reaches
    past the border of the image keeps its coordinates outside `[0, width] x [0, height]`.

    Args:
        boxes (`torch.Tensor`, `np.ndarray` or nested sequence of shape `(num_boxes, 4)`):
            Boxes as normalized `(center_x, center_y, width, height)`, e.g. the regions selected by the model.
        image_size (`tuple[int, int]`):
            `(height, width)` of the image to map the boxes onto, usually the original image.

    Returns:
        `torch.Tensor` of shape `(num_boxes, 4)`, float32: `[x1, y1, x2, y2]` boxes in pixels.
    """
    height, width = _check_image_size(image_size)
    boxes = _as_boxes(boxes, "boxes")
    scale = boxes.new_tensor([width, height, width, height])
    return box_convert(boxes * scale, in_fmt="cxcywh", out_fmt="xyxy")


def validate_pixel_boxes(boxes: BoxesInput, image_size: Sequence[int], argument_name: str = "boxes") -> torch.Tensor:
    """Checks user boxes before they are sent to the model.

    Args:
        boxes (`torch.Tensor`, `np.ndarray` or nested sequence of shape `(num_boxes, 4)`):
            Boxes as `[x1, y1, x2, y2]` in pixels. An empty sequence stands for "no box".
        image_size (`tuple[int, int]`):
            `(height, width)` of the image the boxes are drawn on.
        argument_name (`str`, *optional*, defaults to `"boxes"`):
            Name of the argument in error messages, e.g. `"boxes[1]"`.

    Returns:
        `torch.Tensor` of shape `(num_boxes, 4)`, float32: the boxes, unchanged.

    Raises:
        `TypeError`: if `boxes` is not numeric.
        `ValueError`: if `boxes` is not `(num_boxes, 4)`, holds non-finite values, or a box is empty
            (`x1 >= x2` or `y1 >= y2`) or not inside the image (`0 <= x1`, `x2 <= width`, `0 <= y1`, `y2 <= height`).
    """
    height, width = _check_image_size(image_size)
    boxes = _as_boxes(boxes, argument_name)
    for index, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        box = f"`{argument_name}[{index}]` = {[x1, y1, x2, y2]}"
        if not all(np.isfinite([x1, y1, x2, y2])):
            raise ValueError(f"{box} must hold finite pixel coordinates.")
        if x1 >= x2 or y1 >= y2:
            raise ValueError(f"{box} is empty: boxes are [x1, y1, x2, y2] with x1 < x2 and y1 < y2.")
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise ValueError(
                f"{box} is not inside the image of width {width} and height {height}: expected 0 <= x1 < x2 <= "
                f"{width} and 0 <= y1 < y2 <= {height} (pixels of the original image)."
            )
    return boxes


def _append_text(clean_text: str, piece: str) -> str:
    """Appends `piece` where markup was removed, without doubling spaces or detaching closing punctuation.

    Phrase and region tags sit on word boundaries, so one space is put between two word characters that the markup
    separated: a tokenizer with `legacy=False` decodes `There is <p>a man</p>` as `There is<p>a man</p>`.
    """
    stripped = piece.lstrip()
    if not clean_text or clean_text[-1].isspace() or stripped.startswith(_CLOSING_PUNCTUATION):
        return clean_text + stripped
    if _WORD_CHARACTER.match(clean_text[-1]) and _WORD_CHARACTER.match(piece[:1]):
        return f"{clean_text} {piece}"
    return clean_text + piece


def parse_grounded_text(text: str) -> tuple[str, list[GroundedEntity]]:
    """Splits a decoded Groma generation into clean text and grounded entities (Kosmos-2 style).

    `text` must be decoded with the special tokens kept (`skip_special_tokens=False`). The markup is read as follows:

    - `<p>phrase</p>` followed (whitespace allowed in between) by `<roi><rK>...<rJ></roi>` grounds the phrase to
      regions `K ... J`;
    - a `<roi>...</roi>` group that follows no phrase (a referring-expression answer) gives an entity with phrase
      `None` and span `None`; an empty bare group gives none;
    - a phrase that is not followed by a `<roi>` group is still returned, with empty `region_indices` (the model
      named something without pointing at it);
    - a `<roi>` group still open at the end of the text or at `</s>` (a generation cut off by `max_new_tokens`) is
      closed there, as if `</roi>` followed;
    - malformed markup never raises: an unterminated `<p>` (no `</p>` before the next `<p>`/`<roi>` or the end) or
      `<roi>` (text or another tag before `</roi>`) is dropped, and so are stray closing tags, stray `<rK>` tokens,
      an empty phrase and every other special token (`<s>`, `</s>`, `[PAD]`, `<image>`, ...). Dropped region
      indices are logged as a warning.

    The clean text is the text with all markup removed. Where markup was removed, whitespace is collapsed to one
    space and dropped before closing punctuation, one space separates two word characters, and the result is
    stripped.

    Args:
        text (`str`):
            A generation decoded with `skip_special_tokens=False`.

    Returns:
        `tuple[str, list[GroundedEntity]]`: the clean text, and one entity per phrase or bare `<roi>` group in order of
        appearance, with `span` offsets into the clean text and `boxes` left empty (see [`entities_to_boxes`]).
    """
    clean_text = ""
    entities: list[GroundedEntity] = []
    phrase_start: int | None = None  # offset in `clean_text` of the open `<p>`
    last_phrase: GroundedEntity | None = None  # closed phrase that a `<roi>` group may still attach to
    group: list[int] | None = None  # region indices of the open `<roi>` group
    group_owner: GroundedEntity | None = None
    stray: list[str] = []  # `<rK>` tokens outside any `<roi>` group
    unclosed: list[str] = []  # phrases whose `<p>` no `</p>` closes

    position = 0
    for match in [*_TAG_PATTERN.finditer(text), None]:
        piece = text[position : match.start()] if match else text[position:]
        tag = match.group() if match else None
        position = match.end() if match else len(text)

        is_region = match is not None and match.group("region") is not None
        if group is not None:
            if not piece.strip() and is_region:
                group.append(int(match.group("region")))
                continue
            if not piece.strip() and tag in (ROI_END_TOKEN, _END_OF_GENERATION_TOKEN, None):
                if group_owner is not None:
                    group_owner["region_indices"] = group
                elif group:
                    entities.append({"phrase": None, "boxes": [], "region_indices": group, "span": None})
                group = group_owner = None
                if tag == ROI_END_TOKEN:
                    continue
            else:
                if group:
                    logger.warning(
                        f"Dropping region indices {group}: their {ROI_START_TOKEN} group is interrupted by "
                        f"{piece.strip()[:40] or tag!r} before {ROI_END_TOKEN}."
                    )
                group = group_owner = None

        if piece.strip():
            last_phrase = None
        if piece.strip() or tag != ROI_START_TOKEN:  # whitespace before `<roi>` is markup
            clean_text = _append_text(clean_text, piece)

        if phrase_start is not None and tag in (PHRASE_START_TOKEN, ROI_START_TOKEN, None):
            unclosed.append(clean_text[phrase_start:].strip())
        if tag == PHRASE_START_TOKEN:
            phrase_start, last_phrase = len(clean_text), None
        elif tag == PHRASE_END_TOKEN and phrase_start is not None:
            region = clean_text[phrase_start:]
            phrase = region.strip()
            last_phrase = None
            if phrase:
                start = phrase_start + len(region) - len(region.lstrip())
                last_phrase = {
                    "phrase": phrase,
                    "boxes": [],
                    "region_indices": [],
                    "span": (start, start + len(phrase)),
                }
                entities.append(last_phrase)
            phrase_start = None
        elif tag == ROI_START_TOKEN:
            group, group_owner, last_phrase, phrase_start = [], last_phrase, None, None
        elif is_region:
            stray.append(tag)

    if stray:  # one warning per text: a confused generation can hold many
        shown = ", ".join(stray[:10]) + (", ..." if len(stray) > 10 else "")
        logger.warning(
            f"Dropping {len(stray)} region index token(s) outside a {ROI_START_TOKEN} group (they only count inside "
            f"one): {shown}."
        )
    if unclosed:
        logger.warning(
            f"Dropping {len(unclosed)} phrase(s) whose {PHRASE_START_TOKEN} is not closed by {PHRASE_END_TOKEN} "
            f"(their text stays, ungrounded): {unclosed[:5]}."
        )
    return clean_text.rstrip(), entities


def entities_to_boxes(
    entities: Sequence[GroundedEntity], region_boxes: BoxesInput, image_size: Sequence[int]
) -> list[GroundedEntity]:
    """Looks up the pixel box of every region index of `entities`.

    Region index `K` (token `<rK>`) is row `K` of the regions that the model selected for this image. An index that is
    not a row of `region_boxes` is dropped with a warning (the original evaluation ignores them too).

    Args:
        entities (`Sequence[GroundedEntity]`):
            Entities from [`parse_grounded_text`]. They are not modified.
        region_boxes (`torch.Tensor` of shape `(num_regions, 4)`):
            The regions the model selected for this image, as normalized `(center_x, center_y, width, height)`.
        image_size (`tuple[int, int]`):
            `(height, width)` of the image to express the boxes in, usually the original image.

    Returns:
        `list[GroundedEntity]`: copies of `entities` whose `boxes` hold one `[x1, y1, x2, y2]` pixel box per kept
        entry of `region_indices`.
    """
    pixel_boxes = normalized_cxcywh_to_pixel_xyxy(_as_boxes(region_boxes, "region_boxes"), image_size)
    num_regions = len(pixel_boxes)
    resolved = []
    for entity in entities:
        kept = [index for index in entity["region_indices"] if index < num_regions]
        if len(kept) != len(entity["region_indices"]):
            dropped = sorted(set(entity["region_indices"]) - set(kept))
            logger.warning(
                f"Dropping region indices {dropped} of phrase {entity['phrase']!r}: the model selected only "
                f"{num_regions} regions (valid indices 0..{num_regions - 1})."
            )
        resolved.append({**entity, "region_indices": kept, "boxes": pixel_boxes[kept].tolist()})
    return resolved


__all__ = [
    "GroundedEntity",
    "boxes_pixel_xyxy_to_normalized_cxcywh",
    "entities_to_boxes",
    "normalized_cxcywh_to_pixel_xyxy",
    "parse_grounded_text",
    "validate_pixel_boxes",
]
