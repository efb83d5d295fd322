"""CUDA-only checks (skipped without a GPU): bf16 forward + generate, and flash_attention_2 vs sdpa."""

import importlib.util

import pytest
import torch

from .groma_test_utils import GRID, PAD, cxcywh, make_model, make_prompt, pad_batch, pixels


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
requires_flash_attn = pytest.mark.skipif(
    importlib.util.find_spec("flash_attn") is None, reason="needs the flash-attn package"
)

pytestmark = [requires_cuda, pytest.mark.gpu]


def _inputs(device):
    prompts = [make_prompt(2, 2, 3, refer=1), make_prompt(6, 1, 2, refer=1, seed=3)]
    ids, mask = pad_batch(prompts, "left")
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "pixel_values": pixels(2).to(device),
        "refer_boxes": [cxcywh([0.3, 0.3, 0.2, 0.2]).to(device), cxcywh([0.6, 0.6, 0.3, 0.2]).to(device)],
    }


def test_bf16_forward_and_generate_on_cuda():
    reference = make_model(box_score_threshold=0.0)
    model = make_model(box_score_threshold=0.0).to("cuda", torch.bfloat16)
    inputs = _inputs("cuda")
    with torch.no_grad():
        proposed = model(**inputs)
    assert proposed.logits.dtype == torch.bfloat16
    assert proposed.logits.device.type == "cuda"
    assert torch.isfinite(proposed.logits).all()
    assert all(boxes.dtype == torch.float32 and boxes.device.type == "cuda" for boxes in proposed.region_boxes)
    assert all(len(boxes) == 8 for boxes in proposed.region_boxes)
    # with the same regions, bf16 on CUDA stays close to fp32 on CPU (random tiny weights: loose bound)
    regions = [GRID, GRID[:2]]
    with torch.no_grad():
        bf16 = model(**inputs, region_boxes=[r.cuda() for r in regions])
        fp32 = reference(**_inputs("cpu"), region_boxes=regions)
    real = fp32.expanded_attention_mask.bool()
    assert torch.equal(bf16.expanded_attention_mask.cpu(), fp32.expanded_attention_mask)
    assert (bf16.logits.float().cpu()[real] - fp32.logits[real]).abs().max() < 0.1
    generated = model.generate(**inputs, do_sample=False, max_new_tokens=5, return_dict_in_generate=True)
    assert generated.sequences.shape == (2, inputs["input_ids"].shape[1] + 5)
    assert torch.equal(generated.sequences[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
    assert len(generated.region_boxes) == 2


def test_two_step_generation_on_cuda():
    model = make_model(box_score_threshold=0.0).to("cuda", torch.bfloat16)
    inputs = _inputs("cuda")
    regions, _ = model.propose_regions(inputs["pixel_values"], inputs["refer_boxes"])
    assert all(r.device.type == "cuda" for r in regions)
    one = model.generate(**inputs, do_sample=False, max_new_tokens=4)
    two = model.generate(**inputs, region_boxes=regions, do_sample=False, max_new_tokens=4)
    assert torch.equal(one, two)


@requires_flash_attn
def test_flash_attention_2_matches_sdpa_in_bf16():
    model = make_model().to("cuda", torch.bfloat16)
    ids, mask = pad_batch([make_prompt(2, 2, 3), make_prompt(7, 1, 4, seed=2)], "left", value=PAD)
    inputs = {
        "input_ids": ids.cuda(),
        "attention_mask": mask.cuda(),
        "pixel_values": pixels(2).cuda(),
        "region_boxes": [GRID.cuda(), GRID[:2].cuda()],
    }
    with torch.no_grad():
        sdpa = model(**inputs)
        model.set_attn_implementation({"text_config": "flash_attention_2"})
        assert model.model.language_model.config._attn_implementation == "flash_attention_2"
        flash = model(**inputs)
    real = sdpa.expanded_attention_mask.bool()
    torch.testing.assert_close(flash.logits[real].float(), sdpa.logits[real].float(), rtol=0, atol=5e-2)
    generated = model.generate(**inputs, do_sample=False, max_new_tokens=4)
    assert generated.shape == (2, ids.shape[1] + 4)
