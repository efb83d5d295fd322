"""The key table covers the full-size released checkpoints (key/shape manifests of the fixture) completely."""

import json

import pytest
import torch

from transformers_groma import GromaForConditionalGeneration, GromaForRegionProposal
from transformers_groma.conversion import convert_config, convert_key, convert_state_dict
from transformers_groma.conversion.convert_groma_to_hf import infer_region_sizes

from ..fixtures import GROMA_FIXTURE, requires_groma_fixture


def read_manifest(name):
    """Original state dict as meta tensors of the manifest's shapes."""
    lines = (GROMA_FIXTURE / name).read_text().splitlines()[1:]
    return {
        key: torch.empty(json.loads(shape), device="meta") for key, shape, _ in (line.split("\t") for line in lines)
    }


@requires_groma_fixture
@pytest.mark.parametrize(
    ("manifest", "config_file", "model_class", "prefix"),
    [
        ("groma-7b-state-dict.tsv", "groma-7b-config.json", GromaForConditionalGeneration, "model."),
        ("ddetr-pretrain-state-dict.tsv", "ddetr-pretrain-config.json", GromaForRegionProposal, ""),
    ],
)
def test_manifest_fully_mapped_with_identical_shapes(manifest, config_file, model_class, prefix):
    original = read_manifest(manifest)
    config = convert_config(json.loads((GROMA_FIXTURE / config_file).read_text()), infer_region_sizes(original))
    converted = convert_state_dict(original, prefix=prefix)
    with torch.device("meta"):
        native = model_class(config).state_dict()
    assert set(converted) == set(native), (
        sorted(set(native) - set(converted))[:5],
        sorted(set(converted) - set(native))[:5],
    )
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in native.items()}


@requires_groma_fixture
def test_7b_config_translates_to_released_numbers():
    config = convert_config(json.loads((GROMA_FIXTURE / "groma-7b-config.json").read_text()))
    assert config.text_config.vocab_size == 32114
    assert (config.pad_token_id, config.image_token_id, config.region_index_token_id) == (32000, 32008, 32014)
    assert config.vision_config.hidden_size == 1024 and config.vision_config.num_hidden_layers == 24
    assert config.proposer_config.num_queries == 300 and config.proposer_config.d_model == 256
    assert (config.nms_threshold, config.box_score_threshold, config.max_region_num) == (0.6, 0.15, 100)
    assert config.text_config.rms_norm_eps == 1e-5


def test_rules_rename_representative_keys():
    cases = {
        "perceiver.vis_encoder.encoder.layer.3.attention.attention.query.weight": "vision_tower.encoder.layer.3.attention.q_proj.weight",
        "perceiver.vis_encoder.encoder.layer.3.attention.output.dense.bias": "vision_tower.encoder.layer.3.attention.o_proj.bias",
        "perceiver.vis_encoder.encoder.layer.3.mlp.fc1.weight": "vision_tower.encoder.layer.3.mlp.fc1.weight",
        "perceiver.input_proj.0.1.weight": "region_proposer.input_norm.weight",
        "perceiver.ddetr_transformer.decoder.layers.1.self_attn.out_proj.weight": "region_proposer.decoder_layers.1.self_attn.o_proj.weight",
        "perceiver.ddetr_transformer.encoder.layers.0.fc2.bias": "region_proposer.encoder_layers.0.mlp.fc2.bias",
        "perceiver.ddetr_transformer.decoder.bbox_embed.6.layers.2.weight": "region_proposer.bbox_heads.6.layers.2.weight",
        "ddetr_transformer.class_embed_sa1b.5.bias": "region_proposer.sa1b_class_heads.5.bias",
        "region_encoder.mlvl_fuse.fuse_convs.4.gn.weight": "region_encoder.fusion.fuse_blocks.4.norm.weight",
        "region_encoder.roi_align.updims.weight": "region_encoder.output_proj.weight",
        "img_txt_bridge.2.bias": "multi_modal_projector.linear_2.bias",
        "llm.model.layers.0.self_attn.q_proj.weight": "language_model.layers.0.self_attn.q_proj.weight",
    }
    assert {key: convert_key(key) for key in cases} == cases
    assert convert_key("some.unknown.weight") is None


def test_vocabulary_parts_are_concatenated_and_aliases_deduplicated():
    original = {
        "llm.model.embed_tokens.weight": torch.zeros(3, 2),
        "new_input_embs.weight": torch.ones(2, 2),
        "llm.lm_head.weight": torch.full((3, 2), 2.0),
        "extra_lm_head.weight": torch.full((2, 2), 3.0),
        "perceiver.ddetr_transformer.bbox_embed.0.layers.0.bias": torch.arange(4.0),
        "perceiver.ddetr_transformer.decoder.bbox_embed.0.layers.0.bias": torch.arange(4.0),
    }
    converted = convert_state_dict(original)
    assert torch.equal(
        converted["model.language_model.embed_tokens.weight"], torch.tensor([[0.0, 0], [0, 0], [0, 0], [1, 1], [1, 1]])
    )
    assert converted["lm_head.weight"][:, 0].tolist() == [2, 2, 2, 3, 3]
    assert list(converted) == [
        "model.language_model.embed_tokens.weight",
        "lm_head.weight",
        "model.region_proposer.bbox_heads.0.layers.0.bias",
    ]


def test_unmapped_and_inconsistent_keys_fail_loudly():
    with pytest.raises(KeyError, match="no native name"):
        convert_state_dict({"perceiver.mystery.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="different tensors"):
        convert_state_dict(
            {
                "perceiver.ddetr_transformer.bbox_embed.0.layers.0.bias": torch.zeros(4),
                "perceiver.ddetr_transformer.decoder.bbox_embed.0.layers.0.bias": torch.ones(4),
            }
        )
