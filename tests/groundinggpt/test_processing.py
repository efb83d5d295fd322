"""GroundingGPT preprocessing without the fixture: audio clips and features, video sampling and decoding, image
padding, the prompt template, placeholder expansion and the grounding parser."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor
from transformers.testing_utils import CaptureLogger

import transformers_groma  # noqa: F401  (registers the Auto classes)
from transformers_groma.processing.groundinggpt import (
    GroundingGPTFeatureExtractor,
    GroundingGPTImageProcessor,
    GroundingGPTProcessor,
    GroundingGPTVideoProcessor,
    clip_sample_ranges,
    feature_extraction_groundinggpt,
    padded_square_box_to_pixels,
    parse_boxes,
    parse_time_spans,
    pixels_to_padded_square_box,
    read_wav,
    resample,
    sample_frame_indices,
)
from transformers_groma.tiny import tiny_groundinggpt_processor

from .conftest import (
    AUDIO_START,
    IMAGE,
    IMAGE_START,
    MAX_FRAMES,
    MEL_BINS,
    MEL_FRAMES,
    NUM_AUDIO_TOKENS,
    NUM_IMAGE_TOKENS,
    NUM_VIDEO_TOKENS,
    SR,
    VIDEO_START,
    build_tiny_tokenizer,
    make_model,
    tone,
    write_video,
    write_wav,
)


@pytest.fixture
def processor() -> GroundingGPTProcessor:
    return GroundingGPTProcessor(
        GroundingGPTImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        GroundingGPTVideoProcessor(size={"height": 28, "width": 28}, num_frames=MAX_FRAMES),
        GroundingGPTFeatureExtractor(num_mel_bins=MEL_BINS, target_length=MEL_FRAMES),
        build_tiny_tokenizer(),
        num_image_tokens=NUM_IMAGE_TOKENS,
        num_video_tokens=NUM_VIDEO_TOKENS,
        num_audio_tokens=NUM_AUDIO_TOKENS,
    )


# ---------------------------------------------------------------------------------------------------- audio


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (3.3, [(0, 32000), (10399, 42399), (20799, 52799)]),  # fixture README §10.3 (int() truncation)
        (5.0, [(0, 32000), (24000, 56000), (48000, 80000)]),  # first, middle, last 2 s
        (1.5, [(0, 24000)] * 3),  # shorter than a clip: the whole audio three times
    ],
)
def test_clip_sample_ranges_follow_pytorchvideo(seconds, expected):
    assert clip_sample_ranges(round(seconds * SR), SR, 2.0, 3) == expected


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_read_wav_scales_pcm_like_torchaudio(tmp_path, width):
    bits = 8 * width
    samples = np.array([[0, -(2 ** (bits - 1))], [2 ** (bits - 1) - 1, 3], [-5, 7]], dtype=np.int64)
    write_wav(tmp_path / "a.wav", samples, width)
    waveform, rate = read_wav(tmp_path / "a.wav")
    assert rate == SR and waveform.shape == (2, 3) and waveform.dtype == np.float32
    np.testing.assert_allclose(waveform, samples.T / 2.0 ** (bits - 1), rtol=1e-6)


def test_resampling_keeps_pitch_and_duration():
    waveform = tone(1.0, 440.0, rate=8000)[None]
    upsampled = resample(waveform, 8000, SR)
    assert upsampled.shape == (1, SR)
    spectrum = np.abs(np.fft.rfft(upsampled[0, 2000:-2000]))
    assert abs(np.argmax(spectrum[1:]) + 1 - 440 * (SR - 4000) / SR) <= 1
    assert resample(waveform, 8000, 8000) is waveform


def test_features_of_a_file_and_of_its_waveform_agree(tmp_path):
    samples = (tone(3.3) * 2**15).astype(np.int64)
    write_wav(tmp_path / "a.wav", samples, 2)
    extractor = GroundingGPTFeatureExtractor()
    waveform = samples / 2**15
    before = waveform.copy()
    from_file = extractor(tmp_path / "a.wav", return_tensors="pt")["input_features"]
    from_array = extractor([waveform], sampling_rate=SR, return_tensors="pt")["input_features"]
    assert from_file.shape == (1, 3, 1, 128, 204)
    torch.testing.assert_close(from_file, from_array)
    assert np.array_equal(waveform, before)  # the in-place mean removal works on a copy


def test_legacy_mean_leak_changes_only_overlapping_clips():
    audio = tone(3.3) + np.linspace(0, 0.3, int(3.3 * SR), dtype=np.float32)  # a drift makes clip means differ
    legacy = GroundingGPTFeatureExtractor()(audio, sampling_rate=SR)["input_features"][0]
    fresh = GroundingGPTFeatureExtractor(legacy_inplace_mean=False)(audio, sampling_rate=SR)["input_features"][0]
    assert np.array_equal(legacy[0], fresh[0]) and not np.allclose(legacy[1:], fresh[1:], atol=1e-3)


def test_audio_is_resampled_to_16_khz():
    audio = tone(3.0, rate=8000)
    features = GroundingGPTFeatureExtractor()(audio, sampling_rate=8000)["input_features"]
    reference = GroundingGPTFeatureExtractor()(resample(audio[None], 8000, SR), sampling_rate=SR)["input_features"]
    np.testing.assert_array_equal(features, reference)


def test_short_audio_raises_unless_allowed():
    extractor = GroundingGPTFeatureExtractor()
    with pytest.raises(ValueError, match=r"`audio\[0\]` lasts 1.000 s, shorter than one 2.0 s clip"):
        extractor(tone(1.0), sampling_rate=SR)
    features = extractor(tone(1.0), sampling_rate=SR, allow_short_audio=True)["input_features"]
    assert features.shape == (1, 3, 1, 128, 204)
    np.testing.assert_allclose(features[0, 0], features[0, 2], atol=1e-4)  # every clip is the whole audio
    assert np.allclose(features[0, 0, 0, :, 100:], 4.268 / 9.138)  # zero-padded frames, normalised


@pytest.mark.parametrize("waveform", [(tone(3.0) * 2**15).astype(np.int16), torch.zeros(3 * SR, dtype=torch.int32)])
def test_integer_waveforms_are_rejected(waveform):
    with pytest.raises(TypeError, match=r"`audio\[0\]` has int\d+ samples: pass a floating-point waveform"):
        GroundingGPTFeatureExtractor()(waveform, sampling_rate=SR)


@pytest.mark.parametrize(
    ("audio", "kwargs", "message"),
    [
        (np.zeros((2, 2, 3)), {"sampling_rate": SR}, r"`audio\[0\]` must be a \(samples,\)"),
        ("missing.wav", {}, r"`audio\[0\]`: Audio file missing.wav does not exist"),
    ],
)
def test_bad_audio_raises_naming_the_item(audio, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroundingGPTFeatureExtractor()(audio, **kwargs)


def test_waveforms_without_sampling_rate_are_taken_at_16_khz_with_a_warning():
    extractor = GroundingGPTFeatureExtractor()
    waveform = tone(3.0, rate=22050)
    with CaptureLogger(feature_extraction_groundinggpt.logger) as captured:
        assumed = extractor(waveform)["input_features"]
    assert "no `sampling_rate` was passed: they are taken to be at 16000 Hz" in captured.out
    np.testing.assert_array_equal(assumed, extractor(waveform, sampling_rate=16000)["input_features"])
    assert not np.allclose(assumed, extractor(waveform, sampling_rate=22050)["input_features"])


def test_undecodable_audio_file_raises(tmp_path):
    (tmp_path / "noise.wav").write_bytes(b"RIFF0000not a wave file")
    with pytest.raises(ValueError, match=r"`audio\[0\]`: .*noise.wav"):
        GroundingGPTFeatureExtractor()(tmp_path / "noise.wav")


# ---------------------------------------------------------------------------------------------------- video


def test_frame_indices_follow_the_original_rule():
    indices = sample_frame_indices(100, 64)
    assert len(indices) == 64 and indices[:7].tolist() == [0, 1, 3, 4, 6, 7, 9] and indices[-1] == 98
    assert sample_frame_indices(30, 64).tolist() == list(range(30))


def test_decoded_videos_are_resized_sampled_and_padded(processor):
    generator = np.random.default_rng(0)
    long = generator.integers(0, 256, (9, 30, 40, 3), dtype=np.uint8)
    short = generator.integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    out = processor.video_processor([long, short], return_tensors="pt")
    assert out["pixel_values_videos"].shape == (2, 3, MAX_FRAMES, 28, 28)
    assert out["video_num_frames"].tolist() == [MAX_FRAMES, 2]
    assert not out["pixel_values_videos"][1, :, 2:].any()
    # frames of the right size are only rescaled and normalised; `short` keeps both frames
    expected = (
        torch.from_numpy(short).permute(3, 0, 1, 2) / 255
        - torch.tensor(processor.video_processor.image_mean)[:, None, None, None]
    ) / torch.tensor(processor.video_processor.image_std)[:, None, None, None]
    torch.testing.assert_close(out["pixel_values_videos"][1, :, :2], expected)


def test_video_files_are_decoded_with_pyav(tmp_path, processor):
    write_video(tmp_path / "clip.mp4", num_frames=10)
    out = processor(text="<video>\nWhen?", videos=str(tmp_path / "clip.mp4"), return_tensors="pt")
    assert out["pixel_values_videos"].shape == (1, 3, MAX_FRAMES, 28, 28)
    torch.testing.assert_close(out["video_durations"], torch.tensor([2.0], dtype=torch.float64))
    means = out["pixel_values_videos"][0, 0].mean(dim=(1, 2))
    assert (means[1:] > means[:-1]).all()  # frames 0, 2, 5, 7 of a brightening clip, in order


@pytest.mark.parametrize(("suffix", "codec"), [("mkv", "mpeg4"), ("webm", "libvpx")])
def test_videos_without_a_frame_count_in_their_header_are_sampled_like_mp4(tmp_path, processor, suffix, codec):
    av = pytest.importorskip("av")
    write_video(tmp_path / "clip.mp4", num_frames=10)
    write_video(tmp_path / f"clip.{suffix}", num_frames=10, codec=codec)
    with av.open(str(tmp_path / f"clip.{suffix}")) as container:
        assert container.streams.video[0].frames == 0  # what made `sample_frame_indices` fail before
    reference = processor(text="<video>\nWhen?", videos=str(tmp_path / "clip.mp4"), return_tensors="pt")
    out = processor(text="<video>\nWhen?", videos=str(tmp_path / f"clip.{suffix}"), return_tensors="pt")
    torch.testing.assert_close(out["video_durations"], torch.tensor([2.0], dtype=torch.float64))
    assert out["video_num_frames"].tolist() == [MAX_FRAMES]
    # the same frames (0, 2, 5, 7): identical with the same codec, within VP8's error for the flat frames of WebM
    tolerance = 0 if codec == "mpeg4" else 0.05
    torch.testing.assert_close(out["pixel_values_videos"], reference["pixel_values_videos"], atol=tolerance, rtol=0)


def test_frames_a_truncated_video_announces_but_lacks_are_not_sampled(tmp_path, processor):
    av = pytest.importorskip("av")
    write_video(tmp_path / "full.mp4", num_frames=40, options={"movflags": "faststart"})  # frame count up front
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    with av.open(str(tmp_path / "cut.mp4")) as container:
        announced = container.streams.video[0].frames
        decodable = sum(1 for _ in container.decode(video=0))
    assert announced == 40 and 0 < decodable < 30  # frames 10, 20, 30 of the announced 40 would be missing
    videos = processor.video_processor(str(tmp_path / "cut.mp4"), return_metadata=True, return_tensors="pt")
    (metadata,) = videos["video_metadata"]
    assert metadata.total_num_frames == decodable and metadata.duration == pytest.approx(decodable / 5)
    assert metadata.frames_indices.tolist() == sample_frame_indices(decodable, MAX_FRAMES).tolist()
    means = videos["pixel_values_videos"][0, 0].mean(dim=(1, 2))
    assert videos["video_num_frames"].tolist() == [MAX_FRAMES] and (means[1:] > means[:-1]).all()


def test_undecodable_video_raises_naming_the_argument(tmp_path, processor):
    pytest.importorskip("av")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"`videos`: could not decode .*broken.mp4"):
        processor(text="<video>\nWhen?", videos=str(tmp_path / "broken.mp4"))
    with pytest.raises(ValueError, match=r"`videos`: the file .*missing.mp4 does not exist"):
        processor(text="<video>\nWhen?", videos=str(tmp_path / "missing.mp4"))


# ---------------------------------------------------------------------------------------------------- image


def test_images_are_padded_to_a_square_with_the_clip_mean():
    image = np.zeros((20, 30, 3), dtype=np.uint8)  # wide: padded above and below
    processor = GroundingGPTImageProcessor(do_resize=False, do_center_crop=False, do_rescale=False,
                                           do_normalize=False)  # fmt: skip
    out = processor(image, return_tensors="np")
    padded = out["pixel_values"][0]
    assert padded.shape == (3, 30, 30) and out["image_sizes"].tolist() == [[20, 30]]
    assert padded[:, :5].reshape(3, -1).T.tolist() == [[122, 116, 104]] * 150
    assert not padded[:, 5:25].any() and padded[:, 25:].min() == 104


# ---------------------------------------------------------------------------------------------------- grounding


def test_boxes_map_between_the_padded_square_and_the_original_image():
    size = (480, 640)  # wide: the square is 640 and the image sits 80 px down
    assert padded_square_box_to_pixels([0.1, 0.2, 0.5, 0.6], size) == [64.0, 48.0, 320.0, 304.0]
    assert pixels_to_padded_square_box([64, 48, 320, 304], size) == [0.1, 0.2, 0.5, 0.6]
    assert padded_square_box_to_pixels([0.0, 0.0, 1.0, 1.0], size) == [0.0, 0.0, 640.0, 480.0]  # padding clipped
    assert padded_square_box_to_pixels([0.25, 0.0, 0.75, 1.0], (640, 480)) == [80.0, 0.0, 400.0, 640.0]


def test_parse_boxes_is_tolerant_and_groups_adjacent_boxes():
    text = "two dogs[0.1,0.2,0.3,0.4][0.5, 0.6, 0.7, 0.8] and a bed[0.000, 0.289, 1.000, 1.000]."
    boxes = parse_boxes(text, image_size=(100, 100))
    assert [box["group"] for box in boxes] == [0, 0, 1]
    assert boxes[1]["normalized_box"] == [0.5, 0.6, 0.7, 0.8]
    assert text[slice(*boxes[2]["span"])] == "[0.000, 0.289, 1.000, 1.000]"
    assert boxes[2]["box"] == [0.0, 29.0, 100.0, 100.0]
    assert parse_boxes(text)[0]["box"] is None


def test_parse_time_spans_gives_seconds():
    spans = parse_time_spans("in {0.16, 0.36} and {0.9,0.5} and {1.2, -0.1}", duration=10.0)
    assert [span["seconds"] for span in spans] == [pytest.approx(s) for s in [(1.6, 3.6), (5.0, 9.0), (0.0, 10.0)]]
    assert [span["fraction"] for span in spans] == [(0.16, 0.36), (0.5, 0.9), (0.0, 1.0)]
    assert parse_time_spans("{0.16, 0.36}", duration=math.nan)[0]["seconds"] is None


# ---------------------------------------------------------------------------------------------------- processor


def test_chat_template_writes_the_original_prompt(processor):
    content = [{"type": "image"}, {"type": "text", "text": "Where?"}, {"type": "audio"}, {"type": "video"}]
    messages = [
        {"role": "user", "content": content},
        {"role": "assistant", "content": "There[0.1, 0.2, 0.3, 0.4]."},
        {"role": "user", "content": "And now?"},
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    system = (
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the human's questions."
    )
    assert prompt == (
        f"{system}###Human: <sound>\n<video>\n<image>\nWhere?###Assistant: There[0.1, 0.2, 0.3, 0.4].###"
        "Human: And now?###Assistant:"
    )
    custom = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert processor.apply_chat_template(custom, tokenize=False) == "Be brief.###Human: Hi###"


def test_placeholders_expand_into_blocks_and_batches_pad_left(processor):
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    out = processor(
        text=["<sound>\n<image>\nWhat?", "Hi"],
        images=[image],
        audio=[tone(2.5)],
        sampling_rate=SR,
        return_tensors="pt",
    )
    ids = out["input_ids"]
    assert (ids[0] == IMAGE).sum() == NUM_IMAGE_TOKENS and (ids[0] == IMAGE_START).sum() == 1
    assert (ids[0] == AUDIO_START).sum() == 1 and (ids[0] == VIDEO_START).sum() == 0
    assert out["attention_mask"][1, 0] == 0 and out["attention_mask"][1, -1] == 1  # left padding
    assert out["pixel_values"].shape == (1, 3, 28, 28) and out["image_sizes"].tolist() == [[20, 30]]
    assert out["input_features"].shape == (1, 3, 1, MEL_BINS, MEL_FRAMES)


SMALL_IMAGE = Image.new("RGB", (9, 9))


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "message"),
    [
        ("<image>\nWhat?", {}, ValueError, r"1 <image> placeholder\(s\) but 0 item\(s\) were given in `images`"),
        ("What?", {"audio": [tone(3.0)]}, ValueError, r"0 <sound> placeholder\(s\) but 1 item"),
        ("<im_start><im_patch><im_end>\nHi", {}, ValueError, r"`text\[0\]` contains <im_patch>"),
        (None, {}, ValueError, "`text` is required"),
        ([], {}, ValueError, "`text` is empty"),
        (3, {}, TypeError, "`text` must be a string"),
        (["<image>\n<image>\na", "<image>\nb"], {"images": [[SMALL_IMAGE], [SMALL_IMAGE, SMALL_IMAGE]]},
         ValueError, r"`text\[0\]` has 2 <image> placeholder\(s\) but 1 item\(s\) were given in `images\[0\]`"),
        (["<image>\na", "<image>\nb"], {"images": [[SMALL_IMAGE, SMALL_IMAGE]]},
         ValueError, r"`images` is nested per prompt but holds 1 list\(s\) for 2 prompt\(s\)"),
        (["<sound>\na", "b"], {"audio": [[], [tone(3.0)]]},
         ValueError, r"`text\[0\]` has 1 <sound> placeholder\(s\) but 0 item\(s\) were given in `audio\[0\]`"),
        ("<sound>\na", {"audio": [(tone(3.0) * 2**15).astype(np.int16)]}, TypeError, "has int16 samples"),
    ],
)  # fmt: skip
def test_processor_rejects_inconsistent_inputs(processor, text, kwargs, error, message):
    with pytest.raises(error, match=message):
        processor(text=text, sampling_rate=SR, **kwargs)


def test_media_nested_per_prompt_and_empty_media_lists(processor):
    images = [Image.new("RGB", (10 * k, 20)) for k in (1, 2, 3)]
    text = ["<image>\n<image>\na", "<image>\nb", "c"]
    nested = processor(text=text, images=[images[:2], images[2:], []], return_tensors="pt")
    flat = processor(text=text, images=images, return_tensors="pt")
    assert nested["image_sizes"].tolist() == [[20, 10], [20, 20], [20, 30]]
    torch.testing.assert_close(nested["pixel_values"], flat["pixel_values"])
    video = np.zeros((3, 28, 28, 3), dtype=np.uint8)
    videos = processor(text=["<video>\na", "b"], videos=[[video], []], return_tensors="pt")
    assert videos["video_num_frames"].tolist() == [3]
    frames = processor(text="<video>\na", videos=[[Image.new("RGB", (28, 28))] * 2], return_tensors="pt")
    assert frames["video_num_frames"].tolist() == [2]  # a list of frames is one video, not a list per prompt
    plain = processor(text="hi", return_tensors="pt")
    for empty in ({"images": []}, {"videos": []}, {"audio": []}):
        out = processor(text="hi", return_tensors="pt", **empty)
        assert out.keys() == plain.keys() and torch.equal(out["input_ids"], plain["input_ids"])


def test_truncated_blocks_are_detected(processor):
    with pytest.raises(ValueError, match="did not survive tokenization"):
        processor(text="<image>\nWhat?", images=[np.zeros((8, 8, 3), np.uint8)], truncation=True, max_length=4)


def test_post_process_grounding_gives_pixels_and_seconds(processor):
    answer = "the dog[0.100, 0.200, 0.500, 0.600] at {0.16, 0.36}.###Human: more"
    ids = processor.tokenizer([answer], add_special_tokens=False)["input_ids"]
    (result,) = processor.post_process_grounding(ids, image_sizes=[(480, 640)], video_durations=[10.0])
    assert result["text"] == "the dog[0.100, 0.200, 0.500, 0.600] at {0.16, 0.36}."
    assert result["boxes"][0]["box"] == [64.0, 48.0, 320.0, 304.0]
    assert result["time_spans"][0]["seconds"] == pytest.approx((1.6, 3.6))
    with pytest.raises(ValueError, match="one entry per sample"):
        processor.post_process_grounding(ids, image_sizes=[(1, 1), (2, 2)])


def test_post_process_grounding_takes_the_per_item_outputs_of_a_mixed_batch(processor):
    video = np.zeros((10, 28, 28, 3), dtype=np.uint8)
    inputs = processor(
        text=["<image>\nWhere?", "<video>\nWhen?", "Hi", "<video>\n<image>\nBoth?"],
        images=[Image.new("RGB", (640, 480)), Image.new("RGB", (480, 640))],
        videos=[video, video],
        video_metadata=[{"fps": 5.0, "total_num_frames": 10}, {"fps": 1.0, "total_num_frames": 10}],
        return_tensors="pt",
    )
    assert inputs["image_sizes"].shape == (2, 2) and inputs["video_durations"].tolist() == [2.0, 10.0]
    answer = "it[0.100, 0.200, 0.500, 0.600] at {0.20, 0.50}."
    ids = processor.tokenizer([answer] * 4, add_special_tokens=False)["input_ids"]
    results = processor.post_process_grounding(
        ids,
        image_sizes=inputs["image_sizes"],
        video_durations=inputs["video_durations"],
        input_ids=inputs["input_ids"],
    )
    assert [[box["box"] for box in result["boxes"]] for result in results] == [
        [[64.0, 48.0, 320.0, 304.0]], [None], [None], [[0.0, 128.0, 240.0, 384.0]]
    ]  # fmt: skip
    assert [result["time_spans"][0]["seconds"] for result in results] == [None, (0.4, 1.0), None, (2.0, 5.0)]
    with pytest.raises(ValueError, match=r"`image_sizes` has 2 entries but `input_ids` has 1 <image> block"):
        processor.post_process_grounding(ids[:1], image_sizes=inputs["image_sizes"], input_ids=inputs["input_ids"][:1])
    two = processor(text="<image>\n<image>\nWhich?", images=[Image.new("RGB", (9, 9)), Image.new("RGB", (8, 9))])
    with pytest.raises(ValueError, match=r"Sample 0 has 2 `images` with different `image_sizes`"):
        processor.post_process_grounding(ids[:1], image_sizes=two["image_sizes"], input_ids=two["input_ids"])


def test_save_load_round_trip(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, GroundingGPTProcessor)
    assert (reloaded.num_image_tokens, reloaded.num_video_tokens) == (NUM_IMAGE_TOKENS, NUM_VIDEO_TOKENS)
    kwargs = {"text": ["<sound>\n<image>\nWhat?"], "images": [np.zeros((20, 30, 3), np.uint8)], "audio": [tone(2.5)]}
    expected = processor(**kwargs, sampling_rate=SR, return_tensors="pt")
    actual = reloaded(**kwargs, sampling_rate=SR, return_tensors="pt")
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key])


def test_processor_outputs_drive_the_model(processor):
    model = make_model()
    video = np.random.default_rng(1).integers(0, 256, (6, 28, 28, 3), dtype=np.uint8)
    inputs = processor(
        text=["<sound>\n<video>\n<image>\nWhere?", "<image>\nWhat?"],
        images=[Image.new("RGB", (30, 20)), Image.new("RGB", (20, 30))],
        videos=[video],
        audio=[tone(2.5)],
        sampling_rate=SR,
        return_tensors="pt",
    )
    out = model.generate(**inputs, do_sample=False, max_new_tokens=3, pad_token_id=0)
    results = processor.post_process_grounding(
        out[:, inputs["input_ids"].shape[1] :],
        image_sizes=inputs["image_sizes"],
        video_durations=inputs["video_durations"],
        input_ids=inputs["input_ids"],
    )
    assert out.shape == (2, inputs["input_ids"].shape[1] + 3) and len(results) == 2


def test_post_processing_ignores_label_padding(processor):
    ids = processor.tokenizer("a dog", add_special_tokens=False).input_ids
    assert processor.post_process_image_text_to_text(torch.tensor([ids + [-100, -100]])) == [
        processor.post_process_image_text_to_text([ids])[0]
    ]
    with pytest.raises(ValueError, match="generated_ids"):
        processor.post_process_image_text_to_text([[*ids, -5]])


def test_processor_save_load_cycles_keep_the_legacy_tokenization(tmp_path):
    # `legacy=True` puts a `▁` before the word after an added token; a lost flag would change those ids.
    processor = tiny_groundinggpt_processor()
    text = "USER: <image>\nWhere is the dog? ASSISTANT: the dog{<0.1><0.2><0.3><0.4>}</s>"
    expected = processor.tokenizer(text)["input_ids"]
    for cycle in range(3):
        processor.save_pretrained(tmp_path / str(cycle))
        processor = GroundingGPTProcessor.from_pretrained(tmp_path / str(cycle))
        assert processor.tokenizer.legacy is True
    assert processor.tokenizer(text)["input_ids"] == expected
