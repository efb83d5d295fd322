"""Turning GroundingGPT records into model inputs and batches.

A conversation is rendered with the processor's chat template (the `conv_lego` prompt inference uses) and encoded by
the processor itself, media included, so training sees exactly the ids inference sees. Labels supervise what the
model generates after each `Assistant:`: the answer and the `###` that ends it (the stop string of generation);
the system prompt, the user turns, the role markers and the media blocks are -100.
"""

import torch
from PIL import Image
from torch.utils.data import Dataset
from transformers.utils import logging

from ...processing.groundinggpt import GroundingGPTProcessor
from ...tokens import IGNORE_INDEX
from ..collator import pad_text_features
from ..data_config import DataSource
from ..mixture import MixtureDataset
from ..records import InvalidRecordError, build_records
from .arguments import GroundingGPTDataArguments
from .records import GroundingGPTAdapter, check_groundinggpt_record


logger = logging.get_logger(__name__)

# Chat-template content items of a record's media, and the processor argument each one goes to.
_MEDIA = {"image": ("image", "images"), "video": ("video", "videos"), "sound": ("audio", "audio")}


def chat_messages(record: dict) -> list[dict]:
    """The record's turns for the chat template: the first user turn lists the record's media before its text."""
    first, *rest = record["messages"]
    media = [{"type": item} for kind, (item, _) in _MEDIA.items() if record[kind]]
    return [{"role": first["role"], "content": [*media, {"type": "text", "text": first["content"]}]}, *rest]


def answer_spans(processor: GroundingGPTProcessor, messages: list[dict]) -> list[tuple[int, int]]:
    """Character spans, in the rendered conversation, of what the model generates for each answer: from the end of
    the generation prompt (`...###Assistant:`) to the end of the answer's turn (`" A dog[...].###"`)."""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            prompt = processor.apply_chat_template(messages[:index], add_generation_prompt=True, tokenize=False)
            turn = processor.apply_chat_template(messages[: index + 1], tokenize=False)
            spans.append((len(prompt), len(turn)))
    return spans


def encode_conversation(
    processor: GroundingGPTProcessor, record: dict, max_length: int, **media_kwargs
) -> dict[str, torch.Tensor]:
    """Model inputs of one record, with labels.

    Args:
        processor: The model's processor.
        record: A GroundingGPT record (see `records`).
        max_length: Most tokens of the sample, media blocks included. Longer conversations lose whole trailing
            user/assistant exchanges, with a warning naming the record.
        **media_kwargs: Passed to the processor (`random_crop`, `allow_short_audio`).

    Returns:
        `input_ids` and `labels` of shape `(sequence_length,)`, and for each medium of the record the processor's
        tensors for one item: `pixel_values` `(1, 3, H, W)`; `pixel_values_videos` `(1, 3, T, H, W)` with
        `video_num_frames` `(1,)`; `input_features` `(1, clips, 1, mel_bins, frames)`.

    Raises:
        ValueError: when a medium cannot be read, or the first exchange alone is longer than `max_length`.
    """
    messages = chat_messages(record)
    text = processor.apply_chat_template(messages, tokenize=False)
    media = {argument: [record[kind]] for kind, (_, argument) in _MEDIA.items() if record[kind]}
    if "images" in media:  # videos and audio are read by the processor from their files
        with Image.open(record["image"]) as image:
            media["images"] = [image.convert("RGB")]
    inputs = processor(text=text, **media, **media_kwargs, return_offsets_mapping=True, return_tensors="pt")
    input_ids, offsets = inputs.pop("input_ids")[0], inputs.pop("offset_mapping")[0]
    # The media blocks precede every answer, so an answer keeps its distance to the end of the text when the
    # processor expands them; the text ends with the last answer's separator, i.e. with the last token.
    shift = int(offsets[-1, 1]) - len(text)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    length = kept = 0
    spans = answer_spans(processor, messages)
    for start, end in spans:
        supervised = (offsets[:, 0] < end + shift) & (offsets[:, 1] > start + shift)
        answer_end = int(supervised.nonzero().max()) + 1
        if answer_end > max_length:
            break
        labels[supervised] = input_ids[supervised]
        length, kept = answer_end, kept + 1
    if not length:
        raise ValueError(
            f"The first exchange alone is {answer_end} tokens (media blocks included), more than the maximum length "
            f"{max_length}; raise `--model_max_length` or shorten the sample."
        )
    if kept < len(spans):  # media lengths are only known once decoded: reported here, once per record and process
        logger.warning_once(
            f"Record {record['id']}: {len(input_ids)} tokens (media blocks included), more than the maximum length "
            f"{max_length}; training on its first {kept} of {len(spans)} exchanges (raise `--model_max_length` to "
            "keep them all)."
        )
    model_inputs = {
        key: inputs[key]
        for key in ("pixel_values", "pixel_values_videos", "video_num_frames", "input_features")
        if key in inputs
    }
    return {"input_ids": input_ids[:length], "labels": labels[:length], **model_inputs}


class GroundingGPTDataset(Dataset):
    """Model inputs of one source's GroundingGPT records (see [`encode_conversation`]).

    Args:
        records: GroundingGPT records (see `records`).
        processor: The model's processor.
        max_length: Most tokens per sample, media blocks included.
        source_name: Name of the source, for error messages.
        **media_kwargs: Passed to the processor (`random_crop`, `allow_short_audio`).
    """

    def __init__(self, records, processor: GroundingGPTProcessor, max_length: int, source_name: str, **media_kwargs):
        self.records = records
        self.processor = processor
        self.max_length = max_length
        self.source_name = source_name
        self.media_kwargs = media_kwargs

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        try:
            return encode_conversation(self.processor, record, self.max_length, **self.media_kwargs)
        except (OSError, ValueError) as error:
            raise InvalidRecordError(f"{self.source_name}: record {record['id']}: {error}") from error


class GroundingGPTDataCollator:
    """Batches [`GroundingGPTDataset`] items for [`GroundingGPTForConditionalGeneration`].

    Right-pads `input_ids` with `pad_token_id` and `labels` with -100 and builds the `attention_mask`; stacks each
    modality's media in sample order (the order of their blocks in the batch), samples without it contributing
    nothing: `pixel_values` `(num_images, 3, H, W)`, `input_features` `(num_audios, clips, 1, mel_bins, frames)`, and
    `pixel_values_videos` `(num_videos, 3, T, H, W)` zero-padded to the longest video with `video_num_frames`
    `(num_videos,)`.

    Args:
        pad_token_id: Id of the padding token (the tokenizer's, `<unk>` for Vicuna).
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = pad_text_features(features, self.pad_token_id)
        for key in ("pixel_values", "input_features", "video_num_frames"):
            items = [feature[key] for feature in features if key in feature]
            if items:
                batch[key] = torch.cat(items)
        videos = [feature["pixel_values_videos"] for feature in features if "pixel_values_videos" in feature]
        if videos:
            num_frames = max(video.shape[2] for video in videos)
            padding = [(0, 0, 0, 0, 0, num_frames - video.shape[2]) for video in videos]
            batch["pixel_values_videos"] = torch.cat(
                [torch.nn.functional.pad(video, pad) for video, pad in zip(videos, padding)]
            )
        return batch


def build_groundinggpt_mixture(
    data_path: str, processor: GroundingGPTProcessor, data_args: GroundingGPTDataArguments, seed: int
) -> MixtureDataset:
    """Read, convert and check every annotation file of `data_path` (comma-separated), one source each.

    Args:
        data_path: Comma-separated annotation files.
        processor: The model's processor.
        data_args: The media folders, `model_max_length`, the video and audio settings and `skip_bad_records`.
        seed: Data seed (passed to the record conversion, like the other training sources).

    Raises:
        InvalidRecordError: naming the file and the record, for a bad record (unless `skip_bad_records`).
    """
    adapter = GroundingGPTAdapter(data_args.image_folder, data_args.video_folder, data_args.sound_folder)
    sources = [DataSource("groundinggpt", path.strip()) for path in data_path.split(",") if path.strip()]
    datasets = [
        GroundingGPTDataset(
            build_records(source, adapter, check_groundinggpt_record, seed, data_args.skip_bad_records),
            processor,
            data_args.model_max_length,
            source.name,
            random_crop=data_args.video_random_crop,
            allow_short_audio=data_args.allow_short_audio,
        )
        for source in sources
    ]
    mixture = MixtureDataset(datasets, [source.name for source in sources])
    logger.info(f"GroundingGPT mixture ({len(mixture)} samples):\n{mixture.summary()}")
    return mixture


__all__ = [
    "GroundingGPTDataCollator",
    "GroundingGPTDataset",
    "answer_spans",
    "build_groundinggpt_mixture",
    "chat_messages",
    "encode_conversation",
]
