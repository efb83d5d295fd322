"""The synthetic world: scenes obey the world's rules, and the written files read back through the trainers'
adapters as the intended conversations and boxes."""

import itertools
import json

import numpy as np
import pytest

from transformers_groma.synthetic import (
    COLORS,
    SHAPES,
    demo_model_path,
    generate_scene,
    grounded_caption,
    scene_seed,
    write_datasets,
)
from transformers_groma.synthetic import demo as demo_module
from transformers_groma.training.data_config import DataSource
from transformers_groma.training.detection_data import DETECTION_ADAPTERS
from transformers_groma.training.records import build_records, check_conversation_record, check_detection_record
from transformers_groma.training.sources import CONVERSATION_ADAPTERS


SCENES = [generate_scene(seed) for seed in range(60)]


def test_scenes_follow_the_rules():
    sizes, counts, backgrounds = set(), set(), set()
    for scene in SCENES:
        width, height = scene.image.size
        short = min(width, height)
        assert short >= 224 and max(width, height) <= 640
        sizes.add(round(max(width, height) / short, 1))
        counts.add(len(scene.objects))
        assert 1 <= len(scene.objects) <= 4
        assert len({(obj.color, obj.shape) for obj in scene.objects}) == len(scene.objects)
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            assert obj.color in COLORS and obj.shape in SHAPES and obj.name == f"{obj.color} {obj.shape}"
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert 0.11 * short <= x2 - x1 <= 0.41 * short
        for a, b in itertools.combinations(scene.objects, 2):
            assert a.box[2] <= b.box[0] or b.box[2] <= a.box[0] or a.box[3] <= b.box[1] or b.box[3] <= a.box[1]
        backgrounds.add(float(np.asarray(scene.image)[:2, :2].std()) > 2)
    assert len(sizes) >= 3 and counts == {1, 2, 3, 4} and backgrounds == {True, False}


def test_objects_are_drawn_in_their_colour_and_shape():
    for scene in SCENES[:20]:
        pixels = np.asarray(scene.image).astype(int)
        for obj in scene.objects:
            x1, y1, x2, y2 = (int(value) for value in obj.box)
            centre = pixels[(y1 + y2) // 2 + 2, (x1 + x2) // 2]
            assert np.abs(centre - np.array(COLORS[obj.color])).max() <= 20
            # Top-left corner of the box: inside a square only (a circle and a triangle leave it to the background).
            corner = pixels[y1 + 1, x1 + 1]
            assert (np.abs(corner - np.array(COLORS[obj.color])).max() <= 20) == (obj.shape == "square")


def test_same_seed_same_scene_and_argument_checks():
    first, again = (
        generate_scene(11, num_objects=3, size=(300, 250)),
        generate_scene(11, num_objects=3, size=(300, 250)),
    )
    assert first.objects == again.objects and first.image.tobytes() == again.image.tobytes()
    assert first.image.size == (300, 250) and len(first.objects) == 3
    assert generate_scene(12).image.tobytes() != generate_scene(11).image.tobytes()
    with pytest.raises(ValueError, match="num_objects"):
        generate_scene(0, num_objects=5)
    with pytest.raises(TypeError, match="seed"):
        generate_scene(1.5)
    with pytest.raises(ValueError, match="size"):
        generate_scene(0, size=(20, 300))


def test_grounded_caption_spans_name_objects_by_colour_then_shape():
    scene = generate_scene(5, num_objects=4)
    caption, spans = grounded_caption(scene.objects[::-1])
    phrases = [caption[start:end] for start, end in spans]
    inventory = [f"a {color} {shape}" for color in COLORS for shape in SHAPES]
    assert phrases == [name for name in inventory if name in {f"a {obj.name}" for obj in scene.objects}]
    assert len(phrases) == 4
    assert caption.startswith("The image shows ") and caption.endswith(".")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_datasets(tmp_path_factory.mktemp("world") / "data", num_scenes=6, seed=3)


def _records(written, kind: str, key: str):
    source = DataSource(kind, str(written[key]), str(written["image_dir"]))
    adapters = DETECTION_ADAPTERS if kind == "coco_detection" else CONVERSATION_ADAPTERS
    check = check_detection_record if kind == "coco_detection" else lambda record: check_conversation_record(record, 8)
    return build_records(source, adapters[kind], check, seed=0, skip_bad_records=False)


def test_files_read_back_through_the_trainers(written):
    scenes = [generate_scene(scene_seed(3, index)) for index in range(6)]
    objects = [obj for scene in scenes for obj in scene.objects]
    detection = _records(written, "coco_detection", "detection")
    assert [len(record["boxes"]) for record in detection] == [len(scene.objects) for scene in scenes]
    assert detection[0]["boxes"][0] == pytest.approx(list(scenes[0].objects[0].box))

    rec = _records(written, "refcoco_rec", "rec")
    assert len(rec) == len(objects)
    for record, obj in zip(rec, objects):
        assert f"<p>the {obj.name}</p>" in record["messages"][0]["content"]
        assert record["messages"][1]["content"] == "<roi><ground_box></roi>"
        assert record["ground_boxes"] == [pytest.approx(list(obj.box))]

    for kind in ("vg_single", "vg_multi"):
        captions = _records(written, kind, "region_caption")
        assert [record["messages"][1]["content"] for record in captions] == [f"A {obj.name}." for obj in objects]
        assert [record["refer_boxes"][0] for record in captions] == [pytest.approx(list(obj.box)) for obj in objects]

    grounded = _records(written, "flickr30k", "grounded_caption")
    assert grounded[0]["messages"][0]["content"].startswith("[grounding]")
    answer = grounded[0]["messages"][1]["content"]
    assert answer.count("<roi><ground_box></roi>") == len(scenes[0].objects)
    assert answer.startswith("The image shows <p>a ")
    inventory = [(color, shape) for color in COLORS for shape in SHAPES]
    ordered = sorted(scenes[0].objects, key=lambda obj: inventory.index((obj.color, obj.shape)))
    assert grounded[0]["ground_boxes"] == [pytest.approx(list(obj.box)) for obj in ordered]

    custom = _records(written, "custom", "custom")
    assert len(custom) == 6
    assert len(custom[0]["messages"]) == 2 + 4 * len(scenes[0].objects)
    count = len(scenes[0].objects)
    for index in range(1, count + 1):
        question, box = custom[0]["messages"][4 * index - 2]["content"], custom[0]["ground_boxes"][count + index - 1]
        caption = custom[0]["messages"][4 * index + 1]["content"]
        assert caption == f"A {question.split('<p>the ')[1].split('</p>')[0]}."
        assert custom[0]["refer_boxes"][index - 1] == box


def test_rec_file_is_groma_data_style(written):
    content = json.loads(written["rec"].read_text())
    assert len(content["images"]) == len(content["annotations"])
    assert {"file_name", "height", "width", "caption"} <= content["images"][0].keys()
    assert content["annotations"][0]["image_id"] == content["images"][0]["id"]


def test_write_datasets_never_overwrites(written):
    with pytest.raises(FileExistsError, match="already holds"):
        write_datasets(written["rec"].parent, num_scenes=1, seed=0)
    with pytest.raises(ValueError, match="num_scenes"):
        write_datasets(written["rec"].parent / "other", num_scenes=0, seed=0)


def test_demo_model_path_names_a_missing_model(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_module, "DEMO_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="demo model is missing"):
        demo_model_path()
