"""GromaForConditionalGeneration / GromaModel on tiny random models: shapes, sequence expansion, labels, save/load,
attention backends, loss and gradients, activation checkpointing, determinism and input errors."""

import contextlib
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.nn import functional as F  # noqa: N812
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, Dinov2Config, LlamaConfig

from transformers_groma import (
    GromaConfig,
    GromaForConditionalGeneration,
    GromaModel,
    GromaRegionProposerConfig,
)
from transformers_groma.modeling.cache_api import output_cache
from transformers_groma.tiny import tiny_groma_config

from .groma_test_utils import (
    BOS,
    GRID,
    GROUND_BOX,
    IMAGE,
    NO_DROPOUT,
    NUM_IMAGE_TOKENS,
    PAD,
    R0,
    REFER_BOX,
    REFER_FEAT,
    REGION,
    ROI_END,
    ROI_START,
    cxcywh,
    make_model,
    make_prompt,
    pad_batch,
    pixels,
    proposer_overrides,
    text_ids,
)


VOCAB = 1114


def expanded_layout(before, middle, after, num_regions):
    """The expected expansion of `[BOS] before <image> middle <region> after`, written out by hand."""
    regions = []
    for k in range(num_regions):
        regions += [R0 + k, REGION]
    return [BOS, *before, *[IMAGE] * NUM_IMAGE_TOKENS, *middle, *regions, *after]


# ---------------------------------------------------------------------------------------------------------------------
# Shapes and sequence layout
# ---------------------------------------------------------------------------------------------------------------------


def test_output_shapes_with_batch_padding_and_region_counts():
    model = make_model()
    prompts = [make_prompt(2, 2, 3), make_prompt(5, 1, 6, seed=3)]
    ids, mask = pad_batch(prompts, "right")
    region_boxes = [GRID[:3], GRID[[1]]]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels(2), region_boxes=region_boxes)
    lengths = [len(p) - 2 + NUM_IMAGE_TOKENS + 2 * len(r) for p, r in zip(prompts, region_boxes)]
    assert lengths == [len(prompts[0]) + 20, len(prompts[1]) + 16]
    assert out.logits.shape == (2, max(lengths), VOCAB)
    assert out.expanded_input_ids.shape == (2, max(lengths))
    assert out.expanded_attention_mask.sum(1).tolist() == lengths
    assert [tuple(b.shape) for b in out.region_boxes] == [(3, 4), (1, 4)]
    torch.testing.assert_close(out.region_boxes[0], GRID[:3])
    torch.testing.assert_close(out.region_scores[1], torch.ones(1))
    assert out.loss is None and out.expanded_labels is None
    assert output_cache(out) is not None


def test_expanded_ids_layout_and_right_padding():
    model = make_model()
    before, middle, after = text_ids(2), text_ids(3, 50), text_ids(4, 80)
    long_prompt = torch.tensor([BOS, *before, IMAGE, *middle, REGION, *after])
    short_prompt = torch.tensor([BOS, IMAGE, 7, REGION, 9])
    ids, mask = pad_batch([long_prompt, short_prompt], "left")  # any padding side in, right padding out
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels(2), region_boxes=[GRID[:3], GRID[:1]])
    first = expanded_layout(before, middle, after, 3)
    second = expanded_layout([], [7], [9], 1)
    assert out.expanded_input_ids[0].tolist() == first
    assert out.expanded_input_ids[1].tolist() == second + [PAD] * (len(first) - len(second))
    assert out.expanded_attention_mask[1].tolist() == [1] * len(second) + [0] * (len(first) - len(second))


def test_unpadded_prompt_without_attention_mask_and_proposer_regions():
    model = make_model(box_score_threshold=0.0)  # every proposal passes: max_region_num (8) regions
    prompt = make_prompt(1, 1, 1)
    with torch.no_grad():
        out = model(input_ids=prompt[None], pixel_values=pixels(1))
    assert out.region_boxes[0].shape == (8, 4)
    assert out.logits.shape == (1, len(prompt) - 2 + NUM_IMAGE_TOKENS + 16, VOCAB)
    scores = out.region_scores[0]
    assert (scores[:-1] >= scores[1:]).all()
    assert out.expanded_input_ids[0].tolist() == expanded_layout(text_ids(1), text_ids(1, 5), text_ids(1, 11), 8)
    boxes = out.region_boxes[0]
    assert ((boxes > 0) & (boxes < 1)).all()


def test_default_threshold_random_proposer_falls_back_to_one_region():
    # A freshly initialized proposer scores ~0.01 (prior bias), below 0.15: the single best proposal is kept.
    model = make_model()
    with torch.no_grad():
        out = model(input_ids=make_prompt()[None], pixel_values=pixels(1))
        proposals = model.model.get_region_proposals(*model.model.encode_image(pixels(1)))
    assert out.region_boxes[0].shape == (1, 4)
    best = proposals.scores[0].argmax()
    torch.testing.assert_close(out.region_boxes[0][0], proposals.pred_boxes[0, best])
    torch.testing.assert_close(out.region_scores[0][0], proposals.scores[0, best])


def test_refer_box_becomes_best_iou_region_index_and_refer_feat_gets_its_feature():
    model = make_model()
    prompt = make_prompt(refer=2)
    refer = [cxcywh([0.26, 0.74, 0.19, 0.21], [0.25, 0.27, 0.22, 0.2])]  # best matches: GRID[2], GRID[0]
    with torch.no_grad():
        inputs = model.model.prepare_multimodal_inputs(
            prompt[None], pixels(1), None, refer_boxes=refer, region_boxes=[GRID]
        )
    ids = inputs.input_ids[0]
    tail = [ROI_START, R0 + 2, ROI_END, REFER_FEAT, ROI_START, R0 + 0, ROI_END, REFER_FEAT]
    assert ids[-8:].tolist() == tail
    assert (ids == REFER_BOX).sum() == 0
    # every <refer_feat> slot carries the feature of the region its box matched (the <region> after <rK>)
    embeds = inputs.inputs_embeds[0]
    region_slots = (ids == REGION).nonzero()[:, 0]
    feat_slots = (ids == REFER_FEAT).nonzero()[:, 0]
    torch.testing.assert_close(embeds[feat_slots[0]], embeds[region_slots[2]], rtol=0, atol=0)
    torch.testing.assert_close(embeds[feat_slots[1]], embeds[region_slots[0]], rtol=0, atol=0)
    assert not torch.equal(embeds[region_slots[2]], embeds[region_slots[0]])
    # the injected features are not the placeholder token embeddings
    table = model.get_input_embeddings().weight
    assert not torch.allclose(embeds[region_slots[0]], table[REGION])
    assert not torch.allclose(embeds[feat_slots[0]], table[REFER_FEAT])
    image_slots = (ids == IMAGE).nonzero()[:, 0]
    assert len(image_slots) == NUM_IMAGE_TOKENS
    assert not torch.allclose(embeds[image_slots[0]], table[IMAGE])
    # plain text positions keep their token embedding
    torch.testing.assert_close(embeds[0], table[BOS], rtol=0, atol=0)


def test_refer_boxes_join_the_proposals_first():
    model = make_model()  # random proposals score ~0.01 < 0.15: only the user boxes survive
    prompt = make_prompt(refer=2)
    refer = [cxcywh([0.7, 0.3, 0.2, 0.3], [0.3, 0.6, 0.3, 0.2])]
    with torch.no_grad():
        out = model(input_ids=prompt[None], pixel_values=pixels(1), refer_boxes=refer)
    torch.testing.assert_close(out.region_boxes[0], refer[0])
    torch.testing.assert_close(out.region_scores[0], torch.ones(2))
    ids = out.expanded_input_ids[0].tolist()
    assert ids[-8:] == [ROI_START, R0, ROI_END, REFER_FEAT, ROI_START, R0 + 1, ROI_END, REFER_FEAT]


def test_refer_feat_in_only_some_samples_of_a_batch():
    model = make_model()
    prompts = [make_prompt(refer=1, refer_feat=False), make_prompt(3, 1, 2, refer=1, seed=4)]
    ids, mask = pad_batch(prompts, "right")
    refer = [GRID[[3]], cxcywh([0.76, 0.24, 0.2, 0.2])]  # -> <r3> in sample 0, <r1> in sample 1
    with torch.no_grad():
        inputs = model.model.prepare_multimodal_inputs(
            ids, pixels(2), mask, refer_boxes=refer, region_boxes=[GRID, GRID]
        )
    assert (inputs.input_ids[0] == REFER_FEAT).sum() == 0
    assert R0 + 3 in inputs.input_ids[0].tolist()
    second = inputs.input_ids[1]
    feat_slot = int((second == REFER_FEAT).nonzero()[0, 0])
    assert second[feat_slot - 2] == R0 + 1
    region_slots = (second == REGION).nonzero()[:, 0]
    torch.testing.assert_close(
        inputs.inputs_embeds[1, feat_slot], inputs.inputs_embeds[1, region_slots[1]], rtol=0, atol=0
    )


def test_user_and_ground_truth_boxes_join_the_proposals():
    model = make_model()  # random proposals score ~0.01 < 0.15
    ids = torch.cat([make_prompt(refer=1), torch.tensor([GROUND_BOX, GROUND_BOX])])
    refer = [cxcywh([0.3, 0.3, 0.2, 0.2])]
    ground = [cxcywh([0.7, 0.7, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2])]  # the second overlaps the user box
    with torch.no_grad():
        out = model(input_ids=ids[None], pixel_values=pixels(1), refer_boxes=refer, ground_boxes=ground)
    torch.testing.assert_close(out.region_boxes[0], torch.cat([refer[0], ground[0][:1]]), rtol=0, atol=0)
    torch.testing.assert_close(out.region_scores[0], torch.tensor([1.0, 0.2]))
    # each <ground_box> points at its best-IoU region: the suppressed one at the user box's region
    assert out.expanded_input_ids[0, -2:].tolist() == [R0 + 1, R0]


def test_refer_box_without_refer_feat_and_nested_list_boxes():
    model = make_model()
    prompt = make_prompt(refer=1, refer_feat=False)
    with torch.no_grad():
        out = model(
            input_ids=prompt[None],
            pixel_values=pixels(1),
            refer_boxes=[[[0.74, 0.26, 0.2, 0.2]]],
            region_boxes=[GRID.tolist()],
        )
    assert out.expanded_input_ids[0, -3:].tolist() == [ROI_START, R0 + 1, ROI_END]


def test_labels_are_expanded_and_ground_boxes_replaced_where_supervised():
    model = make_model()
    before, question = text_ids(2), text_ids(3, 40)
    answer = [ROI_START, GROUND_BOX, ROI_END, 2]
    ids = torch.tensor([BOS, *before, IMAGE, 5, REGION, *question, GROUND_BOX, *answer])
    labels = ids.clone()
    prefix = 1 + len(before) + 3 + len(question) + 1  # everything up to the answer is not supervised
    labels[:prefix] = -100
    ground = [cxcywh([0.76, 0.25, 0.2, 0.18], [0.74, 0.75, 0.2, 0.22])]  # -> GRID[1] (question), GRID[3] (answer)
    with torch.no_grad():
        out = model(
            input_ids=ids[None],
            labels=labels[None],
            pixel_values=pixels(1),
            ground_boxes=ground,
            region_boxes=[GRID],
        )
    expected_ids = expanded_layout(before, [5], [*question, R0 + 1, ROI_START, R0 + 3, ROI_END, 2], 4)
    assert out.expanded_input_ids[0].tolist() == expected_ids
    expected_labels = [-100] * (len(expected_ids) - 4) + [ROI_START, R0 + 3, ROI_END, 2]
    assert out.expanded_labels[0].tolist() == expected_labels
    assert out.loss is not None and out.loss.ndim == 0


def test_labels_keep_supervised_text_and_ignore_image_and_region_slots():
    model = make_model()
    prompt = make_prompt(2, 3, 4)
    labels = prompt.clone()  # fully supervised, placeholders included
    short = torch.tensor([BOS, IMAGE, 9, REGION, 11])
    ids, mask = pad_batch([prompt, short], "right")
    label_batch, _ = pad_batch([labels, short.clone()], "right", value=-100)
    with torch.no_grad():
        out = model(
            input_ids=ids, attention_mask=mask, labels=label_batch, pixel_values=pixels(2), region_boxes=[GRID, GRID]
        )
    exp_ids = out.expanded_input_ids
    exp_labels = out.expanded_labels
    slots = (exp_ids == IMAGE) | (exp_ids == REGION) | ((exp_ids >= R0) & (exp_ids < R0 + 100))
    assert (exp_labels[slots] == -100).all()
    text = (exp_ids != PAD) & ~slots
    assert torch.equal(exp_labels[text], exp_ids[text])
    assert (exp_labels[out.expanded_attention_mask == 0] == -100).all()
    assert int(slots[0].sum()) == NUM_IMAGE_TOKENS + 8


def test_batch_forward_matches_single_forwards():
    model = make_model()
    prompts = [make_prompt(2, 2, 3), make_prompt(6, 2, 1, seed=4), make_prompt(1, 1, 1, seed=9)]
    region_boxes = [GRID[:2], GRID, GRID[[3]]]
    px = pixels(3)
    ids, mask = pad_batch(prompts, "left")
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask, pixel_values=px, region_boxes=region_boxes)
        for i, prompt in enumerate(prompts):
            single = model(input_ids=prompt[None], pixel_values=px[i : i + 1], region_boxes=region_boxes[i : i + 1])
            length = single.logits.shape[1]
            torch.testing.assert_close(batch.logits[i, :length], single.logits[0], atol=1e-5, rtol=1e-4)
            assert torch.equal(batch.expanded_input_ids[i, :length], single.expanded_input_ids[0])


def test_text_only_forward_is_the_plain_llm():
    model = make_model()
    ids = torch.tensor([[BOS, *text_ids(6)]])
    with torch.no_grad():
        out = model(input_ids=ids)
        reference = model.lm_head(model.model.language_model(input_ids=ids).last_hidden_state)
    torch.testing.assert_close(out.logits, reference, rtol=0, atol=0)
    assert out.region_boxes is None and out.expanded_input_ids is None


def test_logits_to_keep():
    model = make_model()
    with torch.no_grad():
        full = model(input_ids=make_prompt()[None], pixel_values=pixels(1), region_boxes=[GRID])
        last = model(input_ids=make_prompt()[None], pixel_values=pixels(1), region_boxes=[GRID], logits_to_keep=1)
    assert last.logits.shape == (1, 1, VOCAB)
    torch.testing.assert_close(last.logits[0, 0], full.logits[0, -1], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Save / load, Auto classes
# ---------------------------------------------------------------------------------------------------------------------


def _inputs():
    prompts = [make_prompt(2, 2, 3, refer=1), make_prompt(4, 1, 2, refer=1, seed=2)]
    ids, mask = pad_batch(prompts, "right")
    refer = [cxcywh([0.3, 0.4, 0.2, 0.2]), cxcywh([0.6, 0.6, 0.3, 0.2])]
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels(2), "refer_boxes": refer}


def _assert_same_state_dict(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_save_and_auto_class_round_trip(tmp_path):
    model = make_model(box_score_threshold=0.0)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "groma"
    assert config["architectures"] == ["GromaForConditionalGeneration"]

    loaded_config = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded_config) is GromaConfig
    assert type(loaded_config.proposer_config) is GromaRegionProposerConfig
    assert type(loaded_config.vision_config) is Dinov2Config
    assert type(loaded_config.text_config) is LlamaConfig

    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert type(loaded) is GromaForConditionalGeneration
    assert loaded.config.box_score_threshold == 0.0
    _assert_same_state_dict(model.state_dict(), loaded.state_dict())
    inputs = _inputs()
    with torch.no_grad():
        expected = model(**inputs)
        actual = loaded(**inputs)
    assert torch.equal(expected.logits, actual.logits)
    for a, b in zip(expected.region_boxes, actual.region_boxes):
        assert torch.equal(a, b)

    base = AutoModel.from_pretrained(tmp_path).eval()
    assert type(base) is GromaModel
    _assert_same_state_dict(model.model.state_dict(), base.state_dict())
    with torch.no_grad():
        hidden = base(**inputs).last_hidden_state
    assert torch.equal(model.lm_head(hidden), expected.logits)

    direct = GromaForConditionalGeneration.from_pretrained(tmp_path)
    _assert_same_state_dict(model.state_dict(), direct.state_dict())


def test_load_in_a_fresh_process(tmp_path):
    model = make_model(box_score_threshold=0.0)
    model.save_pretrained(tmp_path / "model")
    inputs = _inputs()
    torch.save(inputs, tmp_path / "inputs.pt")
    script = textwrap.dedent(
        f"""
        import torch
        import transformers_groma
        torch.set_num_threads(1)
        from transformers import AutoModelForImageTextToText
        model = AutoModelForImageTextToText.from_pretrained({str(tmp_path / "model")!r}).eval()
        assert type(model).__name__ == "GromaForConditionalGeneration", type(model)
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            out = model(**inputs)
        torch.save({{"logits": out.logits, "regions": out.region_boxes}}, {str(tmp_path / "out.pt")!r})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        expected = model(**inputs)
    torch.testing.assert_close(out["logits"], expected.logits, rtol=0, atol=1e-6)
    for a, b in zip(out["regions"], expected.region_boxes):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_return_dict_false_returns_a_tuple():
    model = make_model(box_score_threshold=0.0)
    inputs = _inputs()
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
        base = model.model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and isinstance(base, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.logits, rtol=0, atol=0)
    assert base[0].shape[:2] == as_dict.logits.shape[:2]


def test_malformed_ids_mask_and_labels_are_clear_errors():
    model = make_model()
    inputs = _inputs()
    with pytest.raises(ValueError, match="`input_ids` must be \\(batch, sequence_length\\)"):
        model(**{**inputs, "input_ids": inputs["input_ids"][0], "attention_mask": None})
    with pytest.raises(ValueError, match="`labels` must have the shape of `input_ids`"):
        model(**inputs, labels=inputs["input_ids"][:, :-1])
    with pytest.raises(ValueError, match="`attention_mask` must have the shape of `input_ids`"):
        model(**{**inputs, "attention_mask": inputs["attention_mask"][:, 1:]})


def _parameter_dtypes(model) -> dict[str, set[torch.dtype]]:
    """The dtypes of each top-level part of `model.model` (and of the LM head)."""
    dtypes = {}
    for name, parameter in model.named_parameters():
        part = name.split(".")[1] if name.startswith("model.") else name.split(".")[0]
        dtypes.setdefault(part, set()).add(parameter.dtype)
    return dtypes


def test_from_pretrained_bf16_keeps_the_vision_path_in_fp32(tmp_path):
    model = make_model(box_score_threshold=0.0)
    model.save_pretrained(tmp_path)
    loaded = GromaForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    fp32, bf16 = {torch.float32}, {torch.bfloat16}
    assert _parameter_dtypes(loaded) == {
        "vision_tower": fp32,
        "region_proposer": fp32,
        "region_encoder": fp32,
        "multi_modal_projector": bf16,
        "language_model": bf16,
        "lm_head": bf16,
    }
    assert loaded.dtype == torch.bfloat16  # the LLM's, used by generate for masks and caches
    inputs = _inputs()
    with torch.no_grad():
        expected, actual = model(**inputs), loaded(**inputs)
    assert actual.logits.dtype == torch.bfloat16
    for a, b in zip(actual.region_boxes, expected.region_boxes):  # same boxes as the float32 model, bit for bit
        assert torch.equal(a, b)
    generated = loaded.generate(**inputs, do_sample=False, max_new_tokens=3)
    assert generated.shape == (2, inputs["input_ids"].shape[1] + 3)


@pytest.mark.parametrize("keep", [True, False])
def test_cast_to_gives_the_dtypes_from_pretrained_loads(tmp_path, keep):
    make_model(keep_vision_path_fp32=keep).save_pretrained(tmp_path)
    loaded = GromaForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16)
    cast = make_model(keep_vision_path_fp32=keep).cast_to(torch.bfloat16)
    assert {n: p.dtype for n, p in cast.named_parameters()} == {n: p.dtype for n, p in loaded.named_parameters()}


def test_from_pretrained_bf16_casts_everything_without_keep_vision_path_fp32(tmp_path):
    make_model(keep_vision_path_fp32=False).save_pretrained(tmp_path)
    loaded = GromaForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert set().union(*_parameter_dtypes(loaded).values()) == {torch.bfloat16}
    assert loaded.dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------------------------------
# Attention backends
# ---------------------------------------------------------------------------------------------------------------------


def _attn_implementations(model):
    return {
        "top": model.config._attn_implementation,
        "vision": model.model.vision_tower.config._attn_implementation,
        "text": model.model.language_model.config._attn_implementation,
        "proposer": model.model.region_proposer.config._attn_implementation,
    }


def test_sdpa_is_the_default_and_matches_eager():
    model = make_model(box_score_threshold=0.0)
    assert set(_attn_implementations(model).values()) == {"sdpa"}
    inputs = _inputs()
    with torch.no_grad():
        sdpa = model(**inputs)
        model.set_attn_implementation("eager")
        assert set(_attn_implementations(model).values()) == {"eager"}
        eager = model(**inputs)
    assert torch.equal(sdpa.expanded_attention_mask, eager.expanded_attention_mask)
    real = sdpa.expanded_attention_mask.bool()
    torch.testing.assert_close(eager.logits[real], sdpa.logits[real], rtol=0, atol=1e-5)


def test_attention_dict_per_sub_config():
    config = tiny_groma_config()
    per_config = {"text_config": "eager", "vision_config": "sdpa", "proposer_config": "eager", "": "sdpa"}
    model = GromaForConditionalGeneration._from_config(config, attn_implementation=per_config).eval()
    assert _attn_implementations(model) == {"top": "sdpa", "vision": "sdpa", "text": "eager", "proposer": "eager"}
    reference = GromaForConditionalGeneration._from_config(tiny_groma_config(), attn_implementation="sdpa").eval()
    reference.load_state_dict(model.state_dict())
    inputs = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference(**inputs).logits, rtol=0, atol=1e-5)
    model.set_attn_implementation({"vision_config": "eager"})
    assert _attn_implementations(model) == {"top": "sdpa", "vision": "eager", "text": "eager", "proposer": "eager"}


def test_attn_implementation_at_from_pretrained(tmp_path):
    make_model().save_pretrained(tmp_path)
    eager = GromaForConditionalGeneration.from_pretrained(tmp_path, attn_implementation="eager")
    assert set(_attn_implementations(eager).values()) == {"eager"}
    mixed = GromaForConditionalGeneration.from_pretrained(
        tmp_path, attn_implementation={"text_config": "eager", "vision_config": "sdpa", "": "sdpa"}
    )
    assert _attn_implementations(mixed)["text"] == "eager"
    assert _attn_implementations(mixed)["vision"] == "sdpa"


# ---------------------------------------------------------------------------------------------------------------------
# Loss, gradients, activation checkpointing
# ---------------------------------------------------------------------------------------------------------------------


def _training_batch():
    prompts = [make_prompt(2, 2, 5, refer=1), make_prompt(3, 1, 3, refer=1, seed=6)]
    labels = []
    for prompt in prompts:
        label = prompt.clone()
        label[: int((prompt == REGION).nonzero()[0, 0]) + 1] = -100  # supervise the text after <region>
        labels.append(label)
    ids, mask = pad_batch(prompts, "right")
    label_batch, _ = pad_batch(labels, "right", value=-100)
    refer = [cxcywh([0.3, 0.3, 0.2, 0.2]), cxcywh([0.6, 0.5, 0.2, 0.3])]
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": label_batch,
        "pixel_values": pixels(2),
        "refer_boxes": refer,
    }


def test_loss_is_the_shifted_cross_entropy_over_expanded_labels():
    model = make_model(box_score_threshold=0.0)
    with torch.no_grad():
        out = model(**_training_batch())
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    shift_logits = out.logits[:, :-1].reshape(-1, VOCAB)
    shift_labels = out.expanded_labels[:, 1:].reshape(-1)
    expected = F.cross_entropy(shift_logits.float(), shift_labels, ignore_index=-100)
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=1e-6)
    # a random 1114-way model is close to uniform
    assert abs(out.loss.item() - torch.log(torch.tensor(float(VOCAB))).item()) < 1.0


def test_backward_reaches_exactly_the_unfrozen_parts():
    model = make_model(box_score_threshold=0.0)
    model.model.vision_tower.requires_grad_(False)
    model.model.region_proposer.requires_grad_(False)
    model.train()
    model.model.region_proposer.config.dropout = 0.0
    model(**_training_batch()).loss.backward()
    for name, module in [("vision_tower", model.model.vision_tower), ("region_proposer", model.model.region_proposer)]:
        assert all(p.grad is None for p in module.parameters()), name
    trained = {
        "multi_modal_projector": model.model.multi_modal_projector,
        "region_encoder": model.model.region_encoder,
        "language_model": model.model.language_model,
        "lm_head": model.lm_head,
    }
    for name, module in trained.items():
        for param_name, param in module.named_parameters():
            assert param.grad is not None, f"{name}.{param_name}"
            assert torch.isfinite(param.grad).all(), f"{name}.{param_name}"
        assert sum(p.grad.abs().sum() for p in module.parameters()) > 0, name
    # every region-encoder and projector weight is used
    for name in ("multi_modal_projector", "region_encoder"):
        for param_name, param in trained[name].named_parameters():
            assert param.grad.abs().sum() > 0, f"{name}.{param_name}"


def test_backward_without_freezing_reaches_the_vision_tower():
    model = make_model(box_score_threshold=0.0)
    model(**_training_batch()).loss.backward()
    assert model.model.vision_tower.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0


def test_region_selection_is_not_differentiable():
    model = make_model(box_score_threshold=0.0)
    out = model(**_training_batch())
    assert not any(boxes.requires_grad for boxes in out.region_boxes)
    out.loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.model.region_proposer.parameters())


def _checkpointing_model():
    model = make_model(box_score_threshold=0.0, proposer_config=proposer_overrides(**NO_DROPOUT))
    model.train()
    return model


@pytest.mark.parametrize("method", ["activation_checkpointing_enable", "gradient_checkpointing_enable"])
def test_activation_checkpointing_gives_the_same_loss_and_grads(method):
    batch = _training_batch()
    plain = _checkpointing_model()
    plain_loss = plain(**batch).loss
    plain_loss.backward()

    model = _checkpointing_model()
    with pytest.warns(FutureWarning) if method == "gradient_checkpointing_enable" else contextlib.nullcontext():
        getattr(model, method)()
    assert model.is_gradient_checkpointing
    calls = []
    # hooks on the checkpointed layer itself stay outside the checkpoint; its MLP is inside and runs again
    model.model.language_model.layers[0].mlp.register_forward_pre_hook(lambda *args: calls.append(1))
    loss = model(**batch).loss
    assert len(calls) == 1
    loss.backward()
    assert len(calls) == 2  # the layer was recomputed during backward: checkpointing is really on
    torch.testing.assert_close(loss, plain_loss, rtol=1e-6, atol=1e-6)
    for (name, param), ref in zip(model.named_parameters(), plain.parameters()):
        if ref.grad is None:
            assert param.grad is None, name
        else:
            torch.testing.assert_close(param.grad, ref.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_training_mode_does_not_build_a_cache_with_checkpointing():
    model = _checkpointing_model()
    model.activation_checkpointing_enable()
    out = model(**_training_batch())
    assert output_cache(out) is None


# ---------------------------------------------------------------------------------------------------------------------
# Determinism and region order
# ---------------------------------------------------------------------------------------------------------------------


def test_two_forward_runs_are_identical():
    model = make_model(box_score_threshold=0.0)
    inputs = _inputs()
    with torch.no_grad():
        first, second = model(**inputs), model(**inputs)
    assert torch.equal(first.logits, second.logits)
    for a, b in zip(first.region_boxes, second.region_boxes):
        assert torch.equal(a, b)


def test_shuffle_regions_permutes_in_training_only():
    model = make_model(box_score_threshold=0.0, shuffle_regions=True, proposer_config=proposer_overrides(**NO_DROPOUT))
    inputs = {"input_ids": make_prompt()[None], "pixel_values": pixels(1)}
    with torch.no_grad():
        ordered = model(**inputs)
        torch.manual_seed(1)
        ordered_again = model(**inputs)
        model.train()
        torch.manual_seed(1)
        shuffled_a = model(**inputs)
        torch.manual_seed(1)
        shuffled_b = model(**inputs)
        torch.manual_seed(2)
        shuffled_c = model(**inputs)
    scores = ordered.region_scores[0]
    assert len(scores) == 8
    assert (scores[:-1] >= scores[1:]).all()
    assert torch.equal(ordered.region_boxes[0], ordered_again.region_boxes[0])
    assert torch.equal(shuffled_a.region_boxes[0], shuffled_b.region_boxes[0])
    assert not torch.equal(shuffled_a.region_boxes[0], ordered.region_boxes[0])
    assert not torch.equal(shuffled_a.region_boxes[0], shuffled_c.region_boxes[0])
    perm = torch.cdist(shuffled_a.region_boxes[0], ordered.region_boxes[0]).argmin(1)
    assert sorted(perm.tolist()) == list(range(8))
    torch.testing.assert_close(shuffled_a.region_boxes[0], ordered.region_boxes[0][perm], rtol=0, atol=0)
    torch.testing.assert_close(shuffled_a.region_scores[0], scores[perm], rtol=0, atol=0)
    # the region tokens follow the new order: same set of region features, different logits
    assert not torch.allclose(shuffled_a.logits, ordered.logits)


def test_no_shuffle_in_training_when_disabled():
    model = make_model(box_score_threshold=0.0, proposer_config=proposer_overrides(**NO_DROPOUT))
    inputs = {"input_ids": make_prompt()[None], "pixel_values": pixels(1)}
    with torch.no_grad():
        ordered = model(**inputs)
        model.train()
        trained = model(**inputs)
    torch.testing.assert_close(trained.region_boxes[0], ordered.region_boxes[0], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Input errors
# ---------------------------------------------------------------------------------------------------------------------


def _run(model, prompts, **kwargs):
    if isinstance(prompts, torch.Tensor):
        prompts = [prompts]
    ids, mask = pad_batch(prompts, "right")
    kwargs.setdefault("pixel_values", pixels(len(prompts)))
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, **kwargs)


@pytest.fixture(scope="module")
def model():
    return make_model()


ONE_BOX = [cxcywh([0.5, 0.5, 0.2, 0.2])]


@pytest.mark.parametrize(
    ("prompt", "match"),
    [
        (torch.tensor([BOS, 5, REGION, 6]), "exactly one <image>"),
        (torch.tensor([BOS, IMAGE, 5, IMAGE, REGION, 6]), "exactly one <image>"),
        (torch.tensor([BOS, IMAGE, 5, 6]), "one <region>"),
        (torch.tensor([BOS, IMAGE, REGION, REGION, 6]), "one <region>"),
        (torch.tensor([BOS, REGION, 5, IMAGE, 6]), "<image> must come before <region>"),
    ],
)
def test_placeholder_errors(model, prompt, match):
    with pytest.raises(ValueError, match=match):
        _run(model, prompt)


def test_placeholder_error_names_the_sample(model):
    with pytest.raises(ValueError, match="Sample 1"):
        _run(model, [make_prompt(), torch.tensor([BOS, IMAGE, 5, 6])])


def test_refer_box_count_mismatch(model):
    with pytest.raises(ValueError, match=r"refer_boxes"):
        _run(model, make_prompt(refer=2), refer_boxes=ONE_BOX)
    with pytest.raises(ValueError, match=r"refer_boxes"):
        _run(model, make_prompt(refer=1, refer_feat=False), refer_boxes=[cxcywh([0.5, 0.5, 0.2, 0.2], [0.3] * 4)])
    with pytest.raises(ValueError, match=r"refer_boxes"):
        _run(model, make_prompt(refer=1))  # placeholder but no boxes


def test_refer_feat_count_mismatch(model):
    prompt = torch.cat([make_prompt(refer=1), torch.tensor([REFER_FEAT])])  # 2 <refer_feat>, 1 box
    with pytest.raises(ValueError, match="<refer_feat>"):
        _run(model, prompt, refer_boxes=ONE_BOX)


def test_ground_box_count_mismatch(model):
    prompt = torch.cat([make_prompt(), torch.tensor([GROUND_BOX, GROUND_BOX])])
    with pytest.raises(ValueError, match="ground_boxes"):
        _run(model, prompt, ground_boxes=ONE_BOX)


@pytest.mark.parametrize(
    ("boxes", "match"),
    [
        ([cxcywh([0.9, 0.5, 0.4, 0.2])], "outside the image"),
        ([cxcywh([0.5, 0.5, 1.2, 0.2])], "outside the image"),
        ([cxcywh([-0.1, 0.5, 0.1, 0.1])], "outside the image"),
        ([cxcywh([0.5, 0.5, 0.0, 0.2])], "w > 0 and h > 0"),
        ([cxcywh([0.5, float("nan"), 0.1, 0.2])], "finite"),
        ([torch.tensor([0.5, 0.5, 0.2])], r"shape \(n, 4\)"),
        ([torch.rand(1, 1, 4)], r"shape \(n, 4\)"),
        ([torch.rand(2, 5)], r"shape \(n, 4\)"),
        ([ONE_BOX[0], ONE_BOX[0]], "2 entries for a batch of 1"),
    ],
)
def test_bad_refer_boxes(model, boxes, match):
    with pytest.raises(ValueError, match=match):
        _run(model, make_prompt(refer=1), refer_boxes=boxes)


def test_boxes_must_be_a_list(model):
    with pytest.raises(TypeError, match="must be a list"):
        _run(model, make_prompt(refer=1), refer_boxes=torch.tensor([[[0.5, 0.5, 0.2, 0.2]]]))
    with pytest.raises(TypeError, match="region_boxes"):
        _run(model, make_prompt(), region_boxes=GRID)


def test_more_user_boxes_than_max_region_num(model):
    boxes = torch.tensor([[0.5, 0.5, 0.1, 0.1]]).repeat(9, 1)  # tiny max_region_num = 8
    with pytest.raises(ValueError, match="max_region_num"):
        _run(model, make_prompt(refer=9), refer_boxes=[boxes])
    with pytest.raises(ValueError, match="max_region_num"):
        _run(model, make_prompt(), region_boxes=[boxes])


def test_empty_region_boxes_rejected(model):
    with pytest.raises(ValueError, match="empty"):
        _run(model, make_prompt(), region_boxes=[torch.zeros(0, 4)])


def test_image_count_must_match_prompt_count(model):
    with pytest.raises(ValueError, match="2 images for 1 prompts"):
        _run(model, make_prompt(), pixel_values=pixels(2))


def test_pixel_values_shape(model):
    with pytest.raises(ValueError, match="pixel_values"):
        _run(model, make_prompt(), pixel_values=pixels(1)[:, :1])


def test_image_placeholder_without_pixel_values(model):
    with pytest.raises(ValueError, match="pixel_values"):
        _run(model, make_prompt(), pixel_values=None)


@pytest.mark.parametrize("name", ["refer_boxes", "ground_boxes", "region_boxes"])
def test_boxes_without_pixel_values(model, name):
    with pytest.raises(ValueError, match="need `pixel_values`"):
        _run(model, torch.tensor([BOS, 5, 6]), pixel_values=None, **{name: ONE_BOX})


def test_exactly_one_of_input_ids_and_inputs_embeds(model):
    ids = torch.tensor([[BOS, 5, 6]])
    embeds = model.get_input_embeddings()(ids)
    with torch.no_grad():
        with pytest.raises(ValueError, match="exactly one of `input_ids` and `inputs_embeds`"):
            model(input_ids=ids, inputs_embeds=embeds)
        with pytest.raises(ValueError, match="exactly one of `input_ids` and `inputs_embeds`"):
            model(attention_mask=torch.ones(1, 3))
        # with pixel_values, the placeholders are read from the embeddings: these have none
        with pytest.raises(ValueError, match="exactly one <image>"):
            model(inputs_embeds=embeds, pixel_values=pixels(1))
        # text-only inputs_embeds is fine and equals the ids path
        torch.testing.assert_close(model(inputs_embeds=embeds).logits, model(input_ids=ids).logits)


def test_padding_free_batch_matches_the_padded_batch():
    model = make_model(box_score_threshold=0.0)
    batch = _training_batch()
    with torch.no_grad():
        padded = model(**batch, use_cache=False)
        packed = model(**batch, padding_free=True)
    real = padded.expanded_attention_mask.bool()
    assert packed.logits.shape == (1, int(real.sum()), padded.logits.shape[-1])
    torch.testing.assert_close(packed.logits[0], padded.logits[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed.loss, padded.loss)
    assert torch.equal(packed.expanded_input_ids[0], padded.expanded_input_ids[real])
    assert output_cache(packed) is None


def test_padding_free_needs_pixel_values():
    model = make_model()
    with pytest.raises(ValueError, match="padding_free"):
        model(input_ids=torch.tensor([[1, 5, 6]]), padding_free=True)
