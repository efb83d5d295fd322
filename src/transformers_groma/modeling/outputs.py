"""Output dataclasses. Boxes are normalized (cx, cy, w, h) in [0, 1] of the (squashed) input image throughout."""

from dataclasses import dataclass

import torch
from transformers.generation.utils import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput
from transformers.modeling_outputs import BaseModelOutputWithPast, BaseModelOutputWithPooling, CausalLMOutputWithPast
from transformers.utils import ModelOutput


@dataclass
class GromaRegionProposerOutput(ModelOutput):
    """Output of [`GromaRegionProposer`] (B images, Q queries, L decoder layers, h*w encoder tokens).

    Args:
        pred_boxes: (B, Q, 4) final boxes, normalized cxcywh.
        scores: (B, Q) fused objectness `sigmoid(coco)^a * sigmoid(sa1b)^b`.
        logits_coco / logits_sa1b: (B, Q) objectness logits of the last decoder layer.
        all_pred_boxes: (B, L, Q, 4) boxes of every decoder layer (auxiliary losses).
        all_logits_coco / all_logits_sa1b: (B, L, Q) logits of every decoder layer.
        encoder_logits: (B, h*w, 1) two-stage encoder objectness logits.
        encoder_pred_boxes: (B, h*w, 4) two-stage encoder boxes.
        init_reference_points: (B, Q, 4) top-Q encoder boxes the decoder starts from.
        intermediate_reference_points: (B, L, Q, 4) refined reference boxes of every layer.
        encoder_last_hidden_state: (B, h*w, d_model).
        last_hidden_state: (B, Q, d_model) last decoder layer.
    """

    pred_boxes: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    logits_coco: torch.Tensor | None = None
    logits_sa1b: torch.Tensor | None = None
    all_pred_boxes: torch.Tensor | None = None
    all_logits_coco: torch.Tensor | None = None
    all_logits_sa1b: torch.Tensor | None = None
    encoder_logits: torch.Tensor | None = None
    encoder_pred_boxes: torch.Tensor | None = None
    init_reference_points: torch.Tensor | None = None
    intermediate_reference_points: torch.Tensor | None = None
    encoder_last_hidden_state: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None


@dataclass
class GromaRegionProposalOutput(GromaRegionProposerOutput):
    """Output of [`GromaForRegionProposal`]: the proposer output plus the detection loss.

    Args:
        loss: Scalar weighted detection loss (when `labels` are given).
        loss_dict: The individual loss terms (`loss_ce`, `loss_bbox`, `loss_giou`, with `_{i}` / `_enc` suffixes).
    """

    loss: torch.Tensor | None = None
    loss_dict: dict[str, torch.Tensor] | None = None


@dataclass
class GromaMultimodalInputs(ModelOutput):
    """The LLM-ready inputs built by [`GromaModel.prepare_multimodal_inputs`] (B samples, L expanded tokens).

    Args:
        inputs_embeds: (B, L, D) token embeddings with image, region and referred-region features injected.
        input_ids: (B, L) expanded ids: one `<image>` per image token, `<rK><region>` per region, `<refer_box>` and
            `<ground_box>` replaced by the matched `<rK>`; padded with `pad_token_id`.
        attention_mask: (B, L) 1 for real tokens.
        labels: (B, L) expanded labels (-100 on image/region slots and padding) when labels were given.
        region_boxes: per sample, (N_i, 4) the regions behind `<r0>` ... `<r{N_i-1}>`, normalized cxcywh.
        region_scores: per sample, (N_i,) their selection scores (1.0 for user boxes).
        image_outputs: [`GromaModel.get_image_features`] of the images (`pooler_output` = the image tokens).
    """

    inputs_embeds: torch.Tensor | None = None
    input_ids: torch.LongTensor | None = None
    attention_mask: torch.LongTensor | None = None
    labels: torch.LongTensor | None = None
    region_boxes: list[torch.Tensor] | None = None
    region_scores: list[torch.Tensor] | None = None
    image_outputs: BaseModelOutputWithPooling | None = None


@dataclass
class GromaModelOutputWithPast(BaseModelOutputWithPast):
    """Output of [`GromaModel`]: transformers' `BaseModelOutputWithPast` (the LLM's hidden states and its KV cache,
    under the installed release's name: `cache`, or `past_key_values` before 5.25) plus the fields below.

    Args:
        last_hidden_state: (B, L, D) LLM hidden states over the expanded sequence.
        hidden_states / attentions: per-layer LLM states, when requested.
        image_outputs: [`GromaModel.get_image_features`] of the images (None for text-only calls).
        region_boxes: per sample, (N_i, 4) normalized cxcywh regions behind `<rK>` (None for text-only calls).
        region_scores: per sample, (N_i,) their selection scores.
        expanded_input_ids: (B, L) the sequence the LLM saw (see [`GromaMultimodalInputs`]).
        expanded_attention_mask: (B, L) its attention mask.
        expanded_labels: (B, L) the labels aligned with it, when labels were given.
    """

    image_outputs: BaseModelOutputWithPooling | None = None
    region_boxes: list[torch.Tensor] | None = None
    region_scores: list[torch.Tensor] | None = None
    expanded_input_ids: torch.LongTensor | None = None
    expanded_attention_mask: torch.LongTensor | None = None
    expanded_labels: torch.LongTensor | None = None


@dataclass
class GromaCausalLMOutputWithPast(CausalLMOutputWithPast):
    """Output of [`GromaForConditionalGeneration`]: transformers' `CausalLMOutputWithPast` plus the fields of
    [`GromaModelOutputWithPast`].

    Args:
        loss: Scalar next-token cross-entropy over the supervised (label != -100) positions.
        logits: (B, L, vocab_size) over the expanded sequence.
    """

    image_outputs: BaseModelOutputWithPooling | None = None
    region_boxes: list[torch.Tensor] | None = None
    region_scores: list[torch.Tensor] | None = None
    expanded_input_ids: torch.LongTensor | None = None
    expanded_attention_mask: torch.LongTensor | None = None
    expanded_labels: torch.LongTensor | None = None


@dataclass
class GromaGenerateOutput(GenerateDecoderOnlyOutput):
    """`generate(..., return_dict_in_generate=True)` output with the regions the `<rK>` tokens refer to.

    `sequences` holds the caller's (unexpanded) prompt followed by the new tokens, so
    `sequences[:, input_ids.shape[1]:]` are the generated tokens.

    Args:
        region_boxes: per returned sequence, (N_i, 4) normalized cxcywh; `<rK>` in sequence i is
            `region_boxes[i][K]`.
        region_scores: per returned sequence, (N_i,) their selection scores.
    """

    region_boxes: list[torch.Tensor] | None = None
    region_scores: list[torch.Tensor] | None = None


@dataclass
class GromaGenerateBeamOutput(GenerateBeamDecoderOnlyOutput):
    """Beam-search counterpart of [`GromaGenerateOutput`] (one `region_boxes` entry per returned sequence)."""

    region_boxes: list[torch.Tensor] | None = None
    region_scores: list[torch.Tensor] | None = None
