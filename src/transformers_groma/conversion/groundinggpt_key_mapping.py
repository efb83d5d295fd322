"""Original GroundingGPT (`LEGOLlamaForCausalLM`) state-dict keys -> native `GroundingGPTForConditionalGeneration` keys.

One regex table applied in order to every key; a key that no rule touches is an error. EVA's separate `q_bias` and
`v_bias` become one `qkv.bias` (with a zero key bias), and the parts of the original that the model never runs are
dropped: the five non-audio ImageBind modalities and the Q-Formers' unused `position_ids` buffers.
"""

import math
import re

import torch


_EVA = "model.video_encoder.vision_tower."
_EVA_LAYER = _EVA + r"encoder.layers.\1."
_IMAGEBIND = "model.audio_encoder.audio_tower."

# (pattern, replacement), applied in order to every original key.
ORIGINAL_TO_NATIVE_KEY_MAPPING: list[tuple[str, str]] = [
    # LLM
    (r"^model\.(embed_tokens|layers|norm)\.", r"model.language_model.\1."),
    (r"^lm_head\.weight$", "lm_head.weight"),
    # Image branch (the CLIP tower itself is not in the checkpoint)
    (r"^model\.mm_vision_projector\.0\.", "model.image_encoder.projector.linear_1."),
    (r"^model\.mm_vision_projector\.2\.", "model.image_encoder.projector.linear_2."),
    # Video branch: EVA-ViT-g as a Blip2VisionModel, ln_vision as its final LayerNorm
    (r"^model\.visual_encoder\.cls_token$", _EVA + "embeddings.class_embedding"),
    (r"^model\.visual_encoder\.pos_embed$", _EVA + "embeddings.position_embedding"),
    (r"^model\.visual_encoder\.patch_embed\.proj\.", _EVA + "embeddings.patch_embedding."),
    (r"^model\.visual_encoder\.blocks\.(\d+)\.norm([12])\.", _EVA_LAYER + r"layer_norm\2."),
    (r"^model\.visual_encoder\.blocks\.(\d+)\.attn\.qkv\.weight$", _EVA_LAYER + "self_attn.qkv.weight"),
    (r"^model\.visual_encoder\.blocks\.(\d+)\.attn\.[qv]_bias$", _EVA_LAYER + "self_attn.qkv.bias"),
    (r"^model\.visual_encoder\.blocks\.(\d+)\.attn\.proj\.", _EVA_LAYER + "self_attn.projection."),
    (r"^model\.visual_encoder\.blocks\.(\d+)\.mlp\.", _EVA_LAYER + "mlp."),
    (r"^model\.ln_vision\.", _EVA + "post_layernorm."),
    (r"^model\.query_tokens$", "model.video_encoder.frame_query_tokens"),
    (r"^model\.video_frame_position_embedding\.", "model.video_encoder.frame_position_embedding."),
    (r"^model\.video_query_tokens$", "model.video_encoder.video_query_tokens"),
    (r"^model\.llama_proj\.", "model.video_encoder.projection."),
    # The three Q-Formers (LAVIS BERT layout -> Blip2QFormerModel)
    (r"^model\.Qformer\.bert\.", "model.video_encoder.frame_qformer."),
    (r"^model\.video_Qformer\.bert\.", "model.video_encoder.temporal_qformer."),
    (r"^model\.audio_Qformer\.bert\.", "model.audio_encoder.qformer."),
    (r"qformer\.embeddings\.LayerNorm\.", "qformer.layernorm."),
    (r"(qformer\.encoder\.layer\.\d+\.(?:cross)?attention)\.self\.", r"\1.attention."),
    # Audio branch: ImageBind's audio modality
    (r"^model\.audio_encoder\.modality_preprocessors\.audio\.rgbt_stem\.proj\.", _IMAGEBIND + "patch_embedding."),
    (
        r"^model\.audio_encoder\.modality_preprocessors\.audio\.rgbt_stem\.norm_layer\.",
        _IMAGEBIND + "patch_layernorm.",
    ),
    (r"^model\.audio_encoder\.modality_preprocessors\.audio\.cls_token$", _IMAGEBIND + "class_embedding"),
    (
        r"^model\.audio_encoder\.modality_preprocessors\.audio\.pos_embedding_helper\.pos_embed$",
        _IMAGEBIND + "position_embedding",
    ),
    (r"^model\.audio_encoder\.modality_trunks\.audio\.blocks\.", _IMAGEBIND + "layers."),
    (r"^model\.audio_encoder\.modality_heads\.audio\.0\.", _IMAGEBIND + "head_layernorm."),
    (r"^model\.audio_encoder\.modality_heads\.audio\.2\.", _IMAGEBIND + "projection."),
    (r"^model\.audio_position_embedding\.", "model.audio_encoder.clip_position_embedding."),
    (r"^model\.audio_query_tokens$", "model.audio_encoder.query_tokens"),
    (r"^model\.audio_llama_proj\.", "model.audio_encoder.projection."),
]

# Original keys with no native counterpart. They must exist in a released checkpoint but the model never reads them.
DROPPED_KEY_PATTERNS: list[str] = [
    r"^model\.audio_encoder\.modality_\w+\.(vision|text|depth|thermal|imu)\.",  # unused ImageBind modalities
    r"^model\.(Qformer|video_Qformer|audio_Qformer)\.bert\.embeddings\.position_ids$",  # text positions (no text)
]
# ImageBind's fixed audio output scale, a buffer; the native model takes it from `audio_config.logit_scale`.
LOGIT_SCALE_KEY = "model.audio_encoder.modality_postprocessors.audio.1.log_logit_scale"

_COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in ORIGINAL_TO_NATIVE_KEY_MAPPING]
_DROPPED = [re.compile(pattern) for pattern in DROPPED_KEY_PATTERNS]


def is_dropped_key(key: str) -> bool:
    """Whether an original key belongs to a part of the original that the native model does not have."""
    return key == LOGIT_SCALE_KEY or any(pattern.search(key) for pattern in _DROPPED)


def convert_key(key: str) -> str | None:
    """Native name of an original key, or None when no rule applies to it."""
    matched = False
    for pattern, replacement in _COMPILED:
        key, count = pattern.subn(replacement, key)
        matched = matched or count > 0
    return key if matched else None


def check_logit_scale(original: dict[str, torch.Tensor], logit_scale: float) -> None:
    """Check ImageBind's stored audio scale (ln of the factor) against the native `audio_config.logit_scale`."""
    stored = original.get(LOGIT_SCALE_KEY)
    if stored is None or stored.is_meta:
        return
    if not math.isclose(math.exp(float(stored)), logit_scale, rel_tol=1e-5):
        raise ValueError(
            f"{LOGIT_SCALE_KEY} holds ln({math.exp(float(stored)):.6g}), but audio_config.logit_scale is {logit_scale}."
        )


def _merged_qkv_bias(original: dict[str, torch.Tensor], block_prefix: str) -> torch.Tensor:
    q_bias, v_bias = original[f"{block_prefix}.q_bias"], original[f"{block_prefix}.v_bias"]
    return torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])


def convert_state_dict(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original GroundingGPT state dict to native keys (works on meta tensors too).

    Raises:
        KeyError: for original keys that no rule maps and that are not known to be dropped (listed in the message),
            and for EVA attention blocks with only one of `q_bias` / `v_bias`.
    """
    converted: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, tensor in original.items():
        if is_dropped_key(key):
            continue
        new_key = convert_key(key)
        if new_key is None:
            unmapped.append(key)
        elif new_key.endswith(".self_attn.qkv.bias"):
            block_prefix = key.rsplit(".", 1)[0]
            if not {f"{block_prefix}.q_bias", f"{block_prefix}.v_bias"} <= original.keys():
                raise KeyError(f"{block_prefix} needs both q_bias and v_bias.")
            converted[new_key] = _merged_qkv_bias(original, block_prefix)
        else:
            converted[new_key] = tensor
    if unmapped:
        raise KeyError(f"{len(unmapped)} original key(s) have no native name: {sorted(unmapped)[:20]}")
    return converted


__all__ = [
    "DROPPED_KEY_PATTERNS",
    "LOGIT_SCALE_KEY",
    "ORIGINAL_TO_NATIVE_KEY_MAPPING",
    "check_logit_scale",
    "convert_key",
    "convert_state_dict",
    "is_dropped_key",
]
