"""Image processor for GroundingGPT: pad to a square with the CLIP mean colour, then CLIP preprocessing (§4.1)."""

import numpy as np
from transformers.image_processing_utils import BatchFeature
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

from ...saving import RemoteCodeSavingMixin
from ..image_inputs import CheckedImagesMixin


class GroundingGPTImageProcessor(RemoteCodeSavingMixin, CheckedImagesMixin, LlavaImageProcessorPil):
    r"""Constructs a GroundingGPT image processor.

    Every image is converted to RGB, padded to a square (side = its longer edge, the image centred along the shorter
    one, offset `floor(difference / 2)`) with the CLIP mean colour `(122, 116, 104)`, then preprocessed like
    `openai/clip-vit-large-patch14-336`: bicubic resize of the shortest edge to 336 (PIL), centre crop 336, rescale by
    1/255 and normalise with the CLIP mean and standard deviation. This is the original's `expand2square` +
    `CLIPImageProcessor` (the LLaVA-1.5 pipeline, hence the base class). Boxes the model writes are normalised to the
    padded square; [`GroundingGPTProcessor.post_process_grounding`] maps them back with the returned sizes. Inputs are
    checked and read as described in [`~transformers_groma.processing.image_inputs.load_images`].

    Returns a [`~transformers.BatchFeature`] with:

    - **pixel_values** (`(batch_size, 3, 336, 336)`) -- the preprocessed images.
    - **image_sizes** (`(batch_size, 2)` int64) -- `(height, width)` of each original image.
    """

    size = {"shortest_edge": 336}
    crop_size = {"height": 336, "width": 336}
    do_pad = True
    model_input_names = ["pixel_values", "image_sizes"]

    def _preprocess(self, images: list[np.ndarray], **kwargs) -> BatchFeature:
        # `images` are the channels-first originals: record their size before they are padded and resized.
        image_sizes = np.array([image.shape[-2:] for image in images], dtype=np.int64).reshape(-1, 2)
        outputs = super()._preprocess(images, **kwargs)
        return BatchFeature({**outputs, "image_sizes": image_sizes}, tensor_type=kwargs.get("return_tensors"))


__all__ = ["GroundingGPTImageProcessor"]
