"""Data mixture configuration: which sources a run trains on, and how much of each.

A mixture file is YAML or JSON with a `sources` list; every entry becomes a [`DataSource`]:

```yaml
data_root: /datasets                      # optional: relative paths below are resolved against it
sources:
  - type: refcoco_rec                     # the format of the annotation file (see `sources.CONVERSATION_ADAPTERS`)
    annotation_file: groma_data/refcoco_train.json
    image_dir: coco/train2017             # image paths in the annotations are relative to this folder
  - type: llava
    annotation_file: sharegpt4v_instruct_gpt4-vision_cap100k.json
    image_dir: sharegpt4v/data
    ratio: 0.23                           # keep a seeded random 23% of the records
```

Relative paths are resolved against `data_root`, or the current directory when it is not given (a relative
`data_root` is itself relative to the current directory).
"""

import json
import os
from dataclasses import dataclass, fields

import yaml


CONVERSATION_TEMPLATES = ("default", "llava")
DETECTION_HEADS = ("coco", "sa1b")


@dataclass
class DataSource:
    """One data source of a mixture.

    Args:
        type: Format of `annotation_file`, a key of `sources.CONVERSATION_ADAPTERS` (vision-language stages) or of
            `detection_data.DETECTION_ADAPTERS` (detection pretraining).
        annotation_file: The annotation file (a folder of per-image JSON files for `sa1b`).
        image_dir: Folder the image paths of the annotations are relative to (absolute paths are kept); defaults to
            the folder of `annotation_file` (or `annotation_file` itself when it is a folder).
        name: Name used in logs and error messages; defaults to `"{type}:{file name}"`.
        ratio: Fraction of the source's records to train on, in (0, 1]; drawn once with the run's data seed.
        template: Conversation template of this source, `"default"` (stage 2) or `"llava"` (stage 3); defaults to
            the stage's template.
        head: Detection only: the objectness head the source trains, `"coco"` (COCO, Objects365, OpenImages, V3Det)
            or `"sa1b"` (SA-1B).
    """

    type: str
    annotation_file: str
    image_dir: str = ""
    name: str | None = None
    ratio: float = 1.0
    template: str | None = None
    head: str = "coco"

    def __post_init__(self):
        if self.name is None:
            self.name = f"{self.type}:{os.path.basename(os.path.normpath(self.annotation_file))}"
        if not self.image_dir:
            is_folder = os.path.isdir(self.annotation_file)
            self.image_dir = self.annotation_file if is_folder else os.path.dirname(self.annotation_file)
        if not 0 < self.ratio <= 1:
            raise ValueError(f"Data source {self.name}: `ratio` must be in (0, 1], got {self.ratio}.")
        if self.template is not None and self.template not in CONVERSATION_TEMPLATES:
            raise ValueError(
                f"Data source {self.name}: `template` must be one of {CONVERSATION_TEMPLATES}, got {self.template!r}."
            )
        if self.head not in DETECTION_HEADS:
            raise ValueError(f"Data source {self.name}: `head` must be one of {DETECTION_HEADS}, got {self.head!r}.")


def read_config_file(path: str) -> dict:
    """Read a YAML (`.yaml`/`.yml`) or JSON file holding a mapping."""
    with open(path, encoding="utf-8") as handle:
        content = yaml.safe_load(handle) if path.endswith((".yaml", ".yml")) else json.load(handle)
    if not isinstance(content, dict):
        raise ValueError(f"{path} must hold a mapping at the top level, got {type(content).__name__}.")
    return content


def load_data_config(path: str) -> list[DataSource]:
    """Read a mixture file (see the module docstring) into [`DataSource`]s with absolute paths.

    Raises:
        ValueError: if the file has unknown top-level keys or no `sources` list, or a source has unknown keys,
            invalid values or a duplicate name.
    """
    config = read_config_file(path)
    if config.keys() - {"data_root", "sources"}:
        raise ValueError(f"{path}: unknown top-level keys {sorted(config.keys() - {'data_root', 'sources'})}.")
    entries = config.get("sources")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} must hold a non-empty `sources` list.")
    known = {field.name for field in fields(DataSource)}
    base_dir = os.path.abspath(os.path.expanduser(config.get("data_root", ".")))
    sources = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"type", "annotation_file"} <= entry.keys():
            raise ValueError(f"{path}: source {index} must be a mapping with `type` and `annotation_file`.")
        unknown = sorted(entry.keys() - known)
        if unknown:
            raise ValueError(f"{path}: source {index} has unknown keys {unknown}; known keys: {sorted(known)}.")
        entry = {**entry}
        for key in ("annotation_file", "image_dir"):
            if entry.get(key):
                entry[key] = os.path.join(base_dir, os.path.expanduser(entry[key]))
        sources.append(DataSource(**entry))
    names = [source.name for source in sources]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: source names must be unique, {duplicates} appear more than once; set `name`.")
    return sources
