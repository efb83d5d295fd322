"""GromaConfig / GromaRegionProposerConfig: released defaults, round trips, strict typing and validation."""

import pytest
from huggingface_hub.errors import (
    StrictDataclassClassValidationError,
    StrictDataclassError,
    StrictDataclassFieldValidationError,
)
from transformers import AutoConfig, Dinov2Config, LlamaConfig

from transformers_groma import GromaConfig, GromaRegionProposerConfig
from transformers_groma.tiny import tiny_groma_config


# Released Groma-7B (groma-spec §1.3, §1.5.1, §1.6, §1.7, §1.8.1, §5.2).
RELEASED_TOKEN_IDS = {
    "pad_token_id": 32000,
    "image_token_id": 32008,
    "region_token_id": 32009,
    "refer_box_token_id": 32010,
    "ground_box_token_id": 32011,
    "refer_feat_token_id": 32012,
    "region_index_token_id": 32014,
}


def test_defaults_are_the_released_groma_7b():
    config = GromaConfig()
    assert config.model_type == "groma"
    # region selection
    assert config.nms_threshold == 0.6
    assert config.box_score_threshold == 0.15
    assert config.max_region_num == 100
    assert config.refer_box_score == 1.0
    assert config.ground_box_score == 0.2
    assert config.shuffle_regions is False
    # tokens: 32000 base + 114 Groma tokens, <r0>..<r99> = 32014..32113
    for name, value in RELEASED_TOKEN_IDS.items():
        assert getattr(config, name) == value, name
    assert config.num_region_index_tokens == 100
    assert config.text_config.vocab_size == 32114
    assert config.text_config.pad_token_id == 32000
    # DINOv2-L/14
    vision = config.vision_config
    assert isinstance(vision, Dinov2Config)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (1024, 24, 16)
    assert (vision.patch_size, vision.image_size, vision.layer_norm_eps) == (14, 518, 1e-6)
    # Vicuna-7B v1.5
    text = config.text_config
    assert isinstance(text, LlamaConfig)
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (4096, 11008, 32)
    assert (text.num_attention_heads, text.num_key_value_heads, text.max_position_embeddings) == (32, 32, 4096)
    assert (text.bos_token_id, text.eos_token_id, text.rms_norm_eps) == (1, 2, 1e-5)
    assert config.tie_word_embeddings is False
    # DINOv2 layers used by the three paths
    assert config.image_feature_layer == -2
    assert config.proposer_feature_layers == [-4, -3, -2, -1]
    assert config.region_feature_layers == [-3, -2, -1]
    # region encoder
    assert config.region_hidden_size == 1024
    assert config.region_position_hidden_size == 256
    assert config.region_fuse_groups == 64
    assert config.region_fuse_rounds == 5
    assert config.roi_output_size == 14
    assert config.roi_sampling_ratio == 2
    # the behaviour the released weights depend on
    assert config.legacy_roi_box_format is True
    assert config.legacy_roi_spatial_scale is True
    assert config.legacy_position_interpolation is True


def test_proposer_defaults_are_the_released_deformable_detr():
    proposer = GromaConfig().proposer_config
    assert isinstance(proposer, GromaRegionProposerConfig)
    assert proposer.d_model == 256
    assert (proposer.encoder_layers, proposer.decoder_layers) == (6, 6)
    assert (proposer.encoder_attention_heads, proposer.decoder_attention_heads) == (8, 8)
    assert (proposer.encoder_ffn_dim, proposer.decoder_ffn_dim) == (1024, 1024)
    assert (proposer.encoder_n_points, proposer.decoder_n_points) == (4, 4)
    assert proposer.num_queries == 300
    assert proposer.num_feature_levels == 1
    assert (proposer.dropout, proposer.attention_dropout, proposer.activation_dropout) == (0.1, 0.0, 0.0)
    assert (proposer.coco_score_exponent, proposer.sa1b_score_exponent) == (0.4, 0.6)
    assert (proposer.class_cost, proposer.bbox_cost, proposer.giou_cost) == (2.0, 5.0, 2.0)
    assert (proposer.cls_loss_coefficient, proposer.bbox_loss_coefficient, proposer.giou_loss_coefficient) == (
        2.0,
        5.0,
        2.0,
    )
    assert proposer.focal_alpha == 0.25
    assert proposer.auxiliary_loss is True
    assert proposer.legacy_frozen_reference_points is True
    assert proposer.legacy_learned_query_content is True


def _assert_same_config(loaded: GromaConfig, original: GromaConfig):
    assert type(loaded) is GromaConfig
    assert type(loaded.vision_config) is Dinov2Config
    assert type(loaded.text_config) is LlamaConfig
    assert type(loaded.proposer_config) is GromaRegionProposerConfig
    ignored = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in ignored} == {
        k: v for k, v in original.to_dict().items() if k not in ignored
    }
    assert loaded.proposer_config.d_model == original.proposer_config.d_model
    assert loaded.text_config.vocab_size == original.text_config.vocab_size


@pytest.mark.parametrize("make", [GromaConfig, tiny_groma_config], ids=["released", "tiny"])
def test_dict_round_trip_keeps_sub_config_types(make):
    config = make()
    _assert_same_config(GromaConfig.from_dict(config.to_dict()), config)


def test_dict_round_trip_keeps_non_default_values():
    config = tiny_groma_config(
        nms_threshold=0.3,
        max_region_num=5,
        legacy_roi_box_format=False,
        proposer_config={"d_model": 32, "num_queries": 7, "legacy_frozen_reference_points": False},
    )
    loaded = GromaConfig.from_dict(config.to_dict())
    _assert_same_config(loaded, config)
    assert (loaded.nms_threshold, loaded.max_region_num, loaded.legacy_roi_box_format) == (0.3, 5, False)
    assert (loaded.proposer_config.d_model, loaded.proposer_config.num_queries) == (32, 7)
    assert loaded.proposer_config.legacy_frozen_reference_points is False


def test_save_pretrained_round_trip(tmp_path):
    config = tiny_groma_config(box_score_threshold=0.05, region_feature_layers=[1, 3, 5])
    config.save_pretrained(tmp_path)
    for loader in (GromaConfig, AutoConfig):
        loaded = loader.from_pretrained(tmp_path)
        _assert_same_config(loaded, config)
        assert loaded.box_score_threshold == 0.05
        assert loaded.region_feature_layers == [1, 3, 5]


def test_proposer_config_registered_with_auto_config(tmp_path):
    config = GromaRegionProposerConfig(d_model=32, num_queries=5)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is GromaRegionProposerConfig
    assert (loaded.d_model, loaded.num_queries) == (32, 5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nms_threshold", "0.6"),
        ("max_region_num", 1.5),
        ("legacy_roi_box_format", "yes"),
        ("image_token_id", "<image>"),
        ("projector_hidden_act", 3),
    ],
)
def test_strict_types_at_init(field, value):
    with pytest.raises(StrictDataclassFieldValidationError, match=field):
        tiny_groma_config(**{field: value})


def test_strict_types_on_assignment():
    config = tiny_groma_config()
    with pytest.raises(StrictDataclassFieldValidationError, match="nms_threshold"):
        config.nms_threshold = "high"
    with pytest.raises(StrictDataclassFieldValidationError, match="d_model"):
        config.proposer_config.d_model = 64.0


def test_positional_arguments_rejected():
    with pytest.raises((TypeError, ValueError)):
        GromaConfig(None)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_region_num": 101}, "max_region_num"),
        ({"max_region_num": 0}, "max_region_num"),
        ({"nms_threshold": 1.5}, "nms_threshold"),
        ({"nms_threshold": -0.1}, "nms_threshold"),
        ({"box_score_threshold": -0.01}, "box_score_threshold"),
        ({"box_score_threshold": 1.01}, "box_score_threshold"),
        ({"refer_box_score": 2.0}, "refer_box_score"),
        ({"ground_box_score": -1.0}, "ground_box_score"),
        ({"image_feature_layer": 25}, "image_feature_layer"),
        ({"image_feature_layer": -26}, "image_feature_layer"),
        ({"proposer_feature_layers": [-4, 25]}, "proposer_feature_layers"),
        ({"proposer_feature_layers": []}, "proposer_feature_layers"),
        ({"region_feature_layers": [-26, -1]}, "region_feature_layers"),
        ({"proposer_config": {"num_feature_levels": 2}}, "num_feature_levels"),
        ({"proposer_config": {"d_model": 250}}, "d_model"),
        ({"text_config": {"vocab_size": 32113}}, "vocab_size"),
        ({"region_index_token_id": 32015}, "vocab_size"),
        ({"region_fuse_groups": 48}, "region_fuse_groups"),
        ({"image_token_id": 32114}, "image_token_id=32114 is outside the vocabulary"),
        ({"refer_box_token_id": 32014}, "refer_box_token_id and region_index_token_id share the id 32014"),
        ({"refer_feat_token_id": 32020}, "refer_feat_token_id and <r6> share the id 32020"),
        ({"image_token_id": 32000}, "pad_token_id and image_token_id share"),
        ({"roi_output_size": 0}, "roi_output_size must be positive"),
        ({"region_hidden_size": 0}, "region_hidden_size must be positive"),
        ({"region_fuse_rounds": -1}, "region_fuse_rounds must be non-negative"),
    ],
)
def test_validation_errors_name_the_field(overrides, field):
    with pytest.raises(StrictDataclassClassValidationError, match=field) as info:
        GromaConfig(**overrides)
    assert isinstance(info.value, StrictDataclassError)


def test_validation_boundaries_are_inclusive():
    config = GromaConfig(
        max_region_num=100,
        nms_threshold=1.0,
        box_score_threshold=0.0,
        image_feature_layer=24,
        region_feature_layers=[-25, 24],
        text_config={"vocab_size": 32114},
    )
    assert config.max_region_num == 100
    assert config.image_feature_layer == 24


def test_tiny_layer_indices_are_checked_against_the_tiny_tower():
    # 5 DINOv2 layers -> 6 hidden states: -6..5 are valid.
    assert tiny_groma_config(image_feature_layer=5, region_feature_layers=[-6]).image_feature_layer == 5
    with pytest.raises(StrictDataclassClassValidationError, match="image_feature_layer"):
        tiny_groma_config(image_feature_layer=6)
    with pytest.raises(StrictDataclassClassValidationError, match="num_feature_levels"):
        GromaRegionProposerConfig(num_feature_levels=4)
    with pytest.raises(StrictDataclassClassValidationError, match="num_queries"):
        GromaRegionProposerConfig(num_queries=0)


def test_tiny_config_token_layout():
    config = tiny_groma_config()
    assert config.text_config.vocab_size == 1114
    assert (config.pad_token_id, config.image_token_id, config.region_token_id) == (1000, 1008, 1009)
    assert (config.refer_box_token_id, config.ground_box_token_id, config.refer_feat_token_id) == (1010, 1011, 1012)
    assert config.region_index_token_id == 1014
    assert config.text_config.pad_token_id == 1000


def test_feature_layer_tuples_become_lists():
    config = tiny_groma_config(proposer_feature_layers=(-2, -1), region_feature_layers=(1, 2, 3))
    assert config.proposer_feature_layers == [-2, -1]
    assert config.region_feature_layers == [1, 2, 3]
    assert config.to_dict()["region_feature_layers"] == [1, 2, 3]


def _tiny_config_without_pad(text_pad_token_id: int | None) -> GromaConfig:
    fields = tiny_groma_config().to_dict()
    del fields["pad_token_id"]
    fields["text_config"]["pad_token_id"] = text_pad_token_id
    return GromaConfig.from_dict(fields)


def test_pad_token_id_defaults_to_the_text_configs():
    assert _tiny_config_without_pad(7).pad_token_id == 7
    # a small vocabulary is not given Groma-7B's 32000
    assert _tiny_config_without_pad(None).pad_token_id is None


def test_pad_token_id_different_from_the_text_configs_survives_saving(tmp_path):
    text_config = LlamaConfig(vocab_size=40000, pad_token_id=5).to_dict()
    GromaConfig(text_config=text_config, pad_token_id=32000).save_pretrained(tmp_path)
    assert GromaConfig.from_pretrained(tmp_path).pad_token_id == 32000
