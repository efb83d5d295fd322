"""Building the GroundingGPT of the instruction stage and choosing what trains (spec §6.1, stages 2-3).

| Trains | Frozen (in eval mode, as the original's `disabled_train`) |
|---|---|
| LLM (embeddings and LM head included), image MLP, frame position embedding, temporal Q-Former and its queries, video projection, clip position embedding, audio Q-Former and its queries, audio projection | CLIP, EVA-ViT-g with `ln_vision`, the BLIP-2 frame Q-Former and its queries, ImageBind |
"""

import torch
from torch import nn

from ...configuration_groundinggpt import GROUNDINGGPT_TOKENS, TOKEN_ID_FIELDS
from ...modeling.groundinggpt import GroundingGPTForConditionalGeneration
from ...processing.groundinggpt import GroundingGPTProcessor
from ...tiny import tiny_groundinggpt_config, tiny_groundinggpt_processor
from ..model_setup import check_token_ids
from .arguments import GroundingGPTModelArguments


FROZEN_MODULES = (
    "model.image_encoder.vision_tower",
    "model.video_encoder.vision_tower",
    "model.video_encoder.frame_qformer",
    "model.audio_encoder.audio_tower",
)
FROZEN_PARAMETERS = ("model.video_encoder.frame_query_tokens",)
# With LoRA (`--lora_r`): the projections from each branch to the LLM train in full beside the adapters; the rest
# (the branches' Q-Formers and position embeddings, the embeddings and the LM head) is frozen.
LORA_MODULES_TO_SAVE = ("image_encoder.projector", "video_encoder.projection", "audio_encoder.projection")


def build_groundinggpt_model(
    args: GroundingGPTModelArguments, max_length: int
) -> tuple[GroundingGPTForConditionalGeneration, GroundingGPTProcessor]:
    """The model (float32) and processor the instruction stage starts from.

    Sets the LLM's attention implementation and the tokenizer's `model_max_length`, and checks that the processor
    belongs to the model: the same 9 token ids and the same number of tokens per image, video and audio.
    """
    if args.init_from_tiny:
        model, processor = (
            GroundingGPTForConditionalGeneration(tiny_groundinggpt_config()),
            tiny_groundinggpt_processor(),
        )
    else:
        processor = GroundingGPTProcessor.from_pretrained(args.model_name_or_path)
        model = GroundingGPTForConditionalGeneration.from_pretrained(args.model_name_or_path, dtype=torch.float32)
    model.set_attn_implementation({"text_config": args.attn_implementation})
    processor.tokenizer.model_max_length = max_length
    check_token_ids(model.config, processor.tokenizer, dict(zip(TOKEN_ID_FIELDS, GROUNDINGGPT_TOKENS)))
    for modality in ("image", "video", "audio"):
        expected, written = (
            getattr(model.config, f"num_{modality}_tokens"),
            getattr(processor, f"num_{modality}_tokens"),
        )
        if expected != written:
            raise ValueError(
                f"The processor writes {written} tokens per {modality} but the model fills {expected}: the model and "
                "processor do not belong together."
            )
    return model, processor


def _stay_in_eval_mode(module: nn.Module, args: tuple) -> None:
    module.train(False)


def configure_groundinggpt_trainable(model: GroundingGPTForConditionalGeneration) -> None:
    """Freeze the pretrained encoders and keep them in eval mode (no dropout in the BLIP-2 Q-Former); train the rest
    (see the module docstring)."""
    model.requires_grad_(True)
    for name in FROZEN_MODULES:
        module = model.get_submodule(name)
        module.requires_grad_(False)
        module.register_forward_pre_hook(_stay_in_eval_mode)
    for name in FROZEN_PARAMETERS:
        model.get_parameter(name).requires_grad_(False)


__all__ = ["LORA_MODULES_TO_SAVE", "build_groundinggpt_model", "configure_groundinggpt_trainable"]
