"""Image branch of GroundingGPT: CLIP ViT-L/14-336 patch features through a 2-layer MLP (spec §1.2)."""

import torch
from torch import nn
from transformers import CLIPVisionModel
from transformers.activations import ACT2FN

from ...configuration_groundinggpt import GroundingGPTConfig
from ..dtypes import compute_dtype
from .outputs import GroundingGPTImageFeaturesOutput


class GroundingGPTMultiModalProjector(nn.Module):
    """Linear -> activation -> Linear from the CLIP width to the LLM width (the original `mm_vision_projector`)."""

    def __init__(self, config: GroundingGPTConfig):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_config.hidden_size, config.text_config.hidden_size)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(config.text_config.hidden_size, config.text_config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project (..., CLIP width) patch features to (..., LLM width) tokens."""
        return self.linear_2(self.act(self.linear_1(features)))


class GroundingGPTImageEncoder(nn.Module):
    """CLIP hidden state `vision_feature_layer` without its CLS token, projected to the LLM width."""

    def __init__(self, config: GroundingGPTConfig):
        super().__init__()
        self.feature_layer = config.vision_feature_layer
        self.vision_tower = CLIPVisionModel._from_config(config.vision_config)
        self.projector = GroundingGPTMultiModalProjector(config)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> GroundingGPTImageFeaturesOutput:
        """Encode (N, 3, image_size, image_size) CLIP-normalised images into (N, num_image_tokens, D) tokens
        (`pooler_output`); CLIP's hidden states and attentions are returned when requested."""
        image_size = self.vision_tower.config.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, image_size, image_size):
            raise ValueError(
                f"`pixel_values` must be (num_images, 3, {image_size}, {image_size}) padded-to-square CLIP inputs "
                f"(see GroundingGPTImageProcessor), got shape {tuple(pixel_values.shape)}."
            )
        if output_attentions is None:
            output_attentions = self.vision_tower.config.output_attentions
        outputs = self.vision_tower(
            pixel_values.to(self.vision_tower.dtype), output_hidden_states=True, output_attentions=output_attentions
        )
        vision_features = outputs.hidden_states[self.feature_layer][:, 1:]
        if output_hidden_states is None:
            output_hidden_states = self.vision_tower.config.output_hidden_states
        return GroundingGPTImageFeaturesOutput(
            pooler_output=self.projector(vision_features.to(compute_dtype(self.projector))),
            last_hidden_state=outputs.last_hidden_state,
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions,
            vision_features=vision_features,
        )


__all__ = ["GroundingGPTImageEncoder", "GroundingGPTMultiModalProjector"]
