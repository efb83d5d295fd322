"""`groma predict` with GroundingGPT: every modality end to end on the in-memory tiny model and on a saved tiny folder,
answers in pixels and seconds, pictures, JSON, the example scripts, and error messages."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LogitsProcessorList

from transformers_groma import GroundingGPTForConditionalGeneration
from transformers_groma.cli import main
from transformers_groma.cli_groundinggpt import DEFAULT_QUERIES, SOUND_LOCALIZATION_QUERY
from transformers_groma.processing import BOX_COLORS
from transformers_groma.tiny import tiny_groundinggpt_model, tiny_groundinggpt_processor

from ..forcing import ForceTokens
from .conftest import tone, write_video, write_wav


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "groundinggpt"
# A canned answer: on the 64 x 48 test image (padded-square side 64, 8 px of padding above) the box is x 6-32,
# y 13-8=5 .. 38-8=30 in pixels; on the 2 s test video the span is 0.5-1.5 s.
ANSWER = "The dog[0.100, 0.200, 0.500, 0.600] at {0.25, 0.75}.###Human:"
PIXEL_BOX = [6.0, 5.0, 32.0, 30.0]
QUICK = ["--max_new_tokens", "3"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, str]:
    """A 64 x 48 image, a 2 s video (10 frames at 5 fps) and a 2.5 s WAV tone."""
    folder = tmp_path_factory.mktemp("media")
    Image.new("RGB", (64, 48), (128, 128, 128)).save(folder / "grey.png")
    write_video(folder / "clip.mp4", num_frames=10)
    write_wav(folder / "tone.wav", (tone(2.5) * 32767).astype(np.int64), width=2)
    return {"image": str(folder / "grey.png"), "video": str(folder / "clip.mp4"), "audio": str(folder / "tone.wav")}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-groundinggpt")
    tiny_groundinggpt_model().save_pretrained(folder)
    tiny_groundinggpt_processor().save_pretrained(folder)
    return str(folder)


def media_args(media: dict[str, str], *kinds: str) -> list[str]:
    return [argument for kind in kinds for argument in (f"--{kind}", media[kind])]


@pytest.mark.parametrize(
    ("kinds", "query", "picture_size"),
    [
        (("image",), DEFAULT_QUERIES["image"], (64, 48)),
        (("video",), DEFAULT_QUERIES["video"], (640, 72)),  # the timeline
        (("audio",), DEFAULT_QUERIES["audio"], None),
        (("image", "audio"), SOUND_LOCALIZATION_QUERY, (64, 48)),
    ],
)
@pytest.mark.parametrize("saved", [False, True], ids=["in-memory", "saved-folder"])
def test_each_modality_on_the_tiny_model(saved_model, media, tmp_path, capsys, kinds, query, picture_size, saved):
    output = tmp_path / "out.png"
    source = ["--model", saved_model] if saved else ["--tiny-groundinggpt"]
    main(["predict", *source, *media_args(media, *kinds), *QUICK, "--json", "--output", str(output)])
    (result,) = json.loads(capsys.readouterr().out)
    assert {kind: result[kind] for kind in ("image", "video", "audio")} == {
        kind: media[kind] if kind in kinds else None for kind in ("image", "video", "audio")
    }
    assert result["query"] == query and isinstance(result["text"], str)
    assert result["video_duration"] == (pytest.approx(2.0) if "video" in kinds else None)
    if picture_size is None:
        assert "picture" not in result and not output.exists()
    else:
        assert result["picture"] == str(output) and Image.open(output).size == picture_size


def test_without_media_the_demo_image_is_described(capsys):
    main(["predict", "--tiny-groundinggpt", *QUICK])
    assert capsys.readouterr().out.startswith(f"[image: <demo image>] {DEFAULT_QUERIES['image']}\n  -> ")


def test_generation_stops_at_the_separator_split_over_tokens(media, capsys, monkeypatch):
    tokenizer = tiny_groundinggpt_processor().tokenizer
    text = "ab###cdefgh"
    ids = tokenizer.convert_tokens_to_ids(list(text))  # `###` is three tokens of the character-level tokenizer
    assert tokenizer.unk_token_id not in ids and not any("##" in piece for piece in tokenizer.get_vocab())
    generate, new_tokens = GroundingGPTForConditionalGeneration.generate, []

    def forcing_generate(self, input_ids, **kwargs):
        processor = ForceTokens(ids, input_ids.shape[1])
        output = generate(self, input_ids, logits_processor=LogitsProcessorList([processor]), **kwargs)
        new_tokens.append(output[:, input_ids.shape[1] :])
        return output

    monkeypatch.setattr(GroundingGPTForConditionalGeneration, "generate", forcing_generate)
    main(["predict", "--tiny-groundinggpt", *media_args(media, "image"), "--max_new_tokens", "10", "--json"])
    (result,) = json.loads(capsys.readouterr().out)
    assert result["text"] == "ab" and tokenizer.convert_ids_to_tokens(new_tokens[0][0]) == list("ab###")


def test_saved_folder_gives_pixels_and_seconds(saved_model, media, tmp_path, capsys, monkeypatch):
    answer_ids = torch.tensor(tiny_groundinggpt_processor().tokenizer(ANSWER, add_special_tokens=False)["input_ids"])

    def canned_generate(self, input_ids, **kwargs):
        return torch.cat([input_ids, answer_ids.expand(len(input_ids), -1)], dim=1)

    monkeypatch.setattr(GroundingGPTForConditionalGeneration, "generate", canned_generate)
    # One image and one video for two queries: two jobs, one batch.
    args = ["predict", "--model", saved_model, *media_args(media, "image", "video"), "--query", "Where?"]
    main([*args, "--query", "When?", "--json", "--output", str(tmp_path / "out.png")])
    results = json.loads(capsys.readouterr().out)
    assert [result["query"] for result in results] == ["Where?", "When?"]
    for index, result in enumerate(results):
        assert result["text"] == "The dog[0.100, 0.200, 0.500, 0.600] at {0.25, 0.75}."
        assert [box["box"] for box in result["boxes"]] == [PIXEL_BOX]
        assert [span["seconds"] for span in result["time_spans"]] == [pytest.approx([0.5, 1.5])]
        picture = Image.open(tmp_path / f"out_{index}.png")
        assert picture.getpixel((6, 26)) == BOX_COLORS[0] and picture.getpixel((40, 26)) == (128, 128, 128)

    main(args)
    printed = capsys.readouterr().out
    assert f"[image: {media['image']}, video: {media['video']}] Where?" in printed
    assert "[0] box [6, 5, 32, 30] px" in printed and "span 0.5-1.5 s" in printed


@pytest.mark.parametrize("script", ["infer_image", "infer_video", "infer_audio", "infer_image_audio"])
def test_example_scripts_run_on_a_saved_folder(saved_model, media, tmp_path, capsys, monkeypatch, script):
    files = {
        "infer_image": ["image"],
        "infer_video": ["video"],
        "infer_audio": ["audio"],
        "infer_image_audio": ["image", "audio"],
    }[script]
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.chdir(tmp_path)
    argv = [f"{script}.py", saved_model, *[media[kind] for kind in files], *QUICK]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / f"{script}.py"), run_name="__main__")
    assert capsys.readouterr().out.strip()
    pictures = {"infer_image": "grounded.png", "infer_video": "timeline.png", "infer_image_audio": "sound-source.png"}
    if script in pictures:
        assert (tmp_path / pictures[script]).is_file()


def write_config(folder: Path, config: dict) -> str:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_bad_inputs_get_clear_messages(media, tmp_path):
    tiny = ["predict", "--tiny-groundinggpt", *QUICK]
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    (tmp_path / "broken.wav").write_bytes(b"RIFF" + b"\x00" * 64)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    cases = [
        ([*tiny, "--video", str(tmp_path / "missing.mp4")], r"--video .*missing.mp4: no such file"),
        ([*tiny, "--audio", str(tmp_path / "missing.wav")], r"--audio .*missing.wav: no such file"),
        ([*tiny, "--image", str(tmp_path / "missing.png")], r"--image .*missing.png: no such file"),
        ([*tiny, "--video", str(tmp_path / "broken.mp4")], r"`videos`: could not decode .*broken.mp4"),
        ([*tiny, "--audio", str(tmp_path / "broken.wav")], r"`audio\[0\]`: Cannot decode .*broken.wav"),
        ([*tiny, "--image", str(tmp_path / "broken.png")], r"--image .*broken.png cannot be read as an image"),
        (["predict", "--tiny", "--video", media["video"]], "Groma reads images only"),
        (["predict", "--tiny", "--audio", media["audio"]], "Groma reads images only"),
        ([*tiny, "--box", "1,2,3,4"], "--box is for Groma"),
        ([*tiny, *media_args(media, "video", "video"), "--query", "a", "--query", "b", "--query", "c"], "2 --video"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit, match=message):
            main(argv)


def test_unconverted_or_foreign_folders_are_refused(tmp_path):
    original = write_config(tmp_path / "GroundingGPT", {"model_type": "LEGO"})
    with pytest.raises(SystemExit, match=r"unconverted\) GroundingGPT checkpoint(.|\n)*--vision_tower"):
        main(["predict", "--model", original])
    with pytest.raises(SystemExit, match="neither Groma nor GroundingGPT"):
        main(["predict", "--model", write_config(tmp_path / "llama", {"model_type": "llama"})])
