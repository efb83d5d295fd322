"""Checkpoint folders: reading the original ones (config and weights in every released layout) and writing native
ones safely (assembled beside the target, verified, then moved into place)."""

import fnmatch
import json
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from safetensors.torch import load_file
from torch import nn

from transformers_groma_cli import DTYPE_NAMES

from ..remote_code import remote_code_file_names


DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


# What a conversion writes: the only names `--overwrite` may replace in an existing output folder.
OUTPUT_FILE_PATTERNS = (
    "README.md",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
)
# Marks a staging folder as this converter's own, so that the next run may delete it after a kill.
STAGING_MARKER = ".groma-convert-staging"


def read_original_config(input_dir: Path) -> dict[str, Any]:
    """The original `config.json`, with a clear error when the folder is not a checkpoint or the file is damaged."""
    config_path = input_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{input_dir} has no config.json; pass the folder of an original Groma checkpoint.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON ({error}).") from error
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} must hold a JSON object, got {type(config).__name__}.")
    return config


def load_original_state_dict(input_dir: Path) -> dict[str, torch.Tensor]:
    """All weights of an original checkpoint: single or sharded safetensors, or single or sharded `.bin` pickles.

    Pickles are read with `torch.load(weights_only=True)`, which refuses anything but tensors and plain containers.
    """
    for name in WEIGHT_FILES:
        path = input_dir / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            shards = _index_shards(path)
            missing = [shard for shard in shards if not (input_dir / shard).is_file()]
            if missing:
                raise FileNotFoundError(f"{path.name} lists shards that are not in {input_dir}: {missing}")
            state_dict = {}
            for shard in shards:
                state_dict.update(_load_weight_file(input_dir / shard))
            return state_dict
        return _load_weight_file(path)
    raise FileNotFoundError(f"{input_dir} has no weights; expected one of {', '.join(WEIGHT_FILES)}.")


def _index_shards(path: Path) -> list[str]:
    """The shard file names an `*.index.json` lists, with the file named when it is damaged."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        return sorted(set(index["weight_map"].values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not a weight index: expected JSON with a `weight_map` ({error!r}).") from error


def _load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """One weight file; `.bin` pickles in the zip format are memory-mapped, legacy (pre-1.6) pickles read whole."""
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # safetensors, zip and pickle readers each raise their own error types
        raise ValueError(f"Cannot read the weights in {path} ({type(error).__name__}: {error}).") from error


def resolve_input_dir(input_dir: str | Path) -> Path:
    """A local folder as is; a Hub repo id ("org/name") is downloaded (needs network access)."""
    path = Path(input_dir)
    if path.is_dir():
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(input_dir)) and not path.exists():
        try:
            return Path(snapshot_download(str(input_dir)))
        except OSError as error:  # offline, unknown repo, or a mistyped local path that looks like a repo id
            raise FileNotFoundError(
                f"--input_dir {input_dir} is not a local folder, and downloading it as a Hub repo id failed: {error}"
            ) from error
    raise FileNotFoundError(f"--input_dir {input_dir} is not a folder (nor a Hub repo id).")


def check_output_options(input_dir: Path, output_dir: Path, overwrite: bool, dtype: str) -> None:
    """Refuse, before any work is done: unknown dtypes, an output folder that is (or holds, or lies in) the input,
    and a non-empty output folder unless `overwrite`, which only replaces a converted checkpoint's own files.

    First cleans up (and reports) what a killed conversion into `output_dir` left behind, see
    [`clean_up_leftovers`].
    """
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    for action in clean_up_leftovers(output_dir):
        print(f"groma-convert: {action}.")
    source, target = input_dir.resolve(), output_dir.resolve()
    if source == target or source in target.parents or target in source.parents:
        raise ValueError(
            f"--output_dir {output_dir} must be a folder apart from --input_dir {input_dir} (not the same folder, "
            "nor inside it, nor containing it): converting in place would replace the original checkpoint."
        )
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"--output_dir {output_dir} exists and is not empty (pass --overwrite to replace it)."
            )
        _check_replaceable(output_dir)


def _is_output_file(path: Path) -> bool:
    if not path.is_file():
        return False
    return path.name in remote_code_file_names() or any(
        fnmatch.fnmatchcase(path.name, pattern) for pattern in OUTPUT_FILE_PATTERNS
    )


def _check_replaceable(output_dir: Path) -> None:
    foreign = sorted(path.name for path in output_dir.iterdir() if not _is_output_file(path))
    if foreign:
        raise FileExistsError(
            f"--overwrite only replaces a converted checkpoint, but --output_dir {output_dir} also holds "
            f"{foreign[:10]}, which a conversion does not write. Move them away or choose another --output_dir."
        )


def clean_up_leftovers(output_dir: Path) -> list[str]:
    """Finish or undo what a killed conversion into `output_dir` left behind; returns one line per action.

    A staging folder (marked as the converter's) is deleted; a previous output that was being replaced is put back
    when `output_dir` is missing, and deleted otherwise (it holds only converted files, see `--overwrite`).
    """
    actions = []
    if not output_dir.parent.is_dir():
        return actions
    for path in sorted(output_dir.parent.glob(f".{output_dir.name}.staging-*")):
        if (path / STAGING_MARKER).is_file():
            size = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
            shutil.rmtree(path)
            actions.append(f"deleted {path} ({size / 2**20:.1f} MiB), left by an interrupted conversion")
    for path in sorted(output_dir.parent.glob(f".{output_dir.name}.replaced-*")):
        if not output_dir.exists():
            path.rename(output_dir)
            actions.append(f"restored {output_dir} from {path}, which an interrupted --overwrite had moved aside")
        elif all(_is_output_file(item) for item in path.iterdir()):
            shutil.rmtree(path)
            actions.append(f"deleted {path}, the previous output an interrupted --overwrite had already replaced")
        else:
            actions.append(f"kept {path}: an interrupted --overwrite moved it aside; move what you need from it")
    if (output_dir / STAGING_MARKER).is_file():  # killed right after the verified folder was moved into place
        (output_dir / STAGING_MARKER).unlink()
    return actions


@contextmanager
def staged_output(output_dir: Path) -> Iterator[Path]:
    """A staging folder beside `output_dir`, swapped into its place when the block succeeds and deleted otherwise,
    so a failed conversion leaves nothing partial behind. An existing output is moved aside and deleted only once
    the new one is in place; a killed run's leftovers are found by [`clean_up_leftovers`]."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.staging-", dir=output_dir.parent))
    (staging / STAGING_MARKER).touch()
    previous = None
    try:
        yield staging
        staging.chmod(0o755)
        if output_dir.exists():
            _check_replaceable(output_dir)  # files may have been added while converting
            previous = output_dir.parent / f".{output_dir.name}.replaced-{uuid.uuid4().hex[:8]}"
            output_dir.rename(previous)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not None and not output_dir.exists():
            previous.rename(output_dir)
        raise
    (output_dir / STAGING_MARKER).unlink()
    if previous is not None:
        shutil.rmtree(previous)


def cast_weights(model: nn.Module, dtype: str) -> nn.Module:
    """Cast the model's weights to `dtype` (with its `cast_to` when it has one), refusing values `dtype` cannot hold.

    Raises:
        ValueError: naming the weights that became infinite (e.g. beyond float16's ±65504), before anything is
            written.
    """
    finite_before = {name for name, tensor in model.state_dict().items() if _is_finite(tensor)}
    model = model.cast_to(DTYPES[dtype]) if hasattr(model, "cast_to") else model.to(DTYPES[dtype])
    overflowing = [
        name for name, tensor in model.state_dict().items() if name in finite_before and not _is_finite(tensor)
    ]
    if overflowing:
        raise ValueError(
            f"--dtype {dtype} cannot hold {len(overflowing)} weight(s) of this checkpoint, whose values overflow to "
            f"inf: {overflowing[:10]}. Convert with --dtype float32 (or bfloat16, which has float32's range)."
        )
    return model


def _is_finite(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def verify_saved_weights(folder: Path, model: nn.Module) -> int:
    """Reload the written folder and check every tensor equals the converted one; returns the tensor count."""
    reloaded = type(model).from_pretrained(folder, dtype=model.dtype)
    expected, actual = model.state_dict(), reloaded.state_dict()
    if set(expected) != set(actual):
        raise RuntimeError(f"Reloaded keys differ: {sorted(set(expected) ^ set(actual))[:10]}")
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    if different:
        raise RuntimeError(f"Reloaded weights differ from the converted ones: {different[:10]}")
    return len(expected)
