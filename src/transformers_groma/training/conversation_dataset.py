"""Turning conversation records into model inputs: token ids, labels, pixel values and boxes.

Labels follow the original (spec §2.2): only the assistant answers are supervised, plus the `</s>` closing each
answer with the `llava` template (the `default` template of stage 2 has none). The system prompt, Groma's fixed
first exchange, the user turns and the role markers are -100. As in the original, every answer is wrapped in
`<sep>` markers before tokenizing; the tokenizer strips the whitespace around them, so the ids (and which token
starts an answer) are the original's for either `legacy` setting, and the markers are removed afterwards.
"""

import torch
from PIL import Image
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase
from transformers.image_processing_utils import BaseImageProcessor

from ..processing import CHAT_TEMPLATE, STAGE2_CHAT_TEMPLATE
from ..tokens import GROUND_BOX_TOKEN, IGNORE_INDEX, REFER_BOX_TOKEN, SEP_TOKEN
from .records import InvalidRecordError


CHAT_TEMPLATES = {"default": STAGE2_CHAT_TEMPLATE, "llava": CHAT_TEMPLATE}
# How `ConversationEncoder.check` reports a conversation whose trailing exchanges will be dropped.
TRUNCATED = "conversations cut to whole exchanges that fit `model_max_length`"


class ConversationEncoder:
    """Tokenizes a conversation with a Groma chat template and builds its labels.

    Args:
        tokenizer: A tokenizer holding Groma's tokens (`<sep>` marks the answers, as in the original).
        template: `"default"` (stage 2) or `"llava"` (stage 3, inference).
        max_length: Most tokens per sample before the model expands the placeholders (the original's
            `model_max_length`, 2048). Longer conversations lose whole trailing user/assistant pairs.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: str, max_length: int):
        if template not in CHAT_TEMPLATES:
            raise ValueError(f"Unknown conversation template {template!r}; choose from {sorted(CHAT_TEMPLATES)}.")
        self.tokenizer = tokenizer
        self.chat_template = CHAT_TEMPLATES[template]
        self.max_length = max_length

    def __call__(self, messages: list[dict]) -> tuple[list[int], list[int], int]:
        """Token ids and labels of a conversation, and how many of its messages fit in `max_length`.

        Raises:
            ValueError: if even the first user/assistant pair is longer than `max_length`.
        """
        for num_messages in range(len(messages), 0, -2):
            input_ids, labels = self.encode(messages[:num_messages])
            if len(input_ids) <= self.max_length:
                return input_ids, labels, num_messages
        raise ValueError(self._too_long(len(input_ids)))

    def check(self, messages: list[dict]) -> str | None:
        """Check a record's conversation when the data is built.

        Returns:
            `TRUNCATED` when trailing exchanges will not fit in `max_length` (they are dropped at training time, as
            the original truncates), else `None`.

        Raises:
            InvalidRecordError: if a turn contains `<sep>`, or the first user/assistant pair alone is longer than
                `max_length`.
        """
        for index, message in enumerate(messages):
            if SEP_TOKEN in message["content"]:
                raise InvalidRecordError(f"turn {index} contains {SEP_TOKEN}, which marks the answers in training")
        if self._fits(messages):
            return None
        if not self._fits(messages[:2]):
            raise InvalidRecordError(self._too_long(len(self.encode(messages[:2])[0])))
        return TRUNCATED

    def _fits(self, messages: list[dict]) -> bool:
        # Every token but the BOS and a SentencePiece prefix covers at least one byte of the text (an added token,
        # several), so a short text always fits: only the few long ones pay for tokenizing (most of the cost).
        if len(self.render(messages).encode()) + 2 <= self.max_length:
            return True
        return len(self.encode(messages)[0]) <= self.max_length

    def _too_long(self, length: int) -> str:
        return (
            f"the first exchange alone is {length} tokens, more than the maximum length {self.max_length}; raise "
            "`--model_max_length` or shorten the sample"
        )

    def render(self, messages: list[dict]) -> str:
        """The conversation's text with every answer between `<sep>` markers."""
        return self.tokenizer.apply_chat_template(
            [mark_answer(message) for message in messages], chat_template=self.chat_template, tokenize=False
        )

    def encode(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """Token ids (with the BOS token when the tokenizer adds one) and labels of `messages`, untruncated."""
        sep_id = self.tokenizer.convert_tokens_to_ids(SEP_TOKEN)
        input_ids = self.tokenizer(self.render(messages), add_special_tokens=False).input_ids
        if getattr(self.tokenizer, "add_bos_token", False) and self.tokenizer.bos_token_id is not None:
            input_ids = [self.tokenizer.bos_token_id, *input_ids]
        markers = [i for i, token in enumerate(input_ids) if token == sep_id]
        if len(markers) != 2 * sum(message["role"] == "assistant" for message in messages):
            raise ValueError(
                f"The conversation text itself contains {SEP_TOKEN}, which marks the answers in training."
            )
        labels = [IGNORE_INDEX] * len(input_ids)
        for start, end in zip(markers[::2], markers[1::2]):
            labels[start:end] = input_ids[start:end]
        eos_positions = [i for i, token in enumerate(input_ids) if token == self.tokenizer.eos_token_id]
        for i in eos_positions[1:]:  # every </s> but the fixed first exchange's closes a supervised answer
            labels[i] = input_ids[i]
        kept = [i for i, token in enumerate(input_ids) if token != sep_id]
        return [input_ids[i] for i in kept], [labels[i] for i in kept]


def mark_answer(message: dict) -> dict:
    """An assistant message with its text wrapped in `<sep>` markers; other messages unchanged."""
    if message["role"] != "assistant":
        return message
    content = message["content"]
    if isinstance(content, str):
        return {**message, "content": SEP_TOKEN + content + SEP_TOKEN}
    marker = {"type": "text", "text": SEP_TOKEN}
    return {**message, "content": [marker, *content, marker]}


class ConversationDataset(Dataset):
    """Model inputs of one source's conversation records.

    Each item holds `input_ids` and `labels` (1-D), `pixel_values` (3, H, W), `refer_boxes` / `ground_boxes`
    (pixel `[x1, y1, x2, y2]`, (n, 4)) and `image_size` (height, width of the original image); the collator turns the
    boxes into normalized cxcywh.

    Args:
        records: Conversation records (see `records`).
        encoder: Tokenizes the conversations.
        image_processor: Resizes and normalizes the images (`GromaImageProcessor`).
        source_name: Name of the source, for error messages.
    """

    def __init__(self, records, encoder: ConversationEncoder, image_processor: BaseImageProcessor, source_name: str):
        self.records = records
        self.encoder = encoder
        self.image_processor = image_processor
        self.source_name = source_name

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        try:
            with Image.open(record["image"]) as image:
                image = image.convert("RGB")
            input_ids, labels, num_messages = self.encoder(record["messages"])
        except (OSError, ValueError) as error:
            raise InvalidRecordError(f"{self.source_name}: record {record['id']}: {error}") from error
        kept_text = "".join(message["content"] for message in record["messages"][:num_messages])
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "pixel_values": self.image_processor(image, return_tensors="pt")["pixel_values"][0],
            "refer_boxes": _boxes(record["refer_boxes"][: kept_text.count(REFER_BOX_TOKEN)]),
            "ground_boxes": _boxes(record["ground_boxes"][: kept_text.count(GROUND_BOX_TOKEN)]),
            "image_size": (image.height, image.width),
        }


def _boxes(boxes: list) -> torch.Tensor:
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
