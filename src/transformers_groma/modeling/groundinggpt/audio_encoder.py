"""Audio branch of GroundingGPT: the audio half of ImageBind (the only part of ImageBind the model uses), and the
clip position embedding, Q-Former and projection that turn the clip embeddings into the audio tokens (spec §1.4)."""

import math

import torch
from torch import nn
from transformers import Blip2QFormerModel

from ...configuration_groundinggpt import GroundingGPTConfig, GroundingGPTImageBindAudioConfig
from ..dtypes import compute_dtype
from .outputs import GroundingGPTAudioFeaturesOutput, GroundingGPTImageBindAudioOutput


class GroundingGPTImageBindMlp(nn.Module):
    """The feed-forward part of an ImageBind block: Linear to `intermediate_size`, GELU, Linear back."""

    def __init__(self, config: GroundingGPTImageBindAudioConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to (..., hidden_size) states."""
        return self.fc2(self.act(self.fc1(hidden_states)))


class GroundingGPTImageBindBlock(nn.Module):
    """Pre-LayerNorm transformer block of ImageBind's audio trunk.

    The attention is `nn.MultiheadAttention` with `add_bias_kv=True`: one learned key/value pair is appended to every
    sequence, so each token can also attend to a learned "null" slot. Keeping the torch module keeps the original
    parameter layout (`in_proj_weight`, `in_proj_bias`, `bias_k`, `bias_v`, `out_proj`).
    """

    def __init__(self, config: GroundingGPTImageBindAudioConfig):
        super().__init__()
        self.norm_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = nn.MultiheadAttention(
            config.hidden_size, config.num_attention_heads, bias=True, add_bias_kv=True, batch_first=True
        )
        self.norm_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GroundingGPTImageBindMlp(config)

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the block on (N, sequence, hidden_size) states (no mask: every clip has the same length); returns the
        new states and, when `output_attentions`, the per-head attention weights."""
        normed = self.norm_1(hidden_states)
        attended, weights = self.attn(
            normed, normed, normed, need_weights=output_attentions, average_attn_weights=False
        )
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.norm_2(hidden_states)), weights


class GroundingGPTImageBindAudioModel(nn.Module):
    """ImageBind's audio encoder: one embedding per log-mel clip.

    Patchify the (1, num_mel_bins, target_length) spectrogram with an overlapping convolution, LayerNorm, prepend a
    CLS token, add learned position embeddings, run the pre-LN blocks, LayerNorm the CLS token, project it, L2-normalise
    and multiply by the fixed `logit_scale`.
    """

    def __init__(self, config: GroundingGPTImageBindAudioConfig):
        super().__init__()
        self.config = config
        rows, columns = config.patch_grid
        self.patch_embedding = nn.Conv2d(
            1, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_stride, bias=False
        )
        self.patch_layernorm = nn.LayerNorm(config.hidden_size, eps=config.stem_layer_norm_eps)
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embedding = nn.Parameter(torch.zeros(1, 1 + rows * columns, config.hidden_size))
        self.layers = nn.ModuleList(GroundingGPTImageBindBlock(config) for _ in range(config.num_hidden_layers))
        self.head_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.hidden_size, config.output_size, bias=False)
        # ImageBind keeps ln(scale) as a float32 buffer and exponentiates it; this reproduces that float32 value.
        self.logit_scale = torch.tensor(math.log(config.logit_scale), dtype=torch.float32, device="cpu").exp().item()

    def forward(
        self,
        input_features: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> GroundingGPTImageBindAudioOutput:
        """Encode (N, 1, num_mel_bins, target_length) normalised log-mel clips into (N, output_size) embeddings;
        the trunk's hidden states and attentions when requested (default: the config's setting)."""
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        patches = self.patch_embedding(input_features.to(self.patch_embedding.weight.dtype))
        patches = self.patch_layernorm(patches.flatten(2).transpose(1, 2))
        class_embedding = self.class_embedding.expand(len(patches), -1, -1)
        embedding_output = torch.cat([class_embedding, patches], dim=1) + self.position_embedding
        hidden_states, all_hidden_states, attentions = embedding_output, [embedding_output], []
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, output_attentions)
            all_hidden_states.append(hidden_states)
            attentions.append(weights)
        pooled = self.head_layernorm(hidden_states[:, 0])
        audio_embeds = nn.functional.normalize(self.projection(pooled), dim=-1) * self.logit_scale
        return GroundingGPTImageBindAudioOutput(
            audio_embeds=audio_embeds,
            pooler_output=pooled,
            last_hidden_state=hidden_states,
            embedding_output=embedding_output,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class GroundingGPTAudioEncoder(nn.Module):
    """ImageBind embedding per clip + clip position embedding -> audio Q-Former (learned queries) -> linear to the LLM.

    A whole audio file is summarised by its clips' global embeddings (3 two-second clips in the released model).
    """

    def __init__(self, config: GroundingGPTConfig):
        super().__init__()
        qformer_config = config.audio_qformer_config
        self.audio_tower = GroundingGPTImageBindAudioModel(config.audio_config)
        self.clip_position_embedding = nn.Embedding(config.max_audio_clips, config.audio_config.output_size)
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_audio_query_tokens, qformer_config.hidden_size))
        self.qformer = Blip2QFormerModel._from_config(qformer_config)
        self.projection = nn.Linear(qformer_config.hidden_size, config.text_config.hidden_size)

    def forward(
        self,
        input_features: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> GroundingGPTAudioFeaturesOutput:
        """Encode (N, num_clips, 1, num_mel_bins, target_length) audio features into (N, num_audio_tokens, D), with
        ImageBind's hidden states and attentions over the N x num_clips clips when requested."""
        self._check_input_features(input_features)
        num_audios, num_clips = input_features.shape[:2]
        imagebind_output = self.audio_tower(input_features.flatten(0, 1), output_hidden_states, output_attentions)
        clip_embeds = imagebind_output.audio_embeds.view(num_audios, num_clips, -1)
        clip_embeds = clip_embeds + self.clip_position_embedding(torch.arange(num_clips, device=clip_embeds.device))
        queries = self.query_tokens.expand(num_audios, -1, -1)
        qformer_hidden_states = self.qformer(query_embeds=queries, encoder_hidden_states=clip_embeds).last_hidden_state
        audio_embeds = self.projection(qformer_hidden_states.to(compute_dtype(self.projection)))
        return GroundingGPTAudioFeaturesOutput(
            pooler_output=audio_embeds,
            last_hidden_state=qformer_hidden_states,
            clip_embeds=clip_embeds,
            imagebind_output=imagebind_output,
            hidden_states=imagebind_output.hidden_states,
            attentions=imagebind_output.attentions,
        )

    def _check_input_features(self, input_features: torch.Tensor) -> None:
        config = self.audio_tower.config
        expected = (1, config.num_mel_bins, config.target_length)
        if input_features.ndim != 5 or tuple(input_features.shape[2:]) != expected:
            raise ValueError(
                f"`input_features` must be (num_audios, num_clips, {', '.join(map(str, expected))}) log-mel clips "
                f"(see GroundingGPTFeatureExtractor), got shape {tuple(input_features.shape)}."
            )
        if not 1 <= input_features.shape[1] <= self.clip_position_embedding.num_embeddings:
            raise ValueError(
                f"`input_features` holds {input_features.shape[1]} clips per audio; the model has clip position "
                f"embeddings for 1 to {self.clip_position_embedding.num_embeddings}."
            )


__all__ = ["GroundingGPTAudioEncoder", "GroundingGPTImageBindAudioModel"]
