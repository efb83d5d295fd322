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
from transformers_groma.tiny import tiny_groma_processor
from transformers_groma.training import (
    CONVERSATION_ADAPTERS,
    DataSource,
    InvalidRecordError,
    build_conversation_mixture,
    build_records,
    check_conversation_record,
    load_data_config,
)
from transformers_groma.training.conversation_dataset import TRUNCATED
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
    assert record["id"] == "sample-1"  # the line's `id`
    assert record["ground_boxes"] == [boxes[0]] and record["refer_boxes"] == [boxes[1]]
    assert [message["role"] for message in record["messages"]] == ["user", "assistant", "user", "assistant"]


def corrupt_image(coco: dict) -> str:
    """An image file that is not an image, next to the good ones; returns its file name."""
    (Path(coco["image_dir"]) / "corrupt.png").write_bytes(b"not a png")
    return "corrupt.png"


BAD_LINES = {
    "missing image": ({"image": "nope.png"}, "image file .*nope.png' does not exist"),
    "corrupt image with its size": (
        {"image": "corrupt.png", "width": 160, "height": 120},
        "image file .*corrupt.png' cannot be read",
    ),
    "declared size is not the image's": (
        {"width": 999, "height": 150},
        r"the record gives width 999 but image file .*0003.png' is 200 x 150 px",
    ),
    "box outside the image": ({"boxes": [[0, 0, 5000, 20], [0, 0, 10, 10]]}, r"not inside the image"),
    "odd turns": ({"conversations": [{"from": "human", "value": "Hi?"}]}, "1 turns"),
    "unknown box id": (
        {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "x", "box_ids": [9]}]},
        "box_ids",
    ),
    "box ids of another turn": (
        {
            "conversations": [
                {"from": "human", "value": "Locate <p>the red square</p> and <p>the blue one</p>."},
                {"from": "gpt", "value": "<roi><ground_box></roi> and <roi><ground_box></roi>", "box_ids": [0]},
                {"from": "human", "value": "Anything else?"},
                {"from": "gpt", "value": "No.", "box_ids": [1]},
            ]
        },
        r"turn 1 \(gpt\) has 2 <ground_box> placeholder\(s\) but 1 `box_ids`",
    ),
    "not json": ("{not json", "not valid JSON"),
}


@pytest.mark.parametrize("problem", sorted(BAD_LINES))
def test_malformed_record_names_the_record(coco, tmp_path, problem):
    change, message = BAD_LINES[problem]
    lines = custom_lines(coco)
    corrupt_image(coco)
    assert (coco["images"][2]["width"], coco["images"][2]["height"]) == (200, 150)
    lines[2] = change if isinstance(change, str) else {**lines[2], **change}
    record_id = "line 3" if isinstance(change, str) else "sample-3"  # a line that is not JSON has no `id`
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(
        InvalidRecordError, match=rf"custom:bad.jsonl: record {record_id}: .*{message}.*--skip_bad_records"
    ):
        records(DataSource("custom", str(path), coco["image_dir"]))


def test_custom_records_are_named_by_their_id_else_their_line(coco, tmp_path):
    lines = custom_lines(coco)
    lines[1]["image"] = "missing.png"
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InvalidRecordError, match="record sample-2: image file"):
        records(DataSource("custom", str(path), coco["image_dir"]))
    del lines[1]["id"]
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InvalidRecordError, match="record line 2: image file"):
        records(DataSource("custom", str(path), coco["image_dir"]))


def test_skip_bad_records_counts_them(coco, tmp_path, caplog):
    lines = custom_lines(coco)
    lines[1] = {**lines[1], "image": "missing.png"}
    lines[4] = {**lines[4], "conversations": lines[4]["conversations"][:3]}
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with caplog.at_level(logging.WARNING):
        dataset = records(DataSource("custom", str(path), coco["image_dir"]), skip_bad_records=True)
    assert len(dataset) == len(lines) - 2
    assert "custom:bad.jsonl: kept 4 of 6 entries; skipped 2 bad record(s)" in caplog.text
    assert "record sample-2" in caplog.text and "record sample-5" in caplog.text


def test_bad_images_and_over_long_records_are_found_when_the_mixture_is_built(coco, tmp_path, caplog):
    """Records that used to pass the build and fail in `__getitem__`, mid-training, even with `skip_bad_records`."""
    processor = tiny_groma_processor()

    def mixture(lines, skip_bad_records):
        path = write_jsonl(tmp_path / "train.jsonl", lines)
        source = DataSource("custom", str(path), coco["image_dir"])
        return build_conversation_mixture(
            [source], processor.tokenizer, processor.image_processor, "llava", 1000, 8, 0, skip_bad_records
        )

    good = custom_lines(coco)
    long_answer = "<roi><ground_box></roi> " + "word " * 400
    bad = {  # line index: (change, error)
        1: ({"image": corrupt_image(coco), "width": 160, "height": 120}, "image file .*corrupt.png' cannot be read"),
        2: (
            {"conversations": [good[2]["conversations"][0], {**good[2]["conversations"][1], "value": long_answer}]},
            r"the first exchange alone is \d+ tokens, more than the maximum length 1000",
        ),
        3: ({"width": 2 * coco["images"][3]["width"]}, "the record gives width"),
        4: (
            {"conversations": [*good[4]["conversations"][:3], {"from": "gpt", "value": "A <sep> square."}]},
            "turn 3 contains <sep>",
        ),
    }
    lines = [{**line, **bad[index][0]} if index in bad else line for index, line in enumerate(good)]
    for index, (_, message) in bad.items():
        strict = [line if other == index or other not in bad else good[other] for other, line in enumerate(lines)]
        with pytest.raises(InvalidRecordError, match=rf"record sample-{index + 1}: {message}"):
            mixture(strict, skip_bad_records=False)
    with caplog.at_level(logging.WARNING):
        dataset = mixture(lines, skip_bad_records=True)
    assert len(dataset) == len(lines) - len(bad)
    assert f"kept {len(lines) - len(bad)} of {len(lines)} entries; skipped {len(bad)} bad record(s)" in caplog.text
    assert all(dataset[index]["input_ids"].ndim == 1 for index in range(len(dataset)))  # training never meets them


def test_truncated_conversations_are_counted_when_the_mixture_is_built(coco, tmp_path, caplog):
    processor = tiny_groma_processor()
    lines = custom_lines(coco)
    first_exchange = lines[0]["conversations"][:2]
    long_turns = [{"from": "human", "value": "And then? " * 60}, {"from": "gpt", "value": "More. " * 60}]
    lines[0] = {**lines[0], "conversations": first_exchange + long_turns}
    path = write_jsonl(tmp_path / "train.jsonl", lines)
    source = DataSource("custom", str(path), coco["image_dir"])
    with caplog.at_level(logging.INFO):
        dataset = build_conversation_mixture(
            [source], processor.tokenizer, processor.image_processor, "llava", 1000, 8, 0
        )
    assert f"{TRUNCATED}: 1" in caplog.text
    assert len(dataset) == len(lines)
    assert processor.tokenizer.decode(dataset[0]["input_ids"]).count("ASSISTANT:") == 2  # fixed turn + first answer


def test_entries_and_boxes_left_out_as_the_original_are_counted(tmp_path, caplog):
    draw_image(tmp_path / "a.png", 160, 120, [[10, 10, 60, 40]])
    draw_image(tmp_path / "narrow.png", 20, 120, [[2, 10, 18, 40]])
    draw_image(tmp_path / "crowd.png", 160, 120, [[10, 10, 60, 40]])
    images = [("a.png", 160, 120), ("narrow.png", 20, 120), ("crowd.png", 160, 120)]
    boxes = {  # image id: [(bbox, extra annotation fields)]
        1: [
            ([10, 10, 50, 30], {}),
            ([150, 10, 50, 30], {}),  # clipped to x2 = 160
            ([200, 10, 50, 30], {}),  # outside the image
            ([10, 10, 0.5, 30], {}),  # under 1 px
            ([10, 10, 50, 30], {"iscrowd": 1}),
        ],
        2: [([2, 10, 16, 30], {})],
        3: [([10, 10, 50, 30], {"iscrowd": 1})],
    }
    annotation_file = write_json(
        tmp_path / "refcoco.json",
        {
            "images": [
                {"id": index, "file_name": name, "width": width, "height": height, "caption": "a box"}
                for index, (name, width, height) in enumerate(images, start=1)
            ],
            "annotations": [
                {"id": 10 * image_id + index, "image_id": image_id, "bbox": bbox, "area": bbox[2] * bbox[3], **extra}
                for image_id, annotations in boxes.items()
                for index, (bbox, extra) in enumerate(annotations)
            ],
        },
    )
    with caplog.at_level(logging.INFO):
        dataset = records(DataSource("refcoco_rec", str(annotation_file), str(tmp_path)))
    assert dataset["id"] == ["image id 1"] and dataset[0]["ground_boxes"] == [[10.0, 10.0, 60.0, 40.0]]
    assert (
        "refcoco_rec:refcoco.json: kept 1 of 3 entries; left out or clipped as the original loaders do: "
        "boxes clipped to the image: 1; boxes outside the image dropped: 1; boxes under 1 px or without area "
        "dropped: 1; crowd or ignored boxes dropped: 1; images with a side under 32 px: 1; images without a usable "
        "box: 1."
    ) in caplog.text


def test_flickr30k_counts_the_boxes_of_overlapping_phrases(coco, caplog):
    expected = records(DataSource("flickr30k", coco["annotation_file"], coco["image_dir"]))[0]
    data = json.loads(Path(coco["annotation_file"]).read_text())
    start = CAPTION.index("square next")  # inside "red square", the first phrase
    data["annotations"].append(
        {**data["annotations"][0], "id": 999, "tokens_positive": [[start, start + len("square next")]]}
    )
    Path(coco["annotation_file"]).write_text(json.dumps(data))
    with caplog.at_level(logging.INFO):
        record = records(DataSource("flickr30k", coco["annotation_file"], coco["image_dir"]))[0]
    assert record["messages"][1] == expected["messages"][1] and record["ground_boxes"] == expected["ground_boxes"]
    assert "boxes of a phrase overlapping an earlier phrase dropped: 1" in caplog.text


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


def test_an_adapter_returning_none_leaves_the_entry_out_with_a_count(coco, tmp_path, caplog):
    class SkipOdd(CONVERSATION_ADAPTERS["custom"].__class__):
        def convert(self, entry, source, rng):
            return None if int(entry["id"].split("-")[1]) % 2 else super().convert(entry, source, rng)

    path = write_jsonl(tmp_path / "train.jsonl", custom_lines(coco))
    with caplog.at_level(logging.INFO):
        records = build_records(
            DataSource("custom", str(path), coco["image_dir"]), SkipOdd(), lambda r: None, 0, False
        )
    total = len(custom_lines(coco))
    assert len(records) == total // 2
    assert f"left out by SkipOdd: {total - total // 2}" in caplog.text
