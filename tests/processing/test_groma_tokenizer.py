"""Tokenizer parity with the original Groma tokenizer (transformers 4.32 slow `LlamaTokenizer`)."""

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from transformers_groma import GromaProcessor
from transformers_groma.processing import GromaImageProcessor, add_groma_tokens, load_original_tokenizer
from transformers_groma.tokens import GROMA_ADDED_TOKENS


IGNORE_INDEX = -100
GROMA_TAG = re.compile("|".join(re.escape(token) for token in GROMA_ADDED_TOKENS))


@pytest.fixture(scope="module")
def inputs(fixture_dir):
    return load_file(fixture_dir / "inputs.safetensors")


def original_labels(ids_with_sep: list[int], sep_id: int, eos_id: int) -> tuple[list[int], list[int]]:
    """The label masking of the original datasets (spec §2.2), written from its description."""
    labels = list(ids_with_sep)
    sep_positions = [index for index, token in enumerate(ids_with_sep) if token == sep_id]
    for pair in range(0, len(sep_positions), 2):
        start = 0 if pair == 0 else sep_positions[pair - 1]
        labels[start : sep_positions[pair]] = [IGNORE_INDEX] * (sep_positions[pair] - start)
    for index in [index for index, token in enumerate(ids_with_sep) if token == eos_id][1:]:
        labels[index] = eos_id
    keep = [token != sep_id for token in ids_with_sep]
    return [t for t, k in zip(ids_with_sep, keep) if k], [label for label, k in zip(labels, keep) if k]


def test_inference_prompts_match_fixture_ids(fixture_dir, meta, inputs):
    tokenizer = load_original_tokenizer(fixture_dir)
    for index, prompt in enumerate(meta["prompts"]):
        expected = inputs["input_ids"][index][inputs["attention_mask"][index] == 1].tolist()
        assert tokenizer(prompt)["input_ids"] == expected


def test_train_prompts_match_fixture_ids_and_labels(fixture_dir, meta, inputs):
    tokenizer = load_original_tokenizer(fixture_dir)
    sep_id, eos_id = tokenizer.convert_tokens_to_ids("<sep>"), tokenizer.eos_token_id
    for index, prompt in enumerate(meta["train_prompts"]):
        mask = inputs["train_attention_mask"][index] == 1
        ids, labels = original_labels(tokenizer(prompt)["input_ids"], sep_id, eos_id)
        assert ids == inputs["train_input_ids"][index][mask].tolist()
        assert labels == inputs["train_labels"][index][mask].tolist()


def test_added_tokens_have_fixture_ids_and_flags(fixture_dir):
    tokenizer = load_original_tokenizer(fixture_dir)
    expected_ids = json.loads((fixture_dir / "special_tokens.json").read_text())
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in expected_ids} == expected_ids
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("[PAD]", 1000)
    added = {token.content: token for token in tokenizer.added_tokens_decoder.values()}
    for token in GROMA_ADDED_TOKENS:
        assert (added[token].lstrip, added[token].rstrip, added[token].normalized, added[token].special) == (
            True,
            True,
            False,
            True,
        ), token


@pytest.mark.parametrize("legacy", [True, False])
def test_legacy_flag_reproduces_original_ids(fixture_dir, meta, golden_ids, legacy):
    tokenizer = load_original_tokenizer(fixture_dir, legacy=legacy)
    golden = golden_ids[f"legacy_{str(legacy).lower()}"]
    scheme = tokenizer.backend_tokenizer.pre_tokenizer.prepend_scheme
    assert scheme == ("always" if legacy else "first")
    for text, expected in golden["short"].items():
        assert tokenizer(text)["input_ids"] == expected, text
    assert [tokenizer(prompt)["input_ids"] for prompt in meta["prompts"]] == golden["prompts"]
    assert [tokenizer(prompt)["input_ids"] for prompt in meta["train_prompts"]] == golden["train_prompts"]


def test_legacy_values_differ_after_added_tokens(fixture_dir):
    text = "Locate <p>the man in red</p> in the image."
    legacy_ids = load_original_tokenizer(fixture_dir, legacy=True)(text)["input_ids"]
    non_legacy = load_original_tokenizer(fixture_dir, legacy=False)
    non_legacy_ids = non_legacy(text)["input_ids"]
    assert legacy_ids != non_legacy_ids
    # legacy=False: the word after an added token has no "▁" prefix; legacy=True: it has one.
    after_phrase_start = non_legacy.convert_ids_to_tokens(non_legacy_ids)[5]
    assert not after_phrase_start.startswith("▁")
    assert non_legacy.convert_ids_to_tokens(legacy_ids)[5].startswith("▁")


@pytest.mark.parametrize(("config_value", "expected_scheme"), [(None, "always"), (True, "always"), (False, "first")])
def test_legacy_value_of_tokenizer_config_is_honoured(fixture_dir, tmp_path, config_value, expected_scheme):
    folder = tmp_path / "tokenizer"
    shutil.copytree(fixture_dir, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.tsv"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["legacy"] = config_value
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = load_original_tokenizer(folder)
    assert tokenizer.backend_tokenizer.pre_tokenizer.prepend_scheme == expected_scheme
    assert tokenizer.legacy is (expected_scheme == "always")


def test_missing_legacy_key_means_legacy(fixture_dir, tmp_path):
    folder = tmp_path / "tokenizer"
    shutil.copytree(fixture_dir, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.tsv"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["legacy"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert load_original_tokenizer(folder).backend_tokenizer.pre_tokenizer.prepend_scheme == "always"


@pytest.mark.parametrize("legacy", [True, False])
def test_decode_round_trips(fixture_dir, meta, legacy):
    tokenizer = load_original_tokenizer(fixture_dir, legacy=legacy)
    for prompt in meta["prompts"] + meta["train_prompts"]:
        ids = tokenizer(prompt)["input_ids"]
        kept = tokenizer.decode(ids, skip_special_tokens=False)
        # The whitespace next to added tokens is not recoverable, but decoding is stable: same ids again.
        assert tokenizer(kept, add_special_tokens=False)["input_ids"] == ids
        assert GROMA_TAG.findall(kept) == GROMA_TAG.findall(prompt)
        skipped = tokenizer.decode(ids, skip_special_tokens=True)
        assert GROMA_TAG.findall(skipped) == [] and "</s>" not in skipped
        words = GROMA_TAG.sub(" ", prompt).replace("</s>", " ").split()
        if legacy:
            assert skipped.split() == words
        else:  # no "▁" after an added token, so removing the token can glue two words together
            assert "".join(skipped.split()) == "".join(words)
    assert tokenizer.decode(tokenizer("Hello world, how are you?")["input_ids"], skip_special_tokens=True) == (
        "Hello world, how are you?"
    )


@pytest.mark.parametrize("legacy", [True, False])
def test_save_and_reload_keeps_ids(fixture_dir, meta, tmp_path, legacy):
    tokenizer = load_original_tokenizer(fixture_dir, legacy=legacy)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for prompt in meta["prompts"] + meta["train_prompts"]:
        assert reloaded(prompt)["input_ids"] == tokenizer(prompt)["input_ids"]
    assert reloaded.pad_token_id == tokenizer.pad_token_id


@pytest.mark.parametrize("legacy", [True, False])
def test_processor_save_load_cycles_keep_ids(fixture_dir, meta, tmp_path, legacy):
    # A finetuning run loads a saved processor and saves it again: the flag must survive every round trip.
    tokenizer = load_original_tokenizer(fixture_dir, legacy=legacy)
    processor = GromaProcessor(GromaImageProcessor(), tokenizer)
    for cycle in range(3):
        processor.save_pretrained(tmp_path / str(cycle))
        processor = GromaProcessor.from_pretrained(tmp_path / str(cycle))
        assert processor.tokenizer.legacy is legacy
    for prompt in meta["prompts"] + meta["train_prompts"]:
        assert processor.tokenizer(prompt)["input_ids"] == tokenizer(prompt)["input_ids"]


def test_add_groma_tokens_on_a_fresh_vocabulary(tiny_tokenizer):
    base_size = tiny_tokenizer.convert_tokens_to_ids("[PAD]")
    assert base_size == 98
    assert [tiny_tokenizer.convert_tokens_to_ids(token) for token in GROMA_ADDED_TOKENS] == list(range(98, 98 + 114))
    assert tiny_tokenizer.convert_tokens_to_ids("<r99>") == 211
    assert tiny_tokenizer.pad_token == "[PAD]"
    assert add_groma_tokens(tiny_tokenizer) == 0
    assert len(tiny_tokenizer) == 212


def test_added_tokens_strip_whitespace_and_are_special(tiny_tokenizer):
    ids = tiny_tokenizer("a <p> b </p> <roi><r3></roi> c", add_special_tokens=False)["input_ids"]
    tokens = tiny_tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["▁", "a", "<p>", "▁", "b", "</p>", "<roi>", "<r3>", "</roi>", "▁", "c"]
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == "a b c"
    assert tiny_tokenizer.decode(ids, skip_special_tokens=False) == "a<p> b</p><roi><r3></roi> c"


def test_batch_encoding_pads_with_pad_token(tiny_tokenizer):
    batch = tiny_tokenizer(["ab", "abcd"], padding=True, padding_side="left", return_tensors="pt")
    assert batch["input_ids"][0, :2].tolist() == [98, 98]
    assert torch.equal(batch["attention_mask"][0], torch.tensor([0, 0, 1, 1, 1, 1]))
