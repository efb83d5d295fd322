"""The record schemas every data source is converted to, and their validation.

A *conversation record* (vision-language stages) is one image with a conversation about it:

```python
{
    "id": "refcoco_train.json:1234",          # names the record in error messages
    "image": "/data/coco/train2017/000000123456.jpg",
    "messages": [                              # the real turns only: the chat template adds the system prompt and
        {"role": "user", "content": "Locate <p>the dog</p> in the image."},   # Groma's fixed first exchange
        {"role": "assistant", "content": "<roi><ground_box></roi>"},
    ],
    "refer_boxes": [],                         # pixel [x1, y1, x2, y2]: one per <refer_box> of the user turns
    "ground_boxes": [[10.0, 20.0, 110.0, 220.0]],  # pixel [x1, y1, x2, y2]: one per <ground_box> of the answers
    "width": 640, "height": 480,               # optional (None); when given, must be the image file's size
}
```

A *detection record* (stage 1) is one image with class-agnostic pixel `[x1, y1, x2, y2]` boxes.
"""

import functools
import os
import random
import struct
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from datasets import Dataset, Features, List, Value
from PIL import Image
from transformers.utils import logging

from ..processing import validate_pixel_boxes
from ..tokens import GROUND_BOX_TOKEN, IMAGE_TOKEN, REFER_BOX_TOKEN, REFER_FEAT_TOKEN, REGION_TOKEN
from .data_config import DataSource


logger = logging.get_logger(__name__)

_BOXES = List(List(Value("float32")))
CONVERSATION_FEATURES = Features(
    {
        "id": Value("string"),
        "image": Value("string"),
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "refer_boxes": _BOXES,
        "ground_boxes": _BOXES,
        "width": Value("int32"),
        "height": Value("int32"),
    }
)
DETECTION_FEATURES = Features(
    {
        "id": Value("string"),
        "image_id": Value("int64"),
        "image": Value("string"),
        "boxes": _BOXES,
        "width": Value("int32"),
        "height": Value("int32"),
    }
)
ROLES = ("user", "assistant")
# Key of the `Counter` of dropped or clipped annotations a converted record may carry (`RecordAdapter.convert`).
LEFT_OUT = "left_out"
_PROBLEMS_SHOWN = 5


class InvalidRecordError(ValueError):
    """A data record that cannot be trained on; the message names the record and the problem."""


@functools.lru_cache(maxsize=4096)  # sources list an image once per expression / region, adapters read it again
def read_image_size(path: str) -> tuple[int, int]:
    """`(height, width)` of an image file, read from its header; recent answers are cached.

    The pixels are not decoded, but the file is checked to be complete: PIL's `verify` (chunk checksums of PNG and
    others) and, for JPEG, the end-of-image marker. A truncated file would otherwise pass here and stop training
    when its batch comes.

    Raises:
        InvalidRecordError: if the file is missing, truncated or is not an image PIL can open.
    """
    if not path or not os.path.isfile(path):
        raise InvalidRecordError(f"image file {path!r} does not exist")
    try:
        with Image.open(path) as image:
            size = image.height, image.width
            is_jpeg = image.format == "JPEG"
            image.verify()
    except (OSError, SyntaxError, EOFError, ValueError, struct.error, Image.DecompressionBombError) as error:
        raise InvalidRecordError(f"image file {path!r} cannot be read: {error}") from error
    if is_jpeg and not _ends_with_jpeg_marker(path):
        raise InvalidRecordError(f"image file {path!r} is truncated (no JPEG end-of-image marker)")
    return size


def _ends_with_jpeg_marker(path: str, tail: int = 4096) -> bool:
    """Whether the end-of-image marker is in the last `tail` bytes (some writers pad after it)."""
    with open(path, "rb") as handle:
        handle.seek(max(os.path.getsize(path) - tail, 0))
        return b"\xff\xd9" in handle.read()


def check_image_file(record: dict) -> tuple[int, int]:
    """`(height, width)` of a record's image, from the file's header.

    Raises:
        InvalidRecordError: if the file is missing or unreadable, or if the record's `width` / `height` (when given)
            differ from the file's: its boxes would be checked against one size and normalized by the other.
    """
    height, width = read_image_size(record["image"])
    mismatched = [
        f"{name} {record[name]!r}"
        for name, real in (("width", width), ("height", height))
        if record.get(name) is not None and record[name] != real
    ]
    if mismatched:
        raise InvalidRecordError(
            f"the record gives {' and '.join(mismatched)} but image file {record['image']!r} is {width} x {height} px "
            "(width x height)"
        )
    return height, width


def _check_boxes(boxes: list, size: tuple[int, int], name: str) -> None:
    try:
        validate_pixel_boxes(boxes, size, argument_name=name)
    except (TypeError, ValueError) as error:
        raise InvalidRecordError(str(error)) from error


def check_turns(messages: list[dict], placeholders: Sequence[str], placeholder_hint: str) -> None:
    """Raise [`InvalidRecordError`] unless the turns alternate user/assistant, start with the user, end with an
    answer, are non-empty and hold none of `placeholders` (`placeholder_hint` tells where those belong).

    Args:
        messages: `{"role", "content"}` turns.
        placeholders: Strings no turn may contain (those a chat template or processor writes).
        placeholder_hint: Appended to the message naming a turn that contains one.
    """
    if not messages or len(messages) % 2:
        raise InvalidRecordError(
            f"the conversation has {len(messages)} turns; it needs user/assistant pairs (an even, non-zero number)"
        )
    for index, message in enumerate(messages):
        if message["role"] != ROLES[index % 2]:
            raise InvalidRecordError(
                f"turn {index} is from {message['role']!r} but turns must alternate user, assistant, user, ..."
            )
        if not message["content"].strip():
            raise InvalidRecordError(f"turn {index} ({message['role']}) is empty")
        for placeholder in placeholders:
            if placeholder in message["content"]:
                raise InvalidRecordError(f"turn {index} contains {placeholder}; {placeholder_hint}")


def check_conversation_record(record: dict, max_refer_boxes: int) -> None:
    """Raise [`InvalidRecordError`] if `record` cannot be rendered and trained on.

    Checks: the image exists, can be read and has the record's `width`/`height` (when given); turns alternate
    user/assistant, start with the user and end with an answer, and are non-empty; no turn holds Groma's
    `<image>`/`<region>` placeholders (the template writes them); `<refer_box>` only in user turns and `<ground_box>`
    only in answers, as many as there are boxes; `<refer_feat>` absent or once per `<refer_box>`; boxes inside the
    image with `x1 < x2` and `y1 < y2`.

    Args:
        record: A conversation record (see the module docstring).
        max_refer_boxes: Most user boxes a sample may refer to (the model's `max_region_num`).
    """
    size = check_image_file(record)
    messages = record["messages"]
    check_turns(messages, (IMAGE_TOKEN, REGION_TOKEN), "the chat template adds the image and region placeholders")
    for index, message in enumerate(messages):
        misplaced = GROUND_BOX_TOKEN if message["role"] == "user" else REFER_BOX_TOKEN
        if misplaced in message["content"]:
            raise InvalidRecordError(
                f"turn {index} ({message['role']}) contains {misplaced}: {REFER_BOX_TOKEN} belongs in user turns, "
                f"{GROUND_BOX_TOKEN} in answers"
            )
    text = "".join(message["content"] for message in messages)
    for placeholder, boxes_key in ((REFER_BOX_TOKEN, "refer_boxes"), (GROUND_BOX_TOKEN, "ground_boxes")):
        if text.count(placeholder) != len(record[boxes_key]):
            raise InvalidRecordError(
                f"{text.count(placeholder)} {placeholder} placeholder(s) but {len(record[boxes_key])} {boxes_key}"
            )
    if text.count(REFER_FEAT_TOKEN) not in (0, text.count(REFER_BOX_TOKEN)):
        raise InvalidRecordError(
            f"{text.count(REFER_FEAT_TOKEN)} {REFER_FEAT_TOKEN} for {text.count(REFER_BOX_TOKEN)} {REFER_BOX_TOKEN}: "
            f"write one per referred box, or none"
        )
    if len(record["refer_boxes"]) > max_refer_boxes:
        raise InvalidRecordError(
            f"{len(record['refer_boxes'])} refer_boxes, more than the model's max_region_num ({max_refer_boxes})"
        )
    _check_boxes(record["refer_boxes"], size, "refer_boxes")
    _check_boxes(record["ground_boxes"], size, "ground_boxes")


def check_detection_record(record: dict) -> None:
    """Raise [`InvalidRecordError`] if the image is missing, unreadable or not of the record's size, or a box is empty
    or outside the image."""
    _check_boxes(record["boxes"], check_image_file(record), "boxes")


class RecordAdapter(ABC):
    """Reads one on-disk annotation format and converts its entries to records."""

    features: Features = CONVERSATION_FEATURES

    @abstractmethod
    def entries(self, source: DataSource) -> Iterator[tuple[str, Any]]:
        """Yield `(record id, raw entry)` pairs; the id names the entry in messages (its index, line, image id or own
        `id`)."""

    @abstractmethod
    def convert(self, entry: Any, source: DataSource, rng: random.Random) -> dict | str | None:
        """Turn a raw entry into a record, or return why the original pipeline leaves the entry out (a short phrase,
        e.g. `"images without a usable box"`; `None` is counted as left out by the adapter).

        A record may carry `LEFT_OUT`: a `Counter` of its annotations that the conversion dropped or clipped, by
        reason. [`build_records`] counts both kinds and logs the totals.

        Raises `InvalidRecordError` (or `KeyError`, `TypeError`, ... on missing or mistyped fields) for a malformed
        entry.
        """


def build_records(
    source: DataSource,
    adapter: RecordAdapter,
    check: Callable[[dict], None],
    seed: int,
    skip_bad_records: bool,
) -> Dataset:
    """Convert and check the entries of a source; raise on the first bad one, or drop the bad ones and log how many.

    Entries and annotations that the original pipeline leaves out (tiny images, crowd boxes, ...) are counted per
    reason and logged with the number of records kept.

    With `source.ratio < 1`, a seeded random subset of the entries is drawn first (the original drew it with the
    unseeded global NumPy RNG, so every process could train on a different subset).

    Args:
        source: The data source.
        adapter: Reader of the source's format.
        check: Raises [`InvalidRecordError`] for a record that cannot be trained on (e.g.
            [`check_conversation_record`]); may return a short phrase for something it will clip at training time
            (counted and logged like the conversion's).
        seed: Seeds the subset and the random choices of the conversion (instruction phrasings, sampled
            categories, ...): the same seed gives the same records on every process.
        skip_bad_records: Drop bad records (with a warning giving their number and the first problems) instead of
            raising.

    Returns:
        The records as a `datasets.Dataset`.

    Raises:
        InvalidRecordError: naming the source, the record and the problem.
    """
    entries = list(adapter.entries(source))
    if source.ratio < 1:
        sampled = random.Random(f"{seed}:{source.name}:ratio").sample(
            range(len(entries)), int(source.ratio * len(entries))
        )
        entries = [entries[index] for index in sorted(sampled)]
        logger.info(f"{source.name}: training on {len(entries)} records (ratio {source.ratio}).")
    rng = random.Random(f"{seed}:{source.name}")
    records, problems, left_out = [], [], Counter()
    for record_id, entry in entries:
        try:
            record = adapter.convert(entry, source, rng)
            if record is None or isinstance(record, str):
                left_out[record or f"left out by {type(adapter).__name__}"] += 1
                continue
            record = {**record, "id": record_id}
            record_left_out = record.pop(LEFT_OUT, Counter())
            clipped = check(record)
            if clipped:
                record_left_out[clipped] += 1
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as error:
            problem = str(error) if isinstance(error, InvalidRecordError) else f"malformed entry ({error!r})"
            message = f"{source.name}: record {record_id}: {problem}"
            if not skip_bad_records:
                raise InvalidRecordError(
                    f"{message}. Fix or remove the record, or pass `--skip_bad_records true` to skip such records."
                ) from error
            problems.append(message)
            continue
        left_out += record_left_out
        records.append(record)
    summary = f"{source.name}: kept {len(records)} of {len(entries)} entries"
    if left_out:
        counts = "; ".join(f"{reason}: {count}" for reason, count in sorted(left_out.items()))
        summary += f"; left out or clipped as the original loaders do: {counts}"
    if problems:
        shown = "\n  ".join(problems[:_PROBLEMS_SHOWN])
        logger.warning(
            f"{summary}; skipped {len(problems)} bad record(s) (`skip_bad_records`), first problems:\n  {shown}"
        )
    else:
        logger.info(f"{summary}.")
    if not records:
        raise ValueError(f"{source.name}: no usable record in {source.annotation_file}.")
    return Dataset.from_list(records, features=adapter.features)
