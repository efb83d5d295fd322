"""transformers-groma: Groma and GroundingGPT grounded multimodal LLMs, natively in Hugging Face Transformers.

Importing the package registers the Groma and GroundingGPT classes with the Auto classes, so `AutoConfig`,
`AutoModel`, `AutoModelForImageTextToText` and `AutoProcessor` load their folders without `trust_remote_code`.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoModelForObjectDetection,
    AutoProcessor,
    AutoVideoProcessor,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .configuration_groma import GromaConfig, GromaRegionProposerConfig
from .configuration_groundinggpt import GroundingGPTConfig, GroundingGPTImageBindAudioConfig
from .modeling import (
    GromaForConditionalGeneration,
    GromaForRegionProposal,
    GromaGenerateOutput,
    GromaModel,
    GromaPreTrainedModel,
)
from .modeling.groundinggpt import (
    GroundingGPTForConditionalGeneration,
    GroundingGPTModel,
    GroundingGPTPreTrainedModel,
)
from .pipelines import GroundedImageTextToTextPipeline, register_grounded_pipeline
from .processing import GromaImageProcessor, GromaProcessor
from .processing.groundinggpt import (
    GroundingGPTFeatureExtractor,
    GroundingGPTImageProcessor,
    GroundingGPTProcessor,
    GroundingGPTVideoProcessor,
)
from .version import __version__


def register_auto_classes() -> None:
    """Register the Groma classes with transformers' Auto classes (idempotent; run at import)."""
    if "groma" in CONFIG_MAPPING and CONFIG_MAPPING["groma"] is not GromaConfig:
        raise RuntimeError(
            "Another 'groma' config is registered with transformers (the original Groma package?); "
            "import only one implementation per process."
        )
    AutoConfig.register("groma", GromaConfig, exist_ok=True)
    AutoConfig.register("groma_region_proposer", GromaRegionProposerConfig, exist_ok=True)
    AutoModel.register(GromaConfig, GromaModel, exist_ok=True)
    AutoModelForImageTextToText.register(GromaConfig, GromaForConditionalGeneration, exist_ok=True)
    AutoModelForMultimodalLM.register(GromaConfig, GromaForConditionalGeneration, exist_ok=True)
    AutoModelForObjectDetection.register(GromaConfig, GromaForRegionProposal, exist_ok=True)
    AutoImageProcessor.register(
        GromaConfig, image_processor_classes={"torchvision": GromaImageProcessor}, exist_ok=True
    )
    AutoProcessor.register(GromaConfig, GromaProcessor, exist_ok=True)
    _register_groundinggpt()
    register_grounded_pipeline()


def _register_groundinggpt() -> None:
    """Register the GroundingGPT classes (idempotent)."""
    if "groundinggpt" in CONFIG_MAPPING and CONFIG_MAPPING["groundinggpt"] is not GroundingGPTConfig:
        raise RuntimeError(
            "Another 'groundinggpt' config is registered with transformers; import only one implementation per process."
        )
    AutoConfig.register("groundinggpt", GroundingGPTConfig, exist_ok=True)
    AutoConfig.register("groundinggpt_imagebind_audio", GroundingGPTImageBindAudioConfig, exist_ok=True)
    AutoModel.register(GroundingGPTConfig, GroundingGPTModel, exist_ok=True)
    AutoModelForImageTextToText.register(GroundingGPTConfig, GroundingGPTForConditionalGeneration, exist_ok=True)
    AutoModelForMultimodalLM.register(GroundingGPTConfig, GroundingGPTForConditionalGeneration, exist_ok=True)
    AutoImageProcessor.register(
        GroundingGPTConfig, image_processor_classes={"pil": GroundingGPTImageProcessor}, exist_ok=True
    )
    AutoVideoProcessor.register(GroundingGPTConfig, GroundingGPTVideoProcessor, exist_ok=True)
    AutoFeatureExtractor.register(GroundingGPTConfig, GroundingGPTFeatureExtractor, exist_ok=True)
    AutoProcessor.register(GroundingGPTConfig, GroundingGPTProcessor, exist_ok=True)


register_auto_classes()

__all__ = [
    "GromaConfig",
    "GromaForConditionalGeneration",
    "GromaForRegionProposal",
    "GromaGenerateOutput",
    "GromaImageProcessor",
    "GromaModel",
    "GromaPreTrainedModel",
    "GromaProcessor",
    "GromaRegionProposerConfig",
    "GroundedImageTextToTextPipeline",
    "GroundingGPTConfig",
    "GroundingGPTFeatureExtractor",
    "GroundingGPTForConditionalGeneration",
    "GroundingGPTImageBindAudioConfig",
    "GroundingGPTImageProcessor",
    "GroundingGPTModel",
    "GroundingGPTPreTrainedModel",
    "GroundingGPTProcessor",
    "GroundingGPTVideoProcessor",
    "__version__",
    "register_auto_classes",
]
