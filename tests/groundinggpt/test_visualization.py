"""Drawing GroundingGPT answers: boxes on the original image (one colour per group) and time spans on a timeline."""

import numpy as np
import pytest
from PIL import Image

from transformers_groma.processing import BOX_COLORS
from transformers_groma.processing.groundinggpt import (
    draw_grounded_boxes,
    draw_time_spans,
    parse_boxes,
    parse_time_spans,
)
from transformers_groma.processing.groundinggpt.visualization import BACKGROUND_COLOR, TRACK_COLOR


GREY = (128, 128, 128)
# A 640 x 480 image: padded-square side 640, 80 px of padding above. "[0.100, 0.200, 0.500, 0.600]" is x 64-320,
# y 128-80=48 .. 384-80=304 in pixels.
ANSWER = "a dog[0.100, 0.200, 0.500, 0.600][0.600, 0.500, 0.700, 0.600] and a cat[0.800, 0.700, 0.900, 0.750]."


def pixel(picture: Image.Image, x: float, y: float) -> tuple[int, int, int]:
    return picture.getpixel((int(x), int(y)))


def test_boxes_are_drawn_in_pixels_with_one_colour_per_group():
    image = Image.new("RGB", (640, 480), GREY)
    boxes = parse_boxes(ANSWER, (480, 640))
    assert [box["box"] for box in boxes][0] == [64.0, 48.0, 320.0, 304.0]
    picture = draw_grounded_boxes(image, boxes, line_width=3)
    assert picture.size == (640, 480) and image.getpixel((64, 100)) == GREY  # the input is untouched
    dog, cat = BOX_COLORS[0], BOX_COLORS[1]
    assert pixel(picture, 64, 150) == dog and pixel(picture, 319, 150) == dog  # left and right edges
    assert pixel(picture, 200, 303) == dog  # bottom edge
    assert pixel(picture, 200, 150) == GREY and pixel(picture, 60, 150) == GREY  # inside and outside untouched
    (x1, y1, x2, _), (cat_x1, cat_y1, *_) = boxes[1]["box"], boxes[2]["box"]
    assert pixel(picture, x1, (y1 + 300) / 2) == dog  # the second box of the phrase shares its colour
    assert pixel(picture, cat_x1, cat_y1 + 5) == cat
    assert pixel(picture, x2 + 2, y1 + 10) == GREY


def test_the_label_tab_sits_above_the_box():
    picture = draw_grounded_boxes(Image.new("RGB", (640, 480), GREY), parse_boxes(ANSWER, (480, 640))[:1])
    above = [pixel(picture, x, 44) for x in range(64, 72)]
    assert BOX_COLORS[0] in above  # the "[0]" tab, filled with the group colour


def test_reversed_boxes_are_parsed_with_ordered_corners_and_drawn():
    (box,) = parse_boxes("a dog[0.500, 0.600, 0.100, 0.200].", (480, 640))
    assert box["normalized_box"] == [0.1, 0.2, 0.5, 0.6] and box["box"] == [64.0, 48.0, 320.0, 304.0]
    picture = draw_grounded_boxes(Image.new("RGB", (640, 480), GREY), [box])
    assert pixel(picture, 64, 150) == BOX_COLORS[0] and pixel(picture, 319, 150) == BOX_COLORS[0]


def test_arrays_are_drawn_on_a_copy_and_boxes_need_pixels():
    array = np.full((480, 640, 3), 128, dtype=np.uint8)
    picture = draw_grounded_boxes(array, parse_boxes(ANSWER, (480, 640)))
    assert pixel(picture, 64, 150) == BOX_COLORS[0] and array[150, 64].tolist() == list(GREY)
    with pytest.raises(
        ValueError, match=r"no pixel coordinates: call `post_process_grounding` with the `image_sizes`"
    ):
        draw_grounded_boxes(array, parse_boxes(ANSWER))


def test_time_spans_are_drawn_on_the_timeline():
    spans = parse_time_spans("from {0.25, 0.50} then {0.75,1.0}", 20.0)
    picture = draw_time_spans(20.0, spans, width=412, height=72, font_size=6)
    assert picture.size == (412, 72)
    # The track runs from x=6 to x=406 (400 px for 20 s, 20 px per second), between y=12 and y=60.
    y = 36
    assert pixel(picture, 6 + 20 * 7.5, y) == BOX_COLORS[0]  # inside the first span (5-10 s)
    assert pixel(picture, 6 + 20 * 17.5, y) == BOX_COLORS[1]  # inside the second span (15-20 s)
    assert pixel(picture, 6 + 20 * 2.5, y) == TRACK_COLOR and pixel(picture, 6 + 20 * 12.5, y) == TRACK_COLOR
    assert pixel(picture, 2, y) == BACKGROUND_COLOR and pixel(picture, 409, y) == BACKGROUND_COLOR
    assert pixel(picture, 6 + 20 * 7.5, 64) == BACKGROUND_COLOR  # below the track: only the end labels


def test_time_spans_accept_pairs_and_fractions_and_clip_to_the_video():
    expected = draw_time_spans(10.0, [(2.0, 4.0)], width=212, font_size=6)
    fractions = draw_time_spans(10.0, parse_time_spans("{0.2, 0.4}"), width=212, font_size=6)  # seconds unknown
    assert np.array_equal(np.asarray(expected), np.asarray(fractions))
    beyond = draw_time_spans(10.0, [(8.0, 30.0)], width=212, font_size=6)
    assert pixel(beyond, 205, 36) == BOX_COLORS[0] and pixel(beyond, 209, 36) == BACKGROUND_COLOR


@pytest.mark.parametrize(
    ("duration", "height", "message"),
    [(0.0, 72, "positive number"), (float("nan"), 72, "positive number"), (10.0, 30, "no room for the track")],
)
def test_bad_timelines_raise(duration, height, message):
    with pytest.raises(ValueError, match=message):
        draw_time_spans(duration, [], height=height)
