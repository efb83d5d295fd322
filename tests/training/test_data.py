"""Data adapters, record checks and mixture configs."""

import json
import logging
from pathlib import Path

import pytest

from transformers_groma.processing import (
    CATEGORY_GROUNDING_TEMPLATES,
    GROUNDED_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REFER_REGION,
    REGION_CAPTION_TEMPLATES,
)
from transformers_groma.training import (
    CONVERSATION_ADAPTERS,
    DataSource,
    InvalidRecordError,
    build_records,
    check_conversation_record,
    load_data_config,
)
from transformers_groma.training.sources import MAX_VG_REGIONS

from .synthetic import CAPTION, custom_lines, draw_image, write_json, write_jsonl


def records(source: DataSource, seed: int = 0, skip_bad_records: bool = False):
    def check(record):
        check_conversation_record(record, max_refer_boxes=8)

    return build_records(source, CONVERSATION_ADAPTERS[source.type], check, seed, skip_bad_records)


def coco_boxes(coco: dict, image_id: int) -> list[list[float]]:
    data = json.loads(Path(coco["annotation_file"]).read_text())
    return [
        [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
        for a in data["annotations"]
        if a["image_id"] == image_id
    ]


def matches_template(text: str, templates: tuple[str, ...], slot: str) -> bool:
    return text in {template.format(slot) for template in templates}


def test_refcoco_rec_asks_for_the_first_box(coco):
    dataset = records(DataSource("refcoco_rec", coco["annotation_file"], coco["image_dir"]))
    assert len(dataset) == len(coco["images"])
    record = dataset[0]
    assert record["id"] == "image id 1"
    assert record["image"] == str(Path(coco["image_dir"]) / "0001.png")
    assert matches_template(record["messages"][0]["content"], REC_TEMPLATES, f"<p>{CAPTION}</p>")
    assert record["messages"][1] == {"role": "assistant", "content": "<roi><ground_box></roi>"}
    assert record["ground_boxes"] == [coco_boxes(coco, 1)[0]]
    assert record["refer_boxes"] == []


def test_region_captions_refer_to_their_boxes(coco):
    caption = records(DataSource("refcoco_caption", coco["annotation_file"], coco["image_dir"]))[0]
    assert caption["refer_boxes"] == [coco_boxes(coco, 1)[0]]
    assert caption["messages"][1]["content"] == CAPTION.capitalize()
    assert REFER_REGION in caption["messages"][0]["content"]

    single = records(DataSource("vg_single", coco["annotation_file"], coco["image_dir"]))[0]
    assert matches_template(single["messages"][0]["content"], REGION_CAPTION_TEMPLATES, REFER_REGION)
    assert single["messages"][1]["content"] == "A red square"

    multi = records(DataSource("vg_multi", coco["annotation_file"], coco["image_dir"]))
    for record in multi:
        boxes = coco_boxes(coco, int(record["id"].split()[-1]))
        assert 1 <= len(record["refer_boxes"]) <= min(len(boxes), MAX_VG_REGIONS)
        assert len(record["messages"]) == 2 * len(record["refer_boxes"])
        assert all(box in boxes for box in record["refer_boxes"])


def test_flickr30k_grounds_every_span(coco):
    record = records(DataSource("flickr30k", coco["annotation_file"], coco["image_dir"]))[0]
    num_blue = len(coco_boxes(coco, 1)) - 1
    query, answer = (message["content"] for message in record["messages"])
    assert query.startswith("[grounding]") and query[len("[grounding]") :] in GROUNDED_CAPTION_TEMPLATES
    assert answer == (
        "the <p>red square</p><roi><ground_box></roi> next to a <p>blue square</p><roi>"
        + "<ground_box>" * num_blue
        + "</roi>"
    )
    assert record["ground_boxes"] == coco_boxes(coco, 1)


def test_category_grounding_lists_every_instance(coco):
    record = records(DataSource("coco_grounding", coco["annotation_file"], coco["image_dir"]))[0]
    query, answer = (message["content"] for message in record["messages"])
    category = "red square" if "red square" in query else "blue square"
    assert matches_template(query, CATEGORY_GROUNDING_TEMPLATES, f"<p>{category}</p>")
    expected = [box for index, box in enumerate(coco_boxes(coco, 1)) if (index % 2 == 0) == (category == "red square")]
    assert record["ground_boxes"] == expected
    assert answer == "<roi>" + "<ground_box>" * len(expected) + "</roi>"


def test_lvis_images_are_named_by_their_coco_url(tmp_path):
    draw_image(tmp_path / "000000000042.jpg", 100, 80, [[10, 10, 40, 30]])
    lvis = {
        "images": [{"id": 42, "width": 100, "height": 80, "coco_url": "http://x/train2017/000000000042.jpg"}],
        "annotations": [{"id": 1, "image_id": 42, "bbox": [10, 10, 30, 20], "area": 600, "category_id": 3}],
        "categories": [{"id": 3, "name": "Traffic_light"}],
    }
    path = write_json(tmp_path / "lvis.json", lvis)
    record = records(DataSource("lvis_grounding", str(path), str(tmp_path)))[0]
    assert record["image"] == str(tmp_path / "000000000042.jpg")
    assert matches_template(record["messages"][0]["content"], CATEGORY_GROUNDING_TEMPLATES, "<p>traffic light</p>")


def test_grit_llava_and_groma_instruct(tmp_path):
    draw_image(tmp_path / "a.png", 100, 50, [[10, 10, 60, 40]])
    grit = write_json(
        tmp_path / "grit.json",
        [{"filename": "a.png", "caption": "a red box here", "ref_exps": [[0, 9, 0.1, 0.2, 0.6, 0.8, 0.9]]}],
    )
    record = records(DataSource("grit", str(grit), str(tmp_path)))[0]
    assert record["ground_boxes"] == [pytest.approx([10.0, 10.0, 60.0, 40.0])]
    assert matches_template(record["messages"][0]["content"], REC_TEMPLATES, "<p>a red box</p>")

    llava = write_json(
        tmp_path / "llava.json",
        [
            {
                "image": "a.png",
                "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A\nbox."}],
            }
        ],
    )
    messages = records(DataSource("llava", str(llava), str(tmp_path)))[0]["messages"]
    assert messages == [{"role": "user", "content": " What?"}, {"role": "assistant", "content": "A box."}]

    instruct = write_json(
        tmp_path / "groma_instruct.json",
        [
            {
                "file_name": "a.png",
                "width": 100,
                "height": 50,
                "id": 7,
                "boxes": [[10, 10, 50, 30], [0, 0, 120, 60]],
                "conversation": [
                    {"from": "human", "value": "Where is the box?"},
                    {"from": "gpt", "value": "<p>The box</p><roi><ground_box></roi> is here.", "box_inds": [1]},
                ],
            }
        ],
    )
    record = records(DataSource("groma_instruct", str(instruct), str(tmp_path)))[0]
    assert record["messages"][0]["content"] == "[grounding]Where is the box?"
    assert record["ground_boxes"] == [[0.0, 0.0, 100.0, 50.0]]  # clipped to the image, as the original clamps


def test_custom_jsonl_maps_box_ids_to_placeholders(coco, custom_jsonl):
    record = records(DataSource("custom", str(custom_jsonl), coco["image_dir"]))[0]
    boxes = coco_boxes(coco, 1)
    assert record["id"] == "line 1"
    assert record["ground_boxes"] == [boxes[0]] and record["refer_boxes"] == [boxes[1]]
    assert [message["role"] for message in record["messages"]] == ["user", "assistant", "user", "assistant"]


BAD_LINES = {
    "missing image": ({"image": "nope.png"}, "image file .*nope.png' does not exist"),
    "box outside the image": ({"boxes": [[0, 0, 5000, 20], [0, 0, 10, 10]]}, r"not inside the image"),
    "odd turns": ({"conversations": [{"from": "human", "value": "Hi?"}]}, "1 turns"),
    "unknown box id": (
        {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "x", "box_ids": [9]}]},
        "box_ids",
    ),
    "not json": ("{not json", "not valid JSON"),
}


@pytest.mark.parametrize("problem", sorted(BAD_LINES))
def test_malformed_record_names_the_record(coco, tmp_path, problem):
    change, message = BAD_LINES[problem]
    lines = custom_lines(coco)
    lines[2] = change if isinstance(change, str) else {**lines[2], **change}
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InvalidRecordError, match=rf"custom:bad.jsonl: record line 3: .*{message}.*--skip_bad_records"):
        records(DataSource("custom", str(path), coco["image_dir"]))


def test_skip_bad_records_counts_them(coco, tmp_path, caplog):
    lines = custom_lines(coco)
    lines[1] = {**lines[1], "image": "missing.png"}
    lines[4] = {**lines[4], "conversations": lines[4]["conversations"][:3]}
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with caplog.at_level(logging.WARNING):
        dataset = records(DataSource("custom", str(path), coco["image_dir"]), skip_bad_records=True)
    assert len(dataset) == len(lines) - 2
    assert "Skipped 2 bad record(s) of custom:bad.jsonl" in caplog.text
    assert "record line 2" in caplog.text and "record line 5" in caplog.text


def test_ratio_draws_a_seeded_subset(coco):
    def ids(seed):
        source = DataSource("refcoco_rec", coco["annotation_file"], coco["image_dir"], ratio=0.5)
        return records(source, seed=seed)["id"]

    assert len(ids(0)) == len(coco["images"]) // 2
    assert ids(0) == ids(0)
    assert any(ids(0) != ids(seed) for seed in range(1, 6))


def test_load_data_config(tmp_path, coco):
    path = tmp_path / "mixture.yaml"
    path.write_text(
        f"data_root: {tmp_path}\n"
        "sources:\n"
        "  - {type: refcoco_rec, annotation_file: coco/coco.json, image_dir: coco/images}\n"
        "  - {type: llava, annotation_file: llava.json, ratio: 0.25, template: llava, name: chat}\n"
    )
    rec, chat = load_data_config(str(path))
    assert rec.name == "refcoco_rec:coco.json" and rec.annotation_file == coco["annotation_file"]
    assert chat.image_dir == str(tmp_path) and chat.ratio == 0.25 and chat.template == "llava"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"type": "llava", "annotation_file": "a.json", "ratios": 1}, "unknown keys \\['ratios'\\]"),
        ({"type": "llava", "annotation_file": "a.json", "ratio": 1.5}, "ratio"),
        ({"type": "llava", "annotation_file": "a.json", "template": "vicuna"}, "template"),
        ({"type": "llava"}, "annotation_file"),
    ],
)
def test_load_data_config_errors(tmp_path, source, message):
    path = write_json(tmp_path / "mixture.json", {"sources": [source]})
    with pytest.raises(ValueError, match=message):
        load_data_config(str(path))
