"""Numerical parity of the converted fixture checkpoint with the outputs the ORIGINAL GroundingGPT produced.

The fixture (`shared/fixtures/groundinggpt_reference`, see its README) holds a tiny checkpoint in the original format,
its CLIP tower, the raw media, the original's preprocessed inputs and its outputs for six prompts. Tolerances: ids
exact, model floats atol=rtol=1e-4 (the README recommends 1e-5/1e-4), log-mel features 2e-4 (NumPy vs torchaudio
filter banks, see GroundingGPTFeatureExtractor).
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

import transformers_groma  # noqa: F401  (registers the Auto classes)
from transformers_groma.conversion import convert_checkpoint
from transformers_groma.processing.groundinggpt import (
    GroundingGPTFeatureExtractor,
    format_box,
    padded_square_box_to_pixels,
    pixels_to_padded_square_box,
    sample_frame_indices,
)

from ..fixtures import GROUNDINGGPT_FIXTURE, requires_groundinggpt_fixture


pytestmark = requires_groundinggpt_fixture
ATOL, RTOL = 1e-5, 1e-4  # the fixture README's recommendation
SAMPLES = ["image_rec", "image_region", "video_tg", "audio_caption", "image_audio_localization", "text_only"]
CROP_SEED = 20240119  # the seed the fixture pinned the original's random video crop with
CONTENT_TYPE = {"image": "image", "video": "video", "sound": "audio"}


@pytest.fixture(scope="module")
def meta():
    return json.loads((GROUNDINGGPT_FIXTURE / "meta.json").read_text())


@pytest.fixture(scope="module")
def converted(tmp_path_factory, meta):
    """The fixture converted with `groma-convert`'s entry point; head counts are not in the weights: from the spec."""
    spec = meta["spec"]
    heads = {
        "video_vision_config": spec["eva"]["num_heads"],
        "video_qformer_config": spec["bert"]["num_attention_heads"],
        "video_temporal_qformer_config": spec["bert"]["num_attention_heads"],
        "audio_config": spec["imagebind"]["audio_num_heads"],
        "audio_qformer_config": spec["bert"]["num_attention_heads"],
    }
    output_dir = tmp_path_factory.mktemp("native") / "groundinggpt-tiny"
    convert_checkpoint(
        GROUNDINGGPT_FIXTURE,
        output_dir,
        vision_tower=GROUNDINGGPT_FIXTURE / "clip",
        overrides={name: {"num_attention_heads": count} for name, count in heads.items()},
    )
    return AutoModelForImageTextToText.from_pretrained(output_dir).eval(), AutoProcessor.from_pretrained(output_dir)


@pytest.fixture(scope="module")
def inputs():
    return load_file(GROUNDINGGPT_FIXTURE / "inputs.safetensors")


@pytest.fixture(scope="module")
def expected():
    return load_file(GROUNDINGGPT_FIXTURE / "expected.safetensors")


def assert_close(actual, expected, atol=ATOL, rtol=RTOL):
    torch.testing.assert_close(actual.float(), expected.float(), atol=atol, rtol=rtol)


def media_inputs(inputs, sample):
    """The original's model inputs of a sample under the native argument names."""
    names = {"images": "pixel_values", "videos": "pixel_values_videos", "sounds": "input_features"}
    return {native: inputs[f"{sample}.{name}"] for name, native in names.items() if f"{sample}.{name}" in inputs}


def test_image_branch_matches_original(converted, inputs, expected):
    model, _ = converted
    with torch.no_grad():
        out = model.model.get_image_features(inputs["image_rec.images"], output_hidden_states=True)
    assert_close(out.hidden_states[0], expected["image_rec.image.clip_hidden_states"][0])
    assert_close(torch.stack(out.hidden_states), expected["image_rec.image.clip_hidden_states"])
    assert_close(out.vision_features, expected["image_rec.image.clip_select_features"])
    assert_close(out.image_embeds, expected["image_rec.image.features"])


def test_video_branch_matches_original(converted, inputs, expected):
    model, _ = converted
    prefix = "video_tg.video."
    with torch.no_grad():
        out = model.model.get_video_features(inputs["video_tg.videos"])
        eva = model.model.video_encoder.vision_tower(expected[prefix + "frames_in"], output_hidden_states=True)
    assert_close(eva.hidden_states[-1], expected[prefix + "eva_out"])  # EVA has no final norm ...
    assert_close(out.frame_features, expected[prefix + "ln_vision_out"])  # ... ln_vision (eps 1e-5) comes after it
    assert_close(out.frame_qformer_hidden_states, expected[prefix + "frame_qformer_out"])
    assert_close(out.frame_query_embeds, expected[prefix + "frame_hidden_with_pos"])
    assert_close(out.temporal_hidden_states, expected[prefix + "temporal_qformer_out"])
    assert_close(out.video_embeds, expected[prefix + "features"])


def test_audio_branch_matches_original(converted, inputs, expected):
    model, _ = converted
    prefix = "audio_caption.audio."
    with torch.no_grad():
        out = model.model.get_audio_features(inputs["audio_caption.sounds"])
    imagebind = out.imagebind_output
    assert_close(imagebind.embedding_output, expected[prefix + "imagebind_trunk_in"])
    assert_close(imagebind.last_hidden_state, expected[prefix + "imagebind_trunk_out"])
    assert_close(imagebind.pooler_output, expected[prefix + "imagebind_cls"])
    assert_close(imagebind.audio_embeds, expected[prefix + "imagebind_embeds"])
    assert_close(imagebind.audio_embeds.norm(dim=-1), torch.full((3,), 20.0))
    assert_close(out.clip_embeds, expected[prefix + "embeds_with_pos"])
    assert_close(out.qformer_hidden_states, expected[prefix + "qformer_out"])
    assert_close(out.audio_embeds, expected[prefix + "features"])


@pytest.mark.parametrize("sample", SAMPLES)
def test_forward_matches_original(converted, inputs, expected, sample):
    model, _ = converted
    input_ids = inputs[f"{sample}.input_ids"]
    with torch.no_grad():
        out = model(input_ids=input_ids, **media_inputs(inputs, sample))
        last_hidden_state = model.model.language_model(inputs_embeds=out.inputs_embeds).last_hidden_state
    assert_close(model.get_input_embeddings()(input_ids), expected[f"{sample}.llm.text_embeds"])
    assert_close(out.inputs_embeds, expected[f"{sample}.llm.inputs_embeds"])
    assert_close(last_hidden_state, expected[f"{sample}.llm.last_hidden_state"])
    assert_close(out.logits, expected[f"{sample}.logits"])


@pytest.mark.parametrize("sample", SAMPLES)
def test_greedy_generation_matches_original(converted, inputs, expected, sample):
    model, _ = converted
    input_ids = inputs[f"{sample}.input_ids"]
    out = model.generate(
        input_ids=input_ids,
        **media_inputs(inputs, sample),
        do_sample=False,
        max_new_tokens=8,
        return_dict_in_generate=True,
        output_scores=True,
    )
    assert out.sequences[0, input_ids.shape[1] :].tolist() == expected[f"{sample}.generated_ids"].tolist()
    assert_close(torch.stack(out.scores)[:, 0], expected[f"{sample}.generation_scores"])


def test_processor_from_raw_media_generates_all_samples_in_one_batch(converted, expected, meta):
    """Chat template + processor on the raw media (PNG, decoded frames, WAV) for all six prompts in one padded batch
    give the original's prompt ids, and generation gives the original's batch-size-1 tokens."""
    model, processor = converted
    frames = load_file(GROUNDINGGPT_FIXTURE / "inputs.safetensors")["video.decoded_frames_uint8"].numpy()
    image, audio = (
        Image.open(GROUNDINGGPT_FIXTURE / "media" / "image.png"),
        GROUNDINGGPT_FIXTURE / "media" / "audio.wav",
    )
    prompts, media = [], {"images": [], "videos": [], "audio": []}
    for sample in SAMPLES:
        modalities = [m for m in meta["samples"][sample]["modalities"] if m != "text"]
        content = [{"type": CONTENT_TYPE[m]} for m in modalities]
        content.append({"type": "text", "text": meta["samples"][sample]["question"]})
        messages = [{"role": "user", "content": content}]
        prompts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        media["images"] += [image] * ("image" in modalities)
        media["videos"] += [frames] * ("video" in modalities)
        media["audio"] += [audio] * ("sound" in modalities)
    torch.manual_seed(CROP_SEED)  # the original's random crop, drawn exactly as the fixture drew it
    batch = processor(text=prompts, **media, random_crop=True, return_tensors="pt")
    fixture_inputs = load_file(GROUNDINGGPT_FIXTURE / "inputs.safetensors")
    for index, sample in enumerate(SAMPLES):
        real = batch["attention_mask"][index].bool()
        assert batch["input_ids"][index][real].tolist() == fixture_inputs[f"{sample}.input_ids"][0].tolist()

    out = model.generate(**batch, do_sample=False, max_new_tokens=8)
    for index, sample in enumerate(SAMPLES):
        assert out[index, batch["input_ids"].shape[1] :].tolist() == expected[f"{sample}.generated_ids"].tolist()


def test_image_processor_matches_original(converted, inputs):
    _, processor = converted
    out = processor.image_processor(Image.open(GROUNDINGGPT_FIXTURE / "media" / "image.png"), return_tensors="pt")
    assert torch.equal(out["pixel_values"], inputs["image.pixel_values"])
    assert out["image_sizes"].tolist() == [[40, 60]]
    padded = processor.image_processor.pad_to_square(
        inputs["image.rgb_uint8"].numpy().transpose(2, 0, 1), (122, 116, 104)
    )
    assert np.array_equal(padded.transpose(1, 2, 0), inputs["image.padded_square_uint8"].numpy())


@pytest.mark.parametrize(
    ("legacy", "reference"), [(True, "audio.sounds"), (False, "audio.sounds_clips_from_fresh_copies")]
)
def test_audio_features_match_original(inputs, legacy, reference):
    feature_extractor = GroundingGPTFeatureExtractor(legacy_inplace_mean=legacy)
    features = feature_extractor(GROUNDINGGPT_FIXTURE / "media" / "audio.wav", return_tensors="pt")
    assert_close(features["input_features"], inputs[reference], atol=2e-4, rtol=0)


def test_audio_features_show_the_original_mean_leak(converted, inputs):
    """The two references differ by the original's in-place mean leak; only the legacy mode reproduces it."""
    _, processor = converted
    features = processor.feature_extractor(inputs["audio.waveform"].numpy(), sampling_rate=16000)["input_features"]
    leak = (torch.from_numpy(features) - inputs["audio.sounds_clips_from_fresh_copies"]).abs().amax(dim=(0, 2, 3, 4))
    assert leak[0] < 2e-4 and (leak[1:] > 0.5).all()  # README §10.2: [0.0, 0.6344, 0.6344]


def test_video_processor_matches_original(converted, inputs, meta):
    _, processor = converted
    frames = inputs["video.decoded_frames_uint8"].numpy()
    assert sample_frame_indices(len(frames), 8).tolist() == meta["media"]["video"]["sampled_indices"]
    evaluated = processor.video_processor(frames, return_tensors="pt")
    assert_close(evaluated["pixel_values_videos"], inputs["video.videos_full_frame_crop"], atol=1e-6, rtol=0)
    assert evaluated["video_num_frames"].tolist() == [8]
    torch.manual_seed(CROP_SEED)
    cropped = processor.video_processor(frames, random_crop=True, return_tensors="pt")
    assert_close(cropped["pixel_values_videos"], inputs["video.videos"], atol=1e-6, rtol=0)


def test_box_conventions_match_original(meta):
    image = meta["media"]["image"]
    size = (image["height"], image["width"])
    square_box = image["red_square_box_padded_square_norm"]
    assert (
        format_box(pixels_to_padded_square_box(image["red_square_px_xyxy"], size))
        in (meta["samples"]["image_region"]["question"])
    )
    pixels = padded_square_box_to_pixels(square_box, size)
    assert pixels == image["red_square_px_xyxy"]
    # the original's `postprocess_output` text rewrite: pixels / original size, 3 decimals
    original_norm = [round(v / s, 3) for v, s in zip(pixels, (size[1], size[0]) * 2)]
    assert original_norm == image["red_square_box_original_norm"]
