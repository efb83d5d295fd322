"""`GromaForConditionalGeneration.generate`: cache vs no cache, one vision pass, batching and padding, the
two-step (propose, then generate) path, and errors."""

import pytest
import torch

from transformers_groma.modeling import GromaGenerateBeamOutput

from .groma_test_utils import (
    BOS,
    GRID,
    PAD,
    R0,
    REFER_BOX,
    cxcywh,
    make_model,
    make_prompt,
    pad_batch,
    perturb_parameters,
    pixels,
    text_ids,
)


NEW_TOKENS = 6


def greedy(model, **kwargs):
    kwargs.setdefault("max_new_tokens", NEW_TOKENS)
    return model.generate(do_sample=False, return_dict_in_generate=True, **kwargs)


@pytest.fixture(scope="module")
def model():
    # Larger weights than the 0.02-std init make the greedy path depend strongly on the inputs.
    model = make_model(seed=0, box_score_threshold=0.0)
    perturb_parameters(model, std=0.05)
    return model


def _batch(side):
    prompts = [make_prompt(2, 2, 3), make_prompt(7, 1, 5, seed=4), make_prompt(1, 3, 1, seed=8)]
    ids, mask = pad_batch(prompts, side)
    region_boxes = [GRID[:2], GRID, GRID[[3]]]
    return prompts, ids, mask, pixels(3), region_boxes


def test_sequences_are_prompt_then_new_tokens(model):
    prompt = make_prompt()
    out = greedy(model, input_ids=prompt[None], pixel_values=pixels(1))
    assert out.sequences.shape == (1, len(prompt) + NEW_TOKENS)
    assert torch.equal(out.sequences[0, : len(prompt)], prompt)
    assert len(out.region_boxes) == 1 and out.region_boxes[0].shape == (8, 4)
    assert out.region_scores[0].shape == (8,)
    # the plain tensor return value carries the same sequences
    sequences = model.generate(input_ids=prompt[None], pixel_values=pixels(1), do_sample=False, max_new_tokens=6)
    assert torch.equal(sequences, out.sequences)


def test_new_tokens_are_the_greedy_argmax_of_forward(model):
    prompt = make_prompt()
    out = greedy(model, input_ids=prompt[None], pixel_values=pixels(1), region_boxes=[GRID], max_new_tokens=3)
    sequence = prompt.clone()
    for _ in range(3):
        with torch.no_grad():
            logits = model(input_ids=sequence[None], pixel_values=pixels(1), region_boxes=[GRID]).logits
        sequence = torch.cat([sequence, logits[0, -1].argmax()[None]])
    assert out.sequences[0].tolist() == sequence.tolist()


def test_cache_and_no_cache_agree_and_vision_runs_once(model):
    _, ids, mask, px, _ = _batch("left")
    calls = []
    handle = model.model.vision_tower.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        cached = greedy(model, input_ids=ids, attention_mask=mask, pixel_values=px, max_new_tokens=8)
        assert len(calls) == 1
        uncached = greedy(
            model, input_ids=ids, attention_mask=mask, pixel_values=px, max_new_tokens=8, use_cache=False
        )
        assert len(calls) == 2
    finally:
        handle.remove()
    assert torch.equal(cached.sequences, uncached.sequences)
    for a, b in zip(cached.region_boxes, uncached.region_boxes):
        assert torch.equal(a, b)


def test_pixels_are_not_sent_to_the_decode_steps(model):
    seen = []

    def record(module, args, kwargs):
        seen.append((kwargs.get("pixel_values") is not None, kwargs.get("inputs_embeds") is not None))

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        greedy(model, input_ids=make_prompt()[None], pixel_values=pixels(1), max_new_tokens=4)
    finally:
        handle.remove()
    assert len(seen) == 4
    assert not any(has_pixels for has_pixels, _ in seen)
    assert [has_embeds for _, has_embeds in seen] == [True, False, False, False]


@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_generation_equals_one_by_one(model, side):
    prompts, ids, mask, px, region_boxes = _batch(side)
    batched = greedy(model, input_ids=ids, attention_mask=mask, pixel_values=px, region_boxes=region_boxes)
    assert torch.equal(batched.sequences[:, : ids.shape[1]], ids)
    singles = []
    for i, prompt in enumerate(prompts):
        single = greedy(
            model, input_ids=prompt[None], pixel_values=px[i : i + 1], region_boxes=region_boxes[i : i + 1]
        )
        singles.append(single.sequences[0, len(prompt) :])
        assert torch.equal(batched.region_boxes[i], region_boxes[i])
        torch.testing.assert_close(batched.region_scores[i], torch.ones(len(region_boxes[i])))
    new_tokens = batched.sequences[:, ids.shape[1] :]
    assert new_tokens.tolist() == [s.tolist() for s in singles]
    # the three samples really are different problems
    assert len({tuple(s.tolist()) for s in singles}) == 3


def test_left_and_right_padding_give_the_same_tokens(model):
    _, left_ids, left_mask, px, region_boxes = _batch("left")
    _, right_ids, right_mask, _, _ = _batch("right")
    left = greedy(model, input_ids=left_ids, attention_mask=left_mask, pixel_values=px, region_boxes=region_boxes)
    right = greedy(model, input_ids=right_ids, attention_mask=right_mask, pixel_values=px, region_boxes=region_boxes)
    assert torch.equal(left.sequences[:, left_ids.shape[1] :], right.sequences[:, right_ids.shape[1] :])


def test_all_ones_attention_mask_equals_no_mask(model):
    prompts = [make_prompt(3, 2, 2), make_prompt(3, 2, 2, seed=1)]
    ids = torch.stack(prompts)
    with_mask = greedy(model, input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels(2))
    without = greedy(model, input_ids=ids, pixel_values=pixels(2))
    assert torch.equal(with_mask.sequences, without.sequences)


def test_padded_prompts_without_attention_mask_treat_pad_as_padding(model):
    # Without a mask, [PAD] tokens are padding (as the original cuts each prompt at its first [PAD]).
    prompts, ids, mask, px, region_boxes = _batch("right")
    assert (ids == PAD).any()
    with_mask = greedy(model, input_ids=ids, attention_mask=mask, pixel_values=px, region_boxes=region_boxes)
    without = greedy(model, input_ids=ids, pixel_values=px, region_boxes=region_boxes)
    assert torch.equal(with_mask.sequences, without.sequences)
    with torch.no_grad():
        forward = model(input_ids=ids, pixel_values=px, region_boxes=region_boxes)
        forward_masked = model(input_ids=ids, attention_mask=mask, pixel_values=px, region_boxes=region_boxes)
    assert torch.equal(forward.expanded_attention_mask, forward_masked.expanded_attention_mask)
    torch.testing.assert_close(forward.logits, forward_masked.logits, rtol=0, atol=0)


def test_region_boxes_change_the_answer(model):
    prompt = make_prompt()[None]
    first = greedy(model, input_ids=prompt, pixel_values=pixels(1), region_boxes=[GRID[:2]], max_new_tokens=8)
    second = greedy(model, input_ids=prompt, pixel_values=pixels(1), region_boxes=[GRID[2:]], max_new_tokens=8)
    assert not torch.equal(first.sequences, second.sequences)


def test_two_step_path_equals_one_step(model):
    prompts = [make_prompt(2, 2, 3, refer=1), make_prompt(4, 1, 2, refer=1, seed=3)]
    ids, mask = pad_batch(prompts, "left")
    px = pixels(2)
    refer = [cxcywh([0.4, 0.4, 0.3, 0.3]), cxcywh([0.6, 0.3, 0.2, 0.4])]
    one_step = greedy(model, input_ids=ids, attention_mask=mask, pixel_values=px, refer_boxes=refer)
    region_boxes, region_scores = model.propose_regions(px, refer)
    for regions, scores, user in zip(region_boxes, region_scores, refer):
        assert len(regions) == 8
        torch.testing.assert_close(regions[0], user[0])  # the user box is kept first (score 1.0)
        assert scores[0] == 1.0
    two_step = greedy(
        model, input_ids=ids, attention_mask=mask, pixel_values=px, refer_boxes=refer, region_boxes=region_boxes
    )
    assert torch.equal(one_step.sequences, two_step.sequences)
    for a, b in zip(one_step.region_boxes, two_step.region_boxes):
        assert torch.equal(a, b)


def test_refer_box_is_rewritten_but_returned_sequence_keeps_the_prompt(model):
    prompt = make_prompt(refer=1)
    out = greedy(model, input_ids=prompt[None], pixel_values=pixels(1), refer_boxes=[GRID[[2]]], region_boxes=[GRID])
    assert torch.equal(out.sequences[0, : len(prompt)], prompt)
    assert (out.sequences[0, : len(prompt)] == REFER_BOX).sum() == 1


def test_text_only_generation():
    model = make_model()
    ids = torch.tensor([[BOS, *text_ids(5)]])
    out = greedy(model, input_ids=ids)
    assert out.sequences.shape == (1, 5 + 1 + NEW_TOKENS)
    assert torch.equal(out.sequences[:, :6], ids)


def test_generate_errors(model):
    with pytest.raises(ValueError, match="2 images for 1 prompts"):
        greedy(model, input_ids=make_prompt()[None], pixel_values=pixels(2))
    with pytest.raises(ValueError, match="exactly one <image>"):
        greedy(model, input_ids=torch.tensor([[BOS, 5, 6]]), pixel_values=pixels(1))
    with pytest.raises(ValueError, match="refer_boxes"):
        greedy(model, input_ids=make_prompt(refer=1)[None], pixel_values=pixels(1))
    with pytest.raises(TypeError, match="refer_boxes"):
        greedy(model, input_ids=make_prompt(refer=1)[None], pixel_values=pixels(1), refer_boxes=GRID[None])
    with pytest.raises(ValueError, match="pixel_values"):
        greedy(model, input_ids=make_prompt()[None])
    for boxes in ("refer_boxes", "region_boxes"):  # never dropped silently on the text-only path
        with pytest.raises(ValueError, match="need `pixel_values`"):
            greedy(model, input_ids=torch.tensor([[BOS, 5, 6]]), **{boxes: [GRID]})


def test_region_index_tokens_map_to_region_boxes(model):
    # <rK> in the output refers to region_boxes[K]: the region ids in the expanded prompt are exactly r0..r{N-1}
    out = greedy(model, input_ids=make_prompt()[None], pixel_values=pixels(1), region_boxes=[GRID[:3]])
    with torch.no_grad():
        forward = model(input_ids=make_prompt()[None], pixel_values=pixels(1), region_boxes=[GRID[:3]])
    ids = forward.expanded_input_ids[0]
    assert ids[(ids >= R0) & (ids < R0 + 100)].tolist() == [R0, R0 + 1, R0 + 2]
    assert torch.equal(out.region_boxes[0], GRID[:3])


def test_beam_search_returns_prompt_then_new_tokens(model):
    prompt = make_prompt()
    sequences = model.generate(
        input_ids=prompt[None],
        pixel_values=pixels(1),
        region_boxes=[GRID],
        num_beams=2,
        do_sample=False,
        max_new_tokens=4,
    )
    assert sequences.shape == (1, len(prompt) + 4)
    assert torch.equal(sequences[0, : len(prompt)], prompt)


def test_beam_search_with_return_dict(model):
    out = greedy(model, input_ids=make_prompt()[None], pixel_values=pixels(1), num_beams=2, max_new_tokens=3)
    assert out.sequences.shape[0] == 1
    assert out.region_boxes is not None


def test_num_return_sequences(model):
    ids, mask = pad_batch([make_prompt(), make_prompt(4, 1, 1, seed=2)], "left")
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        pixel_values=pixels(2),
        do_sample=True,
        num_return_sequences=2,
        max_new_tokens=3,
        return_dict_in_generate=True,
    )
    assert out.sequences.shape == (4, ids.shape[1] + 3)
    assert torch.equal(out.sequences[:, : ids.shape[1]], ids.repeat_interleave(2, dim=0))


def test_beam_search_region_boxes_follow_each_returned_sequence(model):
    ids, mask = pad_batch([make_prompt(), make_prompt(4, 1, 1, seed=2)], "left")
    out = greedy(
        model,
        input_ids=ids,
        attention_mask=mask,
        pixel_values=pixels(2),
        region_boxes=[GRID, GRID[:2]],
        num_beams=2,
        num_return_sequences=2,
        max_new_tokens=3,
    )
    assert [len(boxes) for boxes in out.region_boxes] == [len(GRID), len(GRID), 2, 2]
    assert isinstance(out, GromaGenerateBeamOutput) and out.sequences.shape[0] == 4


def test_generate_with_pixels_but_no_prompt_is_a_clear_error(model):
    with pytest.raises(ValueError, match="need `input_ids`"):
        model.generate(pixel_values=pixels(1), max_new_tokens=2)


def test_odd_patch_grid_is_a_clear_error(model):
    with pytest.raises(ValueError, match="9x9 patch grid.*must be even"):
        model(input_ids=make_prompt()[None], pixel_values=torch.randn(1, 3, 126, 126))
