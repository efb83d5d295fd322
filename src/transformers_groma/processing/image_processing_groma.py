"""Image processor for Groma (spec §3.1)."""

import torch
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

from .image_inputs import CheckedImagesMixin


class GromaImageProcessor(CheckedImagesMixin, TorchvisionBackend):
    r"""Constructs a Groma image processor.

    Every image is converted to RGB and squashed to `size` (448x448 by default) with a bicubic resize that ignores the
    aspect ratio, without cropping or padding, then rescaled by 1/255 and normalized with the ImageNet mean and
    standard deviation. This is the preprocessing of the original demo (`PIL.Image.resize((448, 448))`, whose default
    filter is bicubic, followed by a `BitImageProcessor` that only rescales and normalizes). Because the resize is a
    squash, normalized box coordinates are the same on the original and on the resized image; the original sizes are
    returned so that boxes can be mapped back to pixels.

    Accepts paths, URLs, PIL images, numpy arrays and torch tensors (channels first or last), single or batched,
    checked and read as described in [`~transformers_groma.processing.image_inputs.load_images`] (16-bit images,
    floats already in [0, 1]), and every argument of [`~transformers.image_processing_backends.TorchvisionBackend`]
    (`size`, `resample`, ...).

    Returns a [`~transformers.BatchFeature`] with:

    - **pixel_values** (`torch.Tensor` of shape `(batch_size, 3, height, width)`, a list of `(3, height, width)`
      tensors when `return_tensors=None`) -- the preprocessed images.
    - **image_sizes** (`torch.LongTensor` of shape `(batch_size, 2)`) -- `(height, width)` of each original image.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 448, "width": 448}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    model_input_names = ["pixel_values", "image_sizes"]

    def _preprocess(self, images: list[torch.Tensor], **kwargs) -> BatchFeature:
        # `images` are the channels-first originals: record their size before they are resized.
        image_sizes = torch.tensor([list(image.shape[-2:]) for image in images], dtype=torch.int64).reshape(-1, 2)
        outputs = super()._preprocess(images, **kwargs)
        outputs["image_sizes"] = image_sizes
        return outputs


__all__ = ["GromaImageProcessor"]
