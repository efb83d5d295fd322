"""Shared fixtures for the processing tests: the reference fixture folder, tokenizers and a small processor."""

import json
import string
from pathlib import Path

import pytest
from transformers import LlamaTokenizer

from transformers_groma.processing import GromaImageProcessor, GromaProcessor, add_groma_tokens, record_legacy_flag

from ..fixtures import GROMA_FIXTURE, skip_unless_ci


GOLDEN_IDS_FILE = Path(__file__).parent / "data" / "original_tokenizer_ids.json"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    if not (GROMA_FIXTURE / "tokenizer.model").is_file():
        skip_unless_ci(
            f"Groma reference fixtures not found at {GROMA_FIXTURE} (needs ../shared next to the repository)."
        )
    return GROMA_FIXTURE


@pytest.fixture(scope="session")
def meta(fixture_dir) -> dict:
    return json.loads((fixture_dir / "meta.json").read_text())


@pytest.fixture(scope="session")
def golden_ids() -> dict:
    return json.loads(GOLDEN_IDS_FILE.read_text())


def build_tiny_tokenizer() -> LlamaTokenizer:
    """A character-level Llama tokenizer (no merges) with Groma's tokens: ids 0-97 base, 98-211 Groma."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3}
    for character in string.ascii_letters + string.digits + string.punctuation:
        vocab.setdefault(character, len(vocab))
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[], add_bos_token=True, legacy=True)
    # `LlamaTokenizer.__init__` does not record `legacy`; without this, a reloaded copy would use `legacy=False`.
    record_legacy_flag(tokenizer)
    add_groma_tokens(tokenizer)
    return tokenizer


@pytest.fixture
def tiny_tokenizer() -> LlamaTokenizer:
    return build_tiny_tokenizer()


@pytest.fixture
def processor(tiny_tokenizer) -> GromaProcessor:
    return GromaProcessor(GromaImageProcessor(size={"height": 112, "width": 112}), tiny_tokenizer)
