"""GroundingGPT's training data format (spec §6.3) and its conversion to records.

An annotation file is a JSON list; every entry has optional `image`, `video` and `sound` paths (relative to the
image, video and sound folders) and a conversation whose first human turn holds one placeholder per medium:

```json
{"image": "coco/000000123456.jpg", "sound": "vggss/dog.wav",
 "conversations": [
   {"from": "human", "value": "<image>\\n<sound>\\nWhere is the sound's point of emission in this image?"},
   {"from": "gpt", "value": "A barking dog[0.102, 0.331, 0.470, 0.912]."}]}
```

Answers are written as the model writes them: boxes `[x1, y1, x2, y2]` normalised to the padded square image (3
decimals, see `format_box`), time spans `{t1, t2}` as fractions of the video (2 decimals). As in the original, the
placeholders are taken out of the text (which is stripped) and the chat template writes them back at the front of
the turn, in its order (sound, video, image). A record becomes:

```python
{
    "id": "#12",                                   # the entry's index in its file; used in error messages
    "image": "/data/images/coco/000000123456.jpg", # absolute paths, "" when the record has no such medium
    "video": "",
    "sound": "/data/sounds/vggss/dog.wav",
    "messages": [                                  # placeholders removed from the first user turn
        {"role": "user", "content": "Where is the sound's point of emission in this image?"},
        {"role": "assistant", "content": "A barking dog[0.102, 0.331, 0.470, 0.912]."},
    ],
}
```
"""

import os
import random
from typing import Any

from datasets import Features, List, Value

from ...configuration_groundinggpt import GROUNDINGGPT_TOKENS
from ...processing.groundinggpt import AUDIO_PLACEHOLDER, IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER
from ..data_config import DataSource
from ..records import InvalidRecordError, RecordAdapter, check_image_file, check_turns
from ..sources import json_list_entries


MEDIA_PLACEHOLDERS = {"image": IMAGE_PLACEHOLDER, "video": VIDEO_PLACEHOLDER, "sound": AUDIO_PLACEHOLDER}
GROUNDINGGPT_FEATURES = Features(
    {
        "id": Value("string"),
        **{kind: Value("string") for kind in MEDIA_PLACEHOLDERS},
        "messages": List({"role": Value("string"), "content": Value("string")}),
    }
)
_SPEAKERS = {"human": "user", "gpt": "assistant"}


class GroundingGPTAdapter(RecordAdapter):
    """Reads GroundingGPT annotation files (JSON lists, see the module docstring) into records.

    Args:
        image_folder: Folder the `image` paths are relative to (absolute paths are kept).
        video_folder: Folder the `video` paths are relative to.
        sound_folder: Folder the `sound` paths are relative to.
    """

    features = GROUNDINGGPT_FEATURES
    entries = staticmethod(json_list_entries)

    def __init__(self, image_folder: str = "", video_folder: str = "", sound_folder: str = ""):
        self.folders = {"image": image_folder, "video": video_folder, "sound": sound_folder}

    def convert(self, entry: Any, source: DataSource, rng: random.Random) -> dict:
        """A record of one entry: its media paths (`""` when absent) and its turns with roles `user` / `assistant`,
        the media placeholders taken out of the first turn after checking there is one per medium."""
        media = {
            kind: os.path.join(folder, entry[kind]) if entry.get(kind) else "" for kind, folder in self.folders.items()
        }
        messages = [
            {"role": _SPEAKERS.get(turn["from"], turn["from"]), "content": turn["value"]}
            for turn in entry["conversations"]
        ]
        if messages:
            first = messages[0]["content"]
            for kind, placeholder in MEDIA_PLACEHOLDERS.items():
                expected = 1 if media[kind] else 0
                if first.count(placeholder) != expected:
                    raise InvalidRecordError(
                        f"the first turn has {first.count(placeholder)} {placeholder} placeholder(s) but the record "
                        f"has {expected} `{kind}`: write one placeholder per medium, in the first human turn"
                    )
                first = first.replace(placeholder, "")
            messages[0]["content"] = first.strip()
        return {**media, "messages": messages}


def check_groundinggpt_record(record: dict) -> None:
    """Raise [`InvalidRecordError`] if `record` cannot be trained on.

    Checks: the image exists and can be read, the video and sound files exist; the turns alternate user/assistant,
    start with the user, end with an answer and are non-empty; no turn holds a media placeholder (those of the first
    turn were taken out by [`GroundingGPTAdapter`]) or one of the 9 GroundingGPT tokens.
    """
    if record["image"]:
        check_image_file(record)
    for kind in ("video", "sound"):
        if record[kind] and not os.path.isfile(record[kind]):
            raise InvalidRecordError(f"{kind} file {record[kind]!r} does not exist")
    check_turns(
        record["messages"],
        (*MEDIA_PLACEHOLDERS.values(), *GROUNDINGGPT_TOKENS),
        "media placeholders belong in the first human turn (once per medium), the processor writes the tokens",
    )


__all__ = ["GROUNDINGGPT_FEATURES", "GroundingGPTAdapter", "check_groundinggpt_record"]
