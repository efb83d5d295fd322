"""transformers-groma: Groma grounded multimodal LLMs, natively in Hugging Face Transformers.

Importing the package registers the Groma classes with the Auto classes, so `AutoConfig`, `AutoModel`,
`AutoModelForImageTextToText` and `AutoProcessor` load Groma folders without `trust_remote_code`.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoProcessor,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .configuration_groma import GromaConfig, GromaRegionProposerConfig
from .modeling import (
    GromaForConditionalGeneration,
    GromaForRegionProposal,
    GromaGenerateOutput,
    GromaModel,
    GromaPreTrainedModel,
)
from .processing import GromaImageProcessor, GromaProcessor
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
    AutoImageProcessor.register(
        GromaConfig, image_processor_classes={"torchvision": GromaImageProcessor}, exist_ok=True
    )
    AutoProcessor.register(GromaConfig, GromaProcessor, exist_ok=True)


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
    "__version__",
    "register_auto_classes",
]
