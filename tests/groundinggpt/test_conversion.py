"""GroundingGPT conversion: key coverage of the released 7B layout (meta device), the key table, config inference and
the loud failures of `groma-convert` on a GroundingGPT checkpoint."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText, AutoProcessor, LogitsProcessorList

from transformers_groma import GroundingGPTConfig, GroundingGPTForConditionalGeneration
from transformers_groma.configuration_groundinggpt import GROUNDINGGPT_TOKENS
from transformers_groma.conversion import convert_checkpoint, main
from transformers_groma.conversion.groundinggpt import HEAD_COUNT_CONFIGS, convert_config
from transformers_groma.conversion.groundinggpt_key_mapping import convert_key, convert_state_dict, is_dropped_key
from transformers_groma.processing.groundinggpt import load_original_groundinggpt_tokenizer

from ..fixtures import GROUNDINGGPT_FIXTURE, requires_groundinggpt_fixture
from ..forcing import ForceTokens


RELEASED_TOKEN_IDS = {token: 32000 + index for index, token in enumerate(GROUNDINGGPT_TOKENS)}
CLIP_PREFIX = "model.image_encoder.vision_tower."
# The fixture's attention head counts (not readable from the weights; see its meta.json "spec").
TINY_OVERRIDES = {name: {"num_attention_heads": 2} for name in HEAD_COUNT_CONFIGS}
TINY_HEADS = [f"--override={name}={json.dumps(value)}" for name, value in TINY_OVERRIDES.items()]


def released_layout() -> tuple[dict[str, torch.Tensor], dict[str, str], dict]:
    """The released GroundingGPT-7B state dict as meta tensors, each key's role, and its `config.json`."""
    rows = (GROUNDINGGPT_FIXTURE / "groundinggpt-7b-state-dict.tsv").read_text().splitlines()[1:]
    state_dict, roles = {}, {}
    for row in rows:
        key, shape, _, role = row.split("\t")
        state_dict[key] = torch.empty(json.loads(shape), device="meta")
        roles[key] = role
    manifest = json.loads((GROUNDINGGPT_FIXTURE / "groundinggpt-7b-manifest.json").read_text())
    return state_dict, roles, {"model_type": "LEGO", **manifest["config"]}


@requires_groundinggpt_fixture
def test_every_released_key_maps_onto_the_native_7b_model():
    state_dict, roles, original_config = released_layout()
    config = convert_config(
        original_config, state_dict, GroundingGPTConfig().vision_config.to_dict(), RELEASED_TOKEN_IDS
    )
    # the geometry read off the weights is the released one (the defaults of GroundingGPTConfig)
    default = GroundingGPTConfig()
    for name in ("video_vision_config", "video_qformer_config", "video_temporal_qformer_config", "audio_config",
                 "audio_qformer_config", "text_config"):  # fmt: skip
        assert getattr(config, name).to_dict() == getattr(default, name).to_dict(), name
    assert (config.num_image_tokens, config.num_video_tokens, config.num_audio_tokens) == (576, 64, 8)

    converted = convert_state_dict(state_dict)
    with torch.device("meta"):
        native = GroundingGPTForConditionalGeneration(config).state_dict()
    assert set(converted) == {key for key in native if not key.startswith(CLIP_PREFIX)}
    assert [key for key in converted if converted[key].shape != native[key].shape] == []

    dropped = {key for key in state_dict if is_dropped_key(key)}
    assert all(roles[key].startswith(("dead", "buffer")) for key in dropped)
    assert all(roles[key].startswith("used") for key in state_dict.keys() - dropped)
    dead_parameters = sum(
        state_dict[key].numel() for key in dropped if roles[key].startswith("dead") and "modality" in key
    )
    assert dead_parameters > 1.1e9  # ImageBind's vision, text, depth, thermal and IMU modalities
    num_eva_blocks = config.video_vision_config.num_hidden_layers
    used = sum(tensor.numel() for key, tensor in state_dict.items() if key not in dropped)
    assert sum(tensor.numel() for tensor in converted.values()) == used + num_eva_blocks * 1408  # + zero key biases
    num_native = sum(tensor.numel() for tensor in native.values())
    assert abs(num_native - 8.29e9) < 0.01e9  # spec §10.2 (CLIP-L/336 included)


def test_eva_query_and_value_biases_merge_with_a_zero_key_bias():
    prefix = "model.visual_encoder.blocks.3.attn"
    original = {f"{prefix}.q_bias": torch.ones(4), f"{prefix}.v_bias": torch.full((4,), 2.0)}
    converted = convert_state_dict(original)
    assert list(converted) == ["model.video_encoder.vision_tower.encoder.layers.3.self_attn.qkv.bias"]
    assert next(iter(converted.values())).tolist() == [1.0] * 4 + [0.0] * 4 + [2.0] * 4
    with pytest.raises(KeyError, match="needs both q_bias and v_bias"):
        convert_state_dict({f"{prefix}.q_bias": torch.ones(4)})


@pytest.mark.parametrize(
    ("original", "native"),
    [
        ("model.Qformer.bert.encoder.layer.2.crossattention.self.key.weight",
         "model.video_encoder.frame_qformer.encoder.layer.2.crossattention.attention.key.weight"),
        ("model.audio_Qformer.bert.embeddings.LayerNorm.bias", "model.audio_encoder.qformer.layernorm.bias"),
        ("model.audio_encoder.modality_trunks.audio.blocks.5.attn.bias_k",
         "model.audio_encoder.audio_tower.layers.5.attn.bias_k"),
        ("model.ln_vision.weight", "model.video_encoder.vision_tower.post_layernorm.weight"),
        ("model.layers.7.self_attn.q_proj.weight", "model.language_model.layers.7.self_attn.q_proj.weight"),
        ("lm_head.weight", "lm_head.weight"),
        ("model.something_new.weight", None),
    ],
)  # fmt: skip
def test_key_table(original, native):
    assert convert_key(original) == native


def test_unknown_keys_fail_loudly():
    with pytest.raises(KeyError, match=r"1 original key\(s\) have no native name: \['model.extra.weight'\]"):
        convert_state_dict({"model.norm.weight": torch.ones(2), "model.extra.weight": torch.ones(2)})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mm_use_im_start_end": False}, "mm_use_im_start_end=False is not supported"),
        ({"image_token_len": 9}, "image_token_len=9, but the weights give 576"),
        ({"video_patch_token": 5}, "video_patch_token=5, but the tokenizer maps <vi_patch> to 32003"),
        ({"model_type": "llava"}, "expected 'LEGO'"),
    ],
)
@requires_groundinggpt_fixture
def test_config_inference_rejects_unsupported_settings(change, message):
    state_dict, _, original_config = released_layout()
    with pytest.raises(ValueError, match=message):
        convert_config(
            {**original_config, **change},
            state_dict,
            GroundingGPTConfig().vision_config.to_dict(),
            RELEASED_TOKEN_IDS,
        )


@pytest.fixture
def fixture_copy(tmp_path):
    """A writable copy of the fixture checkpoint folder."""
    folder = tmp_path / "original"
    shutil.copytree(GROUNDINGGPT_FIXTURE, folder, ignore=shutil.ignore_patterns("*.tsv", "expected.safetensors"))
    return folder


@requires_groundinggpt_fixture
def test_cli_writes_a_complete_native_folder(tmp_path):
    output_dir = tmp_path / "native"
    argv = ["--input_dir", str(GROUNDINGGPT_FIXTURE), "--output_dir", str(output_dir)]
    main([*argv, "--vision_tower", str(GROUNDINGGPT_FIXTURE / "clip"), "--dtype", "bfloat16", *TINY_HEADS])
    files = {path.name for path in output_dir.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "chat_template.jinja",
            "generation_config.json", "README.md"} <= files  # fmt: skip
    weights = load_file(output_dir / "model.safetensors")
    assert not any("modality" in key or "position_ids" in key for key in weights)
    assert any(key.startswith(CLIP_PREFIX) for key in weights)
    assert {tensor.dtype for tensor in weights.values()} == {torch.bfloat16}
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "groundinggpt" and config["video_vision_config"]["num_attention_heads"] == 2
    eos_token_ids = json.loads((output_dir / "generation_config.json").read_text())["eos_token_id"]
    vocab = load_original_groundinggpt_tokenizer(GROUNDINGGPT_FIXTURE).get_vocab()
    assert eos_token_ids == [2, *sorted(token_id for piece, token_id in vocab.items() if "###" in piece)]
    assert eos_token_ids == [2, 279, 286, 579, 580]  # </s>, `###`, `▁###`, `.###`, `?###` of the fixture tokenizer
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        main([*argv, "--vision_tower", str(GROUNDINGGPT_FIXTURE / "clip"), *TINY_HEADS])


@requires_groundinggpt_fixture
def test_converted_model_stops_at_every_token_holding_the_separator(tmp_path):
    convert_checkpoint(
        GROUNDINGGPT_FIXTURE, tmp_path / "native", vision_tower=GROUNDINGGPT_FIXTURE / "clip", overrides=TINY_OVERRIDES
    )
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "native").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "native")
    tokenizer = processor.tokenizer
    assert tokenizer.tokenize("dog.###") == ["▁dog", ".###"] and tokenizer.tokenize("dog\n###")[-1] == "###"
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], add_generation_prompt=True, tokenize=False
    )
    inputs = processor(text=prompt, return_tensors="pt")
    length = inputs["input_ids"].shape[1]
    words = tokenizer.convert_tokens_to_ids(["▁dog", "▁cat"])
    for piece in ("###", "▁###", ".###", "?###", "##"):
        forced = [*words, tokenizer.convert_tokens_to_ids(piece), *words]
        processors = LogitsProcessorList([ForceTokens(forced, length)])
        out = model.generate(**inputs, logits_processor=processors, max_new_tokens=len(forced))
        stops = "###" in piece
        assert out[0, length:].tolist() == (forced[:3] if stops else forced), piece


@pytest.mark.parametrize(("edit", "error", "message"), [
    (lambda sd: sd.update({"model.surprise.weight": torch.ones(1)}), KeyError, "have no native name"),
    (lambda sd: sd.pop("model.llama_proj.bias"), KeyError, r"missing \['model.video_encoder.projection.bias'\]"),
    (lambda sd: sd.update({"model.llama_proj.bias": torch.ones(3)}), ValueError, "Shape mismatch"),
])  # fmt: skip
@requires_groundinggpt_fixture
def test_bad_checkpoints_fail_loudly_and_write_nothing(fixture_copy, tmp_path, edit, error, message):
    state_dict = load_file(fixture_copy / "model.safetensors")
    edit(state_dict)
    save_file(state_dict, fixture_copy / "model.safetensors")
    with pytest.raises(error, match=message):
        convert_checkpoint(
            fixture_copy, tmp_path / "out" / "native", vision_tower=fixture_copy / "clip", overrides=TINY_OVERRIDES
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@requires_groundinggpt_fixture
def test_head_counts_the_weights_do_not_give_point_to_override(tmp_path):
    argv = ["--input_dir", str(GROUNDINGGPT_FIXTURE), "--output_dir", str(tmp_path / "native")]
    with pytest.raises(ValueError, match=r"(?s)must be divisible by num_attention_heads.*pass them with --override"):
        main([*argv, "--vision_tower", str(GROUNDINGGPT_FIXTURE / "clip")])
    assert list(tmp_path.iterdir()) == []


@requires_groundinggpt_fixture
def test_missing_vision_tower_fails_before_writing(fixture_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        convert_checkpoint(fixture_copy, tmp_path / "native", vision_tower=tmp_path / "no-clip-here")
    assert not (tmp_path / "native").exists()


def test_vision_tower_is_rejected_for_other_checkpoints(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "groma"}))
    with pytest.raises(ValueError, match="--vision_tower is only used for GroundingGPT"):
        convert_checkpoint(tmp_path, tmp_path / "native", vision_tower="clip")


@requires_groundinggpt_fixture
def test_a_failed_check_removes_the_staging_folder(monkeypatch, tmp_path):
    def fail(*args):
        raise RuntimeError("reloaded weights differ")

    monkeypatch.setattr("transformers_groma.conversion.groundinggpt.verify_saved_weights", fail)
    with pytest.raises(RuntimeError, match="reloaded weights differ"):
        convert_checkpoint(
            GROUNDINGGPT_FIXTURE, tmp_path / "native", vision_tower=GROUNDINGGPT_FIXTURE / "clip",
            overrides=TINY_OVERRIDES,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
