"""Output dataclasses of the GroundingGPT models. N = media items, D = LLM width, L = prompt length."""

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutputWithPast, BaseModelOutputWithPooling, CausalLMOutputWithPast
from transformers.utils import ModelOutput


@dataclass
class GroundingGPTImageBindAudioOutput(ModelOutput):
    """Output of [`GroundingGPTImageBindAudioModel`] for N clips (P spectrogram patches, H trunk width).

    Args:
        audio_embeds: (N, output_size) the head projection of the CLS token, L2-normalised and scaled by `logit_scale`
            (ImageBind's post-processed audio embedding).
        pooler_output: (N, H) the CLS token after the head LayerNorm.
        last_hidden_state: (N, 1 + P, H) output of the last block.
        embedding_output: (N, 1 + P, H) input of the first block (patch embeddings, CLS and position embeddings).
        hidden_states: when requested, the embedding output and every block's output, (N, 1 + P, H) each.
        attentions: when requested, every block's attention weights, (N, heads, 1 + P, 2 + P) each (the last key is
            the learned bias key/value slot).
    """

    audio_embeds: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    embedding_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class GroundingGPTImageFeaturesOutput(BaseModelOutputWithPooling):
    """Image branch output for N images (C = CLIP width), in transformers' VLM feature layout.

    Args:
        pooler_output: (N, num_image_tokens, D) the tokens that replace each image's `<im_patch>` placeholders (also
            as `image_embeds`).
        last_hidden_state: (N, 1 + num_image_tokens, C) CLIP's last hidden state.
        hidden_states / attentions: CLIP's, embeddings first, when requested.
        vision_features: (N, num_image_tokens, C) the patch tokens of CLIP layer `vision_feature_layer` (CLS dropped).
    """

    vision_features: torch.FloatTensor | None = None

    @property
    def image_embeds(self) -> torch.FloatTensor | None:
        return self.pooler_output


@dataclass
class GroundingGPTVideoFeaturesOutput(BaseModelOutputWithPooling):
    """Video branch output for N videos of up to T frames (F = real frames in total, Q frame queries, Hq Q-Former
    width, E EVA width, P EVA patches), in transformers' VLM feature layout.

    Args:
        pooler_output: (N, num_video_tokens, D) the tokens that replace each video's `<vi_patch>` placeholders (also
            as `video_embeds`).
        last_hidden_state: (N, num_video_tokens, Hq) output of the temporal Q-Former.
        frame_query_embeds: (N, T * Q, Hq) frame Q-Former outputs plus the frame position embeddings, frame-major:
            what the temporal Q-Former attends to (zeros at padded frames).
        frame_attention_mask: (N, T * Q) int64, 1 where `frame_query_embeds` belongs to a real frame, 0 at padding.
        frame_qformer_hidden_states: (F, Q, Hq) frame Q-Former output of every real frame.
        frame_features: (F, 1 + P, E) EVA features of every real frame after `ln_vision`.
        hidden_states, attentions: when requested, EVA-ViT's over the F real frames.
    """

    frame_query_embeds: torch.FloatTensor | None = None
    frame_attention_mask: torch.LongTensor | None = None
    frame_qformer_hidden_states: torch.FloatTensor | None = None
    frame_features: torch.FloatTensor | None = None

    @property
    def video_embeds(self) -> torch.FloatTensor | None:
        return self.pooler_output

    @property
    def temporal_hidden_states(self) -> torch.FloatTensor | None:
        return self.last_hidden_state


@dataclass
class GroundingGPTAudioFeaturesOutput(BaseModelOutputWithPooling):
    """Audio branch output for N audios of S clips each (Hq Q-Former width), in transformers' VLM feature layout.

    Args:
        pooler_output: (N, num_audio_tokens, D) the tokens that replace each audio's `<so_patch>` placeholders (also
            as `audio_embeds`).
        last_hidden_state: (N, num_audio_tokens, Hq) output of the audio Q-Former.
        clip_embeds: (N, S, output_size) ImageBind clip embeddings plus the clip position embeddings: what the audio
            Q-Former attends to.
        imagebind_output: [`GroundingGPTImageBindAudioOutput`] of the N * S clips (audio-major).
        hidden_states, attentions: when requested, ImageBind's (those of `imagebind_output`, over the N * S clips).
    """

    clip_embeds: torch.FloatTensor | None = None
    imagebind_output: GroundingGPTImageBindAudioOutput | None = None

    @property
    def audio_embeds(self) -> torch.FloatTensor | None:
        return self.pooler_output

    @property
    def qformer_hidden_states(self) -> torch.FloatTensor | None:
        return self.last_hidden_state


@dataclass
class GroundingGPTModelOutputWithPast(BaseModelOutputWithPast):
    """Output of [`GroundingGPTModel`]: transformers' `BaseModelOutputWithPast` (with the LLM's cache under the
    installed release's name: `cache`, or `past_key_values` before 5.25) plus the fields below.

    Args:
        last_hidden_state: (B, L, D) LLM output after the final norm.
        hidden_states / attentions: The LLM's, when requested.
        inputs_embeds: (B, L, D) the LLM input: token embeddings with the media tokens spliced in.
        image_embeds / video_embeds / audio_embeds: the spliced media tokens, (N, tokens, D), when media were given.
        image_outputs / video_outputs / audio_outputs: the encoders' whole outputs (as from `get_image_features`,
            `get_video_features`, `get_audio_features`; `pooler_output` = the spliced tokens), when media were given.
    """

    inputs_embeds: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    image_outputs: GroundingGPTImageFeaturesOutput | None = None
    video_outputs: GroundingGPTVideoFeaturesOutput | None = None
    audio_outputs: GroundingGPTAudioFeaturesOutput | None = None


@dataclass
class GroundingGPTCausalLMOutputWithPast(CausalLMOutputWithPast):
    """Output of [`GroundingGPTForConditionalGeneration`]: transformers' `CausalLMOutputWithPast` plus the fields below.

    Args:
        loss: Scalar next-token cross-entropy (when `labels` are given).
        logits: (B, L, vocab_size) prediction scores (only the last `logits_to_keep` positions when that is set).
        hidden_states, attentions, inputs_embeds, image_embeds, video_embeds, audio_embeds, image_outputs,
            video_outputs, audio_outputs: As in [`GroundingGPTModelOutputWithPast`].
    """

    inputs_embeds: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    image_outputs: GroundingGPTImageFeaturesOutput | None = None
    video_outputs: GroundingGPTVideoFeaturesOutput | None = None
    audio_outputs: GroundingGPTAudioFeaturesOutput | None = None
