"""Convert a released GroundingGPT checkpoint (`zwli/GroundingGPT`, `model_type` "LEGO") into a native folder.

    groma-convert --input_dir ORIGINAL --output_dir NATIVE --vision_tower CLIP_DIR [--dtype bfloat16]

The original checkpoint holds the LLM, the adapters, EVA-ViT-g, the BLIP-2 Q-Former and the whole ImageBind model,
but not the CLIP tower (the original loads `openai/clip-vit-large-patch14-336` separately): `--vision_tower` names
that CLIP folder (or Hub id) and it is baked into the native checkpoint. The unused ImageBind modalities are dropped.
The geometry the original hard-codes in code (EVA, Q-Former and ImageBind sizes) is read off the weight shapes;
attention head counts cannot be, and default to the released model's (override them for other sizes).

The output folder holds the model, the processor (tokenizer with the 9 tokens, image/video/audio preprocessing,
chat template), a generation config and a model card. It is assembled in a staging folder next to `--output_dir`
and moved into place only after the reloaded weights were checked against the converted ones.
"""

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import CLIPVisionModel, GenerationConfig

from ..configuration_groundinggpt import GROUNDINGGPT_TOKENS, TOKEN_ID_FIELDS, GroundingGPTConfig
from ..model_card import write_model_card
from ..modeling.groundinggpt import GroundingGPTForConditionalGeneration
from ..processing.groundinggpt import (
    CHAT_TEMPLATE,
    SEPARATOR,
    GroundingGPTFeatureExtractor,
    GroundingGPTImageProcessor,
    GroundingGPTProcessor,
    GroundingGPTVideoProcessor,
    load_original_groundinggpt_tokenizer,
)
from .checkpoint_io import (
    cast_weights,
    check_output_options,
    load_original_state_dict,
    read_original_config,
    resolve_input_dir,
    staged_output,
    verify_saved_weights,
)
from .groundinggpt_key_mapping import check_logit_scale, convert_state_dict, is_dropped_key


GROUNDINGGPT_MODEL_TYPE = "LEGO"
LLAMA_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "hidden_act",
    "attention_bias",
    "initializer_range",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
)
# Fields of the original config.json with the ids of <vi_patch> ... <so_end> (the image ids are set at runtime).
ORIGINAL_TOKEN_FIELDS = (
    "video_patch_token",
    "video_start_token",
    "video_end_token",
    "sound_patch_token",
    "sound_start_token",
    "sound_end_token",
)
# Sub-configs whose attention head counts the weights do not give (they default to the released model's).
HEAD_COUNT_CONFIGS = (
    "video_vision_config",
    "video_qformer_config",
    "video_temporal_qformer_config",
    "audio_config",
    "audio_qformer_config",
)
# Config fields of the original for which the released code has a single working value.
REQUIRED_ORIGINAL_SETTINGS = {"mm_use_im_start_end": True, "mm_vision_select_feature": "patch"}


def is_groundinggpt_checkpoint(original_config: dict[str, Any]) -> bool:
    """Whether an original `config.json` (as a dict) is a GroundingGPT one."""
    return original_config.get("model_type") == GROUNDINGGPT_MODEL_TYPE


def _layer_indices(state_dict: dict[str, torch.Tensor], prefix: str, suffix: str = "") -> list[int]:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.{re.escape(suffix)}")
    return sorted({int(match.group(1)) for key in state_dict if (match := pattern.match(key))})


def _qformer_geometry(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """Blip2QFormerConfig fields of the original Q-Former under `prefix` (e.g. `model.Qformer.bert`)."""
    layers = _layer_indices(state_dict, f"{prefix}.encoder.layer")
    cross = _layer_indices(state_dict, f"{prefix}.encoder.layer", "crossattention.self.key.weight")
    if not layers or not cross or cross[0] != 0:
        raise ValueError(f"{prefix} is not a Q-Former with cross-attention in its first layer.")
    frequency = cross[1] - cross[0] if len(cross) > 1 else len(layers)
    if cross != list(range(0, len(layers), frequency)):
        raise ValueError(f"{prefix} has cross-attention in layers {cross}, not every n-th layer.")
    layer = f"{prefix}.encoder.layer.0"
    return {
        "hidden_size": state_dict[f"{prefix}.embeddings.LayerNorm.weight"].shape[0],
        "num_hidden_layers": len(layers),
        "cross_attention_frequency": frequency,
        "encoder_hidden_size": state_dict[f"{layer}.crossattention.self.key.weight"].shape[1],
        "intermediate_size": state_dict[f"{layer}.intermediate_query.dense.weight"].shape[0],
    }


def _eva_geometry(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Blip2VisionConfig fields of the original EVA-ViT-g (`model.visual_encoder`)."""
    prefix = "model.visual_encoder"
    num_positions, hidden_size = state_dict[f"{prefix}.pos_embed"].shape[1:]
    patch_size = state_dict[f"{prefix}.patch_embed.proj.weight"].shape[-1]
    grid = math.isqrt(num_positions - 1)
    if grid * grid != num_positions - 1:
        raise ValueError(f"{prefix}.pos_embed has {num_positions} positions: not CLS + a square patch grid.")
    return {
        "hidden_size": hidden_size,
        "num_hidden_layers": len(_layer_indices(state_dict, f"{prefix}.blocks")),
        "intermediate_size": state_dict[f"{prefix}.blocks.0.mlp.fc1.weight"].shape[0],
        "patch_size": patch_size,
        "image_size": grid * patch_size,
    }


def _imagebind_audio_geometry(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """GroundingGPTImageBindAudioConfig fields of ImageBind's audio modality (`model.audio_encoder.*.audio`)."""
    prefix = "model.audio_encoder.modality_{}.audio"
    return {
        "hidden_size": state_dict[prefix.format("preprocessors") + ".cls_token"].shape[-1],
        "num_hidden_layers": len(_layer_indices(state_dict, prefix.format("trunks") + ".blocks")),
        "intermediate_size": state_dict[prefix.format("trunks") + ".blocks.0.mlp.fc1.weight"].shape[0],
        "patch_size": state_dict[prefix.format("preprocessors") + ".rgbt_stem.proj.weight"].shape[-1],
        "output_size": state_dict[prefix.format("heads") + ".2.weight"].shape[0],
    }


def _text_config(original_config: dict[str, Any]) -> dict[str, Any]:
    text_config = {field: original_config[field] for field in LLAMA_FIELDS if field in original_config}
    if original_config.get("rope_scaling"):
        raise ValueError(f"rope_scaling={original_config['rope_scaling']} is not supported (the release has none).")
    rope_theta = float(original_config.get("rope_theta", 10000.0))
    return {
        "model_type": "llama",
        **text_config,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
    }


def _merge(settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`settings` with `overrides` applied; dict values of sub-configs are merged field by field."""
    merged = dict(settings)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def convert_config(
    original_config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    vision_config: dict[str, Any],
    token_ids: dict[str, int],
    overrides: dict[str, Any] | None = None,
) -> GroundingGPTConfig:
    """Build the native config of an original GroundingGPT checkpoint.

    Args:
        original_config: The original `config.json` as a dict.
        state_dict: The original weights (meta tensors suffice): the sizes the original hard-codes are read off them.
        vision_config: The CLIP vision config (as a dict) of the tower the original loads separately.
        token_ids: The ids of the 9 GroundingGPT tokens in the checkpoint's tokenizer, keyed by token.
        overrides: Native config fields to set on top (dicts are merged into sub-configs), e.g.
            `{"video_vision_config": {"num_attention_heads": 2}}` for a scaled-down checkpoint.

    Raises:
        ValueError: for settings the released code does not support or that contradict the weights or tokenizer.
    """
    if not is_groundinggpt_checkpoint(original_config):
        raise ValueError(f"config.json has model_type={original_config.get('model_type')!r}, expected 'LEGO'.")
    for name, value in REQUIRED_ORIGINAL_SETTINGS.items():
        if original_config.get(name, value) != value:
            raise ValueError(
                f"{name}={original_config[name]!r} is not supported: the released code only runs {value!r}."
            )
    for token, field in zip(GROUNDINGGPT_TOKENS[3:], ORIGINAL_TOKEN_FIELDS):
        if field in original_config and original_config[field] != token_ids[token]:
            raise ValueError(
                f"config.json has {field}={original_config[field]}, but the tokenizer maps {token} to "
                f"{token_ids[token]}."
            )
    settings = {
        "text_config": _text_config(original_config),
        "vision_config": vision_config,
        "video_vision_config": _eva_geometry(state_dict),
        "video_qformer_config": _qformer_geometry(state_dict, "model.Qformer.bert"),
        "video_temporal_qformer_config": _qformer_geometry(state_dict, "model.video_Qformer.bert"),
        "audio_config": _imagebind_audio_geometry(state_dict),
        "audio_qformer_config": _qformer_geometry(state_dict, "model.audio_Qformer.bert"),
        "vision_feature_layer": original_config.get("mm_vision_select_layer", -2),
        "num_frame_query_tokens": state_dict["model.query_tokens"].shape[1],
        "num_video_query_tokens": state_dict["model.video_query_tokens"].shape[1],
        "max_frames": state_dict["model.video_frame_position_embedding.weight"].shape[0],
        "num_audio_query_tokens": state_dict["model.audio_query_tokens"].shape[1],
        "max_audio_clips": state_dict["model.audio_position_embedding.weight"].shape[0],
        **{field: token_ids[token] for field, token in zip(TOKEN_ID_FIELDS, GROUNDINGGPT_TOKENS)},
        "tie_word_embeddings": original_config.get("tie_word_embeddings", False),
    }
    try:
        config = GroundingGPTConfig(**_merge(settings, overrides or {}))
    except StrictDataclassError as error:
        raise ValueError(
            f"The config inferred from the checkpoint is invalid: {error}\nAttention head counts cannot be read off "
            "the weights and default to the released model's; for other sizes pass them with --override (`overrides`"
            f"), e.g. --override 'video_vision_config={{\"num_attention_heads\": 2}}' (sub-configs with heads: "
            f"{', '.join(HEAD_COUNT_CONFIGS)})."
        ) from error
    for field, native in (
        ("image_token_len", config.num_image_tokens),
        ("video_token_len", config.num_video_tokens),
        ("sound_token_len", config.num_audio_tokens),
    ):
        if field in original_config and original_config[field] != native:
            raise ValueError(f"config.json has {field}={original_config[field]}, but the weights give {native}.")
    return config


def build_native_model(
    original_state_dict: dict[str, torch.Tensor], clip_state_dict: dict[str, torch.Tensor], config: GroundingGPTConfig
) -> GroundingGPTForConditionalGeneration:
    """Instantiate the native model on the meta device and load the renamed weights and the CLIP tower (strict)."""
    check_logit_scale(original_state_dict, config.audio_config.logit_scale)
    state_dict = convert_state_dict(original_state_dict)
    state_dict.update({f"model.image_encoder.vision_tower.{key}": value for key, value in clip_state_dict.items()})
    with torch.device("meta"):
        model = GroundingGPTForConditionalGeneration(config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise KeyError(
            f"Converted weights do not fit GroundingGPTForConditionalGeneration: missing {missing[:20]}, "
            f"unexpected {unexpected[:20]}"
        )
    wrong_shapes = [key for key, value in state_dict.items() if value.shape != expected[key].shape]
    if wrong_shapes:
        details = [f"{key}: {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}" for key in wrong_shapes]
        raise ValueError(f"Shape mismatch for {len(wrong_shapes)} weight(s): {details[:10]}")
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.tie_weights()
    return model.eval()


def build_processor(vision_tower: Path, config: GroundingGPTConfig, tokenizer) -> GroundingGPTProcessor:
    """Tokenizer + image processor (CLIP's settings, padded to a square) + video processor + audio features."""
    audio_config = config.audio_config
    return GroundingGPTProcessor(
        image_processor=GroundingGPTImageProcessor.from_pretrained(vision_tower),
        video_processor=GroundingGPTVideoProcessor(
            size={"height": config.video_vision_config.image_size, "width": config.video_vision_config.image_size},
            num_frames=config.max_frames,
        ),
        feature_extractor=GroundingGPTFeatureExtractor(
            num_mel_bins=audio_config.num_mel_bins, target_length=audio_config.target_length
        ),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        num_image_tokens=config.num_image_tokens,
        num_video_tokens=config.num_video_tokens,
        num_audio_tokens=config.num_audio_tokens,
    )


def separator_token_ids(tokenizer) -> list[int]:
    """Ids of every vocabulary piece containing the `###` separator: the model writes it as `###` after a newline, as
    `.###` after a full stop, `▁###` after a space, ... (spec §3.1: the original stops once `###` appears)."""
    return sorted(token_id for piece, token_id in tokenizer.get_vocab().items() if SEPARATOR in piece)


def build_generation_config(input_dir: Path, config: GroundingGPTConfig, tokenizer) -> GenerationConfig:
    """Greedy decoding that stops at `</s>` and at every token holding the `###` turn separator."""
    original = {}
    if (input_dir / "generation_config.json").is_file():
        original = json.loads((input_dir / "generation_config.json").read_text())
    eos_token_id = original.get("eos_token_id", config.text_config.eos_token_id)
    eos_token_ids = eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]
    return GenerationConfig(
        bos_token_id=original.get("bos_token_id", config.text_config.bos_token_id),
        eos_token_id=[*eos_token_ids, *separator_token_ids(tokenizer)],
        pad_token_id=original.get("pad_token_id", config.text_config.pad_token_id),
        do_sample=False,
        max_new_tokens=512,
    )


def resolve_vision_tower(vision_tower: str | Path | None, original_config: dict[str, Any]) -> Path:
    """The CLIP folder: `vision_tower`, else the original's `mm_vision_tower`; a Hub id is downloaded."""
    name = vision_tower or original_config.get("mm_vision_tower")
    try:
        return resolve_input_dir(name or "")
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"--vision_tower {name} is not a folder (nor a Hub repo id): GroundingGPT checkpoints do not contain their "
            "CLIP tower; pass a local copy of openai/clip-vit-large-patch14-336."
        ) from error


def _token_ids(tokenizer) -> dict[str, int]:
    token_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in GROUNDINGGPT_TOKENS}
    if len(set(token_ids.values())) != len(token_ids) or tokenizer.unk_token_id in token_ids.values():
        raise ValueError(f"The tokenizer does not hold the 9 GroundingGPT tokens as separate tokens: {token_ids}")
    return token_ids


def convert_groundinggpt_checkpoint(
    input_dir: str | Path,
    output_dir: str | Path,
    vision_tower: str | Path | None = None,
    dtype: str = "float32",
    overrides: dict[str, Any] | None = None,
    max_shard_size: str = "5GB",
    overwrite: bool = False,
    card_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Convert the original checkpoint folder `input_dir` into `output_dir`; see the module docstring.

    Args:
        vision_tower: Folder (or Hub id) of the CLIP checkpoint; a full `CLIPModel` checkpoint is fine, only its
            vision part is read. Defaults to the original config's `mm_vision_tower`
            (`openai/clip-vit-large-patch14-336`, downloaded when not a local folder).
        dtype: dtype of the written weights ("float32", "bfloat16" or "float16").
        overrides: Native config fields to set on top of the inferred ones (see [`convert_config`]).
        max_shard_size: Largest safetensors shard.
        overwrite: Replace a non-empty `output_dir`.
        card_kwargs: Passed to [`~transformers_groma.model_card.write_model_card`] (`source`, `repo_id`,
            `eval_results`).
    """
    input_dir, output_dir = resolve_input_dir(input_dir), Path(output_dir)
    check_output_options(input_dir, output_dir, overwrite, dtype)
    original_config = read_original_config(input_dir)
    if not is_groundinggpt_checkpoint(original_config):
        raise ValueError(f"{input_dir}/config.json has model_type={original_config.get('model_type')!r}, not 'LEGO'.")
    vision_tower = resolve_vision_tower(vision_tower, original_config)
    original_state_dict = load_original_state_dict(input_dir)
    tokenizer = load_original_groundinggpt_tokenizer(input_dir)
    clip = CLIPVisionModel.from_pretrained(vision_tower, dtype=torch.float32)
    config = convert_config(
        original_config, original_state_dict, clip.config.to_dict(), _token_ids(tokenizer), overrides
    )
    model = cast_weights(build_native_model(original_state_dict, clip.state_dict(), config), dtype)
    processor = build_processor(vision_tower, config, tokenizer)
    num_dropped = sum(is_dropped_key(key) for key in original_state_dict)

    with staged_output(output_dir) as staging:
        model.save_pretrained(staging, max_shard_size=max_shard_size, save_original_format=False)
        processor.save_pretrained(staging)
        build_generation_config(input_dir, config, tokenizer).save_pretrained(staging)
        num_tensors = verify_saved_weights(staging, model)
        details = (
            f"{len(original_state_dict)} original tensors, of which {num_dropped} unused ImageBind / buffer tensors "
            f"were dropped, and the CLIP tower `{vision_tower.name}`; every kept key was mapped and the reloaded "
            "weights were checked equal."
        )
        card_kwargs = {"source": input_dir, **(card_kwargs or {})}
        write_model_card(staging, model.config, "converted", details=details, **card_kwargs)
    print(
        f"Converted {input_dir} (GroundingGPT): {len(original_state_dict)} original tensors + CLIP -> {num_tensors} "
        f"native tensors, all keys mapped, reloaded weights identical. Saved to {output_dir}."
    )
    return output_dir
