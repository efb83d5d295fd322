"""Video branch of GroundingGPT: EVA-ViT-g + BLIP-2 Q-Former per frame, frame position embeddings, a temporal
Q-Former over all frames and a linear projection to the LLM (spec §1.3, Video-LLaMA's visual branch)."""

import torch
from torch import nn
from transformers import Blip2QFormerModel, Blip2VisionModel

from ...configuration_groundinggpt import GroundingGPTConfig
from ..dtypes import compute_dtype
from .outputs import GroundingGPTVideoFeaturesOutput


class GroundingGPTFloat32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and returned in the input dtype (the original `ln_vision`)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Normalise `hidden_states` over the last dimension in float32; the result has the input dtype."""
        normed = nn.functional.layer_norm(
            hidden_states.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        )
        return normed.to(hidden_states.dtype)


class GroundingGPTVideoEncoder(nn.Module):
    """Frames -> EVA-ViT-g (`vision_tower`, a [`~transformers.Blip2VisionModel`] whose final LayerNorm is the
    original `ln_vision`) -> frame Q-Former -> + frame position embedding -> temporal Q-Former -> linear.

    Videos of a batch may have different frame counts: they are padded to the same T and `video_num_frames` says how
    many frames are real. Padded frames are not encoded and are masked out of the temporal Q-Former's attention.
    """

    def __init__(self, config: GroundingGPTConfig):
        super().__init__()
        frame_config, temporal_config = config.video_qformer_config, config.video_temporal_qformer_config
        self.vision_tower = Blip2VisionModel._from_config(config.video_vision_config)
        self.vision_tower.post_layernorm = GroundingGPTFloat32LayerNorm(
            config.video_vision_config.hidden_size, eps=config.video_layernorm_eps
        )
        self.frame_query_tokens = nn.Parameter(torch.zeros(1, config.num_frame_query_tokens, frame_config.hidden_size))
        self.frame_qformer = Blip2QFormerModel._from_config(frame_config)
        self.frame_position_embedding = nn.Embedding(config.max_frames, frame_config.hidden_size)
        self.video_query_tokens = nn.Parameter(
            torch.zeros(1, config.num_video_query_tokens, temporal_config.hidden_size)
        )
        self.temporal_qformer = Blip2QFormerModel._from_config(temporal_config)
        self.projection = nn.Linear(temporal_config.hidden_size, config.text_config.hidden_size)

    def forward(
        self,
        pixel_values_videos: torch.Tensor,
        video_num_frames: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> GroundingGPTVideoFeaturesOutput:
        """Encode (N, 3, T, H, W) CLIP-normalised videos into (N, num_video_tokens, D).

        Args:
            pixel_values_videos: The frames in the original (channels, time) layout.
            video_num_frames: (N,) real frames per video (the first ones); all T when omitted.
            output_hidden_states, output_attentions: Return EVA-ViT's hidden states / attentions over the real frames
                ((F, ...) each, video-major); default: the video vision config's setting.
        """
        frame_mask = self._frame_mask(pixel_values_videos, video_num_frames)
        num_videos, num_frames = frame_mask.shape
        frames = pixel_values_videos.transpose(1, 2)[frame_mask]  # (F, 3, H, W), video-major like the original
        if output_hidden_states is None:
            output_hidden_states = self.vision_tower.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.vision_tower.config.output_attentions
        tower_outputs = self.vision_tower(
            frames.to(self.vision_tower.dtype),
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        frame_features = tower_outputs.last_hidden_state
        queries = self.frame_query_tokens.expand(len(frame_features), -1, -1)
        frame_states = self.frame_qformer(query_embeds=queries, encoder_hidden_states=frame_features).last_hidden_state

        per_frame = frame_states.new_zeros(num_videos, num_frames, *frame_states.shape[1:])
        per_frame[frame_mask] = frame_states
        frame_positions = self.frame_position_embedding(torch.arange(num_frames, device=per_frame.device))
        per_frame = per_frame + frame_positions[:, None].to(per_frame.dtype)
        frame_query_embeds = per_frame.flatten(1, 2)
        frame_attention_mask = frame_mask.repeat_interleave(frame_states.shape[1], dim=1).long()
        queries = self.video_query_tokens.expand(num_videos, -1, -1)
        temporal_hidden_states = self.temporal_qformer(
            query_embeds=queries,
            encoder_hidden_states=frame_query_embeds,
            encoder_attention_mask=None if frame_attention_mask.all() else frame_attention_mask,
        ).last_hidden_state
        return GroundingGPTVideoFeaturesOutput(
            pooler_output=self.projection(temporal_hidden_states.to(compute_dtype(self.projection))),
            last_hidden_state=temporal_hidden_states,
            frame_query_embeds=frame_query_embeds,
            frame_attention_mask=frame_attention_mask,
            frame_qformer_hidden_states=frame_states,
            frame_features=frame_features,
            hidden_states=tower_outputs.hidden_states,
            attentions=tower_outputs.attentions,
        )

    def _frame_mask(self, pixel_values_videos: torch.Tensor, video_num_frames: torch.Tensor | None) -> torch.Tensor:
        """(N, T) True for real frames, after checking the layout and the frame counts."""
        image_size = self.vision_tower.config.image_size
        if (
            pixel_values_videos.ndim != 5
            or pixel_values_videos.shape[1] != 3
            or tuple(pixel_values_videos.shape[3:]) != (image_size, image_size)
        ):
            raise ValueError(
                f"`pixel_values_videos` must be (num_videos, 3, num_frames, {image_size}, {image_size}) (channels "
                f"before frames, the original layout; see GroundingGPTVideoProcessor), got shape "
                f"{tuple(pixel_values_videos.shape)}."
            )
        num_videos, num_frames = pixel_values_videos.shape[0], pixel_values_videos.shape[2]
        max_frames = self.frame_position_embedding.num_embeddings
        if num_frames > max_frames:
            raise ValueError(f"`pixel_values_videos` has {num_frames} frames; the model takes at most {max_frames}.")
        if video_num_frames is None:
            return torch.ones(num_videos, num_frames, dtype=torch.bool, device=pixel_values_videos.device)
        video_num_frames = torch.as_tensor(video_num_frames, device=pixel_values_videos.device)
        in_range = (video_num_frames >= 1) & (video_num_frames <= num_frames)
        if video_num_frames.shape != (num_videos,) or not in_range.all():
            raise ValueError(
                f"`video_num_frames` must hold one count in [1, {num_frames}] per video ({num_videos}), got "
                f"{video_num_frames.tolist()}."
            )
        return torch.arange(num_frames, device=pixel_values_videos.device) < video_num_frames[:, None]


__all__ = ["GroundingGPTFloat32LayerNorm", "GroundingGPTVideoEncoder"]
