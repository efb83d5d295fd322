"""Original Groma state-dict keys -> native keys: one regex table, applied to every key in one pass.

The table covers the full model (`GromaModel` of FoundationVision/Groma, keys under `perceiver.`, `llm.`, ...) and
the detection-pretraining model (`CustomDDETRModel`, the same perceiver keys without the prefix). The original's
separate vocabulary extension (`new_input_embs`, `extra_lm_head`) is appended to the base embedding / LM head.
"""

import re

import torch


# (pattern, replacement), applied in order to every original key once its `perceiver.` prefix is removed.
ORIGINAL_TO_NATIVE_KEY_MAPPING: list[tuple[str, str]] = [
    # DINOv2 (transformers 4.32 names -> 5.x names)
    (r"^vis_encoder\.", "vision_tower."),
    (r"\.attention\.attention\.query\.", ".attention.q_proj."),
    (r"\.attention\.attention\.key\.", ".attention.k_proj."),
    (r"\.attention\.attention\.value\.", ".attention.v_proj."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    # Region proposer; `ddetr_transformer.decoder.{bbox_embed,class_embed_*}` are aliases of the top-level heads
    (r"^input_proj\.0\.0\.", "region_proposer.input_proj."),
    (r"^input_proj\.0\.1\.", "region_proposer.input_norm."),
    (r"^ddetr_transformer\.decoder\.(bbox_embed|class_embed_)", r"ddetr_transformer.\1"),
    (r"^ddetr_transformer\.encoder\.layers\.(\d+)\.(fc1|fc2)\.", r"region_proposer.encoder_layers.\1.mlp.\2."),
    (r"^ddetr_transformer\.decoder\.layers\.(\d+)\.(fc1|fc2)\.", r"region_proposer.decoder_layers.\1.mlp.\2."),
    (r"^ddetr_transformer\.encoder\.layers\.", "region_proposer.encoder_layers."),
    (r"^ddetr_transformer\.decoder\.layers\.", "region_proposer.decoder_layers."),
    (r"\.self_attn\.out_proj\.", ".self_attn.o_proj."),
    (r"^ddetr_transformer\.query_position_embeddings\.", "region_proposer.query_embeddings."),
    (r"^ddetr_transformer\.bbox_embed\.", "region_proposer.bbox_heads."),
    (r"^ddetr_transformer\.class_embed_enc\.", "region_proposer.encoder_class_head."),
    (r"^ddetr_transformer\.class_embed_coco\.", "region_proposer.coco_class_heads."),
    (r"^ddetr_transformer\.class_embed_sa1b\.", "region_proposer.sa1b_class_heads."),
    (
        r"^ddetr_transformer\.(level_embed|enc_output_norm|enc_output|pos_trans_norm|pos_trans)\b",
        r"region_proposer.\1",
    ),
    # Image-to-text bridge and region encoder
    (r"^img_txt_bridge\.0\.", "multi_modal_projector.linear_1."),
    (r"^img_txt_bridge\.2\.", "multi_modal_projector.linear_2."),
    (r"^region_encoder\.mlvl_fuse\.input_conv\.", "region_encoder.fusion.input_convs."),
    (r"^region_encoder\.mlvl_fuse\.fuse_convs\.(\d+)\.conv\.", r"region_encoder.fusion.fuse_blocks.\1.conv."),
    (r"^region_encoder\.mlvl_fuse\.fuse_convs\.(\d+)\.gn\.", r"region_encoder.fusion.fuse_blocks.\1.norm."),
    (r"^region_encoder\.roi_align\.pconvs\.", "region_encoder.level_convs."),
    (r"^region_encoder\.roi_align\.flatten_linear\.", "region_encoder.flatten_proj."),
    (r"^region_encoder\.roi_align\.pos_embedd\.", "region_encoder.box_embedding."),
    (r"^region_encoder\.roi_align\.updims\.", "region_encoder.output_proj."),
    # LLM; the 114 added rows are appended to the base tables (see VOCABULARY_PARTS)
    (r"^llm\.model\.", "language_model."),
    (r"^new_input_embs\.weight$", "language_model.embed_tokens.weight"),
    (r"^llm\.lm_head\.weight$", "lm_head.weight"),
    (r"^extra_lm_head\.weight$", "lm_head.weight"),
]

# Native keys assembled from several original tensors, concatenated along rows in this order.
VOCABULARY_PARTS = {
    "language_model.embed_tokens.weight": ("llm.model.embed_tokens.weight", "new_input_embs.weight"),
    "lm_head.weight": ("llm.lm_head.weight", "extra_lm_head.weight"),
}

_COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in ORIGINAL_TO_NATIVE_KEY_MAPPING]


def convert_key(key: str) -> str | None:
    """Native (prefix-free) name of an original key, or None when no rule applies to it."""
    relative_key = key.removeprefix("perceiver.")
    new_key = relative_key
    for pattern, replacement in _COMPILED:
        new_key = pattern.sub(replacement, new_key)
    return new_key if new_key != relative_key else None


def convert_state_dict(original: dict[str, torch.Tensor], prefix: str = "model.") -> dict[str, torch.Tensor]:
    """Rename an original state dict to native keys.

    Aliased copies must be identical and are kept once; the vocabulary parts are concatenated.
    `prefix` is put before every key except `lm_head.weight` (`"model."` for `GromaForConditionalGeneration`,
    `""` for `GromaForRegionProposal`).

    Raises:
        KeyError: for original keys no rule maps (listed in the message).
        ValueError: when two aliased copies differ.
    """
    grouped: dict[str, list[str]] = {}
    unmapped = []
    for key in original:
        new_key = convert_key(key)
        if new_key is None:
            unmapped.append(key)
        else:
            grouped.setdefault(new_key, []).append(key)
    if unmapped:
        raise KeyError(f"{len(unmapped)} original key(s) have no native name: {sorted(unmapped)[:20]}")
    converted = {}
    for new_key, sources in grouped.items():
        if new_key in VOCABULARY_PARTS:
            missing = [name for name in VOCABULARY_PARTS[new_key] if name not in original]
            if missing:
                raise KeyError(f"{new_key} is assembled from {VOCABULARY_PARTS[new_key]}, but {missing} is missing.")
            tensor = torch.cat([original[name] for name in VOCABULARY_PARTS[new_key]], dim=0)
        else:
            tensor = original[sources[0]]
            for alias in sources[1:]:
                if not tensor.is_meta and not torch.equal(original[alias], tensor):
                    raise ValueError(f"Aliased keys {sources[0]!r} and {alias!r} hold different tensors.")
        converted[new_key if new_key == "lm_head.weight" else prefix + new_key] = tensor
    return converted
