"""`groma predict`: the offline tiny path, a saved model folder, pictures, JSON, batching and error messages."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from transformers_groma import cli
from transformers_groma.cli import demo_image, main
from transformers_groma.modeling import GromaForConditionalGeneration, GromaForRegionProposal
from transformers_groma.tiny import tiny_groma_config, tiny_groma_model, tiny_groma_processor

from .fixtures import GROMA_FIXTURE, requires_groma_fixture


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_groma_model().save_pretrained(folder)
    tiny_groma_processor().save_pretrained(folder)
    return folder


def test_tiny_run_prints_answer_and_saves_picture(tmp_path, capsys):
    main(["predict", "--tiny", "--max_new_tokens", "4", "--output", str(tmp_path / "demo.png")])
    printed = capsys.readouterr().out
    assert f"[<demo image>] {cli.TINY_QUERY}" in printed
    picture = Image.open(tmp_path / "demo.png")
    assert picture.size == (448, 448)
    # the selected regions are drawn: the picture differs from the plain demo image
    assert list(picture.convert("RGB").getdata()) != list(demo_image().getdata())


def test_saved_model_json_with_box_and_several_images(saved_model, tmp_path, capsys):
    images = []
    for i in range(4):
        path = tmp_path / f"img{i}.png"
        demo_image(100 + 20 * i).save(path)
        images += ["--image", str(path)]
    main(
        [
            "predict",
            "--model",
            str(saved_model),
            *images,
            "--query",
            "What is there?",
            "--max_new_tokens",
            "3",
            "--json",
        ]
    )
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == [images[i] for i in range(1, 8, 2)]
    assert all(set(r) == {"image", "query", "text", "entities", "regions"} for r in results)

    image = tmp_path / "img0.png"
    main(
        [
            "predict",
            "--model",
            str(saved_model),
            "--image",
            str(image),
            "--query",
            "Describe",
            "--box",
            "10,20,60,80",
            "--max_new_tokens",
            "3",
            "--json",
        ]
    )
    (result,) = json.loads(capsys.readouterr().out)
    # the user's box is one of the regions the answer can refer to (score 1.0 keeps it first)
    assert result["regions"][0] == pytest.approx([10, 20, 60, 80], abs=1e-3)


def test_describe_regions_describes_each_selected_region_inside_the_image(saved_model, tmp_path, capsys, monkeypatch):
    image = tmp_path / "img.png"
    demo_image(100).crop((0, 0, 100, 70)).save(image)
    # two selected regions (normalized cxcywh); the second reaches past the right and top borders
    regions = torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.95, 0.1, 0.3, 0.4]])
    monkeypatch.setattr(
        GromaForConditionalGeneration, "propose_regions", lambda self, pixel_values: ([regions], [torch.ones(2)])
    )
    query = "Please briefly describe <roi><refer_box></roi><refer_feat>."
    argv = ["predict", "--model", str(saved_model), "--image", str(image), "--describe_regions", "--json"]
    main([*argv, "--query", query, "--max_new_tokens", "3", "--batch_size", "1"])
    (result,) = json.loads(capsys.readouterr().out)
    assert result["query"] == query
    assert result["regions"] == [pytest.approx([30, 21, 70, 49]), pytest.approx([80, -7, 110, 21])]
    entities = result["entities"]
    assert [entity["boxes"] for entity in entities] == [[pytest.approx([30, 21, 70, 49])], [[80, 0, 100, 21]]]
    assert [entity["region_indices"] for entity in entities] == [[0], [1]]
    for entity in entities:
        start, end = entity["span"]
        assert result["text"][start:end] == entity["phrase"]


def test_describe_regions_options_are_checked_before_loading(no_model_loading):
    with pytest.raises(SystemExit, match="--describe_regions describes the regions the model finds itself"):
        main(["predict", "--tiny", "--describe_regions", "--box", "1,1,5,5"])
    with pytest.raises(SystemExit, match="--describe_regions is for Groma"):
        main(["predict", "--tiny-groundinggpt", "--describe_regions"])


def test_bad_inputs_get_clear_messages(saved_model, tmp_path):
    with pytest.raises(SystemExit, match="no config.json"):
        main(["predict", "--model", str(tmp_path / "missing")])
    image = tmp_path / "img.png"
    demo_image(100).save(image)
    with pytest.raises(SystemExit, match="outside the image|inside the image|exceed"):
        main(["predict", "--model", str(saved_model), "--image", str(image), "--box", "10,10,500,50"])
    with pytest.raises(SystemExit, match="single --image"):
        main(["predict", "--tiny", "--image", str(image), "--image", str(image), "--box", "1,1,5,5"])
    with pytest.raises(SystemExit):
        main(["predict", "--tiny", "--box", "1,2,3"])


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fails a test that loads a model: the checks under test must come first."""

    def load_model_and_processor(*args):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(cli, "load_model_and_processor", load_model_and_processor)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--batch_size", "-1"], "argument --batch_size: expected a positive integer, got '-1'"),
        (["--batch_size", "0"], "argument --batch_size: expected a positive integer, got '0'"),
        (["--max_new_tokens", "0"], "argument --max_new_tokens: expected a positive integer, got '0'"),
        (["--max_new_tokens", "ten"], "argument --max_new_tokens: expected a positive integer, got 'ten'"),
    ],
)
def test_bad_option_values_are_parser_errors(no_model_loading, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--tiny", *options])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_devices_that_are_not_there_are_named(no_model_loading, monkeypatch):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    for device in ("cuda", "cuda:1", "mps"):
        with pytest.raises(
            SystemExit, match=rf"error: --device: '{device}' is not available on this machine \(available: cpu\)"
        ):
            main(["predict", "--tiny", "--device", device])
    with pytest.raises(SystemExit, match="error: --device: expected a device such as cpu, cuda or cuda:1, got 'foo'"):
        main(["predict", "--tiny", "--device", "foo"])


def test_device_index_must_exist(monkeypatch):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.accelerator, "device_count", lambda: 2)
    assert cli.parse_device("cuda:1") == torch.device("cuda", 1) and cli.parse_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda:2': this machine has 2 cuda device"):
        cli.parse_device("cuda:2")
    with pytest.raises(ValueError, match=r"'mps' is not available .*\(available: cpu and cuda\)"):
        cli.parse_device("mps")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("answer.txt", r"--output .*answer.txt: expected a picture file name such as out.png"),
        ("picture", r"--output .*picture: expected a picture file name"),
        ("missing/out.png", r"--output .*missing/out.png: the folder .*missing does not exist"),
        ("folder.png", r"--output .*folder.png is a folder"),
    ],
)
def test_bad_output_is_refused_before_loading(no_model_loading, tmp_path, output, message):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(SystemExit, match=message):
        main(["predict", "--tiny", "--output", str(tmp_path / output)])


def test_box_errors_name_the_option_before_loading(no_model_loading, tmp_path):
    image = tmp_path / "img.png"
    demo_image(100).save(image)
    with pytest.raises(
        SystemExit, match=r"`--box\[1\]` = \[10.0, 10.0, 500.0, 50.0\] is not inside the image of width 100"
    ):
        main(["predict", "--tiny", "--image", str(image), "--box", "1,1,5,5", "--box", "10,10,500,50"])
    # without --image the box refers to the 448 x 448 demo image
    with pytest.raises(SystemExit, match=r"`--box\[0\]` = .* is empty"):
        main(["predict", "--tiny", "--box", "30,10,20,50"])


def test_folder_without_processor_files_gets_a_message(tmp_path):
    tiny_groma_model().save_pretrained(tmp_path)
    with pytest.raises(SystemExit, match=r"--model .* cannot be loaded: .*\nA converted folder holds the weights"):
        main(["predict", "--model", str(tmp_path)])


def test_answers_are_printed_when_the_picture_cannot_be_saved(tmp_path, capsys, monkeypatch):
    def save(self, path, *args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(SystemExit, match=r"could not save the picture .*out.png: No space left on device"):
        main(["predict", "--tiny", "--max_new_tokens", "2", "--output", str(tmp_path / "out.png")])
    printed = capsys.readouterr().out
    assert f"[<demo image>] {cli.TINY_QUERY}\n  -> " in printed
    assert f"picture: {tmp_path / 'out.png'}" in printed


def test_tiny_bfloat16_keeps_the_vision_path_and_pixels_in_float32(capsys, monkeypatch):
    seen = {}
    generate = GromaForConditionalGeneration.generate

    def spy(self, **kwargs):
        seen.update(pixels=kwargs["pixel_values"].dtype, vision=self.model.vision_tower.dtype, llm=self.dtype)
        return generate(self, **kwargs)

    monkeypatch.setattr(GromaForConditionalGeneration, "generate", spy)
    regions = {}
    for dtype in ("float32", "bfloat16"):
        main(["predict", "--tiny", "--dtype", dtype, "--max_new_tokens", "2", "--json"])
        (result,) = json.loads(capsys.readouterr().out)
        regions[dtype] = result["regions"]
    assert seen == {"pixels": torch.float32, "vision": torch.float32, "llm": torch.bfloat16}
    # the float32 proposer selects the same regions whatever the language model's dtype
    assert regions["bfloat16"] == regions["float32"] and regions["float32"]


@requires_groma_fixture
def test_unconverted_checkpoint_points_to_the_converter(tmp_path):
    shutil.copy(GROMA_FIXTURE / "config.json", tmp_path / "config.json")
    with pytest.raises(SystemExit, match="groma-convert --input_dir"):
        main(["predict", "--model", str(tmp_path)])


def test_detector_folder_gets_a_message(tmp_path):
    GromaForRegionProposal(tiny_groma_config()).save_pretrained(tmp_path)
    with pytest.raises(SystemExit, match=r"region proposer \(the detector of training stage 1\)"):
        main(["predict", "--model", str(tmp_path)])


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["demo", "--help"], ["predict", "--bogus"], []])
def test_help_and_usage_errors_import_neither_torch_nor_transformers(argv):
    """`groma --help` and argument errors answer from the argument parser alone (it starts in well under a second),
    without loading torch, transformers or the models."""
    code = (
        "import sys, transformers_groma_cli\n"
        "try:\n"
        f"    transformers_groma_cli.main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'transformers_groma') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]"
