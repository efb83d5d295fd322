"""What the synthetic world says about its objects, in Groma's trained phrasings (spec §3.4).

- REC: the expression `"the red square"`, asked with any of `REC_TEMPLATES`
  (`"Locate <p>the red square</p> in the image."`), answered `<roi><ground_box></roi>`;
- region caption: `"What is <roi><refer_box></roi><refer_feat>?"` (any `REGION_CAPTION_TEMPLATES`) -> `"A red square."`;
- grounded caption: `[grounding]` + any `GROUNDED_CAPTION_TEMPLATES` -> `"The image shows <p>a red square</p><roi>
  <ground_box></roi> and <p>a blue circle</p><roi><ground_box></roi>."`, objects by colour, then shape (the order of
  `COLORS` and `SHAPES`), as an inventory lists them.
"""

from ..tokens import GROUND_BOX_TOKEN, PHRASE_END_TOKEN, PHRASE_START_TOKEN, ROI_END_TOKEN, ROI_START_TOKEN
from .scene import COLORS, SHAPES, SyntheticObject


CAPTION_PREFIX = "The image shows "
GROUNDED_OBJECT = ROI_START_TOKEN + GROUND_BOX_TOKEN + ROI_END_TOKEN  # an answer's placeholder for one object's box


def referring_expression(obj: SyntheticObject) -> str:
    """The REC expression of an object, e.g. `"the red square"`."""
    return f"the {obj.name}"


def region_caption(obj: SyntheticObject) -> str:
    """The region caption of an object, e.g. `"A red square."`."""
    return f"A {obj.name}."


def caption_order(objects: list[SyntheticObject]) -> list[SyntheticObject]:
    """The objects in the order a grounded caption names them: by colour, then shape, in the order of `COLORS` and
    `SHAPES` (red before green, square before circle). The order depends on what the objects are, not on where
    they are, so a model names them by reading its regions' contents."""
    colors = list(COLORS)
    return sorted(objects, key=lambda obj: (colors.index(obj.color), SHAPES.index(obj.shape)))


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def grounded_caption(objects: list[SyntheticObject]) -> tuple[str, list[tuple[int, int]]]:
    """The plain caption of a scene and the `(start, end)` character span of each object's phrase in it, in
    `caption_order`, e.g. `("The image shows a red square and a blue circle.", [(16, 28), (33, 46)])`."""
    phrases = [f"a {obj.name}" for obj in caption_order(objects)]
    caption = CAPTION_PREFIX + _join(phrases) + "."
    spans, position = [], len(CAPTION_PREFIX)
    for phrase in phrases:
        start = caption.index(phrase, position)
        spans.append((start, start + len(phrase)))
        position = start + len(phrase)
    return caption, spans


def grounded_caption_answer(objects: list[SyntheticObject]) -> str:
    """The grounded answer of a scene: each phrase as `<p>a red square</p><roi><ground_box></roi>`, the boxes of
    `caption_order(objects)` filling the `<ground_box>`es in order."""
    phrases = [
        f"{PHRASE_START_TOKEN}a {obj.name}{PHRASE_END_TOKEN}{GROUNDED_OBJECT}" for obj in caption_order(objects)
    ]
    return CAPTION_PREFIX + _join(phrases) + "."
