"""Checks of saved model folders before transformers reads them, so that a damaged file is named in the error.

Only local folders are checked (Hub ids are resolved and reported by transformers itself). The checks read JSON
files and safetensors headers, never the tensor data.
"""

import json
import os
from pathlib import Path
from typing import Any

from safetensors import safe_open
from transformers.processing_utils import ProcessorMixin


SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_FILE = "model.safetensors"
# Files a tokenizer can be built from (a fast `tokenizer.json` or a SentencePiece `tokenizer.model`).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
PROCESSOR_JSON_FILES = (
    "config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def local_folder(path: str | os.PathLike) -> Path | None:
    """`path` as a folder when it is a local directory, else None (a Hub id).

    Raises:
        FileNotFoundError: when `path` is written as a local path (absolute, `./`, `../`, `~`) but is not a folder;
            transformers would otherwise report it as a malformed Hub id.
    """
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder
    text = os.fspath(path)
    if os.path.isabs(text) or text.startswith(("./", "../", "~", ".\\", "..\\")):
        raise FileNotFoundError(f"{text} is not a folder (nor a Hub repo id): check the path.")
    return None


def read_json_file(path: Path) -> Any:
    """The content of a JSON file, or a `ValueError` naming the file when it is not UTF-8 JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is damaged: not valid UTF-8 JSON ({error}).") from error


def check_json_files(folder: Path, names: tuple[str, ...]) -> None:
    """Every file of `names` present in `folder` must hold a JSON object (`ValueError` naming it otherwise)."""
    for name in names:
        path = folder / name
        if path.is_file() and not isinstance(read_json_file(path), dict):
            raise ValueError(f"{path} is damaged: it must hold a JSON object.")


def weight_headers(folder: Path) -> dict[str, tuple[Path, str, list[int]]]:
    """`{key: (file, dtype, shape)}` from the safetensors headers of `folder`'s weights (single file or shards).

    Returns an empty dict for folders without safetensors weights (transformers reports those itself).

    Raises:
        ValueError: naming the file when the index or a weight file is truncated or not safetensors.
        FileNotFoundError: naming the index when a shard it lists is missing.
    """
    if (folder / SAFETENSORS_INDEX).is_file():
        index = read_json_file(folder / SAFETENSORS_INDEX)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise ValueError(f"{folder / SAFETENSORS_INDEX} is damaged: it has no `weight_map` object.")
        files = sorted({folder / shard for shard in weight_map.values()})
        missing = [path.name for path in files if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{folder / SAFETENSORS_INDEX} lists shards missing from {folder}: {missing}.")
    elif (folder / SAFETENSORS_FILE).is_file():
        files = [folder / SAFETENSORS_FILE]
    else:
        return {}
    headers = {}
    for path in files:
        try:
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    tensor = handle.get_slice(key)
                    headers[key] = (path, tensor.get_dtype(), tensor.get_shape())
        except Exception as error:  # safetensors raises its own error type for every kind of damage
            raise ValueError(
                f"{path} is damaged (truncated or not a safetensors file): {type(error).__name__}: {error}"
            ) from error
    return headers


def check_processor_folder(path: str | os.PathLike) -> None:
    """Check a local processor folder before `from_pretrained` reads it: its JSON files must parse and it must hold a
    tokenizer file (`FileNotFoundError` naming the folder otherwise, instead of a misleading hint about packages)."""
    folder = local_folder(path)
    if folder is None:
        return
    check_json_files(folder, PROCESSOR_JSON_FILES)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{folder} has no tokenizer: expected one of {', '.join(TOKENIZER_FILES)} (with tokenizer_config.json). "
            "Save the processor with `processor.save_pretrained` into the model folder."
        )


class CheckedProcessorLoadingMixin(ProcessorMixin):
    """Processor base: `from_pretrained` runs [`check_processor_folder`] first. A `ProcessorMixin` itself, so the
    processors' next base class still has every `ProcessorMixin` method (transformers' processor tests compare
    against it)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        check_processor_folder(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


__all__ = [
    "CheckedProcessorLoadingMixin",
    "check_json_files",
    "check_processor_folder",
    "local_folder",
    "read_json_file",
    "weight_headers",
]
