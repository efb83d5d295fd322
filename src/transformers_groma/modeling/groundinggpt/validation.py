"""Input checks of GroundingGPT's forward and generate, on top of the shared ones of `modeling.validation`."""

import torch

from ...configuration_groundinggpt import GroundingGPTConfig
from ..validation import check_pixel_tensor, check_sequence_length, check_token_ids


def check_groundinggpt_inputs(
    input_ids: torch.Tensor, media: dict[str, torch.Tensor | None], config: GroundingGPTConfig
) -> None:
    """Validate a prefill: ids in the vocabulary and within the language model's positions, and every given media
    tensor non-empty, floating-point and finite (shapes are checked by the encoders). One reduction per tensor.

    Args:
        input_ids: `(batch, sequence_length)` prompts with their placeholder blocks.
        media: `pixel_values`, `pixel_values_videos` and `input_features` by name, None when absent.
        config: the model's config.
    """
    text_config = config.text_config
    check_token_ids(input_ids, text_config.vocab_size)
    check_sequence_length(input_ids.shape[1], text_config, "`input_ids`")
    for name, tensor in media.items():
        if tensor is not None:
            check_pixel_tensor(tensor, name, layout=None)  # the encoders check the layouts
