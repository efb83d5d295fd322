"""The Groma side of the demo without the web page: questions from a task and its text, referred boxes, and a chat
about one image whose earlier turns stay in the prompt."""

import re
from dataclasses import dataclass, field

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from ..cli import describe_regions, generate_grounded, user_turn
from ..processing import (
    REGION_CAPTION_TEMPLATES,
    boxes_pixel_xyxy_to_normalized_cxcywh,
    draw_grounding,
    draw_proposals,
    grounded_caption_prompt,
    rec_prompt,
    region_caption_prompt,
    region_reference,
    validate_pixel_boxes,
)
from ..processing.image_inputs import open_rgb_image


ASK, LOCATE, CAPTION, DESCRIBE = "Ask", "Locate", "Grounded caption", "Describe the boxes"
EVERY_REGION = "Describe every region"
TASKS = (ASK, LOCATE, CAPTION, DESCRIBE, EVERY_REGION)
# The tasks whose question refers to the boxes drawn or typed; the others leave them out.
TASKS_WITH_BOXES = (ASK, DESCRIBE)
# "Locate the red square in the image." -> "the red square": the verb and ending that the Locate task adds itself.
_LOCATE_VERB = re.compile(r"^\s*(?:please\s+)?(?:locate|find|detect|where\s+is)(?:\s+|$)", re.IGNORECASE)
_LOCATE_ENDING = re.compile(r"\s*(?:in\s+(?:the|this)\s+(?:image|picture|photo))?\s*[.?!]*\s*$", re.IGNORECASE)
_BOX_SEPARATOR = re.compile(r"[;\n]")
_NUMBER_SEPARATOR = re.compile(r"[,\s]+")


class DemoInputError(ValueError):
    """A bad input the page reports to the user (no image, a box outside the image, an unreadable file...)."""


def read_image(path: str) -> Image.Image:
    """The RGB image in the uploaded file at `path`; a [`DemoInputError`] when it is not an image."""
    try:
        return open_rgb_image(path, "The uploaded file")
    except ValueError as error:
        raise DemoInputError(str(error)) from error


def parse_typed_boxes(text: str) -> list[list[float]]:
    """Boxes typed as `x1, y1, x2, y2` in pixels, several separated by `;` or new lines (empty text: no box)."""
    boxes = []
    for index, entry in enumerate(part.strip() for part in _BOX_SEPARATOR.split(text or "")):
        if not entry:
            continue
        values = [value for value in _NUMBER_SEPARATOR.split(entry.strip("[]() ")) if value]
        try:
            box = [float(value) for value in values]
        except ValueError:
            box = []
        if len(box) != 4:
            raise DemoInputError(f"Typed box {index + 1} ({entry!r}) must be four numbers: x1, y1, x2, y2 in pixels.")
        boxes.append(box)
    return boxes


def annotator_boxes(value: dict | None) -> list[list[float]]:
    """The pixel `[x1, y1, x2, y2]` boxes drawn on the image annotator (its `boxes` entries), in drawing order."""
    if not value:
        return []
    return [[box["xmin"], box["ymin"], box["xmax"], box["ymax"]] for box in value.get("boxes") or []]


def locate_expression(text: str) -> str:
    """What to locate in `text`: "Locate the red square in the image." and "the red square" both give
    "the red square"."""
    expression = _LOCATE_ENDING.sub("", _LOCATE_VERB.sub("", text or ""))
    if not expression:
        raise DemoInputError("Type what to locate, e.g. 'the red square'.")
    return expression


def build_query(task: str, text: str, num_boxes: int) -> str:
    """The Groma query of `task` (one of `TASKS`) for the user's `text` and `num_boxes` referred boxes.

    Ask sends `text` as written (the boxes follow it); Locate asks the trained referring-expression question about
    `text`; Grounded caption ignores `text`; Describe the boxes asks for a short description of the boxes; Describe
    every region gives the question asked about each region (see [`GromaChat.describe_every_region`]).
    """
    if task == LOCATE:
        return rec_prompt(locate_expression(text))
    if task == CAPTION:
        return grounded_caption_prompt()
    if task == DESCRIBE:
        if num_boxes == 0:
            raise DemoInputError("Draw a box on the image (or type its coordinates) to describe it.")
        return REGION_CAPTION_TEMPLATES[0].format(region_reference(num_boxes))
    if task == EVERY_REGION:
        return region_caption_prompt()
    if task == ASK:
        if not (text or "").strip():
            raise DemoInputError("Type a question, or pick another task.")
        return text.strip()
    raise DemoInputError(f"Unknown task {task!r}; pick one of {', '.join(TASKS)}.")


def display_entities(result: dict) -> list[dict]:
    """What the picture and the legend of a result show, entity `i` in colour `i`: the answer's `entities` (those
    without a phrase, the boxes of a located `referent`, named by it), then each referred box as `"box K"`."""
    referent = result.get("referent")
    entities = [{**entity, "phrase": entity["phrase"] or referent} for entity in result["entities"]]
    referred = [
        {"phrase": f"box {index}", "boxes": [box], "region_indices": [], "span": None}
        for index, box in enumerate(result["boxes"], 1)
    ]
    return entities + referred


@dataclass
class GenerationSettings:
    """How answers are generated: at most `max_new_tokens` tokens, greedy or (with `do_sample`) sampled with
    `temperature` and `top_p`."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9

    def generate_kwargs(self) -> dict:
        """Keyword arguments of `generate` (the sampling ones only when sampling)."""
        kwargs = {"max_new_tokens": int(self.max_new_tokens), "do_sample": bool(self.do_sample)}
        if self.do_sample:
            kwargs.update(temperature=float(self.temperature), top_p=float(self.top_p))
        return kwargs


@dataclass
class GromaChat:
    """A conversation about one image: the chat messages so far (assistant turns keep their grounding markup, so
    later questions can build on them), every referred box in order, the conversation's regions and the last
    result.

    The first question lets the model select the regions (normalized cxcywh); later questions reuse them, with the
    boxes they refer to appended, so that the `<rK>` tokens of earlier answers keep pointing at the same regions.
    """

    image: Image.Image | None = None
    messages: list[dict] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    regions: torch.Tensor | None = None
    last_result: dict | None = None

    def check_image(self) -> None:
        """Raises a [`DemoInputError`] asking for an image when the chat has none."""
        if self.image is None:
            raise DemoInputError("Upload an image or pick an example scene first.")

    def ask(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        query: str,
        boxes: list[list[float]],
        settings: GenerationSettings,
        referent: str | None = None,
    ) -> dict:
        """Asks `query` about the image, referring to `boxes` (pixel `[x1, y1, x2, y2]`), after the earlier turns.

        Args:
            referent: What the query asks to locate (e.g. "the red square"), which names the answer's boxes that
                follow no phrase in the pictures and legends.

        Returns:
            The result of [`~transformers_groma.cli.generate_grounded`] (`text`, `entities` with pixel boxes,
            `regions`...) with the `query`, the referred `boxes` and the `referent`; it becomes `last_result`.

        Raises:
            DemoInputError: without an image, or for a box that is empty or not inside the image.
        """
        self.check_image()
        try:
            validate_pixel_boxes(boxes, self.image.size[::-1], argument_name="boxes")
        except ValueError as error:
            raise DemoInputError(str(error)) from error
        all_boxes = [*self.boxes, *boxes]
        max_regions = model.config.max_region_num
        if len(all_boxes) > max_regions:
            raise DemoInputError(
                f"This conversation would refer to {len(all_boxes)} boxes; the model takes at most {max_regions}. "
                "Start a new conversation to refer to other boxes."
            )
        messages = [*self.messages, user_turn(query, len(boxes))]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        region_boxes = None if self.regions is None else [self.regions_with(boxes, max_regions)]
        (result,) = generate_grounded(
            model,
            processor,
            [self.image],
            [prompt],
            [all_boxes] if all_boxes else None,
            region_boxes=region_boxes,
            **settings.generate_kwargs(),
        )
        self.regions = result["_regions"]
        markup = processor.post_process_image_text_to_text([result["_generated_ids"]], skip_special_tokens=False)[0]
        markup = markup.split(processor.tokenizer.eos_token)[0].strip()
        self.messages = [*messages, {"role": "assistant", "content": [{"type": "text", "text": markup}]}]
        self.boxes = all_boxes
        self.last_result = {"query": query, "boxes": boxes, "referent": referent, **result}
        return self.last_result

    def describe_every_region(
        self, model: PreTrainedModel, processor: ProcessorMixin, query: str, settings: GenerationSettings
    ) -> dict:
        """Asks `query` (a region-caption prompt) about every region the model selects in the image, each in its own
        prompt (see [`~transformers_groma.cli.describe_regions`]). The answers do not join the conversation; a
        conversation that has not selected its regions yet takes these.

        Returns:
            The result of `describe_regions` (one entity per region, its description as phrase) with the `query`,
            no referred `boxes` and no `referent`; it becomes `last_result`.

        Raises:
            DemoInputError: without an image.
        """
        self.check_image()
        result = describe_regions(model, processor, self.image, query, **settings.generate_kwargs())
        if self.regions is None:
            self.regions = result["_regions"]
        self.last_result = {"query": query, "boxes": [], "referent": None, **result}
        return self.last_result

    def regions_with(self, boxes: list[list[float]], max_regions: int) -> torch.Tensor:
        """The conversation's regions followed by `boxes` (pixel `[x1, y1, x2, y2]`), as normalized cxcywh. When they
        do not all fit in `max_regions`, the last regions (the lowest-scoring proposals) make room."""
        new = boxes_pixel_xyxy_to_normalized_cxcywh(boxes, self.image.size[::-1])
        return torch.cat([self.regions[: max_regions - len(new)], new.to(self.regions)])

    def picture(self, show_regions: bool) -> Image.Image | None:
        """The image with the last result's [`display_entities`], or with every region the model selected (labelled
        `rK`, as in the answer's `<rK>` tokens) when `show_regions`; the bare image before any answer."""
        if self.last_result is None:
            return self.image
        if show_regions:
            return draw_proposals(self.image, self.last_result["_regions"], top_k=None)
        return draw_grounding(self.image, display_entities(self.last_result))
