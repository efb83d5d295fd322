"""Processor for GroundingGPT: prompts with `<image>` / `<video>` / `<sound>` placeholders, the three media
pipelines, and the grounded-output parser (spec §2-4)."""

import math
import numbers
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
from transformers.video_utils import VideoInput, is_valid_video, make_batched_videos

from ...configuration_groundinggpt import GROUNDINGGPT_TOKENS
from ...folder_checks import CheckedProcessorLoadingMixin
from ...saving import RemoteCodeSavingMixin
from ..grounding import _check_image_size
from ..image_inputs import flat_list_of_images
from ..tokenization import generated_id_lists, record_legacy_flag
from .feature_extraction_groundinggpt import AudioInput, GroundingGPTAudioKwargs, GroundingGPTFeatureExtractor
from .grounding import GroundedBox, GroundedTimeSpan, parse_boxes, parse_time_spans
from .image_processing_groundinggpt import GroundingGPTImageProcessor
from .prompts import AUDIO_PLACEHOLDER, CHAT_TEMPLATE, IMAGE_PLACEHOLDER, SEPARATOR, VIDEO_PLACEHOLDER
from .video_processing_groundinggpt import GroundingGPTVideoProcessor, GroundingGPTVideosKwargs


class GroundingGPTProcessorKwargs(ProcessingKwargs, total=False):
    """Call arguments of [`GroundingGPTProcessor`], routed to the tokenizer and the media processors (the video and
    audio ones take GroundingGPT's extra arguments, e.g. `random_crop` and `allow_short_audio`)."""

    videos_kwargs: GroundingGPTVideosKwargs
    audio_kwargs: GroundingGPTAudioKwargs


class GroundingGPTGeneration(TypedDict):
    """One decoded answer: its `text` (cut at the `###` separator) and the boxes and time spans written in it."""

    text: str
    boxes: list[GroundedBox]
    time_spans: list[GroundedTimeSpan]


# (placeholder, processor argument, start/patch/end tokens) per modality, in the order of `GROUNDINGGPT_TOKENS`.
_MODALITIES = (
    (IMAGE_PLACEHOLDER, "images", GROUNDINGGPT_TOKENS[1], GROUNDINGGPT_TOKENS[0], GROUNDINGGPT_TOKENS[2]),
    (VIDEO_PLACEHOLDER, "videos", GROUNDINGGPT_TOKENS[4], GROUNDINGGPT_TOKENS[3], GROUNDINGGPT_TOKENS[5]),
    (AUDIO_PLACEHOLDER, "audio", GROUNDINGGPT_TOKENS[7], GROUNDINGGPT_TOKENS[6], GROUNDINGGPT_TOKENS[8]),
)


def _check_duration(duration: float, argument_name: str) -> float | None:
    """A video duration in seconds; NaN (the processor's "unknown", for videos without timing) gives None."""
    if isinstance(duration, numbers.Real) and math.isnan(duration):
        return None
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real) or not 0 < duration < math.inf:
        raise ValueError(
            f"`{argument_name}` must be a positive, finite number of seconds (or NaN for unknown), got {duration!r}."
        )
    return float(duration)


class GroundingGPTProcessor(CheckedProcessorLoadingMixin, RemoteCodeSavingMixin, ProcessorMixin):
    r"""Constructs a GroundingGPT processor from an image processor, a video processor, an audio feature extractor
    and the Vicuna tokenizer with the 9 GroundingGPT tokens.

    Prompts mark where each media item goes with `<image>`, `<video>` or `<sound>` (the chat template writes them:
    sound, video, image, then the text of the user turn, like the original demo). Each placeholder is expanded into
    its `<xx_start>` + N x `<xx_patch>` + `<xx_end>` block, and the media of each kind are returned stacked in the
    order their placeholders appear (prompt by prompt), which is the order the model fills the blocks in. Per-item
    outputs (`image_sizes`, `video_durations`) go back to their samples with `post_process_grounding(...,
    input_ids=...)`.

    Args:
        image_processor ([`GroundingGPTImageProcessor`], *optional*): Pads to a square and preprocesses images.
        video_processor ([`GroundingGPTVideoProcessor`], *optional*): Decodes, samples and preprocesses videos.
        feature_extractor ([`GroundingGPTFeatureExtractor`], *optional*): Cuts audio into log-mel clips.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`], *optional*): The tokenizer, with the tokens of
            [`add_groundinggpt_tokens`].
        chat_template (`str`, *optional*): Defaults to [`CHAT_TEMPLATE`], the original `conv_lego` format.
        num_image_tokens (`int`, *optional*, defaults to 576): `<im_patch>` tokens per image (`config.num_image_tokens`).
        num_video_tokens (`int`, *optional*, defaults to 64): `<vi_patch>` tokens per video.
        num_audio_tokens (`int`, *optional*, defaults to 8): `<so_patch>` tokens per audio.
    """

    text_kwargs = {"padding": True}
    valid_processor_kwargs = GroundingGPTProcessorKwargs

    def __init__(
        self,
        image_processor: GroundingGPTImageProcessor | None = None,
        video_processor: GroundingGPTVideoProcessor | None = None,
        feature_extractor: GroundingGPTFeatureExtractor | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        chat_template: str | None = None,
        num_image_tokens: int = 576,
        num_video_tokens: int = 64,
        num_audio_tokens: int = 8,
        **kwargs,
    ):
        self.num_image_tokens = num_image_tokens
        self.num_video_tokens = num_video_tokens
        self.num_audio_tokens = num_audio_tokens
        record_legacy_flag(tokenizer)
        super().__init__(
            image_processor,
            video_processor,
            feature_extractor,
            tokenizer,
            chat_template=chat_template or CHAT_TEMPLATE,
            **kwargs,
        )
        # the prompt placeholders, as transformers' VLM processors name them; the ids are those of the patch tokens
        # the placeholders become (the model's `image_token_id`, ...)
        self.image_token, self.video_token, self.audio_token = (modality[0] for modality in _MODALITIES)
        patch_ids = [tokenizer.convert_tokens_to_ids(m[3]) if tokenizer is not None else None for m in _MODALITIES]
        self.image_token_id, self.video_token_id, self.audio_token_id = patch_ids

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, processor_dict=None, **kwargs
    ):
        # Loads the sub-processors by class, so that `from_pretrained` works without the Auto registrations.
        return [
            GroundingGPTImageProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            GroundingGPTVideoProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            GroundingGPTFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs),
        ]

    def _blocks(self) -> dict[str, str]:
        counts = (self.num_image_tokens, self.num_video_tokens, self.num_audio_tokens)
        return {
            placeholder: start + patch * count + end
            for (placeholder, _, start, patch, end), count in zip(_MODALITIES, counts)
        }

    def __call__(
        self,
        images: ImageInput | None = None,
        text: TextInput | list[TextInput] | None = None,
        videos: VideoInput | None = None,
        audio: AudioInput | list[AudioInput] | None = None,
        **kwargs: Unpack[GroundingGPTProcessorKwargs],
    ) -> BatchFeature:
        """Prepares prompts and their media for the model.

        Args:
            images (`ImageInput`, *optional*):
                One image per `<image>` placeholder, in order (PIL, numpy or torch).
            text (`str` or `list[str]`):
                The prompts, e.g. rendered with `apply_chat_template`.
            videos (`VideoInput`, *optional*):
                One video per `<video>` placeholder, in order: file paths (decoded with PyAV) or decoded frames.
            audio (`str`, `np.ndarray` or a list of them, *optional*):
                One audio per `<sound>` placeholder, in order: file paths or float waveforms in [-1, 1] (then pass
                `sampling_rate`).

            Each of `images`, `videos` and `audio` is either flat (the items of the whole batch, in placeholder
            order) or nested per prompt (one list per prompt, e.g. `images=[[a], [b, c]]`), and then every prompt
            must have as many placeholders as its list has items. An empty list is the same as `None`.
            **kwargs:
                Passed to the tokenizer and the media processors (`return_tensors`, `padding`, `sampling_rate`,
                `random_crop`, `allow_short_audio`, ...). Prompts are padded on the left unless `padding_side` is
                given.

        Returns:
            [`~transformers.BatchFeature`] with `input_ids`, `attention_mask`, and per modality given:
            `pixel_values` + `image_sizes` (`(height, width)` of the originals), `pixel_values_videos` +
            `video_num_frames` + `video_durations` (seconds, NaN when unknown), `input_features`.

        Raises:
            ValueError: when `text` is empty, the placeholders and the media do not correspond (per prompt for
                nested media), or a medium cannot be read.
            TypeError: for a `text` that is not a string or a list of strings, or an integer audio waveform.
        """
        texts = self._validate_text(text)
        media = {"images": images, "videos": videos, "audio": audio}
        output_kwargs = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        data = {}
        for placeholder, argument, *_ in _MODALITIES:
            items = self._media_items(placeholder, argument, media[argument], texts)
            if items:
                data.update(self._encode_media(argument, items, output_kwargs))

        text_kwargs = output_kwargs["text_kwargs"]
        # The tokenizer's own `padding_side` would otherwise win over this processor's default.
        if "padding_side" not in kwargs and "padding_side" not in kwargs.get("text_kwargs", {}):
            text_kwargs["padding_side"] = "left"
        return_tensors = text_kwargs.pop("return_tensors", None)
        blocks = self._blocks()
        expanded = []
        for sample in texts:
            for placeholder, block in blocks.items():
                sample = sample.replace(placeholder, block)
            expanded.append(sample)
        text_inputs = self.tokenizer(expanded, **text_kwargs)
        self._check_blocks(texts, text_inputs["input_ids"])
        return BatchFeature(data={**text_inputs, **data}, tensor_type=return_tensors)

    @staticmethod
    def _validate_text(text: TextInput | list[TextInput] | None) -> list[str]:
        texts = [text] if isinstance(text, str) else text
        if texts is None:
            raise ValueError("`text` is required: the prompts, with a placeholder for each media item.")
        if not isinstance(texts, (list, tuple)) or not all(isinstance(sample, str) for sample in texts):
            raise TypeError(f"`text` must be a string or a list of strings, got {type(text).__name__}.")
        if not texts:
            raise ValueError("`text` is empty: pass at least one prompt.")
        for index, sample in enumerate(texts):
            for token in GROUNDINGGPT_TOKENS:
                if token in sample:
                    raise ValueError(
                        f"`text[{index}]` contains {token}: write the placeholders {IMAGE_PLACEHOLDER}, "
                        f"{VIDEO_PLACEHOLDER} and {AUDIO_PLACEHOLDER}; the processor expands them."
                    )
        return list(texts)

    @staticmethod
    def _is_nested_per_prompt(argument: str, value) -> bool:
        """Whether `value` is a list of lists of items (for videos: not a list of videos given as lists of frames)."""
        if not isinstance(value, (list, tuple)) or not value:
            return False
        groups = all(isinstance(group, (list, tuple)) for group in value)
        return groups and not (argument == "videos" and any(is_valid_video(group) for group in value))

    def _media_items(self, placeholder: str, argument: str, value, texts: list[str]) -> list:
        """The items of one modality as a flat list in placeholder order, checked against the placeholders: of the
        whole batch for flat media, prompt by prompt for media nested per prompt."""
        if self._is_nested_per_prompt(argument, value):
            if len(value) != len(texts):
                raise ValueError(
                    f"`{argument}` is nested per prompt but holds {len(value)} list(s) for {len(texts)} prompt(s): "
                    "pass one list per prompt (empty for a prompt without it), or a flat list."
                )
            groups = [self._flatten(argument, group) for group in value]
            checks = [
                (f"`text[{index}]`", f"`{argument}[{index}]`", sample.count(placeholder), len(group))
                for index, (sample, group) in enumerate(zip(texts, groups))
            ]
            items = [item for group in groups for item in group]
        else:
            items = self._flatten(argument, value)
            checks = [("`text`", f"`{argument}`", sum(sample.count(placeholder) for sample in texts), len(items))]
        for text_name, media_name, expected, given in checks:
            if expected != given:
                raise ValueError(
                    f"{text_name} has {expected} {placeholder} placeholder(s) but {given} item(s) were given in "
                    f"{media_name}: pass one per placeholder, in order."
                )
        return items

    @staticmethod
    def _flatten(argument: str, value) -> list:
        if value is None or (isinstance(value, (list, tuple)) and not value):
            return []
        if argument == "images":
            return [image for _, image in flat_list_of_images(value)]
        if argument == "videos":
            return make_batched_videos(value)
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def _encode_media(self, argument: str, items: list, output_kwargs: dict) -> dict:
        if argument == "images":
            return dict(self.image_processor(items, **output_kwargs["images_kwargs"]))
        if argument == "videos":
            outputs = self.video_processor(items, **{**output_kwargs["videos_kwargs"], "return_metadata": True})
            durations = [self._duration(metadata) for metadata in outputs.pop("video_metadata")]
            return {**outputs, "video_durations": torch.tensor(durations, dtype=torch.float64)}
        audio_kwargs = {
            k: v for k, v in output_kwargs["audio_kwargs"].items() if k in GroundingGPTAudioKwargs.__annotations__
        }
        return dict(self.feature_extractor(items, **audio_kwargs))

    @staticmethod
    def _duration(metadata) -> float:
        if metadata.duration:
            return float(metadata.duration)
        if metadata.fps:
            return metadata.total_num_frames / metadata.fps
        return math.nan

    def _check_blocks(self, texts: list[str], input_ids: Sequence[Sequence[int]]) -> None:
        counts = (self.num_image_tokens, self.num_video_tokens, self.num_audio_tokens)
        for index, (sample, ids) in enumerate(zip(texts, input_ids)):
            ids = list(ids)
            for (placeholder, _, start, patch, end), count in zip(_MODALITIES, counts):
                blocks = sample.count(placeholder)
                found = [ids.count(self.tokenizer.convert_tokens_to_ids(token)) for token in (start, patch, end)]
                if found != [blocks, blocks * count, blocks]:
                    raise ValueError(
                        f"The {placeholder} blocks of `text[{index}]` did not survive tokenization: truncate less "
                        "(`max_length`) or use a tokenizer with the GroundingGPT tokens (`add_groundinggpt_tokens`)."
                    )

    def post_process_grounding(
        self,
        generated_ids: torch.Tensor | Sequence[Sequence[int]],
        image_sizes: torch.Tensor | Sequence[Sequence[int] | None] | None = None,
        video_durations: torch.Tensor | Sequence[float | None] | None = None,
        input_ids: torch.Tensor | Sequence[Sequence[int]] | None = None,
    ) -> list[GroundingGPTGeneration]:
        """Decodes answers and extracts their boxes (in original-image pixels) and time spans (in seconds).

        Args:
            generated_ids (`torch.Tensor` of shape `(batch_size, num_new_tokens)` or a list of id lists):
                The new tokens only (the prompt cut off).
            image_sizes (`torch.Tensor` or `list`, *optional*):
                The `(height, width)` of the images the boxes refer to: per sample (`None` for a sample without
                one), or, with `input_ids`, per image as the processor returns them.
            video_durations (`torch.Tensor` or `list[float]`, *optional*):
                The durations in seconds of the videos the time spans refer to (`None` or NaN when unknown): per
                sample, or, with `input_ids`, per video as the processor returns them.
            input_ids (`torch.Tensor` or a list of id lists, *optional*):
                The processor's `input_ids` of the prompts. When given, `image_sizes` and `video_durations` are the
                processor's per-item outputs (as they are, e.g. for a batch mixing image and video samples) and go
                to the samples whose placeholder blocks hold the items.

        Returns:
            `list[GroundingGPTGeneration]`: per sample `{"text", "boxes", "time_spans"}`; see [`parse_boxes`] and
            [`parse_time_spans`].

        Raises:
            ValueError: when the sizes or durations do not give one value per sample, e.g. a sample with two images
                of different sizes (its boxes could refer to either).
        """
        texts = self.post_process_image_text_to_text(generated_ids)
        image_sizes = self._values_per_sample("image_sizes", image_sizes, _MODALITIES[0], input_ids, len(texts))
        video_durations = self._values_per_sample(
            "video_durations", video_durations, _MODALITIES[1], input_ids, len(texts)
        )
        return [
            {
                "text": text,
                "boxes": parse_boxes(text, None if size is None else _check_image_size(size, f"image_sizes[{index}]")),
                "time_spans": parse_time_spans(
                    text, None if duration is None else _check_duration(duration, f"video_durations[{index}]")
                ),
            }
            for index, (text, size, duration) in enumerate(zip(texts, image_sizes, video_durations))
        ]

    def _values_per_sample(
        self, name: str, values, modality: tuple, input_ids: Sequence[Sequence[int]] | None, num_samples: int
    ) -> list:
        """One entry of `values` (or `None`) per sample; `values` are per item when `input_ids` is given."""
        if values is None:
            return [None] * num_samples
        values = values.tolist() if isinstance(values, (torch.Tensor, np.ndarray)) else list(values)
        if input_ids is None:
            if len(values) != num_samples:
                raise ValueError(
                    f"`{name}` needs one entry per sample, got {len(values)} for {num_samples} sample(s); to pass "
                    f"the processor's per-item `{name}` as they are, also pass its `input_ids`."
                )
            return values
        placeholder, argument, start_token, *_ = modality
        start_id = self.tokenizer.convert_tokens_to_ids(start_token)
        counts = [sum(int(token) == start_id for token in ids) for ids in input_ids]
        if len(counts) != num_samples:
            raise ValueError(f"`input_ids` holds {len(counts)} prompt(s) but `generated_ids` {num_samples} answer(s).")
        if sum(counts) != len(values):
            raise ValueError(
                f"`{name}` has {len(values)} entries but `input_ids` has {sum(counts)} {placeholder} block(s): pass "
                f"the `input_ids` and `{name}` of the same processor call."
            )
        values = [None if isinstance(value, float) and math.isnan(value) else value for value in values]
        per_sample, offset = [], 0
        for index, count in enumerate(counts):
            items, offset = values[offset : offset + count], offset + count
            if any(item != items[0] for item in items[1:]):
                raise ValueError(
                    f"Sample {index} has {count} `{argument}` with different `{name}` ({items}), so its answer could "
                    f"refer to any of them: pass `{name}` per sample (one entry each) without `input_ids`."
                )
            per_sample.append(items[0] if items else None)
        return per_sample

    def post_process_image_text_to_text(
        self, generated_outputs: torch.Tensor | Sequence[Sequence[int]], skip_special_tokens: bool = True, **kwargs
    ) -> list[str]:
        """Decodes generations and cuts each at the first `###` (the turn separator the model ends answers with).

        Args:
            generated_outputs (`torch.Tensor` of shape `(batch_size, sequence_length)` or a list of id lists):
                Token ids from `generate` (typically only the new ones).
            skip_special_tokens (`bool`, *optional*, defaults to `True`): Passed to the tokenizer's `batch_decode`.
            **kwargs: Passed to the tokenizer's `batch_decode`.
        """
        texts = self.tokenizer.batch_decode(
            generated_id_lists(generated_outputs, len(self.tokenizer)),
            skip_special_tokens=skip_special_tokens,
            **kwargs,
        )
        return [text.split(SEPARATOR, 1)[0].strip() for text in texts]

    @property
    def model_input_names(self) -> list[str]:
        """Names of the processor's outputs: the tokenizer's and those of every modality."""
        return [
            "input_ids",
            "attention_mask",
            "pixel_values",
            "image_sizes",
            "pixel_values_videos",
            "video_num_frames",
            "video_durations",
            "input_features",
        ]


__all__ = ["GroundingGPTGeneration", "GroundingGPTProcessor", "GroundingGPTProcessorKwargs"]
