"""Processor for Groma: images, prompts with referring boxes, and grounded outputs (spec §3, §4.2)."""

import os
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import ImageInput
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack
from transformers.tokenization_utils_base import TextInput

from ..folder_checks import CheckedProcessorLoadingMixin
from ..saving import RemoteCodeSavingMixin
from ..tokens import IMAGE_TOKEN, REFER_BOX_TOKEN, REFER_FEAT_TOKEN, REGION_TOKEN
from .grounding import (
    BoxesInput,
    GroundedEntity,
    _as_boxes,
    _check_image_size,
    boxes_pixel_xyxy_to_normalized_cxcywh,
    entities_to_boxes,
    parse_grounded_text,
    validate_pixel_boxes,
)
from .image_processing_groma import GromaImageProcessor
from .prompts import CHAT_TEMPLATE
from .tokenization import generated_id_lists, record_legacy_flag


class GroundedGeneration(TypedDict):
    """One decoded generation: `text` without markup, and its `entities` with pixel boxes."""

    text: str
    entities: list[GroundedEntity]


class GromaProcessor(CheckedProcessorLoadingMixin, RemoteCodeSavingMixin, ProcessorMixin):
    r"""Constructs a Groma processor from a [`GromaImageProcessor`] and a Llama tokenizer holding Groma's tokens.

    Every prompt about an image holds exactly one `<image>` and one `<region>` placeholder (the chat template writes
    them in the fixed first exchange); text-only prompts, without images, hold none. `image_token` / `image_token_id`
    name the first, as in transformers' VLM processors. They are tokenized as single tokens: the model expands them
    into the image tokens and the selected regions. A user box is referred to with
    `<roi><refer_box></roi><refer_feat>` in the text and given as pixel coordinates in `boxes`.

    Args:
        image_processor ([`GromaImageProcessor`], *optional*):
            The image processor.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`], *optional*):
            The tokenizer, with the tokens of [`~transformers_groma.processing.add_groma_tokens`].
        chat_template (`str`, *optional*):
            Jinja template for [`~ProcessorMixin.apply_chat_template`]. Defaults to
            [`~transformers_groma.processing.CHAT_TEMPLATE`], the `llava` conversation the released chat model uses.
        max_region_num (`int`, *optional*, defaults to 100):
            Most user boxes a sample may have: the model keeps at most this many regions per image, and there are
            this many region index tokens `<r0>` ... `<r99>`.
    """

    text_kwargs = {"padding": True}
    # one (num_boxes, 4) tensor per sample: `refer_boxes` stays a list
    skip_tensor_conversion = [*ProcessorMixin.skip_tensor_conversion, "refer_boxes"]

    def __init__(
        self,
        image_processor: GromaImageProcessor | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        chat_template: str | None = None,
        max_region_num: int = 100,
        **kwargs,
    ):
        self.max_region_num = max_region_num
        record_legacy_flag(tokenizer)
        super().__init__(image_processor, tokenizer, chat_template=chat_template or CHAT_TEMPLATE, **kwargs)
        # the placeholder every prompt holds once, as transformers' VLM processors name theirs
        self.image_token = IMAGE_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) if tokenizer is not None else None

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, processor_dict=None, **kwargs
    ):
        # Loads the image processor by class, so that `from_pretrained` works without registering the Auto classes.
        return [
            GromaImageProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs),
        ]

    def __call__(
        self,
        images: ImageInput | None = None,
        text: TextInput | list[TextInput] | None = None,
        boxes: Sequence[BoxesInput] | None = None,
        **kwargs: Unpack[ProcessingKwargs],
    ) -> BatchFeature:
        """Prepares images, prompts and referring boxes for the model.

        Args:
            images (`ImageInput`, *optional*):
                One image per prompt (PIL, numpy or torch; a list, or a list of one-image lists as built by
                `apply_chat_template`).
            text (`str` or `list[str]`, *optional*):
                The prompts, each with exactly one `<image>` and one `<region>` placeholder for its image. Without
                `images`, text-only prompts (no placeholders) for the language model alone.
            boxes (`list`, *optional*):
                One entry per image: the `(num_boxes, 4)` pixel `[x1, y1, x2, y2]` boxes (in the original image) that
                fill that prompt's `<refer_box>` placeholders, in order; `[]` for none. Each box must lie inside its
                image with `x1 < x2` and `y1 < y2`, and a sample holds at most `max_region_num` boxes.
            **kwargs:
                Passed to the tokenizer and the image processor (`return_tensors`, `padding`, `size`, ...). Padding is
                on the left unless `padding_side` is given, whatever the tokenizer's own setting.

        Returns:
            [`~transformers.BatchFeature`] with `input_ids` and `attention_mask` (when `text` is given),
            `pixel_values` and `image_sizes` (`(batch_size, 2)` int64, `(height, width)` of the originals), and, when
            `text` and `images` are given, `refer_boxes`: a list with one float32 tensor of shape `(num_boxes, 4)` per
            sample holding the boxes as normalized `(center_x, center_y, width, height)`.
        """
        if images is None and text is None:
            raise ValueError("`GromaProcessor` needs `images`, `text`, or both.")
        if boxes is not None and (text is None or images is None):
            raise ValueError(
                f"`boxes` needs `text` and `images`: each box fills a {REFER_BOX_TOKEN} placeholder of a prompt about "
                "its image."
            )
        if _holds_no_image(images):
            raise ValueError(f"`images` holds no image: give one image per prompt, got {images!r}.")

        output_kwargs = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        if images is None:
            texts = self._validate_text_only(text)
            return self._tokenize(texts, output_kwargs["text_kwargs"], kwargs, {})
        image_inputs = self.image_processor(images, **output_kwargs["images_kwargs"])
        if text is None:
            return image_inputs

        texts = self._validate_text(text, num_images=len(image_inputs["image_sizes"]))
        refer_boxes = self._prepare_boxes(boxes, texts, image_inputs["image_sizes"].tolist())
        return self._tokenize(
            texts, output_kwargs["text_kwargs"], kwargs, {**image_inputs, "refer_boxes": refer_boxes}
        )

    def _tokenize(self, texts: list[str], text_kwargs: dict, call_kwargs: dict, other_inputs: dict) -> BatchFeature:
        """Tokenize `texts` (left-padded unless the call names a `padding_side`) next to `other_inputs`."""
        # The tokenizer's own `padding_side` would otherwise win over this processor's default.
        if "padding_side" not in call_kwargs and "padding_side" not in call_kwargs.get("text_kwargs", {}):
            text_kwargs["padding_side"] = "left"
        return_tensors = text_kwargs.pop("return_tensors", None)
        text_inputs = self.tokenizer(texts, **text_kwargs)
        self._check_placeholder_ids(texts, text_inputs["input_ids"])
        return BatchFeature(
            data={**text_inputs, **other_inputs},
            tensor_type=return_tensors,
            skip_tensor_conversion=self.skip_tensor_conversion,
        )

    @staticmethod
    def _text_list(text: TextInput | list[TextInput]) -> list[str]:
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not all(isinstance(sample, str) for sample in texts):
            raise TypeError(f"`text` must be a string or a list of strings, got {type(text).__name__}.")
        return list(texts)

    @classmethod
    def _validate_text_only(cls, text: TextInput | list[TextInput]) -> list[str]:
        texts = cls._text_list(text)
        for index, sample in enumerate(texts):
            for placeholder in (IMAGE_TOKEN, REGION_TOKEN, REFER_BOX_TOKEN, REFER_FEAT_TOKEN):
                if placeholder in sample:
                    raise ValueError(
                        f"`text[{index}]` holds {placeholder} but no `images` were given: pass one image per prompt, "
                        "or leave Groma's placeholders out of a text-only prompt."
                    )
        return texts

    @classmethod
    def _validate_text(cls, text: TextInput | list[TextInput], num_images: int) -> list[str]:
        texts = cls._text_list(text)
        if len(texts) != num_images:
            raise ValueError(
                f"Groma takes one image per prompt: got {len(texts)} prompts in `text` and {num_images} `images`."
            )
        for index, sample in enumerate(texts):
            for placeholder in (IMAGE_TOKEN, REGION_TOKEN):
                if sample.count(placeholder) != 1:
                    raise ValueError(
                        f"`text[{index}]` must contain exactly one {placeholder} placeholder, found "
                        f"{sample.count(placeholder)}. Build prompts with `apply_chat_template`, which writes both."
                    )
        return texts

    def _prepare_boxes(
        self, boxes: Sequence[BoxesInput] | None, texts: list[str], image_sizes: list[list[int]]
    ) -> list[torch.Tensor]:
        if boxes is None:
            boxes = [[] for _ in texts]
        if isinstance(boxes, (str, torch.Tensor)) or not isinstance(boxes, Sequence):
            raise TypeError(f"`boxes` must be a list with one entry of boxes per image, got {type(boxes).__name__}.")
        if len(boxes) != len(texts):
            raise ValueError(
                f"`boxes` must hold one entry per image (e.g. `[[[x1, y1, x2, y2]], []]`), got {len(boxes)} entries "
                f"for {len(texts)} images."
            )
        refer_boxes = []
        for index, (sample_boxes, sample, image_size) in enumerate(zip(boxes, texts, image_sizes)):
            sample_boxes = validate_pixel_boxes(sample_boxes, image_size, argument_name=f"boxes[{index}]")
            num_placeholders = sample.count(REFER_BOX_TOKEN)
            if len(sample_boxes) != num_placeholders:
                raise ValueError(
                    f"`text[{index}]` has {num_placeholders} {REFER_BOX_TOKEN} placeholders but `boxes[{index}]` "
                    f"holds {len(sample_boxes)} boxes: give one box per placeholder."
                )
            if len(sample_boxes) > self.max_region_num:
                raise ValueError(
                    f"`boxes[{index}]` holds {len(sample_boxes)} boxes, more than `max_region_num` "
                    f"({self.max_region_num})."
                )
            refer_boxes.append(boxes_pixel_xyxy_to_normalized_cxcywh(sample_boxes, image_size))
        return refer_boxes

    def _check_placeholder_ids(self, texts: list[str], input_ids: Sequence[Sequence[int]]) -> None:
        for index, (sample, ids) in enumerate(zip(texts, input_ids)):
            ids = list(ids)
            for placeholder in (IMAGE_TOKEN, REGION_TOKEN, REFER_BOX_TOKEN):
                if ids.count(self.tokenizer.convert_tokens_to_ids(placeholder)) != sample.count(placeholder):
                    raise ValueError(
                        f"The {placeholder} placeholders of `text[{index}]` did not survive tokenization: truncate "
                        "less (`max_length`) or make sure the tokenizer holds Groma's tokens (`add_groma_tokens`)."
                    )

    def _multimodal_inputs_from_conversations(self, conversations, *args, **kwargs):
        # Collects the coordinates of `{"type": "box", "box": [x1, y1, x2, y2]}` items for `apply_chat_template`.
        images, videos, audio, extra_inputs = super()._multimodal_inputs_from_conversations(
            conversations, *args, **kwargs
        )
        boxes = []
        for conversation in conversations:
            items = [
                item
                for message in conversation
                if isinstance(message.get("content"), list)
                for item in message["content"]
            ]
            boxes.append([item["box"] for item in items if item["type"] == "box" and "box" in item])
        if any(boxes):
            extra_inputs = {**extra_inputs, "boxes": boxes}
        return images, videos, audio, extra_inputs

    def post_process_grounding(
        self,
        generated_ids: torch.Tensor | Sequence[Sequence[int]],
        region_boxes: Sequence[BoxesInput],
        target_sizes: Sequence[Sequence[int]],
    ) -> list[GroundedGeneration]:
        """Turns generated ids into clean text and phrases grounded to pixel boxes.

        Args:
            generated_ids (`torch.Tensor` of shape `(batch_size, num_new_tokens)` or a list of id lists):
                The newly generated tokens only (the prompt cut off). Padding, `</s>` and `-100` (the ignore index of
                labels) are ignored.
            region_boxes (`list[torch.Tensor]`):
                Per sample, the `(num_regions, 4)` regions the model selected, as normalized `(center_x, center_y,
                width, height)`; `<rK>` is row `K`.
            target_sizes (`list[tuple[int, int]]`):
                Per sample, the `(height, width)` to express the boxes in, e.g. the processor's `image_sizes`.

        Returns:
            `list[GroundedGeneration]`: per sample, `{"text": str, "entities": [...]}` as described in
            [`~transformers_groma.processing.parse_grounded_text`], with `boxes` as pixel `[x1, y1, x2, y2]`.

        Raises:
            `TypeError`: if an argument is not one entry per sample (e.g. `region_boxes=None`).
            `ValueError`: for negative token ids other than `-100`, region boxes not of shape `(num_regions, 4)`,
                a target size that is not a positive `(height, width)` pair, or arguments of different lengths.
        """
        for name, value, expected in (
            ("region_boxes", region_boxes, "`(num_regions, 4)` tensor (the `region_boxes` of `generate`'s output)"),
            ("target_sizes", target_sizes, "`(height, width)` pair"),
        ):
            if isinstance(value, str) or not isinstance(value, (Sequence, torch.Tensor, np.ndarray)):
                raise TypeError(f"`{name}` must hold one {expected} per sample, got {type(value).__name__}.")
        id_lists = generated_id_lists(generated_ids, len(self.tokenizer))
        if not len(id_lists) == len(region_boxes) == len(target_sizes):
            raise ValueError(
                f"`generated_ids`, `region_boxes` and `target_sizes` must have one entry per sample, got "
                f"{len(id_lists)}, {len(region_boxes)} and {len(target_sizes)}."
            )
        results = []
        for index, (ids, sample_boxes, target_size) in enumerate(zip(id_lists, region_boxes, target_sizes)):
            sample_boxes = _as_boxes(sample_boxes, f"region_boxes[{index}]")
            if not torch.isfinite(sample_boxes).all():
                raise ValueError(f"`region_boxes[{index}]` holds NaN or infinite values.")
            target_size = _check_image_size(target_size, f"target_sizes[{index}]")
            clean_text, entities = parse_grounded_text(self.tokenizer.decode(ids, skip_special_tokens=False))
            results.append({"text": clean_text, "entities": entities_to_boxes(entities, sample_boxes, target_size)})
        return results

    def post_process_image_text_to_text(
        self, generated_outputs: torch.Tensor | Sequence[Sequence[int]], skip_special_tokens: bool = True, **kwargs
    ) -> list[str]:
        """Decodes generations for the `image-text-to-text` pipeline.

        Args:
            generated_outputs (`torch.Tensor` of shape `(batch_size, sequence_length)` or a list of id lists):
                Token ids from `generate`.
            skip_special_tokens (`bool`, *optional*, defaults to `True`):
                Remove Groma's markup and the special tokens, with the whitespace clean-up of
                [`~transformers_groma.processing.parse_grounded_text`]. With `False`, the markup is kept as is.
            **kwargs:
                Passed to the tokenizer's `batch_decode`.

        Returns:
            `list[str]`: The decoded texts.
        """
        texts = self.tokenizer.batch_decode(generated_outputs, skip_special_tokens=False, **kwargs)
        if not skip_special_tokens:
            return texts
        return [parse_grounded_text(text)[0] for text in texts]

    @property
    def model_input_names(self) -> list[str]:
        """The inputs `__call__` returns for the model: the tokenizer's and image processor's, and `refer_boxes`."""
        return [*super().model_input_names, "refer_boxes"]


def _holds_no_image(images: ImageInput | None) -> bool:
    """Whether `images` is an empty list or tuple, or one holding only such lists."""
    return isinstance(images, (list, tuple)) and all(_holds_no_image(item) for item in images)


__all__ = ["GromaProcessor"]
