"""Models the training scripts build new start without the released model's quirks, and a detection mixture that
leaves an objectness head without data is reported."""

import pytest

from transformers_groma.training import detection_data
from transformers_groma.training.arguments import DetectionModelArguments, ModelArguments
from transformers_groma.training.data_config import DataSource
from transformers_groma.training.model_setup import build_detection_model, build_vl_model


def quirks(config) -> dict[str, bool]:
    return {
        "box_format": config.legacy_roi_box_format,
        "spatial_scale": config.legacy_roi_spatial_scale,
        "position_interpolation": config.legacy_position_interpolation,
        "frozen_reference_points": config.proposer_config.legacy_frozen_reference_points,
        "learned_query_content": config.proposer_config.legacy_learned_query_content,
    }


@pytest.mark.parametrize("legacy", [False, True])
def test_new_detection_model_quirks_follow_the_option(legacy):
    model, _ = build_detection_model(DetectionModelArguments(init_from_tiny=True, legacy_quirks=legacy))
    assert set(quirks(model.config).values()) == {legacy}


def test_new_vl_model_has_no_quirks_unless_asked_for_the_region_encoder():
    model, _ = build_vl_model(ModelArguments(init_from_tiny=True), max_length=64)
    assert not any(quirks(model.config).values())
    model, _ = build_vl_model(ModelArguments(init_from_tiny=True, legacy_region_encoder=True), max_length=64)
    assert quirks(model.config) == {
        "box_format": True,
        "spatial_scale": True,
        "position_interpolation": False,
        "frozen_reference_points": False,
        "learned_query_content": False,
    }


def test_a_mixture_without_sa1b_data_is_reported(monkeypatch, tmp_path):
    warnings = []
    monkeypatch.setattr(detection_data.logger, "warning", warnings.append)
    coco = DataSource("coco_detection", str(tmp_path / "a.json"), str(tmp_path))
    detection_data.warn_about_untrained_heads([coco])
    assert len(warnings) == 1 and "sa1b objectness head" in warnings[0] and "head: sa1b" in warnings[0]
    sa1b = DataSource("coco_detection", str(tmp_path / "a.json"), str(tmp_path), name="again", head="sa1b")
    detection_data.warn_about_untrained_heads([coco, sa1b])
    assert len(warnings) == 1
