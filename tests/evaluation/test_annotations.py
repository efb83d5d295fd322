"""Annotation readers: what they read from the real formats, and clear errors naming the file and the entry."""

import json

import pytest

from transformers_groma.evaluation import AnnotationError
from transformers_groma.evaluation.annotations import (
    read_detection,
    read_grounded_captions,
    read_llava_bench,
    read_lvis,
    read_rec,
    read_region_captions,
)


def load(path):
    return json.loads(path.read_text())


def test_readers_on_the_synthetic_files(benchmarks):
    image_dir = str(benchmarks["image_dir"])
    rec = load(benchmarks["rec"])
    samples = read_rec(benchmarks["rec"], image_dir)
    assert [s.id for s in samples] == [str(image["id"]) for image in rec["images"]]
    x, y, w, h = rec["annotations"][0]["bbox"]
    assert samples[0].target == {"expression": rec["images"][0]["caption"], "box": [x, y, x + w, y + h]}
    assert samples[0].image == str(benchmarks["image_dir"] / rec["images"][0]["file_name"])

    region = read_region_captions(benchmarks["region_caption"], image_dir)
    assert len(region) == len(load(benchmarks["region_caption"])["annotations"])
    assert region[0].target["references"] == [load(benchmarks["region_caption"])["annotations"][0]["caption"]]

    grounded = read_grounded_captions(benchmarks["grounded_caption"], image_dir)
    data = load(benchmarks["grounded_caption"])
    caption = data["images"][0]["caption"]
    first = [a for a in data["annotations"] if a["image_id"] == data["images"][0]["id"]]
    assert grounded[0].target["references"] == [caption]
    assert [p["phrase"] for p in grounded[0].target["phrases"]] == [
        caption[a["tokens_positive"][0][0] : a["tokens_positive"][0][1]] for a in first
    ]

    lvis = read_lvis(benchmarks["lvis_ground"], str(benchmarks["lvis_ground"].parent))
    pairs = {(a["image_id"], a["category_id"]) for a in load(benchmarks["lvis_ground"])["annotations"]}
    assert sorted(s.id for s in lvis) == sorted(f"{i}:{c}" for i, c in pairs)

    assert len(read_detection(benchmarks["detection"], image_dir)) == 4
    questions = read_llava_bench(benchmarks["conversation"], image_dir)
    assert [s.target["question_id"] for s in questions] == [0, 1, 2, 3]


def test_several_captions_of_one_box_are_one_sample_with_several_references(tmp_path, benchmarks):
    data = load(benchmarks["region_caption"])
    data["annotations"].append({**data["annotations"][0], "id": 999, "caption": "another caption"})
    path = tmp_path / "vg_test.json"
    path.write_text(json.dumps(data))
    samples = read_region_captions(path, str(benchmarks["image_dir"]))
    assert len(samples) == len(data["annotations"]) - 1
    assert samples[0].target["references"] == [data["annotations"][0]["caption"], "another caption"]


def _break(data, change):
    change(data)
    return data


CASES = [
    # (file key, reader, change, entry named, problem named)
    ("rec", read_rec, lambda d: d["images"][1].pop("caption"), "images[1] (id 2)", "no 'caption' field"),
    ("rec", read_rec, lambda d: d["annotations"][2].update(bbox=[1, 2, 0, 5]), "annotations[2]", "no area"),
    ("rec", read_rec, lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotations[0]", "4 numbers"),
    ("rec", read_rec, lambda d: d["annotations"][0].update(image_id=77), "annotations[0]", "not the id of an"),
    ("rec", read_rec, lambda d: d["images"][3].update(id=1), "images[3] (id 1)", "duplicate image id"),
    ("rec", read_rec, lambda d: d["images"][0].update(file_name="nope.png"), "images[0] (id 1)", "does not exist"),
    ("rec", read_rec, lambda d: d["annotations"].pop(0), "images[0] (id 1)", "no annotation"),
    ("rec", read_rec, lambda d: d.pop("images"), "", "'images' list"),
    (
        "grounded_caption",
        read_grounded_captions,
        lambda d: d["annotations"][1].update(tokens_positive=[[0, 999]]),
        "annotations[1]",
        "inside the caption",
    ),
    (
        "region_caption",
        read_region_captions,
        lambda d: d["annotations"][0].update(caption=None),
        "annotations[0]",
        "'caption' must be str",
    ),
    ("lvis_ground", read_lvis, lambda d: d["categories"][0].pop("frequency"), "categories[0]", "'frequency'"),
    (
        "lvis_ground",
        read_lvis,
        lambda d: d["images"][0].pop("neg_category_ids"),
        "images[0] (id 1)",
        "'neg_category_ids'",
    ),
]


@pytest.mark.parametrize(("key", "reader", "change", "entry", "problem"), CASES)
def test_malformed_entries_are_named(tmp_path, benchmarks, key, reader, change, entry, problem):
    path = tmp_path / benchmarks[key].name
    path.write_text(json.dumps(_break(load(benchmarks[key]), change)))
    image_dir = str(benchmarks[key].parent if key == "lvis_ground" else benchmarks["image_dir"])
    with pytest.raises(AnnotationError) as error:
        reader(path, image_dir)
    assert str(error.value).startswith(f"{path}: {entry}")
    assert problem in str(error.value)


def test_unreadable_files_are_named(tmp_path, benchmarks):
    broken = tmp_path / "rec.json"
    broken.write_text("{not json")
    with pytest.raises(AnnotationError, match=f"{broken}: not valid JSON"):
        read_rec(broken, str(tmp_path))
    with pytest.raises(AnnotationError, match="no such annotation file"):
        read_rec(tmp_path / "missing.json", str(tmp_path))
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question_id": 1, "image": "scene_000000.png", "text": "hi"}\n{oops\n')
    with pytest.raises(AnnotationError, match=f"{questions}: line 2: not valid JSON"):
        read_llava_bench(questions, str(benchmarks["image_dir"]))
