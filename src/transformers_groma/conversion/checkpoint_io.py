"""Reading original checkpoint folders: config and weights in every layout the released checkpoints use."""

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file


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
