"""`groma predict`: the offline tiny path, a saved model folder, pictures, JSON, batching and error messages."""

import json
import shutil

import pytest
from PIL import Image

from transformers_groma.cli import demo_image, main
from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor

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
    assert "[<demo image>] [grounding]Please briefly describe this image." in printed
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


@requires_groma_fixture
def test_unconverted_checkpoint_points_to_the_converter(tmp_path):
    shutil.copy(GROMA_FIXTURE / "config.json", tmp_path / "config.json")
    with pytest.raises(SystemExit, match="groma-convert --input_dir"):
        main(["predict", "--model", str(tmp_path)])
