"""Batched, greedy answers of a model to evaluation queries.

A predictor maps a batch of [`Query`]s to one [`Answer`] each. [`GromaPredictor`] and [`GroundingGPTPredictor`]
generate text; [`ProposalPredictor`] runs Groma's region proposer alone (class-agnostic detection). Tests pass any
callable with the same signature (e.g. an oracle that answers with the ground truth).
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import torch
from PIL import Image

from ..modeling import GromaForRegionProposal
from ..processing import GroundedEntity, normalized_cxcywh_to_pixel_xyxy
from ..processing.groundinggpt import SEPARATOR
from ..processing.image_inputs import open_rgb_image
from ..processing.tokenization import generated_id_lists
from .detection import top_proposals


_MARKUP = re.compile(r"<.*?>")


@dataclass(frozen=True)
class Query:
    """One question to a model.

    Attributes:
        image (`str`): Path of the image.
        text (`str`): The user message (with Groma's `<p>`/`<roi>` markup where the protocol has it).
        boxes (`list`): Pixel `[x1, y1, x2, y2]` boxes filling the message's `<refer_box>` placeholders, in order.
        max_new_tokens (`int`): Generation budget of the protocol.
    """

    image: str
    text: str = ""
    boxes: list[list[float]] = field(default_factory=list)
    max_new_tokens: int = 0


class Answer(TypedDict, total=False):
    """A model's answer to a [`Query`].

    Keys: `raw` (the decoded generation, markup kept), `text` (the clean text), `caption` (the text with every
    `<...>` removed, whitespace collapsed and quotes stripped, as the original caption scripts post-process),
    `boxes` (pixel `[x1, y1, x2, y2]`: for Groma the regions of every `<rK>` token in generation order, for
    GroundingGPT every written box in order, for the proposer its best proposals), `scores` (proposer only), and
    `entities` (Groma: grounded phrases with their pixel boxes).
    """

    raw: str
    text: str
    caption: str
    boxes: list[list[float]]
    scores: list[float]
    entities: list[GroundedEntity]


Predictor = Callable[[Sequence[Query]], list[Answer]]


def load_image(path: str) -> Image.Image:
    """The RGB image at `path`; a ValueError names a file that cannot be read."""
    return open_rgb_image(path, path)


def clean_caption(text: str) -> str:
    """A decoded answer as the original caption evaluation scores it: `<...>` removed, whitespace collapsed,
    surrounding quotes and spaces stripped."""
    return " ".join(_MARKUP.sub("", text).split()).strip("'").strip()


def _same_budget(queries: Sequence[Query]) -> int:
    budgets = {query.max_new_tokens for query in queries}
    if len(budgets) != 1 or min(budgets) < 1:
        raise ValueError(f"A batch needs one positive `max_new_tokens`, got {sorted(budgets)}.")
    return budgets.pop()


class GromaPredictor:
    """Greedy, batched answers of a Groma model (left-padded prompts of the `llava` chat template).

    Args:
        model: A `GromaForConditionalGeneration` (eval mode, on its device).
        processor: Its `GromaProcessor`.
    """

    def __init__(self, model, processor):
        self.model, self.processor = model, processor
        self.first_region_id = model.config.region_index_token_id
        self.num_region_ids = model.config.num_region_index_tokens
        tokenizer = processor.tokenizer
        self.end_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}

    def __call__(self, queries: Sequence[Query]) -> list[Answer]:
        # The CLI's prompt builder; imported here because the CLI imports the synthetic world, which imports training,
        # which imports this package.
        from ..cli import chat_prompt

        images = [load_image(query.image) for query in queries]
        prompts = [chat_prompt(self.processor, query.text, len(query.boxes)) for query in queries]
        inputs = self.processor(
            images=images, text=prompts, boxes=[query.boxes for query in queries], return_tensors="pt"
        ).to(self.model.device)
        output = self.model.generate(
            **inputs, max_new_tokens=_same_budget(queries), do_sample=False, return_dict_in_generate=True
        )
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        sizes = [image.size[::-1] for image in images]
        parsed = self.processor.post_process_grounding(new_tokens, output.region_boxes, target_sizes=sizes)
        tokenizer = self.processor.tokenizer
        answers = []
        for ids, regions, size, grounded in zip(generated_id_lists(new_tokens), output.region_boxes, sizes, parsed):
            ids = ids[: next((i for i, token in enumerate(ids) if token in self.end_ids), len(ids))]
            # Every `<rK>` token names a region, inside a `<roi>` group or not (as the original evaluation reads it).
            indices = [i - self.first_region_id for i in ids if 0 <= i - self.first_region_id < self.num_region_ids]
            indices = [index for index in indices if index < len(regions)]
            pixel = normalized_cxcywh_to_pixel_xyxy(regions.float().cpu(), size)
            answers.append(
                {
                    "raw": tokenizer.decode(ids, skip_special_tokens=False),
                    "text": grounded["text"],
                    "caption": clean_caption(tokenizer.decode(ids, skip_special_tokens=True)),
                    "boxes": pixel[indices].tolist(),
                    "entities": grounded["entities"],
                }
            )
        return answers


class GroundingGPTPredictor:
    """Greedy, batched answers of a GroundingGPT model; boxes are read from the text (`[x1, y1, x2, y2]` in the
    padded-square frame) and returned in pixels of the original image."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor

    def __call__(self, queries: Sequence[Query]) -> list[Answer]:
        from ..cli_groundinggpt import chat_prompt  # imported here for the reason given in `GromaPredictor`

        if any(query.boxes for query in queries):
            raise ValueError("GroundingGPT reads boxes written in the text; a query cannot pass `boxes`.")
        images = [load_image(query.image) for query in queries]
        prompts = [
            chat_prompt(self.processor, {"image": query.image, "video": None, "audio": None}, query.text)
            for query in queries
        ]
        inputs = self.processor(text=prompts, images=images, return_tensors="pt")
        image_sizes = inputs["image_sizes"].tolist()
        inputs = inputs.to(self.model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        output = self.model.generate(
            **inputs,
            max_new_tokens=_same_budget(queries),
            do_sample=False,
            pad_token_id=self.processor.tokenizer.pad_token_id,
            stop_strings=SEPARATOR,
            tokenizer=self.processor.tokenizer,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        parsed = self.processor.post_process_grounding(new_tokens, image_sizes=image_sizes)
        raw = self.processor.post_process_image_text_to_text(new_tokens, skip_special_tokens=False)
        return [
            {
                "raw": raw_text,
                "text": answer["text"],
                "caption": clean_caption(answer["text"]),
                "boxes": [box["box"] for box in answer["boxes"]],
            }
            for raw_text, answer in zip(raw, parsed)
        ]


class ProposalPredictor:
    """Groma's region proposer alone: the `max_detections` best proposals per image, with their fused scores.

    Args:
        model: A `GromaForRegionProposal` or a `GromaForConditionalGeneration` (its proposer is used).
        image_processor: The model's `GromaImageProcessor`.
        max_detections (`int`, *optional*, defaults to 100): Proposals kept per image.
    """

    def __init__(self, model, image_processor, max_detections: int = 100):
        self.model, self.image_processor, self.max_detections = model, image_processor, max_detections

    @torch.no_grad()
    def __call__(self, queries: Sequence[Query]) -> list[Answer]:
        images = [load_image(query.image) for query in queries]
        pixel_values = self.image_processor(images, return_tensors="pt")["pixel_values"].to(self.model.device)
        if isinstance(self.model, GromaForRegionProposal):
            proposals = self.model(pixel_values)
        else:
            proposals = self.model.model.get_region_proposals(*self.model.model.encode_image(pixel_values))
        answers = []
        for boxes, scores, image in zip(proposals.pred_boxes, proposals.scores, images):
            pixel, top_scores = top_proposals(boxes, scores, image.size[::-1], self.max_detections)
            answers.append({"boxes": pixel.tolist(), "scores": top_scores.tolist()})
        return answers


__all__ = [
    "Answer",
    "GromaPredictor",
    "GroundingGPTPredictor",
    "Predictor",
    "ProposalPredictor",
    "Query",
    "clean_caption",
    "load_image",
]
