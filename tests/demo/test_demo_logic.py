"""The demo page's logic without a browser: queries from tasks, typed boxes, the chat about one image, bad-input
messages, the coloured answer HTML, the GroundingGPT job and the `groma demo` options."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_groma.cli import main
from transformers_groma.demo.groma_chat import (
    ASK,
    CAPTION,
    DESCRIBE,
    EVERY_REGION,
    LOCATE,
    DemoInputError,
    GenerationSettings,
    GromaChat,
    annotator_boxes,
    build_query,
    display_entities,
    locate_expression,
    parse_typed_boxes,
)
from transformers_groma.demo.groundinggpt_chat import ask_groundinggpt
from transformers_groma.demo.rendering import groma_answer_html, groundinggpt_answer_html
from transformers_groma.processing import BOX_COLORS, REFER_REGION, draw_grounding
from transformers_groma.tiny import (
    tiny_groma_model,
    tiny_groma_processor,
    tiny_groundinggpt_model,
    tiny_groundinggpt_processor,
)

from ..groundinggpt.conftest import write_video


QUICK = GenerationSettings(max_new_tokens=3)


@pytest.fixture(scope="module")
def groma():
    torch.set_num_threads(1)
    return tiny_groma_model(), tiny_groma_processor()


def test_typed_boxes_are_parsed_and_bad_ones_named():
    assert parse_typed_boxes("10, 20, 30, 40; [1 2 3 4]\n\n5,6,7,8") == [[10, 20, 30, 40], [1, 2, 3, 4], [5, 6, 7, 8]]
    assert parse_typed_boxes("") == []
    with pytest.raises(DemoInputError, match=r"Typed box 2 \('1, 2, 3'\) must be four numbers"):
        parse_typed_boxes("0,0,5,5; 1, 2, 3")
    with pytest.raises(DemoInputError, match="Typed box 1"):
        parse_typed_boxes("a, b, c, d")
    drawn = {"image": None, "boxes": [{"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40, "label": "", "color": (0, 0, 0)}]}
    assert annotator_boxes(drawn) == [[1, 2, 30, 40]]
    assert annotator_boxes(None) == []


@pytest.mark.parametrize(
    "text",
    ["Locate the red square", "the red square", "Locate the red square in the image.", "Where is the red square?"],
)
def test_locate_takes_the_expression_with_or_without_the_verb(text):
    assert locate_expression(text) == "the red square"
    assert build_query(LOCATE, text, 0) == "Locate <p>the red square</p> in the image."


def test_task_queries_and_their_messages():
    assert build_query(CAPTION, "ignored", 0).startswith("[grounding]")
    assert build_query(DESCRIBE, "", 1) == f"What is {REFER_REGION}?"
    assert build_query(DESCRIBE, "", 2).count(REFER_REGION) == 2
    assert build_query(ASK, "  What is left of the circle? ", 0) == "What is left of the circle?"
    assert build_query(EVERY_REGION, "ignored", 0) == f"What is {REFER_REGION}?"
    for task, text, message in [
        (DESCRIBE, "", "Draw a box on the image"),
        (ASK, " ", "Type a question"),
        (LOCATE, "Locate", "Type what to locate"),
        ("Dance", "x", "Unknown task 'Dance'"),
    ]:
        with pytest.raises(DemoInputError, match=message):
            build_query(task, text, 0)


def test_sampling_settings_reach_generate_only_when_sampling():
    assert GenerationSettings(max_new_tokens=5).generate_kwargs() == {"max_new_tokens": 5, "do_sample": False}
    sampled = GenerationSettings(max_new_tokens=5, do_sample=True, temperature=0.5, top_p=0.8).generate_kwargs()
    assert sampled == {"max_new_tokens": 5, "do_sample": True, "temperature": 0.5, "top_p": 0.8}


def test_bad_inputs_are_reported_before_the_model_runs(groma):
    with pytest.raises(DemoInputError, match="Upload an image or pick an example scene first"):
        GromaChat().ask(*groma, "What is this?", [], QUICK)
    chat = GromaChat(image=Image.new("RGB", (100, 80)))
    with pytest.raises(DemoInputError, match="not inside the image of width 100 and height 80"):
        chat.ask(*groma, build_query(DESCRIBE, "", 1), [[0, 0, 120, 50]], QUICK)
    assert chat.messages == [] and chat.last_result is None


def test_chat_keeps_the_image_turns_boxes_and_regions():
    # a zero score threshold keeps the proposals too, so that the regions are more than the referred boxes
    model, processor = tiny_groma_model(box_score_threshold=0.0), tiny_groma_processor()
    chat = GromaChat(image=Image.new("RGB", (100, 80), (200, 30, 30)))
    first = chat.ask(model, processor, build_query(DESCRIBE, "", 1), [[10, 10, 50, 50]], QUICK)
    second = chat.ask(model, processor, "And next to it?", [[60, 20, 90, 70]], QUICK)
    assert [message["role"] for message in chat.messages] == ["user", "assistant", "user", "assistant"]
    assert chat.messages[1]["content"][0]["text"] == first["text"]  # the tiny model writes no markup
    assert chat.messages[2]["content"][1]["text"] == "And next to it?"
    assert chat.boxes == [[10, 10, 50, 50], [60, 20, 90, 70]] and second["boxes"] == [[60, 20, 90, 70]]
    # the first turn's regions keep their indices (the box it referred to first); the new box comes last
    assert len(first["regions"]) == model.config.max_region_num
    assert np.allclose(first["regions"][0], [10, 10, 50, 50], atol=1e-3)
    assert np.allclose(second["regions"][:-1], first["regions"][:-1], atol=1e-3)
    assert np.allclose(second["regions"][-1], [60, 20, 90, 70], atol=1e-3)
    too_many = [[0, 0, 5, 5]] * model.config.max_region_num
    with pytest.raises(DemoInputError, match="Start a new conversation"):
        chat.ask(model, processor, build_query(DESCRIBE, "", len(too_many)), too_many, QUICK)
    assert chat.picture(show_regions=True).size == (100, 80)
    # the answer picture shows the referred box of the first turn in the colour after the answer's entities
    assert display_entities(first)[len(first["entities"]) :] == [
        {"phrase": "box 1", "boxes": [[10, 10, 50, 50]], "region_indices": [], "span": None}
    ]
    chat.last_result = first
    assert chat.picture(show_regions=False).getpixel((11, 30)) == BOX_COLORS[len(first["entities"])]


def test_describing_every_region_labels_each_region_and_leaves_the_conversation_alone():
    model, processor = tiny_groma_model(box_score_threshold=0.0), tiny_groma_processor()
    chat = GromaChat(image=Image.new("RGB", (100, 80), (200, 30, 30)))
    with pytest.raises(DemoInputError, match="Upload an image"):
        GromaChat().describe_every_region(model, processor, build_query(EVERY_REGION, "", 0), QUICK)
    result = chat.describe_every_region(model, processor, build_query(EVERY_REGION, "", 0), QUICK)
    assert chat.last_result is result and chat.messages == [] and chat.boxes == []
    assert len(result["entities"]) == len(result["regions"]) == model.config.max_region_num
    assert torch.equal(chat.regions, result["_regions"])
    # each region is drawn in its entity's colour (entity i in colour i); the last one is drawn on top
    last = len(result["entities"]) - 1
    x1, y1, _, y2 = (round(value) for value in result["entities"][last]["boxes"][0])
    assert chat.picture(show_regions=False).getpixel((x1 + 1, (y1 + y2) // 2)) == BOX_COLORS[last % len(BOX_COLORS)]
    later = chat.ask(model, processor, "And this?", [[10, 10, 50, 50]], QUICK)
    assert np.allclose(later["regions"][:-1], result["regions"][:-1], atol=1e-3)


def test_answer_html_marks_phrases_in_the_colours_of_their_boxes():
    text = "A <b>red</b> square left of a blue circle."
    entities = [
        {"phrase": "A <b>red</b> square", "boxes": [[10, 10, 40, 40]], "region_indices": [0], "span": (0, 19)},
        {"phrase": "a blue circle", "boxes": [[50, 10, 90, 50]], "region_indices": [2], "span": (28, 41)},
        {"phrase": None, "boxes": [[5, 5, 20, 20]], "region_indices": [3], "span": None},
    ]
    html = groma_answer_html(entities, text)
    picture = draw_grounding(Image.new("RGB", (100, 60), (255, 255, 255)), entities)
    for index, entity in enumerate(entities[:2]):
        red, green, blue = BOX_COLORS[index]
        x1, y1 = entity["boxes"][0][:2]
        assert picture.getpixel((x1 + 1, y1 + 20)) == (red, green, blue)  # the box's left edge
        phrase = re.escape(entity["phrase"].replace("<", "&lt;").replace(">", "&gt;"))
        assert re.search(rf"solid rgba\({red}, {green}, {blue}, 1.0\)[^>]*>{phrase}</mark>", html)
        assert re.search(rf"background: rgba\({red}, {green}, {blue}, 1.0\)\"></span>{phrase}: \[", html)
    assert "<b>" not in html  # user-visible text is escaped
    assert "&lt;r3&gt;: [5, 5, 20, 20]" in html  # a box without a phrase is listed by its region token


def test_groundinggpt_job_gives_picture_timeline_and_messages(tmp_path):
    torch.set_num_threads(1)
    model, processor = tiny_groundinggpt_model(), tiny_groundinggpt_processor()
    image = tmp_path / "grey.png"
    Image.new("RGB", (64, 48), (128, 128, 128)).save(image)
    write_video(tmp_path / "clip.mp4", num_frames=10)
    result, picture, timeline = ask_groundinggpt(model, processor, str(image), str(tmp_path / "clip.mp4"), None, "", 3)
    assert picture.size == (64, 48) and timeline.size == (640, 72)
    assert result["video_duration"] == pytest.approx(2.0)
    # a canned answer, parsed as the demo parses generations: on the 64 x 48 image the box is x 6-32, y 5-30 pixels
    answer = processor.tokenizer("The dog[0.100, 0.200, 0.500, 0.600] at {0.25, 0.75}.", add_special_tokens=False)
    (parsed,) = processor.post_process_grounding([answer["input_ids"]], image_sizes=[(48, 64)], video_durations=[2.0])
    html = groundinggpt_answer_html(parsed)
    red, green, blue = BOX_COLORS[0]
    assert re.search(rf"solid rgba\({red}, {green}, {blue}, 1.0\)[^>]*>\[0.100, 0.200, 0.500, 0.600\]</mark>", html)
    assert "[0] [6, 5, 32, 30]</li>" in html and "{0.25, 0.75}: 0.5-1.5 s</li>" in html
    with pytest.raises(DemoInputError, match="Upload an image, a video or an audio file"):
        ask_groundinggpt(model, processor, None, None, None, "What?", 3)
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(DemoInputError, match="cannot be read as an image"):
        ask_groundinggpt(model, processor, str(tmp_path / "broken.png"), None, None, "What?", 3)


def test_demo_options_are_checked_before_anything_loads(tmp_path):
    with pytest.raises(SystemExit, match="groma demo needs a model"):
        main(["demo"])
    with pytest.raises(SystemExit, match="not a model folder"):
        main(["demo", "--model", str(tmp_path)])
