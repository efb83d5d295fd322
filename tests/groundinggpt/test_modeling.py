"""GroundingGPT models on a tiny random config: call contract, splicing, validation, generation and batching."""

import pytest
import torch
from transformers import AutoModel, AutoModelForImageTextToText

from transformers_groma import GroundingGPTForConditionalGeneration, GroundingGPTModel
from transformers_groma.modeling.cache_api import output_cache

from .conftest import (
    AUDIO,
    IMAGE,
    IMAGE_END,
    IMAGE_START,
    NUM_AUDIO_TOKENS,
    NUM_IMAGE_TOKENS,
    NUM_VIDEO_TOKENS,
    VIDEO,
    make_model,
    media,
    pad_batch,
    prompt,
)


MEDIA_ARGUMENT = {"image": "pixel_values", "video": "pixel_values_videos", "audio": "input_features"}


def run(model, ids, **kwargs):
    with torch.no_grad():
        return model(input_ids=ids[None] if ids.ndim == 1 else ids, **kwargs)


@pytest.mark.parametrize(
    ("kinds", "tokens"),
    [(("image",), NUM_IMAGE_TOKENS), (("video",), NUM_VIDEO_TOKENS), (("audio",), NUM_AUDIO_TOKENS)],
)
def test_each_modality_is_spliced_in_place(model, kinds, tokens):
    ids = prompt(*kinds)
    out = run(model, ids, **{MEDIA_ARGUMENT[kinds[0]]: media(kinds[0])})
    media_embeds = out[f"{kinds[0]}_embeds"]
    assert out.logits.shape == (1, len(ids), model.config.text_config.vocab_size)
    assert media_embeds.shape == (1, tokens, model.config.text_config.hidden_size)
    patch_id = {"image": IMAGE, "video": VIDEO, "audio": AUDIO}[kinds[0]]
    slots = ids == patch_id
    torch.testing.assert_close(out.inputs_embeds[0, slots], media_embeds[0])
    text_embeds = model.get_input_embeddings()(ids)
    torch.testing.assert_close(out.inputs_embeds[0, ~slots], text_embeds[~slots])  # start/end keep their embeddings


def test_image_and_audio_together_fill_their_own_blocks(model):
    ids = prompt("audio", "image")
    image, audio = media("image"), media("audio")
    together = run(model, ids, pixel_values=image, input_features=audio)
    with torch.no_grad():
        image_embeds = model.model.get_image_features(image).image_embeds
        audio_embeds = model.model.get_audio_features(audio).audio_embeds
    torch.testing.assert_close(together.inputs_embeds[0, ids == IMAGE], image_embeds[0])
    torch.testing.assert_close(together.inputs_embeds[0, ids == AUDIO], audio_embeds[0])
    # the encoders' whole outputs come along, as transformers' VLMs return `image_outputs`
    torch.testing.assert_close(together.image_outputs.pooler_output, image_embeds)
    torch.testing.assert_close(together.audio_outputs.pooler_output, audio_embeds)
    assert together.video_outputs is None


def test_media_of_a_batch_fill_the_blocks_in_reading_order(model):
    # sample 0: two images, sample 1: none, sample 2: one image -> the 3 images go in this order
    sequences = [prompt("image", "image", seed=1), prompt(seed=2), prompt("image", seed=3)]
    ids, mask = pad_batch(sequences, "right")
    images = media("image", count=3)
    out = run(model, ids, attention_mask=mask, pixel_values=images)
    with torch.no_grad():
        expected = model.model.get_image_features(images).image_embeds
    torch.testing.assert_close(out.inputs_embeds[ids == IMAGE], expected.flatten(0, 1))


def test_video_padding_frames_are_ignored(model):
    video = media("video", num_frames=2)
    padded = torch.cat([video, torch.randn(1, 3, 2, *video.shape[-2:])], dim=2)
    with torch.no_grad():
        short = model.model.get_video_features(video)
        masked = model.model.get_video_features(padded, video_num_frames=torch.tensor([2]))
    torch.testing.assert_close(masked.video_embeds, short.video_embeds, atol=1e-6, rtol=1e-5)
    assert masked.frame_features.shape[0] == 2  # the padded frames were not encoded


def test_videos_with_different_frame_counts_batch_like_alone(model):
    long, short = media("video", seed=1), media("video", num_frames=2, seed=2)
    padded = torch.cat([long, torch.cat([short, torch.zeros_like(short)], dim=2)])
    with torch.no_grad():
        batched = model.model.get_video_features(padded, video_num_frames=torch.tensor([4, 2])).video_embeds
        alone = [model.model.get_video_features(v).video_embeds for v in (long, short)]
    torch.testing.assert_close(batched, torch.cat(alone), atol=1e-6, rtol=1e-5)


def test_text_only_prompt_matches_the_plain_llm(model):
    ids = prompt()
    out = run(model, ids)
    with torch.no_grad():
        hidden = model.model.language_model(input_ids=ids[None]).last_hidden_state
    torch.testing.assert_close(out.logits, model.lm_head(hidden))


@pytest.mark.parametrize(
    ("ids", "kwargs", "message"),
    [
        (prompt(), {"pixel_values": media("image")}, "`pixel_values` holds 1 image"),
        (prompt("video"), {}, "no `pixel_values_videos` given"),
        (prompt("image", "image"), {"pixel_values": media("image")}, "2 image placeholder block"),
        (torch.tensor([1, IMAGE_START, IMAGE, IMAGE_END, 5]), {"pixel_values": media("image")}, "exactly <im_start>"),
        (torch.tensor([1, IMAGE, 5, 6]), {}, "outside a <im_start>"),
        (torch.cat([prompt("image"), torch.tensor([IMAGE_START])]), {"pixel_values": media("image", 2)}, "exactly"),
    ],
)
def test_placeholder_mismatches_raise_naming_the_argument(model, ids, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(model, ids, **kwargs)


@pytest.mark.parametrize(
    ("kind", "bad", "message"),
    [
        ("image", torch.randn(3, 28, 28), r"`pixel_values` must be \(num_images, 3, 28, 28\)"),
        ("image", torch.randn(1, 3, 56, 56), "`pixel_values` must be"),
        ("video", torch.randn(1, 4, 3, 28, 28), "channels before frames"),
        ("video", torch.randn(1, 3, 5, 28, 28), "5 frames; the model takes at most 4"),
        ("audio", torch.randn(1, 3, 32, 24), "`input_features` must be"),
        ("audio", torch.randn(1, 5, 1, 32, 24), "5 clips per audio"),
    ],
)
def test_wrong_tensor_layouts_raise_naming_the_argument(model, kind, bad, message):
    with pytest.raises(ValueError, match=message):
        run(model, prompt(kind), **{MEDIA_ARGUMENT[kind]: bad})


def test_placeholders_need_media_without_a_cache_but_tokens_on_a_cache_are_text(model):
    with pytest.raises(ValueError, match="no `pixel_values` given but `input_ids` has 1 image placeholder block"):
        run(model, prompt("image"), use_cache=False)
    first = run(model, prompt(), use_cache=True)
    cache = output_cache(first)
    cache_length = cache.get_seq_length()
    # a continuation chunk (e.g. assisted-decoding candidates) and a one-token decoding step are plain text, even
    # when they hold media tokens: generated tokens are never media
    chunk = prompt("image")[1:6]
    text = run(model, chunk, cache=cache, use_cache=True)
    assert output_cache(text).get_seq_length() == cache_length + len(chunk)
    step = run(model, torch.tensor([[IMAGE]]), cache=output_cache(text), use_cache=True)
    assert step.logits.shape == (1, 1, model.config.text_config.vocab_size)


def test_invalid_video_num_frames_raise(model):
    with pytest.raises(ValueError, match="`video_num_frames` must hold one count"):
        run(model, prompt("video"), pixel_values_videos=media("video"), video_num_frames=torch.tensor([0]))


def test_labels_give_a_trainable_loss():
    model = make_model().train()
    ids = prompt("image", "audio")
    labels = torch.where((ids >= 100) | (torch.arange(len(ids)) < 3), -100, ids)
    out = model(input_ids=ids[None], pixel_values=media("image"), input_features=media("audio"), labels=labels[None])
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.model.audio_encoder.query_tokens.grad.abs().sum() > 0
    assert model.model.image_encoder.projector.linear_1.weight.grad.abs().sum() > 0


def count_calls(module: torch.nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def generate(model, ids, mask=None, **kwargs):
    return model.generate(
        input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=5, pad_token_id=0, **kwargs
    )


def test_generate_runs_every_encoder_once_and_matches_no_cache():
    model = make_model()
    ids = prompt("audio", "video", "image")[None]
    inputs = {"pixel_values": media("image"), "pixel_values_videos": media("video"), "input_features": media("audio")}
    calls = [count_calls(m) for m in (model.model.image_encoder, model.model.video_encoder, model.model.audio_encoder)]
    with_cache = generate(model, ids, **inputs)
    assert [len(c) for c in calls] == [1, 1, 1]
    without_cache = generate(model, ids, use_cache=False, **inputs)
    assert torch.equal(with_cache, without_cache)
    assert torch.equal(with_cache[:, : ids.shape[1]], ids)
    assert with_cache.shape[1] == ids.shape[1] + 5


def test_first_generated_token_is_the_forward_argmax(model):
    ids = prompt("video")[None]
    video = media("video")
    out = model.generate(
        input_ids=ids, pixel_values_videos=video, do_sample=False, max_new_tokens=1, pad_token_id=0,
        return_dict_in_generate=True, output_scores=True,
    )  # fmt: skip
    logits = run(model, ids, pixel_values_videos=video).logits[:, -1]
    torch.testing.assert_close(out.scores[0], logits)
    assert out.sequences[0, -1] == logits.argmax()


@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_generation_with_padding_equals_one_by_one(model, side):
    samples = [
        (prompt("image", length=7, seed=1), {"pixel_values": media("image", seed=1)}),
        (prompt(length=3, seed=2), {}),
        (prompt("audio", "video", seed=3), {"pixel_values_videos": media("video", seed=3),
                                            "input_features": media("audio", seed=3)}),
        (prompt("audio", "image", length=4, seed=4), {"pixel_values": media("image", seed=4),
                                                      "input_features": media("audio", seed=4)}),
    ]  # fmt: skip
    alone = [generate(model, ids[None], **kwargs)[0, len(ids) :] for ids, kwargs in samples]
    ids, mask = pad_batch([ids for ids, _ in samples], side)
    batched_media = {
        name: torch.cat([kwargs[name] for _, kwargs in samples if name in kwargs])
        for name in ("pixel_values", "pixel_values_videos", "input_features")
    }
    batched = generate(model, ids, mask, **batched_media)
    assert torch.equal(batched[:, : ids.shape[1]], ids)  # the caller's prompts, padding as given
    assert torch.equal(generate(model, ids, None, **batched_media), batched)  # without a mask, pad = padding
    for index, expected in enumerate(alone):  # a sample that stopped early (EOS) is padded with 0
        new_tokens = batched[index, ids.shape[1] :]
        assert torch.equal(new_tokens[: len(expected)], expected)
        assert not new_tokens[len(expected) :].any()


def test_save_load_round_trip_and_auto_classes(tmp_path, model):
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, GroundingGPTForConditionalGeneration)
    assert isinstance(AutoModel.from_pretrained(tmp_path), GroundingGPTModel)
    ids = prompt("image", "audio")
    inputs = {"pixel_values": media("image"), "input_features": media("audio")}
    torch.testing.assert_close(run(reloaded, ids, **inputs).logits, run(model, ids, **inputs).logits)


def test_eager_and_sdpa_attention_agree(model):
    ids = prompt("image", "video")
    inputs = {"pixel_values": media("image"), "pixel_values_videos": media("video")}
    sdpa = run(model, ids, **inputs).logits
    eager_model = make_model()
    eager_model.set_attn_implementation("eager")
    torch.testing.assert_close(run(eager_model, ids, **inputs).logits, sdpa, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kinds", [("image",), ("video",), ("audio", "image")])
def test_inputs_embeds_with_media_match_input_ids(model, kinds):
    ids = prompt(*kinds)
    inputs = {MEDIA_ARGUMENT[kind]: media(kind) for kind in kinds}
    with torch.no_grad():
        embedded = model(inputs_embeds=model.get_input_embeddings()(ids)[None], **inputs)
    torch.testing.assert_close(embedded.logits, run(model, ids, **inputs).logits)


def test_inputs_embeds_without_placeholder_blocks_reject_media(model):
    with pytest.raises(ValueError, match="pixel_values"):
        model(inputs_embeds=torch.zeros(1, 3, model.config.text_config.hidden_size), pixel_values=media("image"))


def test_bfloat16_model_runs_every_branch(tmp_path, model):
    model.save_pretrained(tmp_path)
    half = AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    ids = prompt("audio", "video", "image")
    inputs = {"pixel_values": media("image"), "pixel_values_videos": media("video"), "input_features": media("audio")}
    logits = run(half, ids, **inputs).logits
    assert logits.dtype == torch.bfloat16
    reference = run(model, ids, **inputs).logits
    # bfloat16 keeps 8 bits of mantissa (0.4 % per rounding): the logits stay within 2 % of float32 overall (0.6 %
    # measured), while a 4 % error (e.g. logits scaled by 1.04) fails
    assert (logits.float() - reference).norm() / reference.norm() < 0.02


def test_ln_vision_has_its_own_epsilon_and_runs_in_float32(model):
    """EVA's LayerNorms use 1e-6, the `ln_vision` after it torch's default 1e-5 (spec §1.5), computed in float32."""
    tower = model.model.video_encoder.vision_tower
    assert tower.encoder.layers[0].layer_norm1.eps == 1e-6
    assert tower.post_layernorm.eps == model.config.video_layernorm_eps == 1e-5
    hidden = (1e-3 * torch.randn(2, 5, 16)).to(torch.bfloat16)  # variance ~ eps: the epsilon matters
    normed = tower.post_layernorm(hidden)
    weight, bias = tower.post_layernorm.weight, tower.post_layernorm.bias
    expected = torch.nn.functional.layer_norm(hidden.float(), (16,), weight, bias, 1e-5).to(torch.bfloat16)
    assert normed.dtype == torch.bfloat16 and torch.equal(normed, expected)


def test_num_return_sequences_repeats_each_prompt(model):
    ids, mask = pad_batch([prompt("image", length=5, seed=1), prompt(length=3, seed=2)], "left")
    out = model.generate(
        input_ids=ids, attention_mask=mask, pixel_values=media("image", seed=1), do_sample=True,
        num_return_sequences=2, max_new_tokens=3, pad_token_id=0,
    )  # fmt: skip
    assert out.shape == (4, ids.shape[1] + 3)
    assert torch.equal(out[:, : ids.shape[1]], ids.repeat_interleave(2, dim=0))


def test_return_dict_false_returns_a_tuple(model):
    input_ids = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        as_dict = model(input_ids=input_ids)
        as_tuple = model(input_ids=input_ids, return_dict=False)
        base = model.model(input_ids=input_ids, return_dict=False)
    assert isinstance(as_tuple, tuple) and isinstance(base, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.logits, rtol=0, atol=0)
