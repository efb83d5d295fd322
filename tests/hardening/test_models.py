"""forward / generate / propose_regions of both models on bad inputs: every error names the argument."""

import pytest
import torch
from PIL import Image

from transformers_groma.tiny import (
    tiny_groma_model,
    tiny_groma_processor,
    tiny_groundinggpt_model,
    tiny_groundinggpt_processor,
)


torch.set_num_threads(1)


@pytest.fixture(scope="module")
def groma():
    processor = tiny_groma_processor()
    inputs = processor(
        images=Image.new("RGB", (112, 112), (200, 100, 50)), text="<image><region> Hi", return_tensors="pt"
    )
    return tiny_groma_model().eval(), dict(inputs)


@pytest.fixture(scope="module")
def groundinggpt():
    processor = tiny_groundinggpt_processor()
    inputs = processor(images=Image.new("RGB", (40, 30), (200, 100, 50)), text="<image> Hi", return_tensors="pt")
    return tiny_groundinggpt_model().eval(), dict(inputs)


CASE_NAMES = [
    "nan pixels",
    "uint8 pixels",
    "cropped size",
    "pixels as list",
    "batch of 0",
    "float ids",
    "ids beyond vocabulary",
    "float labels",
    "labels beyond vocabulary",
    "mask of 2",
    "prompt too long",
]


def bad(inputs: dict, **changes) -> dict:
    return {**inputs, **changes}


def cases(inputs: dict, max_positions: int) -> dict[str, tuple[dict, type, str]]:
    """Malformed variants of a valid batch: `{case: (inputs, error type, message pattern)}`."""
    ids, pixels = inputs["input_ids"], inputs["pixel_values"]
    return {
        "nan pixels": (bad(inputs, pixel_values=pixels * float("nan")), ValueError, "`pixel_values` holds NaN"),
        "uint8 pixels": (
            bad(inputs, pixel_values=pixels.to(torch.uint8)),
            TypeError,
            "`pixel_values` must be floating",
        ),
        "cropped size": (
            bad(inputs, pixel_values=torch.zeros(1, 3, 120, 120)),
            ValueError,
            r"`pixel_values` is 120x120 px, not a multiple of the 14 px patch",
        ),
        "pixels as list": (bad(inputs, pixel_values=[pixels[0]]), TypeError, "`pixel_values` must be a torch.Tensor"),
        "batch of 0": (
            bad(inputs, input_ids=ids[:0], attention_mask=None, pixel_values=pixels[:0]),
            ValueError,
            "`input_ids` is empty",
        ),
        "float ids": (bad(inputs, input_ids=ids.float()), TypeError, "`input_ids` must hold integer token ids"),
        "ids beyond vocabulary": (bad(inputs, input_ids=ids + 5000), ValueError, "`input_ids` holds ids outside"),
        "float labels": (bad(inputs, labels=ids.float()), TypeError, "`labels` must be an integer tensor"),
        "labels beyond vocabulary": (bad(inputs, labels=ids + 5000), ValueError, "`labels` holds 50"),
        "mask of 2": (
            bad(inputs, attention_mask=inputs["attention_mask"] * 2),
            ValueError,
            "`attention_mask` must hold 1",
        ),
        "prompt too long": (
            bad(inputs, input_ids=torch.cat([ids, torch.full((1, max_positions), 50)], 1), attention_mask=None),
            ValueError,
            rf"has \d+ tokens, more than the language model's max_position_embeddings \({max_positions}\)",
        ),
    }


FORWARD_CASES = [
    *[("groma", case) for case in CASE_NAMES],
    *[("groundinggpt", case) for case in CASE_NAMES if case not in ("cropped size", "pixels as list", "mask of 2")],
]
GENERATE_CASES = [
    *[("groma", case) for case in ("nan pixels", "uint8 pixels", "batch of 0", "float ids", "prompt too long")],
    *[("groundinggpt", case) for case in ("nan pixels", "batch of 0", "float ids")],
]


def model_and_cases(request, family: str):
    model, inputs = request.getfixturevalue(family)
    return model, cases(inputs, model.config.text_config.max_position_embeddings)


@pytest.mark.parametrize("family, case", FORWARD_CASES)
def test_forward(request, family, case):
    model, family_cases = model_and_cases(request, family)
    kwargs, error, message = family_cases[case]
    with pytest.raises(error, match=message):
        model(**kwargs)


@pytest.mark.parametrize("family, case", GENERATE_CASES)
def test_generate(request, family, case):
    model, family_cases = model_and_cases(request, family)
    kwargs, error, message = family_cases[case]
    with pytest.raises(error, match=message):
        model.generate(**kwargs, max_new_tokens=2)


@pytest.mark.parametrize(
    "pixel_values, error, message",
    [
        (torch.zeros(0, 3, 112, 112), ValueError, r"`pixel_values` holds no item \(batch of 0\)"),
        (torch.full((1, 3, 112, 112), float("nan")), ValueError, "`pixel_values` holds NaN"),
        (torch.zeros(1, 3, 112, 112, dtype=torch.uint8), TypeError, "`pixel_values` must be floating"),
        ([torch.zeros(3, 112, 112)], TypeError, "`pixel_values` must be a torch.Tensor"),
        (torch.zeros(3, 112, 112), ValueError, r"`pixel_values` must be \(batch, 3, height, width\)"),
    ],
)
def test_groma_propose_regions(groma, pixel_values, error, message):
    with pytest.raises(error, match=message):
        groma[0].propose_regions(pixel_values)


@pytest.mark.parametrize("rope_type", ["linear", "dynamic", "yarn"])
@pytest.mark.parametrize("family", ["groma", "groundinggpt"])
def test_rope_scaling_lifts_the_length_limit(request, family, rope_type):
    """A prompt longer than `max_position_embeddings` is what RoPE scaling is for: with a scaled RoPE the models run
    it (the limit holds for the default RoPE, see "prompt too long")."""
    model, inputs = request.getfixturevalue(family)
    text_config = model.config.text_config
    long_ids = torch.cat([inputs["input_ids"], torch.full((1, text_config.max_position_embeddings), 50)], 1)
    saved = text_config.rope_parameters
    text_config.rope_parameters = {**saved, "rope_type": rope_type, "factor": 4.0}
    try:
        with torch.no_grad():
            logits = model(**{**inputs, "input_ids": long_ids, "attention_mask": None}).logits
    finally:
        text_config.rope_parameters = saved
    assert logits.shape[1] >= long_ids.shape[1] and torch.isfinite(logits).all()
