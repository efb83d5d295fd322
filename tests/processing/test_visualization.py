"""Drawing grounded entities and region proposals."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from transformers_groma.processing import draw_grounding, draw_proposals


GRAY = (128, 128, 128)
RED, BLUE = (255, 0, 0), (0, 0, 255)


def gray_image(width: int = 200, height: int = 120) -> Image.Image:
    return Image.new("RGB", (width, height), GRAY)


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return image.getpixel((x, y))


def test_draw_grounding_outlines_boxes_in_their_colors():
    image = gray_image()
    entities = [
        {"phrase": "a dog", "boxes": [[40.0, 50.0, 100.0, 110.0]], "region_indices": [0], "span": (0, 5)},
        {"phrase": None, "boxes": [[120.0, 30.0, 190.0, 90.0]], "region_indices": [3], "span": None},
    ]
    drawn = draw_grounding(image, entities, colors=[RED, BLUE], line_width=2)
    assert drawn is not image and drawn.size == image.size
    assert image.getpixel((40, 80)) == GRAY  # the input is untouched
    # outlines: left, right and bottom edges of each box
    assert pixel(drawn, 40, 80) == RED and pixel(drawn, 100, 80) == RED and pixel(drawn, 70, 110) == RED
    assert pixel(drawn, 120, 60) == BLUE and pixel(drawn, 190, 60) == BLUE and pixel(drawn, 150, 90) == BLUE
    # inside and far outside the boxes: untouched
    assert pixel(drawn, 70, 85) == GRAY and pixel(drawn, 110, 115) == GRAY and pixel(drawn, 5, 115) == GRAY
    # the label tab sits above the top-left corner, filled with the box color
    tab = np.asarray(drawn)[35:50, 40:60].reshape(-1, 3)
    assert (tab == RED).all(axis=1).mean() > 0.4 and (tab == (255, 255, 255)).all(axis=1).any()
    tab = np.asarray(drawn)[15:30, 120:140].reshape(-1, 3)
    assert (tab == BLUE).all(axis=1).mean() > 0.4


def test_draw_grounding_label_goes_inside_when_box_touches_the_top():
    entities = [{"phrase": "sky", "boxes": [[10.0, 0.0, 150.0, 60.0]], "region_indices": [1], "span": (0, 3)}]
    drawn = draw_grounding(gray_image(), entities, colors=[RED], line_width=1)
    # the tab's 2-pixel margin is pure box color; the white text is inside the box
    assert pixel(drawn, 11, 1) == RED and pixel(drawn, 11, 10) == RED and pixel(drawn, 12, 13) == RED
    assert (np.asarray(drawn)[1:16, 11:40] == (255, 255, 255)).all(axis=-1).any()
    assert pixel(drawn, 80, 30) == GRAY


def test_draw_grounding_accepts_arrays_and_ignores_entities_without_boxes():
    array = np.full((60, 80, 3), 128, dtype=np.uint8)
    entities = [{"phrase": "nothing", "boxes": [], "region_indices": [], "span": (0, 7)}]
    drawn = draw_grounding(array, entities)
    assert np.array_equal(np.asarray(drawn), array)
    chw = torch.from_numpy(array).permute(2, 0, 1)
    assert np.array_equal(np.asarray(draw_grounding(chw, [])), array)
    with pytest.raises(TypeError, match="`image` must be a PIL image"):
        draw_grounding("image.png", entities)


def test_draw_proposals_keeps_the_best_scored_boxes():
    image = gray_image(200, 100)
    # normalized cxcywh: box 0 = [20, 20, 60, 60] px, box 1 = [120, 30, 180, 90] px, box 2 = [80, 10, 100, 40] px
    boxes = torch.tensor([[0.2, 0.4, 0.2, 0.4], [0.75, 0.6, 0.3, 0.6], [0.45, 0.25, 0.1, 0.3]])
    drawn = draw_proposals(image, boxes, scores=[0.9, 0.2, 0.7], top_k=2, colors=[RED, BLUE, (0, 255, 0)])
    assert pixel(drawn, 20, 50) == RED  # box 0, kept
    assert pixel(drawn, 100, 30) == (0, 255, 0)  # box 2, kept
    assert pixel(drawn, 180, 70) == GRAY  # box 1, lowest score, dropped
    everything = draw_proposals(image, boxes)
    assert pixel(everything, 180, 70) != GRAY


def test_draw_proposals_on_a_photograph_and_score_check():
    photo = data.coffee()
    drawn = draw_proposals(photo, torch.tensor([[0.5, 0.5, 0.5, 0.5]]), colors=np.array([RED]), line_width=3)
    assert drawn.size == (600, 400)
    assert pixel(drawn, 150, 200) == RED and pixel(drawn, 450, 250) == RED
    with pytest.raises(ValueError, match="`scores` must hold one score per box: got 2 scores for 1"):
        draw_proposals(photo, torch.tensor([[0.5, 0.5, 0.5, 0.5]]), scores=[0.1, 0.2])


def test_draw_grounding_draws_every_box_of_an_entity():
    # two boxes, one region index (a phrase grounded by hand), and a phrase-less entity without indices
    entities = [
        {"phrase": "dogs", "boxes": [[20.0, 60.0, 60.0, 110.0], [120.0, 60.0, 160.0, 110.0]], "region_indices": [0]},
        {"phrase": None, "boxes": [[80.0, 20.0, 100.0, 40.0]], "region_indices": []},
        {"phrase": None, "boxes": [[170.0, 20.0, 190.0, 40.0]]},
    ]
    drawn = draw_grounding(gray_image(), entities, colors=[RED, BLUE, (0, 255, 0)], line_width=2)
    assert pixel(drawn, 20, 90) == RED and pixel(drawn, 160, 90) == RED
    assert pixel(drawn, 80, 30) == BLUE and pixel(drawn, 170, 30) == (0, 255, 0)
    # no label tab above the boxes without phrase and region index
    assert pixel(drawn, 85, 15) == GRAY and pixel(drawn, 175, 15) == GRAY


@pytest.mark.parametrize(
    ("entities", "colors", "error", "message"),
    [
        ({"text": "x", "entities": []}, None, TypeError, r"pass `result\['entities'\]`, not the whole result"),
        ("a dog", None, TypeError, "`entities` must be a sequence of entities, got str"),
        ([{"phrase": "x"}], None, TypeError, r"`entities\[0\]` must be a mapping with a 'boxes' list"),
        ([[10, 10, 20, 20]], None, TypeError, r"`entities\[0\]` must be a mapping"),
        ([{"boxes": [[10, 10, 20]]}], None, ValueError, r"`entities\[0\]\['boxes'\]` must have shape \(n, 4\)"),
        ([{"boxes": [[50, 10, 20, 20]]}], None, ValueError, r"`entities\[0\]\['boxes'\]\[0\]` = .* x1 <= x2"),
        ([{"boxes": [[1, 1, 2, 2], [1, 1, float("nan"), 2]]}], None, ValueError, r"\['boxes'\]\[1\]` = .* finite"),
        ([], [], ValueError, "`colors` must hold at least one"),
        ([], [(255, 0)], TypeError, r"`colors\[0\]` must be an \(r, g, b\) tuple of ints"),
        ([], [(255, 0, 300)], ValueError, r"`colors\[0\]` values must be in \[0, 255\]"),
        ([], "red", TypeError, "`colors` must be a sequence of"),
    ],
)
def test_draw_grounding_errors(entities, colors, error, message):
    with pytest.raises(error, match=message):
        draw_grounding(gray_image(), entities, **({} if colors is None else {"colors": colors}))


def test_draw_proposals_top_k_none_draws_every_box():
    # normalized cxcywh on 200 x 100: box 0 = [20, 20, 60, 60] px, box 1 = [120, 30, 180, 90] px
    boxes = torch.tensor([[0.2, 0.4, 0.2, 0.4], [0.75, 0.6, 0.3, 0.6]])
    drawn = draw_proposals(gray_image(200, 100), boxes, top_k=None, colors=[RED, BLUE])
    assert pixel(drawn, 20, 50) == RED and pixel(drawn, 180, 70) == BLUE
    drawn = draw_proposals(gray_image(200, 100), boxes, top_k=1, colors=[RED, BLUE])
    assert pixel(drawn, 20, 50) == RED and pixel(drawn, 180, 70) == GRAY


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top_k": 0}, ValueError, r"`top_k` must be at least 1 \(or None for all boxes\), got 0"),
        ({"top_k": -1}, ValueError, "`top_k` must be at least 1"),
        ({"top_k": 2.5}, TypeError, "`top_k` must be an int or None"),
        ({"boxes": torch.tensor([[0.5, 0.5, -0.25, 0.5]])}, ValueError, r"`boxes\[0\]` = \[0.5, 0.5, -0.25, 0.5\]"),
        ({"boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.5, float("nan"), 0.5, 0.5]])}, ValueError, r"`boxes\[1\]`"),
        ({"colors": []}, ValueError, "`colors` must hold at least one"),
    ],
)
def test_draw_proposals_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        draw_proposals(gray_image(), **{"boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]]), **kwargs})
