"""Fixtures of the training tests: synthetic datasets written to `tmp_path` in their real on-disk formats."""

from pathlib import Path

import pytest

from .synthetic import custom_lines, make_coco, write_jsonl


@pytest.fixture
def coco(tmp_path: Path) -> dict:
    return make_coco(tmp_path / "coco")


@pytest.fixture
def custom_jsonl(tmp_path: Path, coco: dict) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", custom_lines(coco))
