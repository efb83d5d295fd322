"""The demo recipe's language pretraining (examples/demo_model/language_pretraining.py): the word scenes say what the
image conversations say, every answer index points at the slot holding the words it names, and a short run trains
and saves a Llama the recipe's stage 2 can load."""

import re
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

from transformers_groma.synthetic import COLORS, SHAPES
from transformers_groma.tokens import IGNORE_INDEX, REFER_FEAT_TOKEN, REGION_TOKEN


DEMO_RECIPE = Path(__file__).resolve().parents[2] / "examples" / "demo_model"
sys.path.insert(0, str(DEMO_RECIPE))
language_pretraining = pytest.importorskip("language_pretraining")
train_demo = pytest.importorskip("train_demo")
Phase, WordSlotDataset = language_pretraining.Phase, language_pretraining.WordSlotDataset


@pytest.fixture(scope="module")
def tokenizer():
    return train_demo.build_tokenizer()


def region_slots(tokenizer, item) -> dict[int, tuple[int, int]]:
    """`{K: (colour id, shape id)}` for the regions `<rK><region>` of an item that show an object."""
    tokens = tokenizer.convert_ids_to_tokens(item["input_ids"].tolist())
    return {
        int(tokens[position - 1][2:-1]): tuple(item["slot_words"][position].tolist())
        for position, token in enumerate(tokens)
        if token == REGION_TOKEN and item["slot_words"][position, 0] >= 0
    }


def answered_indices(tokenizer, item) -> list[tuple[int, int]]:
    """`(position, K)` of every scored `<rK>` token."""
    labels = item["labels"].tolist()
    return [
        (position, int(token[2:-1]))
        for position, token in enumerate(tokenizer.convert_ids_to_tokens([max(label, 0) for label in labels]))
        if labels[position] != IGNORE_INDEX and token.startswith("<r") and token[2:-1].isdigit()
    ]


def test_listing_indices_point_at_the_slot_with_the_same_words(tokenizer):
    dataset = WordSlotDataset(tokenizer, language_pretraining.PHASES[0], 40, 36, 8, seed=0)
    refer_feat = tokenizer.convert_tokens_to_ids(REFER_FEAT_TOKEN)
    for item in (dataset[index] for index in range(len(dataset))):
        slots = region_slots(tokenizer, item)
        answers = answered_indices(tokenizer, item)
        assert 1 <= len(answers) == len(slots) <= 4
        for position, index in answers:
            assert item["input_ids"][position - 1] == refer_feat
            assert tuple(item["slot_words"][position - 1].tolist()) == slots[index]
        # only the indices are scored, and the short context starts at the region list
        assert (item["labels"] != IGNORE_INDEX).sum() == len(answers)
        assert tokenizer.decode(item["input_ids"][:3], skip_special_tokens=True).strip().startswith("Regions:")


def test_conversations_answer_with_the_indices_of_the_named_objects(tokenizer):
    dataset = WordSlotDataset(tokenizer, language_pretraining.PHASES[-1], 60, 36, 8, seed=1, kinds=("custom",))
    inventory = [f"{color} {shape}" for color in COLORS for shape in SHAPES]
    for item in (dataset[index] for index in range(len(dataset))):
        slots = {index: tokenizer.decode(list(words)) for index, words in region_slots(tokenizer, item).items()}
        text = tokenizer.decode(item["input_ids"])
        grounded = re.findall(r"<p> ?a (\w+ \w+)</p><roi><r(\d+)></roi>", text)
        rec = re.findall(r"<p> ?the (\w+ \w+)</p>[^<]*<roi><r(\d+)></roi>", text)
        # a grounded caption names every object, by colour then shape; REC asks about each once
        assert [name for name, _ in grounded] == [name for name in inventory if name in slots.values()]
        assert sorted(name for name, _ in rec) == sorted(slots.values())
        assert all(slots[int(index)] == name for name, index in grounded + rec), text
        assert len(answered_indices(tokenizer, item)) == len(grounded) + len(rec)


def test_phase_kind_is_checked(tokenizer):
    with pytest.raises(ValueError, match="phase.kind"):
        WordSlotDataset(tokenizer, Phase("captions", 1, 1e-3), 1, 36, 8, seed=0)


@pytest.fixture
def llm_dir(tokenizer, tmp_path):
    """A tiny random Llama folder for the tokenizer."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llm")
    return tmp_path / "llm"


def test_a_short_run_trains_and_saves_a_llama(tokenizer, llm_dir, tmp_path):
    before = LlamaForCausalLM.from_pretrained(llm_dir).lm_head.weight.clone()
    tokenizer.save_pretrained(llm_dir)
    loaded = LlamaTokenizer.from_pretrained(llm_dir)  # as the recipe loads it: `legacy` read, not kept for saving
    phases = (Phase("listing", 3, 1e-3, short_context=True, index_labels_only=True), Phase("conversations", 2, 1e-3))
    accuracies = language_pretraining.pretrain_language(
        llm_dir, tmp_path / "language", loaded, num_image_tokens=4, max_regions=8, batch_size=2, seed=0,
        phases=phases,
    )  # fmt: skip
    assert len(accuracies) == 2 and all(0.0 <= value <= 1.0 for value in accuracies)
    after = LlamaForCausalLM.from_pretrained(tmp_path / "language").lm_head.weight
    assert not torch.equal(before, after)
    saved = LlamaTokenizer.from_pretrained(tmp_path / "language")
    text = "<p>the red square</p><roi><r0></roi>."
    assert saved(text).input_ids == tokenizer(text).input_ids  # `legacy` kept: `▁the` after `<p>`, not `t`, `he`


@pytest.fixture
def optimizer_steps(monkeypatch):
    """`(optimizer, learning rate)` of every AdamW step taken while the test runs."""
    steps = []
    step = torch.optim.AdamW.step

    def recording_step(optimizer, *args, **kwargs):
        steps.append((optimizer, optimizer.param_groups[0]["lr"]))
        return step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    return steps


def test_a_decay_phase_lets_the_learning_rate_fall_linearly_to_zero(tokenizer, llm_dir, tmp_path, optimizer_steps):
    phases = (Phase("conversations", 2, 1e-3), Phase("conversations", 4, 1e-3, decay=True))
    language_pretraining.pretrain_language(
        llm_dir, tmp_path / "language", tokenizer, num_image_tokens=4, max_regions=8, batch_size=1, seed=0,
        phases=phases,
    )  # fmt: skip
    assert [lr for _, lr in optimizer_steps] == pytest.approx([1e-3, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_a_phase_after_a_decay_starts_a_fresh_optimizer(tokenizer, llm_dir, tmp_path, optimizer_steps):
    phases = (
        Phase("conversations", 1, 1e-3),
        Phase("conversations", 1, 1e-3, decay=True),  # same kind: goes on with the first phase's moments
        Phase("conversations", 1, 5e-4, decay=True),  # after a decay to 0: a warm restart
    )
    language_pretraining.pretrain_language(
        llm_dir, tmp_path / "language", tokenizer, num_image_tokens=4, max_regions=8, batch_size=1, seed=0,
        phases=phases,
    )  # fmt: skip
    optimizers = [optimizer for optimizer, _ in optimizer_steps]
    assert optimizers[0] is optimizers[1]
    assert optimizers[2] is not optimizers[1]
