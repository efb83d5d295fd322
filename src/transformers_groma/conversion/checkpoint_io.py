"""Checkpoint folders: reading the original ones (config and weights in every released layout) and writing native
ones safely (assembled beside the target, verified, then moved into place)."""

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from safetensors.torch import load_file
from torch import nn


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def read_original_config(input_dir: Path) -> dict[str, Any]:
    """The original `config.json`, with a clear error when the folder is not a checkpoint."""
    config_path = input_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{input_dir} has no config.json; pass the folder of an original Groma checkpoint.")
    return json.loads(config_path.read_text())


def load_original_state_dict(input_dir: Path) -> dict[str, torch.Tensor]:
    """All weights of an original checkpoint: single or sharded safetensors, or single or sharded `.bin` pickles.

    Pickles are read with `torch.load(weights_only=True)`, which refuses anything but tensors and plain containers.
    """
    for name in WEIGHT_FILES:
        path = input_dir / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            missing = [shard for shard in shards if not (input_dir / shard).is_file()]
            if missing:
                raise FileNotFoundError(f"{path.name} lists shards that are not in {input_dir}: {missing}")
            state_dict = {}
            for shard in shards:
                state_dict.update(_load_weight_file(input_dir / shard))
            return state_dict
        return _load_weight_file(path)
    raise FileNotFoundError(f"{input_dir} has no weights; expected one of {', '.join(WEIGHT_FILES)}.")


def _load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


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


def check_output_options(output_dir: Path, overwrite: bool, dtype: str) -> None:
    """Refuse to replace a non-empty folder (unless `overwrite`) and unknown dtypes, before any work is done."""
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"--output_dir {output_dir} exists and is not empty (pass --overwrite to replace it).")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")


@contextmanager
def staged_output(output_dir: Path) -> Iterator[Path]:
    """A staging folder beside `output_dir`, moved into its place when the block succeeds and deleted otherwise,
    so a failed conversion leaves nothing partial behind."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        yield staging
        staging.chmod(0o755)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
