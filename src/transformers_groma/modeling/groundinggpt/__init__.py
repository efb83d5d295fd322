"""GroundingGPT modeling: the config's models, their media branches and output types."""

from .audio_encoder import GroundingGPTAudioEncoder, GroundingGPTImageBindAudioModel
from .image_encoder import GroundingGPTImageEncoder, GroundingGPTMultiModalProjector
from .modeling_groundinggpt import (
    GroundingGPTForConditionalGeneration,
    GroundingGPTModel,
    GroundingGPTPreTrainedModel,
)
from .outputs import (
    GroundingGPTAudioFeaturesOutput,
    GroundingGPTCausalLMOutputWithPast,
    GroundingGPTImageBindAudioOutput,
    GroundingGPTImageFeaturesOutput,
    GroundingGPTModelOutputWithPast,
    GroundingGPTVideoFeaturesOutput,
)
from .video_encoder import GroundingGPTVideoEncoder


__all__ = [
    "GroundingGPTAudioEncoder",
    "GroundingGPTAudioFeaturesOutput",
    "GroundingGPTCausalLMOutputWithPast",
    "GroundingGPTForConditionalGeneration",
    "GroundingGPTImageBindAudioModel",
    "GroundingGPTImageBindAudioOutput",
    "GroundingGPTImageEncoder",
    "GroundingGPTImageFeaturesOutput",
    "GroundingGPTModel",
    "GroundingGPTModelOutputWithPast",
    "GroundingGPTMultiModalProjector",
    "GroundingGPTPreTrainedModel",
    "GroundingGPTVideoEncoder",
    "GroundingGPTVideoFeaturesOutput",
]
