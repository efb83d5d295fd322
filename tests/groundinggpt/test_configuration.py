"""GroundingGPTConfig: released defaults, serialisation and validation."""

import pytest
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from transformers import AutoConfig, Blip2QFormerConfig, Blip2VisionConfig, CLIPVisionConfig, LlamaConfig

from transformers_groma import GroundingGPTConfig, GroundingGPTImageBindAudioConfig

from .conftest import tiny_config


def test_defaults_describe_the_released_model():
    config = GroundingGPTConfig()
    assert isinstance(config.text_config, LlamaConfig) and config.text_config.vocab_size == 32009
    assert isinstance(config.vision_config, CLIPVisionConfig) and config.vision_config.image_size == 336
    assert isinstance(config.video_vision_config, Blip2VisionConfig)
    assert (config.video_vision_config.hidden_size, config.video_vision_config.num_hidden_layers) == (1408, 39)
    assert isinstance(config.audio_qformer_config, Blip2QFormerConfig)
    geometry = [
        (c.num_hidden_layers, c.cross_attention_frequency, c.encoder_hidden_size)
        for c in (config.video_qformer_config, config.video_temporal_qformer_config, config.audio_qformer_config)
    ]
    assert geometry == [(12, 2, 1408), (2, 1, 768), (2, 1, 1024)]  # spec §1.5
    assert isinstance(config.audio_config, GroundingGPTImageBindAudioConfig)
    assert config.audio_config.patch_grid == (12, 19)  # 228 patches + CLS = 229 positions
    assert (config.num_image_tokens, config.num_video_tokens, config.num_audio_tokens) == (576, 64, 8)
    assert (config.image_token_id, config.audio_end_token_id) == (32000, 32008)
    assert (config.video_layernorm_eps, config.vision_feature_layer) == (1e-5, -2)


def test_save_load_round_trip(tmp_path):
    config = tiny_config()
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, GroundingGPTConfig)
    assert {**reloaded.to_dict(), "_name_or_path": ""} == config.to_dict()
    assert isinstance(reloaded.audio_config, GroundingGPTImageBindAudioConfig)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"audio_qformer_config": {"encoder_hidden_size": 5}}, r"audio_qformer_config.encoder_hidden_size \(5\)"),
        ({"video_temporal_qformer_config": {"encoder_hidden_size": 8}}, "must equal video_qformer_config.hidden_size"),
        ({"audio_end_token_id": 100}, "must be distinct"),
        ({"audio_end_token_id": 500}, "must lie inside text_config.vocab_size"),
        ({"vision_feature_layer": 7}, "vision_feature_layer=7 is outside"),
        ({"max_frames": 0}, "max_frames must be positive"),
        ({"audio_config": {"hidden_size": 10, "num_attention_heads": 4}}, "divisible by num_attention_heads"),
    ],
)
def test_inconsistent_settings_are_rejected(overrides, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        tiny_config(**overrides)


def test_field_types_are_enforced():
    with pytest.raises(StrictDataclassFieldValidationError):
        GroundingGPTConfig(video_layernorm_eps="small")
