"""Checked image inputs for the image processors: every image named by its position when it cannot be used, and
the inputs whose meaning is ambiguous (16-bit, floats already in [0, 1]) read explicitly.

Every image ends up as a PIL image or a `uint8` array (floats only with `do_rescale=False`, where the caller says
they are already in the model's range), so the processors' own rescaling always applies to 0-255 values.
"""

import base64
import binascii
import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from transformers.image_utils import load_image
from transformers.utils import logging


logger = logging.get_logger(__name__)

# PIL modes of 16- and 32-bit integer images (16-bit PNG/TIFF load as "I;16*" or "I").
_WIDE_INTEGER_MODES = re.compile(r"I(;16.*)?$")
_REMOTE_PREFIXES = ("http://", "https://", "data:image/")


def flat_list_of_images(images: Any, argument: str = "images") -> list[tuple[str, Any]]:
    """`(name, image)` for every image of `images`: nested lists are flattened and 4-D arrays or tensors split, each
    image named by its position (e.g. `images[1][0]`) for error messages. Items are not checked."""
    if isinstance(images, (list, tuple)):
        return [
            item for index, value in enumerate(images) for item in flat_list_of_images(value, f"{argument}[{index}]")
        ]
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        return [(f"{argument}[{index}]", image) for index, image in enumerate(images)]
    return [(argument, images)]


def load_images(images: Any, do_rescale: bool = True, argument: str = "images") -> list[PIL.Image.Image | np.ndarray]:
    """A flat list of usable images from paths, URLs, PIL images, numpy arrays or torch tensors.

    - Paths are opened with PIL (EXIF orientation applied); a missing file is a `FileNotFoundError`, a file that is
      not a readable image a `ValueError`, both naming the path. URLs and `data:` URIs are fetched by transformers;
      any other string must be a path or a base64-encoded image.
    - 2-D arrays are grayscale images; 3-D arrays are `(height, width, channels)` or `(channels, height, width)` with
      1, 3 or 4 channels.
    - 16-bit images (PIL modes `I;16`/`I`, `uint16` arrays) are mapped to 8 bits (`value / 257`) instead of
      saturating; other integer arrays must hold 0-255.
    - Floating-point arrays must be finite and in [0, 255]. With `do_rescale` (the default) an array whose values all
      lie in [0, 1] is read as already rescaled and multiplied by 255, with a warning (once) naming the fix
      (`do_rescale=False`, which passes floats through as they are).

    Raises:
        TypeError: for an item that is not an image (e.g. `42`, `None`, a boolean array).
        ValueError: for an empty input, an empty image, an unreadable file or array values the rules above refuse;
            the message names the item (`images[2]`) and what was expected.
        FileNotFoundError: for a path that does not exist.
    """
    items = flat_list_of_images(images, argument)
    if not items:
        raise ValueError(f"`{argument}` holds no image.")
    return [_load_image(image, name, do_rescale) for name, image in items]


def _load_image(image: Any, name: str, do_rescale: bool) -> PIL.Image.Image | np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        image = _open_image(image, name)
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"`{name}` is an empty image ({image.width}x{image.height} px).")
        if not (_WIDE_INTEGER_MODES.match(image.mode) or image.mode == "F"):
            return image
        image = np.asarray(image)  # 16/32-bit integer or float pixels: read as an array below
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = (image.float() if image.is_floating_point() else image).numpy()
    if isinstance(image, np.ndarray):
        return _to_uint8(_check_layout(image, name), name, do_rescale)
    raise TypeError(
        f"`{name}` must be an image (PIL image, numpy array, torch tensor, path or URL), got {type(image).__name__}."
    )


def _open_image(source: str | os.PathLike, name: str) -> PIL.Image.Image:
    text = os.fspath(source)
    if isinstance(text, str) and text.startswith(_REMOTE_PREFIXES):
        try:
            return load_image(text)
        except Exception as error:  # requests, PIL and base64 errors alike mean "cannot fetch this image"
            raise ValueError(f"`{name}`: cannot load the image at {text[:80]!r} ({error}).") from error
    path = Path(text)
    if path.is_file():
        data = path.read_bytes()
    else:
        data = _decode_base64(text)
        if data is None:
            raise FileNotFoundError(f"`{name}`: no image file at {text!r}.")
    try:
        with PIL.Image.open(io.BytesIO(data)) as opened:
            image = PIL.ImageOps.exif_transpose(opened)
            image.load()
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
        where = repr(text) if path.is_file() else "the base64 string"
        raise ValueError(f"`{name}`: {where} is not a readable image ({error}).") from error
    return image


def open_rgb_image(path: str | os.PathLike, description: str) -> PIL.Image.Image:
    """The image file at `path` as RGB; a ValueError starting with `description` (e.g. `"--image x.png"`) when the
    file cannot be read as an image."""
    try:
        with PIL.Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, PIL.Image.DecompressionBombError) as error:
        raise ValueError(f"{description} cannot be read as an image ({error}).") from error


def _decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) if len(text) > 64 else None
    except (binascii.Error, ValueError):
        return None


def _check_layout(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"`{name}` must hold integer or floating-point pixels, got dtype {array.dtype}.")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)  # grayscale
    if array.ndim != 3 or not (array.shape[0] in (1, 3, 4) or array.shape[-1] in (1, 3, 4)):
        raise ValueError(
            f"`{name}` must be (height, width), (height, width, channels) or (channels, height, width) with 1, 3 or 4 "
            f"channels, got shape {array.shape}."
        )
    if array.size == 0:
        raise ValueError(f"`{name}` is an empty image (shape {array.shape}).")
    return array


def _to_uint8(array: np.ndarray, name: str, do_rescale: bool) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.uint16):
        return np.round(array / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high <= 255:
            return array.astype(np.uint8)
        if low >= 0 and high <= 65535:  # 16-bit values in a wider integer type (PIL mode "I")
            return np.round(array / 257.0).astype(np.uint8)
        raise ValueError(
            f"`{name}` holds {array.dtype} values in [{low}, {high}]: pass 8-bit (0-255) or 16-bit (0-65535) pixels."
        )
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` holds NaN or infinite values.")
    if not do_rescale:
        return array
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
        raise ValueError(
            f"`{name}` holds float values in [{low:.3g}, {high:.3g}]: pass pixels in [0, 255] (or [0, 1]); a "
            "normalized image cannot be preprocessed again (pass `do_rescale=False` and `do_normalize=False` to "
            "use it as it is)."
        )
    if high <= 1:
        logger.warning_once(
            "Float images with values in [0, 1] are read as already rescaled: they are multiplied by 255 before the "
            "processor's 1/255 rescale. Pass `do_rescale=False` to say so and silence this warning."
        )
        array = array * 255.0
    return np.round(array).astype(np.uint8)


class CheckedImagesMixin:
    """Image processor mixin: `preprocess` runs its images through [`load_images`] first."""

    def preprocess(self, images: Any, *args, **kwargs):
        do_rescale = kwargs.get("do_rescale")
        images = load_images(images, do_rescale=self.do_rescale if do_rescale is None else do_rescale)
        return super().preprocess(images, *args, **kwargs)


__all__ = ["CheckedImagesMixin", "flat_list_of_images", "load_images"]
