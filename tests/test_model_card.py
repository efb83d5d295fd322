"""Model cards: licence chain, `base_model` with its Hub organisation, datasets, tags, model-index, legacy flags,
citation, and no empty "fine-tuned version of []()" link. (`tests/test_remote_code.py` runs their snippets.)"""

import pytest
from huggingface_hub import ModelCard

from transformers_groma.model_card import build_model_card, hub_id_of, write_model_card
from transformers_groma.tiny import tiny_groma_config, tiny_groundinggpt_config


def groma_config(architecture: str = "GromaForConditionalGeneration", **overrides):
    config = tiny_groma_config(**overrides)
    config.architectures = [architecture]
    return config


REFCOCO = {
    "task_type": "image-text-to-text",
    "dataset_type": "lmms-lab/RefCOCO",
    "dataset_name": "RefCOCO val",
    "metric_type": "accuracy",
    "metric_name": "REC accuracy (IoU > 0.5)",
    "metric_value": 0.891,
}


def test_converted_chat_card(tmp_path):
    path = write_model_card(
        tmp_path, groma_config(), "converted", source="FoundationVision/groma-7b-finetune", repo_id="me/groma-7b"
    )
    card = ModelCard.load(path)
    assert card.data.license == "llama2"  # Vicuna-7B v1.5 -> Llama 2
    assert card.data.base_model == "FoundationVision/groma-7b-finetune"
    assert card.data.pipeline_tag == "image-text-to-text" and card.data.library_name == "transformers"
    assert "FoundationVision/groma_instruct" in card.data.datasets
    assert {"transformers-groma", "custom_code", "groma"} <= set(card.data.tags)
    assert card.data.eval_results is None  # no numbers, no model-index
    assert "Llama 2 Community License" in card.text and "@article{ma2024groma" in card.text
    assert "| `legacy_roi_box_format` | True |" in card.text
    assert "| `proposer_config.legacy_learned_query_content` | True |" in card.text
    assert 'repo = "me/groma-7b"' in card.text and "trust_remote_code=True" in card.text
    assert "[](" not in card.text


def test_legacy_flags_show_their_values():
    card = build_model_card(groma_config(legacy_roi_box_format=False), "trained")
    assert "| `legacy_roi_box_format` | False |" in card.text


def test_evaluation_results_make_a_model_index():
    card = build_model_card(
        groma_config(), "converted", source="FoundationVision/groma-7b-finetune", eval_results=[REFCOCO]
    )
    (result,) = card.data.eval_results
    assert (result.dataset_type, result.metric_value) == ("lmms-lab/RefCOCO", 0.891)
    assert "model-index:" in card.content and "| RefCOCO val | REC accuracy (IoU > 0.5) | 0.891 |" in card.text


def test_detector_and_groundinggpt_cards():
    detector = build_model_card(groma_config("GromaForRegionProposal"), "converted", source="x/groma-det-pretrain")
    assert detector.data.license == "apache-2.0" and detector.data.pipeline_tag == "object-detection"
    assert detector.data.base_model == "x/groma-det-pretrain" and detector.data.datasets is None
    groundinggpt = build_model_card(tiny_groundinggpt_config(), "converted", source="zwli/GroundingGPT")
    assert groundinggpt.data.license == "llama2" and groundinggpt.data.datasets == ["zwli/GroundingGPT"]
    assert "@inproceedings{li2024groundinggpt" in groundinggpt.text and "legacy_" not in groundinggpt.text


def test_trained_from_a_local_folder_names_it_without_a_link(tmp_path):
    folder = tmp_path / "my-converted-groma"
    folder.mkdir()
    card = build_model_card(groma_config(), "trained", source=folder, details="Training data: refcoco, custom.")
    assert card.data.base_model is None
    assert "trained from `my-converted-groma`" in card.text and "[](" not in card.text
    assert str(tmp_path) not in card.text  # no local paths
    assert "Training data: refcoco, custom." in card.text


def test_lora_adapter_card_names_its_base():
    card = build_model_card(groma_config(), "adapter", source="me/groma-7b", repo_id="me/groma-7b-lora")
    assert card.data.base_model == "me/groma-7b" and card.data.base_model_relation == "adapter"
    assert {"lora", "peft"} <= set(card.data.tags)
    assert (
        'from_pretrained("me/groma-7b"' in card.text
        and 'PeftModel.from_pretrained(base, "me/groma-7b-lora")' in card.text
    )
    assert "[](" not in card.text


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("FoundationVision/groma-7b-finetune", "FoundationVision/groma-7b-finetune"),
        (
            "/cache/hub/models--FoundationVision--groma-7b-pretrain/snapshots/0a1b2c",
            "FoundationVision/groma-7b-pretrain",
        ),
        (None, None),
    ],
)
def test_hub_ids_keep_their_organisation(source, expected):
    assert hub_id_of(source) == expected


def test_a_local_folder_named_like_a_release_maps_to_it(tmp_path):
    (tmp_path / "groma-7b-finetune").mkdir()
    (tmp_path / "my-model").mkdir()
    assert hub_id_of(tmp_path / "groma-7b-finetune") == "FoundationVision/groma-7b-finetune"
    assert hub_id_of(tmp_path / "my-model") is None


def test_unknown_model_type_is_rejected():
    config = tiny_groma_config()
    config.model_type = "llava"
    with pytest.raises(ValueError, match="Groma and GroundingGPT"):
        build_model_card(config, "trained")
