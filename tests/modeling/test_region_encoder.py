"""Region encoder (spec §1.7) and the legacy RoI flags `legacy_roi_box_format` / `legacy_roi_spatial_scale`."""

import pytest
import torch
from torchvision.ops import box_convert

from .groma_test_utils import GRID, IMAGE_SIZE, cxcywh, make_model, make_prompt, pixels


def _encoder_inputs(model, batch_size=1, seed=0):
    with torch.no_grad():
        states, grid = model.model.encode_image(pixels(batch_size, seed))
    maps = [model.model.get_feature_map(states, [layer], grid) for layer in model.config.region_feature_layers]
    return states, grid, maps


def _pooled(model, maps, boxes):
    """Region features and the pooled RoI features right before `flatten_proj` (box embedding not added yet)."""
    captured = []
    handle = model.model.region_encoder.flatten_proj.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    try:
        with torch.no_grad():
            features = model.model.region_encoder(maps, boxes, (IMAGE_SIZE, IMAGE_SIZE))
    finally:
        handle.remove()
    return features, captured[0]


def _pair(flag, **overrides):
    legacy = make_model(**{flag: True}, **overrides)
    fixed = make_model(seed=1, **{flag: False}, **overrides)
    fixed.load_state_dict(legacy.state_dict())
    return legacy, fixed


def test_region_features_shapes_and_per_image_split():
    model = make_model()
    _, _, maps = _encoder_inputs(model, batch_size=3)
    boxes = [GRID[:2], GRID, GRID[[3]]]
    features, _ = _pooled(model, maps, boxes)
    assert [tuple(f.shape) for f in features] == [(2, 64), (4, 64), (1, 64)]
    # each image's regions only see that image's maps, and do not depend on the other images' boxes
    for i in range(3):
        single, _ = _pooled(model, [m[i : i + 1] for m in maps], [boxes[i]])
        torch.testing.assert_close(features[i], single[0], rtol=1e-5, atol=1e-5)
    # the same box in two images gives two different features
    assert not torch.allclose(features[0][0], features[1][0])


def test_feature_maps_are_the_configured_layers():
    model = make_model(region_feature_layers=[1, 3, 5])
    states, grid, maps = _encoder_inputs(model)
    assert [tuple(m.shape) for m in maps] == [(1, 64, 8, 8)] * 3
    torch.testing.assert_close(maps[1], states[3][:, 1:].transpose(1, 2).reshape(1, 64, 8, 8), rtol=0, atol=0)
    with torch.no_grad():
        features = model.model.get_region_features(states, grid, [GRID], (IMAGE_SIZE, IMAGE_SIZE))
        other = make_model(region_feature_layers=[0, 1, 2])
        other.load_state_dict(model.state_dict())
        other_features = other.model.get_region_features(states, grid, [GRID], (IMAGE_SIZE, IMAGE_SIZE))
    assert not torch.allclose(features[0], other_features[0])


def test_legacy_box_format_reads_cxcywh_as_xyxy():
    # legacy(b) pools the window whose corners are b's numbers; the fixed encoder pools it from its cxcywh form
    legacy, fixed = _pair("legacy_roi_box_format")
    _, _, maps = _encoder_inputs(legacy)
    boxes = cxcywh([0.2, 0.3, 0.6, 0.7], [0.1, 0.15, 0.45, 0.5])  # read as xyxy: x2 > x1, y2 > y1
    as_corners = box_convert(boxes, "xyxy", "cxcywh")
    legacy_features, legacy_pooled = _pooled(legacy, maps, [boxes])
    fixed_features, fixed_pooled = _pooled(fixed, maps, [as_corners])
    # the cxcywh <-> xyxy round trip moves the corners by float32 rounding (~1e-7 of the image); bilinear RoIAlign
    # turns that into differences of ~1e-6 on some CPUs, while a different window changes the pooled features by
    # far more than 1e-4 (checked below)
    torch.testing.assert_close(legacy_pooled, fixed_pooled, rtol=1e-4, atol=1e-5)
    # with the same boxes the two encoders pool different windows
    _, fixed_same = _pooled(fixed, maps, [boxes])
    assert not torch.allclose(legacy_pooled, fixed_same, atol=1e-4)
    # the box embedding still sees the box as given
    assert not torch.allclose(legacy_features[0], fixed_features[0], atol=1e-4)


def test_legacy_spatial_scale_doubles_the_roi_coordinates():
    legacy, fixed = _pair("legacy_roi_spatial_scale", legacy_roi_box_format=False)
    _, _, maps = _encoder_inputs(legacy)
    boxes = cxcywh([0.2, 0.25, 0.2, 0.3], [0.3, 0.2, 0.4, 0.2])  # xyxy doubled stays inside [0, 1]
    doubled = box_convert(box_convert(boxes, "cxcywh", "xyxy") * 2, "xyxy", "cxcywh")
    _, legacy_pooled = _pooled(legacy, maps, [boxes])
    _, fixed_pooled = _pooled(fixed, maps, [doubled])
    # the cxcywh <-> xyxy round trip moves the corners by float32 rounding (~1e-7 of the image); bilinear RoIAlign
    # turns that into differences of ~1e-6 on some CPUs, while a different window changes the pooled features by
    # far more than 1e-4 (checked below)
    torch.testing.assert_close(legacy_pooled, fixed_pooled, rtol=1e-4, atol=1e-5)
    _, fixed_same = _pooled(fixed, maps, [boxes])
    assert not torch.allclose(legacy_pooled, fixed_same, atol=1e-4)


def test_released_legacy_mapping_samples_bottom_right_boxes_off_the_map():
    # spec §1.7.2: with both legacy flags the window runs from (2cx, 2cy) to (2w, 2h) in image units, so this valid
    # box (corners 0.44..1.0) is sampled entirely off the map: only zeros reach the level convs.
    model = make_model()
    fixed = make_model(seed=1, legacy_roi_box_format=False, legacy_roi_spatial_scale=False)
    fixed.load_state_dict(model.state_dict())
    box = [cxcywh([0.72, 0.72, 0.56, 0.56])]
    _, _, maps_a = _encoder_inputs(model, seed=0)
    _, _, maps_b = _encoder_inputs(model, seed=1)
    _, pooled_a = _pooled(model, maps_a, box)
    _, pooled_b = _pooled(model, maps_b, box)
    torch.testing.assert_close(pooled_a, pooled_b, rtol=0, atol=0)  # image content does not matter
    _, fixed_a = _pooled(fixed, maps_a, box)
    _, fixed_b = _pooled(fixed, maps_b, box)
    assert not torch.allclose(fixed_a, fixed_b)


@pytest.mark.parametrize("flag", ["legacy_roi_box_format", "legacy_roi_spatial_scale"])
def test_roi_flags_change_region_tokens_only(flag):
    legacy, fixed = _pair(flag)
    px = pixels(1)
    with torch.no_grad():
        states, grid = legacy.model.encode_image(px)
        fixed_states, _ = fixed.model.encode_image(px)
        for a, b in zip(states, fixed_states):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(
            legacy.model.project_image_features(states, grid),
            fixed.model.project_image_features(states, grid),
            rtol=0,
            atol=0,
        )
        proposals = legacy.model.get_region_proposals(states, grid)
        fixed_proposals = fixed.model.get_region_proposals(states, grid)
        torch.testing.assert_close(proposals.pred_boxes, fixed_proposals.pred_boxes, rtol=0, atol=0)
        torch.testing.assert_close(proposals.scores, fixed_proposals.scores, rtol=0, atol=0)
        regions = [GRID]
        legacy_regions = legacy.model.get_region_features(states, grid, regions, (IMAGE_SIZE, IMAGE_SIZE))
        fixed_regions = fixed.model.get_region_features(states, grid, regions, (IMAGE_SIZE, IMAGE_SIZE))
        assert not torch.allclose(legacy_regions[0], fixed_regions[0], atol=1e-5)
        # end to end: the prompt up to the region list is the same, the logits after it differ
        inputs = {"input_ids": make_prompt()[None], "pixel_values": px, "region_boxes": regions}
        legacy_out, fixed_out = legacy(**inputs), fixed(**inputs)
    first_region = int((legacy_out.expanded_input_ids[0] == 1009).nonzero()[0, 0])
    torch.testing.assert_close(
        legacy_out.logits[:, :first_region], fixed_out.logits[:, :first_region], rtol=0, atol=1e-6
    )
    assert not torch.allclose(legacy_out.logits[:, first_region:], fixed_out.logits[:, first_region:], atol=1e-5)
