"""GromaImageProcessor: squash resize, ImageNet normalization, original sizes."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from transformers_groma.processing import GromaImageProcessor


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def test_defaults_match_the_released_preprocessing():
    processor = GromaImageProcessor()
    outputs = processor(data.coffee(), return_tensors="pt")
    assert outputs["pixel_values"].shape == (1, 3, 448, 448)
    assert outputs["pixel_values"].dtype == torch.float32
    assert outputs["image_sizes"].tolist() == [[400, 600]]
    assert outputs["image_sizes"].dtype == torch.int64


def test_constant_image_is_rescaled_and_normalized():
    image = np.full((30, 50, 3), (255, 128, 0), dtype=np.uint8)
    pixel_values = GromaImageProcessor(size={"height": 14, "width": 14})(image, return_tensors="pt")["pixel_values"]
    expected = (torch.tensor([255.0, 128.0, 0.0]).view(3, 1, 1) / 255 - MEAN) / STD
    torch.testing.assert_close(pixel_values[0], expected.expand(3, 14, 14), rtol=0, atol=1e-5)


def test_squash_resize_matches_pil_bicubic_within_one_level():
    # The original demo: PIL.Image.resize((448, 448)) (bicubic), then rescale + normalize.
    image = Image.fromarray(data.astronaut())
    reference = torch.from_numpy(np.asarray(image.resize((448, 448)), dtype=np.float32) / 255).permute(2, 0, 1)
    reference = (reference - MEAN) / STD
    pixel_values = GromaImageProcessor()(image, return_tensors="pt")["pixel_values"][0]
    # uint8 resizes can round differently by one level: 1 / 255 / min(std)
    assert (pixel_values - reference).abs().max() <= 1 / 255 / 0.224 + 1e-5
    assert (pixel_values - reference).abs().mean() < 1e-3


def test_pil_numpy_and_torch_inputs_agree():
    array = data.astronaut()[::2, ::3]
    processor = GromaImageProcessor(size={"height": 112, "width": 112})
    from_pil = processor(Image.fromarray(array), return_tensors="pt")
    from_numpy = processor(array, return_tensors="pt")
    from_torch = processor(torch.from_numpy(array).permute(2, 0, 1), return_tensors="pt")
    for outputs in (from_numpy, from_torch):
        torch.testing.assert_close(outputs["pixel_values"], from_pil["pixel_values"])
        assert outputs["image_sizes"].tolist() == [[256, 171]]


def test_batch_of_different_sizes_and_modes():
    images = [
        Image.fromarray(data.coffee()),
        Image.fromarray(data.camera()),  # grayscale -> RGB
        Image.fromarray(np.zeros((20, 10, 4), dtype=np.uint8), mode="RGBA"),
    ]
    outputs = GromaImageProcessor(size=112)(images, return_tensors="pt")
    assert outputs["pixel_values"].shape == (3, 3, 112, 112)
    assert outputs["image_sizes"].tolist() == [[400, 600], [512, 512], [20, 10]]
    unbatched = GromaImageProcessor(size=112)(images)
    assert isinstance(unbatched["pixel_values"], list)
    assert unbatched["image_sizes"].shape == (3, 2)


def test_no_crop_or_padding_keeps_the_whole_image():
    # A white band on the right third must stay on the right third after the squash.
    image = np.zeros((60, 300, 3), dtype=np.uint8)
    image[:, 200:] = 255
    pixel_values = GromaImageProcessor(size={"height": 30, "width": 30})(image, return_tensors="pt")["pixel_values"]
    red = pixel_values[0, 0] * STD[0, 0, 0] + MEAN[0, 0, 0]
    assert red[:, :18].max() < 0.05 and red[:, 22:].min() > 0.95


def test_save_and_reload(tmp_path):
    processor = GromaImageProcessor(size={"height": 112, "width": 112})
    processor.save_pretrained(tmp_path)
    reloaded = GromaImageProcessor.from_pretrained(tmp_path)
    assert (reloaded.size.height, reloaded.size.width) == (112, 112)
    image = data.coffee()
    torch.testing.assert_close(
        reloaded(image, return_tensors="pt")["pixel_values"], processor(image, return_tensors="pt")["pixel_values"]
    )


@pytest.mark.parametrize("size", [{"height": 28, "width": 56}, 14])
def test_configurable_size(size):
    outputs = GromaImageProcessor(size=size)(data.coffee(), return_tensors="pt")
    expected = (28, 56) if isinstance(size, dict) else (14, 14)
    assert outputs["pixel_values"].shape[-2:] == expected
