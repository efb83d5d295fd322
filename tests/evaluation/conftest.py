"""Fixtures of the evaluation tests: benchmark files from the synthetic world, and saved tiny models."""

from pathlib import Path

import pytest
import torch

from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor

from .data import write_benchmarks


@pytest.fixture(scope="session")
def benchmarks(tmp_path_factory) -> dict[str, Path]:
    """Every benchmark file for 4 synthetic scenes (9 objects), see `data.write_benchmarks`."""
    return write_benchmarks(tmp_path_factory.mktemp("benchmarks"))


@pytest.fixture(scope="session")
def region_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random Groma that answers with region index tokens only: its LM head is zero except for the
    rows of `<r0>` ... `<r7>`, so every generated token names one of the (up to 8) selected regions, and REC
    answers carry boxes; its proposer's boxes are enlarged (width and height logits + 2.5) so that they overlap
    the synthetic objects."""
    model = tiny_groma_model(seed=3, box_score_threshold=0.0)
    first = model.config.region_index_token_id
    with torch.no_grad():
        weight = model.lm_head.weight
        rows = weight[first : first + 8].clone()
        weight.zero_()
        weight[first : first + 8] = rows * 50
        for head in model.model.region_proposer.bbox_heads:
            head.layers[-1].bias[2:] += 2.5
    folder = tmp_path_factory.mktemp("region-model")
    model.save_pretrained(folder)
    tiny_groma_processor().save_pretrained(folder)
    return folder
