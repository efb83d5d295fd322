"""Vision side: the DINOv2 tower and its legacy position interpolation, the 2x2 patch merge, the image tokens."""

import pytest
import torch
from torch.nn import functional as F  # noqa: N812
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings

from transformers_groma.modeling.vision import (
    GromaLegacyDinov2Embeddings,
    merge_patches_2x2,
    tokens_to_feature_map,
)

from .groma_test_utils import GRID, IMAGE_SIZE, make_model, make_prompt, pixels, vision_overrides


def test_encode_image_returns_every_hidden_state_and_the_grid():
    model = make_model()
    with torch.no_grad():
        states, grid = model.model.encode_image(pixels(2))
    assert grid == (8, 8)
    assert len(states) == 6  # embeddings + 5 layers
    assert all(s.shape == (2, 65, 64) for s in states)
    # hidden states are taken before the final LayerNorm
    with torch.no_grad():
        last = model.model.vision_tower(pixels(2)).last_hidden_state
    torch.testing.assert_close(model.model.vision_tower.layernorm(states[-1]), last)


def test_tokens_to_feature_map_is_row_major():
    tokens = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)  # (B, h*w, C), h=2, w=3
    feature_map = tokens_to_feature_map(tokens, 2, 3)
    assert feature_map.shape == (2, 3, 2, 3)
    assert feature_map[1, 2, 1, 0] == tokens[1, 3, 2]  # row 1, col 0 -> token 1*3+0
    assert feature_map[0, 1, 0, 2] == tokens[0, 2, 1]


def test_merge_patches_2x2_channel_order():
    # value = 10 * row + col on a 4x4 grid, 1 channel
    grid = (torch.arange(4)[:, None] * 10 + torch.arange(4)[None, :]).float()[None, None]
    merged = merge_patches_2x2(grid)
    assert merged.shape == (1, 4, 4)
    # blocks: (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col); cells row-major
    assert merged[0].tolist() == [[0, 10, 1, 11], [2, 12, 3, 13], [20, 30, 21, 31], [22, 32, 23, 33]]
    two_channels = torch.cat([grid, 100 + grid], 1)
    assert merge_patches_2x2(two_channels)[0, 0].tolist() == [0, 100, 10, 110, 1, 101, 11, 111]


def test_image_features_use_the_configured_layer():
    model = make_model(image_feature_layer=2)
    with torch.no_grad():
        states, grid = model.model.encode_image(pixels(1))
        features = model.model.project_image_features(states, grid)
        by_hand = model.model.multi_modal_projector(merge_patches_2x2(tokens_to_feature_map(states[2][:, 1:], 8, 8)))
        other_layer = model.model.multi_modal_projector(
            merge_patches_2x2(tokens_to_feature_map(states[-1][:, 1:], 8, 8))
        )
    assert features.shape == (1, 16, 64)
    torch.testing.assert_close(features, by_hand, rtol=0, atol=0)
    assert not torch.allclose(features, other_layer)


@pytest.mark.parametrize(("legacy", "cls"), [(True, GromaLegacyDinov2Embeddings), (False, Dinov2Embeddings)])
def test_embeddings_class_follows_the_flag(legacy, cls):
    model = make_model(legacy_position_interpolation=legacy)
    assert type(model.model.vision_tower.embeddings) is cls


def _pair(flag: str, **overrides):
    """Two models with the same weights, differing only in `flag`."""
    legacy = make_model(**{flag: True}, **overrides)
    fixed = make_model(seed=1, **{flag: False}, **overrides)
    fixed.load_state_dict(legacy.state_dict())
    return legacy, fixed


def test_legacy_position_interpolation_is_the_transformers_4_32_resize():
    legacy, fixed = _pair("legacy_position_interpolation")
    embeddings = legacy.model.vision_tower.embeddings
    table = embeddings.position_embeddings  # (1, 1 + 9*9, 64): the tiny tower's 126 px table
    dummy = torch.zeros(1, 65, 64)
    grid = table[:, 1:].reshape(1, 9, 9, 64).permute(0, 3, 1, 2)
    # spec §1.3: bicubic, align_corners=False, *scale factor* (grid + 0.1) / table_size
    old = F.interpolate(grid, scale_factor=(8.1 / 9, 8.1 / 9), mode="bicubic", align_corners=False)
    new = F.interpolate(grid, size=(8, 8), mode="bicubic", align_corners=False)
    with torch.no_grad():
        legacy_table = embeddings.interpolate_pos_encoding(dummy, IMAGE_SIZE, IMAGE_SIZE)
        fixed_table = fixed.model.vision_tower.embeddings.interpolate_pos_encoding(dummy, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(legacy_table[:, 0], table[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(legacy_table[0, 1:], old.permute(0, 2, 3, 1).reshape(64, 64), rtol=0, atol=1e-6)
    torch.testing.assert_close(fixed_table[0, 1:], new.permute(0, 2, 3, 1).reshape(64, 64), rtol=0, atol=1e-6)
    assert (legacy_table - fixed_table).abs().max() > 1e-3


def test_legacy_position_interpolation_changes_only_resized_inputs():
    legacy, fixed = _pair("legacy_position_interpolation")
    with torch.no_grad():
        states_legacy, _ = legacy.model.encode_image(pixels(1))
        states_fixed, _ = fixed.model.encode_image(pixels(1))
        native = torch.randn(1, 3, 126, 126)  # the table's own 9x9 grid: nothing to interpolate
        native_legacy, _ = legacy.model.encode_image(native)
        native_fixed, _ = fixed.model.encode_image(native)
    for a, b in zip(states_legacy, states_fixed):
        assert not torch.allclose(a, b, atol=1e-5)
    for a, b in zip(native_legacy, native_fixed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_legacy_position_interpolation_affects_the_whole_model_through_dinov2_only():
    # A tower whose table is the 8x8 grid of 112 px inputs: 112 px needs no resize, 140 px (10x10) does.
    legacy, fixed = _pair("legacy_position_interpolation", vision_config=vision_overrides(image_size=112))
    inputs = {"input_ids": make_prompt()[None], "region_boxes": [GRID]}
    with torch.no_grad():
        same = [m(pixel_values=pixels(1), **inputs).logits for m in (legacy, fixed)]
        resized = torch.randn(1, 3, 140, 140)
        different = [m(pixel_values=resized, **inputs).logits for m in (legacy, fixed)]
    torch.testing.assert_close(*same, rtol=0, atol=0)
    assert different[0].shape == (1, len(inputs["input_ids"][0]) - 2 + 25 + 8, 1114)
    assert not torch.allclose(*different)


def test_legacy_embeddings_keep_the_stock_parameter_names():
    legacy, fixed = _pair("legacy_position_interpolation")
    assert legacy.state_dict().keys() == fixed.state_dict().keys()
    assert {n for n, _ in legacy.model.vision_tower.embeddings.named_parameters()} == {
        n for n, _ in fixed.model.vision_tower.embeddings.named_parameters()
    }
