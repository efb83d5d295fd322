"""Box conversions, box validation and the grounded-text parser."""

import logging

import numpy as np
import pytest
import torch

from transformers_groma.processing import (
    boxes_pixel_xyxy_to_normalized_cxcywh,
    entities_to_boxes,
    normalized_cxcywh_to_pixel_xyxy,
    parse_grounded_text,
    validate_pixel_boxes,
)


def test_pixel_xyxy_to_normalized_cxcywh_known_values():
    # 200 px wide, 100 px high: [20, 10, 60, 50] has center (40, 30) and size 40 x 40.
    converted = boxes_pixel_xyxy_to_normalized_cxcywh([[20, 10, 60, 50], [0, 0, 200, 100]], (100, 200))
    expected = torch.tensor([[0.2, 0.3, 0.2, 0.4], [0.5, 0.5, 1.0, 1.0]])
    assert converted.dtype == torch.float32
    torch.testing.assert_close(converted, expected)


def test_normalized_cxcywh_to_pixel_xyxy_known_values():
    converted = normalized_cxcywh_to_pixel_xyxy(torch.tensor([[0.4, 0.55, 0.5, 0.6]]), (112, 112))
    torch.testing.assert_close(converted, torch.tensor([[16.8, 28.0, 72.8, 95.2]]))


@pytest.mark.parametrize("image_size", [(480, 640), (37, 1000), (1, 1)])
def test_box_conversions_round_trip(image_size):
    generator = torch.Generator().manual_seed(0)
    height, width = image_size
    corners = torch.rand(50, 2, 2, generator=generator) * torch.tensor([width, height])
    boxes = torch.cat([corners.min(dim=1).values, corners.max(dim=1).values], dim=-1)
    normalized = boxes_pixel_xyxy_to_normalized_cxcywh(boxes, image_size)
    assert normalized.min() >= 0 and normalized.max() <= 1
    torch.testing.assert_close(normalized_cxcywh_to_pixel_xyxy(normalized, image_size), boxes, rtol=1e-5, atol=1e-3)


def test_conversions_accept_numpy_and_empty_inputs():
    converted = boxes_pixel_xyxy_to_normalized_cxcywh(np.array([[0.0, 0.0, 10.0, 20.0]]), (20, 10))
    torch.testing.assert_close(converted, torch.tensor([[0.5, 0.5, 1.0, 1.0]]))
    assert boxes_pixel_xyxy_to_normalized_cxcywh([], (20, 10)).shape == (0, 4)
    assert normalized_cxcywh_to_pixel_xyxy(torch.zeros(0, 4), (20, 10)).shape == (0, 4)


def test_validate_pixel_boxes_accepts_boxes_touching_the_border():
    boxes = validate_pixel_boxes([[0, 0, 640, 480], [10.5, 20.25, 11, 21]], (480, 640))
    torch.testing.assert_close(boxes, torch.tensor([[0, 0, 640, 480], [10.5, 20.25, 11, 21]]))


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ([[-1, 0, 10, 10]], r"`boxes\[0\]` = \[-1.0, 0.0, 10.0, 10.0\] is not inside the image of width 64"),
        ([[0, 0, 65, 10]], r"not inside the image of width 64 and height 32"),
        ([[0, 0, 10, 33]], r"not inside the image"),
        (
            [[5, 0, 5, 10]],
            r"`boxes\[0\]` = \[5.0, 0.0, 5.0, 10.0\] is empty: boxes are \[x1, y1, x2, y2\] with x1 < x2",
        ),
        ([[0, 0, 10, 10], [8, 4, 2, 9]], r"`boxes\[1\]` = .* is empty"),
        ([[0, 9, 10, 3]], r"is empty"),
        ([[0, 0, 10, float("nan")]], r"must hold finite pixel coordinates"),
        ([0, 0, 10, 10], r"`boxes` must have shape \(n, 4\) .*got \(4,\)"),
        ([[0, 0, 10]], r"`boxes` must have shape \(n, 4\)"),
        ([[[0, 0, 10, 10]]], r"`boxes` must have shape \(n, 4\)"),
        ([[0, 0, 10, 10], [1, 2]], r"`boxes` must be numbers of shape \(n, 4\)"),
    ],
)
def test_validate_pixel_boxes_errors(boxes, message):
    with pytest.raises(ValueError, match=message):
        validate_pixel_boxes(boxes, (32, 64))


def test_validate_pixel_boxes_names_the_argument_and_rejects_non_boxes():
    with pytest.raises(ValueError, match=r"`boxes\[3\]\[0\]` = .* is empty"):
        validate_pixel_boxes([[4, 4, 4, 8]], (32, 64), argument_name="boxes[3]")
    with pytest.raises(TypeError, match="`boxes` must be a tensor, an array or a sequence"):
        validate_pixel_boxes("0 0 10 10", (32, 64))
    with pytest.raises(ValueError, match=r"`image_size` must be a positive \(height, width\) pair"):
        validate_pixel_boxes([[0, 0, 1, 1]], (0, 64))


def entity(phrase, indices, span):
    return {"phrase": phrase, "boxes": [], "region_indices": indices, "span": span}


MAN_AND_DOG = [entity("a man", [0], (9, 14)), entity("a dog", [1, 2], (39, 44))]


@pytest.mark.parametrize(
    ("text", "clean", "entities"),
    [
        # single phrase, as the legacy tokenizer decodes it (space after <p>, none before it)
        ("<p> A dog</p><roi><r0></roi> runs.</s>", "A dog runs.", [entity("A dog", [0], (0, 5))]),
        # several phrases, several boxes for one phrase, whitespace between </p> and <roi>
        (
            "<p> Two cats</p> <roi><r1><r4></roi> sit next to<p> a man</p><roi><r2></roi> .</s>",
            "Two cats sit next to a man.",
            [entity("Two cats", [1, 4], (0, 8)), entity("a man", [2], (21, 26))],
        ),
        # a bare <roi> group (referring-expression answer) belongs to the query
        ("<roi><r3></roi></s>", "", [entity(None, [3], None)]),
        # the slow 4.32 tokenizer decodes with spaces around every added token
        ("<roi> <r3> <r10> </roi> </s>", "", [entity(None, [3, 10], None)]),
        # a phrase without boxes is kept, with no region index
        (
            "A <p>dog</p> and <p>cat</p> <roi><r0></roi>",
            "A dog and cat",
            [entity("dog", [], (2, 5)), entity("cat", [0], (10, 13))],
        ),
        # unterminated <p>: the phrase is dropped (its text stays), the group after it is bare
        ("<p>a tall tree <roi><r5></roi> here", "a tall tree here", [entity(None, [5], None)]),
        # <roi> interrupted by text: dropped with its indices
        ("<p>sky</p><roi><r1><r2> is blue", "sky is blue", [entity("sky", [], (0, 3))]),
        # <roi> still open at the end of the text or at </s> (max_new_tokens cut it): closed there
        ("A bird <roi><r7>", "A bird", [entity(None, [7], None)]),
        ("<p>dog</p><roi><r1>", "dog", [entity("dog", [1], (0, 3))]),
        ("<p>dog</p> <roi> <r1> <r2> </s>[PAD]", "dog", [entity("dog", [1, 2], (0, 3))]),
        # stray closing tags, stray index tokens, other special tokens
        ("[PAD][PAD]<s> one </p> two </roi> <r9> three<image><sep></s>[PAD]", "one two three", []),
        # empty phrase and empty groups give no entity
        ("<p> </p><roi></roi> x", "x", []),
        # text that is not markup is kept as is
        ("if a < b and c > d: <r>", "if a < b and c > d: <r>", []),
        ("", "", []),
        # as a `legacy=False` tokenizer decodes it: no space on either side of the markup
        (
            "There is<p>a man</p><roi><r0></roi>in the picture, next to<p>a dog</p><roi><r1><r2></roi>.",
            "There is a man in the picture, next to a dog.",
            MAN_AND_DOG,
        ),
        # as written, with spaces around the markup
        (
            "There is <p>a man</p><roi><r0></roi> in the picture, next to <p>a dog</p> <roi><r1><r2></roi>.",
            "There is a man in the picture, next to a dog.",
            MAN_AND_DOG,
        ),
        # only two word characters get a space; punctuation keeps its side
        ("(<p>dog</p><roi><r0></roi>)", "(dog)", [entity("dog", [0], (1, 4))]),
        ("A<p>dog</p><roi><r0></roi>'s bowl", "A dog's bowl", [entity("dog", [0], (2, 5))]),
        ("big<p>dog</p>, 2<roi><r3></roi>x", "big dog, 2 x", [entity("dog", [], (4, 7)), entity(None, [3], None)]),
    ],
)
def test_parse_grounded_text(text, clean, entities):
    parsed_clean, parsed_entities = parse_grounded_text(text)
    assert parsed_clean == clean
    assert parsed_entities == entities
    for parsed in parsed_entities:
        if parsed["span"] is not None:
            start, end = parsed["span"]
            assert parsed_clean[start:end] == parsed["phrase"]


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("<p>sky</p><roi><r1><r2> is blue", "Dropping region indices [1, 2]: their <roi> group is interrupted by 'is"),
        (
            "<p>x</p><roi><r4><ground_box></roi>",
            "Dropping region indices [4]: their <roi> group is interrupted by '<gr",
        ),
        ("one <r9> two", "Dropping 1 region index token(s) outside a <roi> group (they only count inside one): <r9>."),
        ("<roi><r1></roi><r2>", "Dropping 1 region index token(s) outside a <roi> group"),
        (
            "<r2> a <r3> b <r2>",
            "Dropping 3 region index token(s) outside a <roi> group (they only count inside one): <r2>, <r3>, <r2>.",
        ),
    ],
)
def test_parse_grounded_text_warns_when_it_drops_region_indices(caplog, text, warning):
    with caplog.at_level(logging.WARNING):
        parse_grounded_text(text)
    assert warning in caplog.text


def test_parse_grounded_text_keeps_quiet_when_nothing_is_dropped(caplog):
    with caplog.at_level(logging.WARNING):
        parse_grounded_text("<p>a dog</p><roi><r1></roi> and <p>a cat</p><roi><r2><r3>")
    assert caplog.text == ""


REGIONS = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.25, 0.25, 0.5, 0.5], [0.75, 0.5, 0.5, 1.0]])


def test_entities_to_boxes_maps_region_indices_to_pixels():
    _, entities = parse_grounded_text("<p>dog</p><roi><r1><r2></roi> and <roi><r0></roi>")
    resolved = entities_to_boxes(entities, REGIONS, (100, 200))
    assert resolved[0]["boxes"] == [[0.0, 0.0, 100.0, 50.0], [100.0, 0.0, 200.0, 100.0]]
    assert resolved[1]["boxes"] == [[0.0, 0.0, 200.0, 100.0]]
    assert [e["region_indices"] for e in resolved] == [[1, 2], [0]]
    assert entities[0]["boxes"] == []  # the input is not modified


def test_entities_to_boxes_drops_out_of_range_indices_with_a_warning(caplog):
    _, entities = parse_grounded_text("<p>dog</p><roi><r1><r3><r12></roi>")
    with caplog.at_level(logging.WARNING):
        resolved = entities_to_boxes(entities, REGIONS, (100, 200))
    assert resolved[0]["region_indices"] == [1]
    assert resolved[0]["boxes"] == [[0.0, 0.0, 100.0, 50.0]]
    assert "Dropping region indices [3, 12] of phrase 'dog'" in caplog.text
    assert "selected only 3 regions" in caplog.text


def test_entities_to_boxes_without_regions(caplog):
    _, entities = parse_grounded_text("<roi><r0></roi>")
    with caplog.at_level(logging.WARNING):
        resolved = entities_to_boxes(entities, torch.zeros(0, 4), (10, 10))
    assert resolved == [entity(None, [], None)]
    assert "Dropping region indices [0]" in caplog.text
