"""Groma and GroundingGPT processors, image processors and the audio feature extractor on bad inputs: every error
names the argument (or file), and ambiguous images are read explicitly."""

import io
import logging
import struct
import wave

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_groma.processing.image_inputs import load_images
from transformers_groma.tiny import tiny_groma_processor, tiny_groundinggpt_processor


PROMPT = "<image><region> What is this?"
RGB = np.array([[[200, 100, 50]]], dtype=np.uint8).repeat(28, 0).repeat(28, 1)


@pytest.fixture(scope="module")
def groma():
    return tiny_groma_processor()


@pytest.fixture(scope="module")
def groundinggpt():
    return tiny_groundinggpt_processor()


def pixels(processor, image, **kwargs):
    return processor.image_processor(image, return_tensors="pt", **kwargs)["pixel_values"]


@pytest.mark.parametrize(
    "images, error, message",
    [
        (42, TypeError, r"`images` must be an image .*got int"),
        ([RGB, None], TypeError, r"`images\[1\]` must be an image .*got NoneType"),
        ("abcd", FileNotFoundError, r"`images`: no image file at 'abcd'"),  # would decode as base64
        (np.zeros((0, 0, 3), np.uint8), ValueError, r"`images` is an empty image"),
        (Image.new("RGB", (0, 0)), ValueError, r"`images` is an empty image"),
        (np.zeros((8, 8, 3), bool), TypeError, r"`images` must hold integer or floating-point pixels, got dtype bool"),
        (np.full((8, 8, 3), np.nan, np.float32), ValueError, r"`images` holds NaN or infinite values"),
        (np.zeros((1, 1, 8, 8, 3), np.uint8), ValueError, r"`images` must be \(height, width\).*got shape"),
        (np.zeros((8, 8, 5), np.uint8), ValueError, r"with 1, 3 or 4 channels"),
        (np.full((8, 8, 3), -1.5, np.float32), ValueError, r"`images` holds float values in \[-1.5, -1.5\]"),
        (np.full((8, 8, 3), 70000, np.int32), ValueError, r"`images` holds int32 values in \[70000, 70000\]"),
    ],
)
@pytest.mark.parametrize("family", ["groma", "groundinggpt"])
def test_bad_images_are_named(request, family, images, error, message):
    processor = request.getfixturevalue(family)
    with pytest.raises(error, match=message):
        processor.image_processor(images)


def test_missing_and_unreadable_image_files_are_named(groma, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`images`: no image file at '.*missing\.png'"):
        groma(images=str(tmp_path / "missing.png"), text=PROMPT)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"`images\[0\]`: '.*notes\.txt' is not a readable image"):
        groma(images=[str(tmp_path / "notes.txt")], text=[PROMPT])


def test_float_images_in_0_1_are_not_rescaled_twice(groma, caplog):
    reference = pixels(groma, RGB)
    with caplog.at_level(logging.WARNING):
        rescaled = pixels(groma, RGB.astype(np.float32) / 255)
    assert torch.allclose(rescaled, reference, atol=1e-5)
    assert "do_rescale=False" in caplog.text
    as_given = pixels(groma, RGB.astype(np.float32) / 255, do_rescale=False)
    assert torch.allclose(as_given, reference, atol=1e-5)


@pytest.mark.parametrize("kind", ["uint16 array", "I;16 PIL image"])
def test_16_bit_images_are_mapped_to_8_bits_not_saturated(groma, kind):
    wide = RGB.astype(np.uint16) * 257
    if kind == "uint16 array":
        image, reference = wide, RGB
    else:  # PIL keeps 16-bit grayscale only
        image, reference = Image.fromarray(wide[..., 0]), np.repeat(RGB[..., :1], 3, axis=-1)
    assert torch.allclose(pixels(groma, image), pixels(groma, reference), atol=1e-5)


def test_grayscale_2d_arrays_are_images(groma, groundinggpt):
    gray = RGB[..., 0]
    assert torch.allclose(pixels(groma, gray), pixels(groma, np.repeat(gray[..., None], 3, -1)))
    assert len(groundinggpt(images=[gray], text="<image> Hi")["pixel_values"]) == 1


def test_load_images_flattens_and_names_nested_items():
    with pytest.raises(TypeError, match=r"`images\[1\]\[0\]` must be an image"):
        load_images([[RGB], [3.5]])


def test_boxes_refuse_booleans(groma):
    with pytest.raises(TypeError, match=r"`boxes\[0\]` holds booleans"):
        groma(images=RGB, text="<image><region><roi><refer_box></roi>", boxes=[[[True, 0, 5, 5]]])


def test_generated_ids_outside_the_vocabulary_are_refused(groma):
    boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.2]])]
    with pytest.raises(ValueError, match=r"`generated_ids\[0\]` must hold token ids \(integers in \[0, "):
        groma.post_process_grounding(torch.tensor([[99999]]), boxes, [(10, 10)])


@pytest.mark.parametrize("size", [(float("inf"), 10), (10.5, 10), (True, 10)])
def test_target_sizes_must_be_whole_positive_pixels(groma, size):
    boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.2]])]
    with pytest.raises(ValueError, match=r"`target_sizes\[0\]` must be a positive \(height, width\) pair"):
        groma.post_process_grounding(torch.tensor([[5]]), boxes, [size])


def test_nan_region_boxes_are_refused(groma):
    with pytest.raises(ValueError, match=r"`region_boxes\[0\]` holds NaN"):
        groma.post_process_grounding(torch.tensor([[5]]), [torch.full((1, 4), float("nan"))], [(10, 10)])


def test_unclosed_phrase_warns(caplog):
    from transformers_groma.processing import parse_grounded_text

    with caplog.at_level(logging.WARNING):
        text, entities = parse_grounded_text("A <p>red square next to it")
    assert entities == [] and text == "A red square next to it"
    assert "whose <p> is not closed by </p>" in caplog.text and "red square next to it" in caplog.text


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("image_sizes", [(-5, 10)], r"`image_sizes\[0\]` must be a positive \(height, width\) pair"),
        ("video_durations", [-3.0], r"`video_durations\[0\]` must be a positive, finite number of seconds"),
        ("video_durations", [float("inf")], r"`video_durations\[0\]` must be a positive, finite number"),
    ],
)
def test_groundinggpt_post_processing_refuses_bad_sizes_and_durations(groundinggpt, name, value, message):
    with pytest.raises(ValueError, match=message):
        groundinggpt.post_process_grounding(torch.tensor([[5, 6]]), **{name: value})


WAVE = (np.sin(np.arange(40000) / 10) * 0.5).astype(np.float32)  # 2.5 s at 16 kHz


@pytest.mark.parametrize(
    "audio, rate, message",
    [
        (WAVE * np.nan, 16000, r"`audio\[0\]` holds NaN or infinite samples"),
        (WAVE * 32768, 16000, r"`audio\[0\]` holds samples beyond \[-1, 1\].*int16 PCM divided by 32768"),
        (WAVE, 0, r"`sampling_rate` must be a positive whole number of Hz, got 0"),
        (WAVE, -16000, r"`sampling_rate` must be a positive whole number of Hz, got -16000"),
        (WAVE, 16000.5, r"`sampling_rate` must be a positive whole number of Hz"),
    ],
)
def test_bad_waveforms_and_rates_are_named(groundinggpt, audio, rate, message):
    with pytest.raises(ValueError, match=message):
        groundinggpt.feature_extractor([audio], sampling_rate=rate)


def test_wav_header_with_rate_zero_names_the_file(groundinggpt, tmp_path):
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(b"\0\0" * 100)
    data = bytearray(buffer.getvalue())
    data[24:28] = struct.pack("<I", 0)  # the header's sample rate
    (tmp_path / "rate0.wav").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"`audio\[0\]`: .*rate0\.wav: the WAV header's sampling rate .* got 0"):
        groundinggpt.feature_extractor([str(tmp_path / "rate0.wav")])
