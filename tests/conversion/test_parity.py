"""Numerical parity of the converted fixture checkpoint with the outputs the ORIGINAL Groma produced.

The fixture (`shared/fixtures/groma_reference`) holds a tiny checkpoint in the original format, its inputs and the
original's outputs (see its README). Tolerances follow the fixture README: integers exact, floats atol=rtol=1e-4.
"""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

import transformers_groma  # noqa: F401  (registers the Auto classes)
from transformers_groma.conversion import convert_checkpoint
from transformers_groma.tokens import IGNORE_INDEX

from ..fixtures import GROMA_FIXTURE, requires_groma_fixture


pytestmark = requires_groma_fixture
ATOL = RTOL = 1e-4


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("native") / "groma-tiny"
    spec = json.loads((GROMA_FIXTURE / "meta.json").read_text())["spec"]
    convert_checkpoint(
        GROMA_FIXTURE,
        output_dir,
        image_size=spec["image_size"],
        overrides={"region_fuse_groups": spec["region"]["gn_groups"]},
    )
    torch.set_num_threads(1)
    model = AutoModelForImageTextToText.from_pretrained(output_dir).eval()
    processor = AutoProcessor.from_pretrained(output_dir)
    return model, processor


@pytest.fixture(scope="module")
def inputs():
    return load_file(GROMA_FIXTURE / "inputs.safetensors")


@pytest.fixture(scope="module")
def expected():
    return load_file(GROMA_FIXTURE / "expected.safetensors")


def boxes(inputs, prefix):
    return [inputs[f"{prefix}.0"], inputs[f"{prefix}.1"]]


def processor_token_id(converted, token):
    return converted[1].tokenizer.convert_tokens_to_ids(token)


def assert_close(actual, expected, **kwargs):
    torch.testing.assert_close(actual.float(), expected.float(), atol=ATOL, rtol=RTOL, **kwargs)


def test_tokenizer_reproduces_original_ids(converted, inputs):
    _, processor = converted
    prompts = json.loads((GROMA_FIXTURE / "meta.json").read_text())["prompts"]
    for i, prompt in enumerate(prompts):
        real = inputs["attention_mask"][i].bool()
        assert processor.tokenizer(prompt)["input_ids"] == inputs["input_ids"][i][real].tolist()


def test_vision_and_proposer_match_original(converted, inputs, expected):
    model, _ = converted
    with torch.no_grad():
        vision_states, grid = model.model.encode_image(inputs["pixel_values"])
        proposals = model.model.get_region_proposals(vision_states, grid)
        image_features = model.model.project_image_features(vision_states, grid)
    assert_close(torch.stack(vision_states), expected["dinov2_hidden_states"])
    assert_close(image_features, expected["image_features_projected"])
    assert_close(proposals.encoder_last_hidden_state, expected["proposer_encoder_last_hidden_state"])
    assert_close(proposals.init_reference_points, expected["proposer_init_reference_points"])
    assert_close(proposals.intermediate_reference_points, expected["proposer_intermediate_reference_points"])
    assert_close(proposals.pred_boxes, expected["proposer_pred_boxes"])
    assert_close(proposals.logits_coco, expected["proposer_logits_coco"])
    assert_close(proposals.logits_sa1b, expected["proposer_logits_sa1b"])
    assert_close(proposals.scores, expected["proposer_scores_fused"])


def test_inference_forward_matches_original(converted, inputs, expected):
    model, _ = converted
    with torch.no_grad():
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=inputs["pixel_values"],
            refer_boxes=boxes(inputs, "refer_boxes"),
        )
    for i in range(2):  # same regions in the same (score-descending) order as the original with shuffling off
        assert_close(out.region_boxes[i], expected[f"selected_boxes.{i}"])
    assert [len(b) for b in out.region_boxes] == expected["region_counts"].tolist()
    assert torch.equal(out.expanded_input_ids, expected["expanded_input_ids"])
    assert torch.equal(out.expanded_attention_mask.bool(), expected["expanded_attention_mask"])
    assert_close(out.logits, expected["logits"])
    # sample 0's <refer_box> (the token after its <roi>) became <rK> of the region the original matched
    roi_start = processor_token_id(converted, "<roi>")
    after_roi = out.expanded_input_ids[0][(out.expanded_input_ids[0] == roi_start).nonzero()[:, 0] + 1]
    assert after_roi.tolist() == (model.config.region_index_token_id + expected["refer_box_inds.0"]).tolist()


def test_region_features_match_original(converted, inputs, expected):
    model, _ = converted
    selected = [expected["selected_boxes.0"], expected["selected_boxes.1"]]
    with torch.no_grad():
        vision_states, grid = model.model.encode_image(inputs["pixel_values"])
        features = model.model.get_region_features(
            vision_states, grid, selected, tuple(inputs["pixel_values"].shape[-2:])
        )
    assert_close(torch.cat(features), expected["region_features"])


def test_training_forward_matches_original(converted, inputs, expected):
    model, _ = converted
    with torch.no_grad():
        out = model(
            input_ids=inputs["train_input_ids"],
            attention_mask=inputs["train_attention_mask"],
            pixel_values=inputs["pixel_values"],
            refer_boxes=boxes(inputs, "train_refer_boxes"),
            ground_boxes=boxes(inputs, "train_ground_boxes"),
            labels=inputs["train_labels"],
        )
    for i in range(2):
        assert_close(out.region_boxes[i], expected[f"train.selected_boxes.{i}"])
    assert torch.equal(out.expanded_input_ids, expected["train.expanded_input_ids"])
    assert torch.equal(out.expanded_labels[:, 1:], expected["train.shift_labels"])
    assert_close(out.logits, expected["train.logits"])
    assert_close(out.loss, expected["train.loss"])
    # the caller's tensors are not modified in place (the original overwrote them)
    assert (inputs["train_input_ids"] == model.config.ground_box_token_id).sum() == 2
    assert (out.expanded_labels == IGNORE_INDEX).sum() > 0


def left_padded(input_ids, attention_mask, pad_token_id):
    """The same prompts, padded on the left instead of the right."""
    rows = [row[mask.bool()] for row, mask in zip(input_ids, attention_mask)]
    width = input_ids.shape[1]
    padded = torch.stack([torch.cat([row.new_full((width - len(row),), pad_token_id), row]) for row in rows])
    mask = torch.stack([torch.arange(width) >= width - len(row) for row in rows]).long()
    return padded, mask


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_greedy_generation_matches_original_single_sample_runs(converted, inputs, expected, padding_side):
    """Batched generation equals the original's batch-size-1 runs (the original's batched mode was broken)."""
    model, _ = converted
    input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
    if padding_side == "left":
        input_ids, attention_mask = left_padded(input_ids, attention_mask, model.config.pad_token_id)
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        pixel_values=inputs["pixel_values"],
        refer_boxes=boxes(inputs, "refer_boxes"),
        do_sample=False,
        max_new_tokens=8,
        return_dict_in_generate=True,
        output_scores=True,
    )
    assert torch.equal(out.sequences[:, : input_ids.shape[1]], input_ids)
    new_tokens = out.sequences[:, input_ids.shape[1] :]
    for i in range(2):
        assert new_tokens[i].tolist() == expected[f"generate_single.{i}.sequences"][0, -8:].tolist()
        assert_close(out.region_boxes[i], expected[f"generate_single.{i}.selected_boxes"])
        assert_close(torch.stack(out.scores)[:, i], expected[f"generate_single.{i}.scores"][:, 0])
