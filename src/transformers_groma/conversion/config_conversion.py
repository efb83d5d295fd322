"""Original Groma / CustomDDETR `config.json` -> native `GromaConfig`.

The original saves nested configs as diffs against the transformers 4.32 defaults, so those defaults are spelled out
here (newer transformers releases changed some of them) and the diffs are applied on top.
"""

from typing import Any

from ..configuration_groma import GromaConfig, GromaRegionProposerConfig
from ..tokens import GROMA_ADDED_TOKENS, added_token_id


# transformers 4.32 defaults of the fields the original configs omit when unchanged.
DINOV2_432_DEFAULTS = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "mlp_ratio": 4,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-6,
    "image_size": 224,
    "patch_size": 14,
    "num_channels": 3,
    "qkv_bias": True,
    "layerscale_value": 1.0,
    "drop_path_rate": 0.0,
    "use_swiglu_ffn": False,
}
LLAMA_432_DEFAULTS = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "rope_scaling": None,
    "rope_theta": 10000.0,
}
DEFORMABLE_DETR_432_DEFAULTS = {
    "d_model": 256,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "encoder_attention_heads": 8,
    "decoder_attention_heads": 8,
    "encoder_ffn_dim": 1024,
    "decoder_ffn_dim": 1024,
    "encoder_n_points": 4,
    "decoder_n_points": 4,
    "num_queries": 300,
    "two_stage_num_proposals": 300,
    "num_feature_levels": 4,
    "activation_function": "relu",
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "init_std": 0.02,
    "class_cost": 1,
    "bbox_cost": 5,
    "giou_cost": 2,
    "bbox_loss_coefficient": 5,
    "giou_loss_coefficient": 2,
    "focal_alpha": 0.25,
    "auxiliary_loss": False,
    "two_stage": False,
    "with_box_refine": False,
}
PROPOSER_FIELDS = [
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "encoder_n_points",
    "decoder_n_points",
    "num_feature_levels",
    "activation_function",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "init_std",
    "class_cost",
    "bbox_cost",
    "giou_cost",
    "bbox_loss_coefficient",
    "giou_loss_coefficient",
    "focal_alpha",
    "auxiliary_loss",
]
GROMA_MODEL_TYPES = ("groma", "gvllm")
DETECTION_MODEL_TYPES = ("ddetr",)


def _with_defaults(diff: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {**defaults, **{k: v for k, v in diff.items() if k in defaults}}


def _vision_config(perceiver: dict[str, Any]) -> dict[str, Any]:
    vision = _with_defaults(perceiver.get("vis_encoder_cfg") or {}, DINOV2_432_DEFAULTS)
    return {"model_type": "dinov2", **vision}


def _proposer_config(perceiver: dict[str, Any]) -> dict[str, Any]:
    ddetr = {**DEFORMABLE_DETR_432_DEFAULTS, **(perceiver.get("ddetr_cfg") or {})}
    if not (ddetr["two_stage"] and ddetr["with_box_refine"]):
        raise ValueError("Only two-stage Deformable-DETR proposers with box refinement (as released) are supported.")
    proposer = {field: ddetr[field] for field in PROPOSER_FIELDS}
    proposer["num_queries"] = ddetr["two_stage_num_proposals"]
    proposer["cls_loss_coefficient"] = ddetr.get("cls_loss_coefficient", ddetr["class_cost"])
    # JSON has no int/float distinction; the strict config wants floats where its defaults are floats.
    float_fields = {name for name, value in GromaRegionProposerConfig().to_dict().items() if isinstance(value, float)}
    return {name: float(value) if name in float_fields else value for name, value in proposer.items()}


def detect_checkpoint_kind(original: dict[str, Any]) -> str:
    """`"groma"` (full model), `"detection"` (detection pretraining) or a ValueError naming what was found."""
    model_type = original.get("model_type")
    if model_type in GROMA_MODEL_TYPES:
        return "groma"
    if model_type in DETECTION_MODEL_TYPES:
        return "detection"
    raise ValueError(
        f"config.json has model_type={model_type!r}; expected an original Groma checkpoint "
        f"({', '.join(GROMA_MODEL_TYPES + DETECTION_MODEL_TYPES)})."
    )


def convert_config(original: dict[str, Any], overrides: dict[str, Any] | None = None) -> GromaConfig:
    """Build the native config of an original Groma (`model_type` "groma") or CustomDDETR ("ddetr") config.

    Args:
        original: the original `config.json` as a dict.
        overrides: native `GromaConfig` fields to set on top, for the constants the original hard-codes in code
            rather than in its config (e.g. `region_fuse_groups`, `region_hidden_size`).
    """
    kind = detect_checkpoint_kind(original)
    perceiver = original.get("perceiver_cfg", {}) if kind == "groma" else original
    settings: dict[str, Any] = {
        "vision_config": _vision_config(perceiver),
        "proposer_config": _proposer_config(perceiver),
        "image_feature_layer": perceiver.get("vis_output_layer", -1),
    }
    if kind == "groma":
        llm = _with_defaults(original.get("llm_cfg") or {}, LLAMA_432_DEFAULTS)
        base_vocab = llm["vocab_size"]
        num_new_tokens = original.get("num_new_token", len(GROMA_ADDED_TOKENS))
        if num_new_tokens != len(GROMA_ADDED_TOKENS):
            raise ValueError(f"num_new_token={num_new_tokens}, expected the {len(GROMA_ADDED_TOKENS)} Groma tokens.")
        rope_theta = llm.pop("rope_theta")
        llm.pop("rope_scaling")
        token_ids = {
            "pad_token_id": "[PAD]",
            "image_token_id": "<image>",
            "region_token_id": "<region>",
            "refer_box_token_id": "<refer_box>",
            "ground_box_token_id": "<ground_box>",
            "refer_feat_token_id": "<refer_feat>",
            "region_index_token_id": "<r0>",
        }
        settings.update({name: added_token_id(token, base_vocab) for name, token in token_ids.items()})
        settings["text_config"] = {
            "model_type": "llama",
            **llm,
            "vocab_size": base_vocab + num_new_tokens,
            "pad_token_id": settings["pad_token_id"],
            "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        }
        settings.update(
            nms_threshold=original.get("nms_thres", 0.6),
            box_score_threshold=original.get("box_score_thres", 0.15),
            max_region_num=original.get("max_region_num", 100),
        )
    settings.update(overrides or {})
    return GromaConfig(**settings)
