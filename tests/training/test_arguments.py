"""Argument parsing from the command line, YAML/JSON files and both."""

import json

import pytest

from transformers_groma.training import (
    DataArguments,
    DetectionDataArguments,
    DetectionModelArguments,
    GromaDetectionTrainingArguments,
    GromaTrainingArguments,
    ModelArguments,
    parse_arguments,
)


VL_TYPES = (ModelArguments, DataArguments, GromaTrainingArguments)
CONFIG = {
    "stage": "align",
    "init_from_tiny": True,
    "data_config": "mixture.yaml",
    "output_dir": "runs/align",
    "learning_rate": 1e-4,
    "lr_multiplier_patterns": ["sampling_offsets"],
}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_alone_and_with_overrides(tmp_path, suffix):
    path = tmp_path / f"config{suffix}"
    path.write_text(json.dumps(CONFIG))  # JSON is valid YAML
    model_args, data_args, training_args = parse_arguments(VL_TYPES, [str(path)])
    assert model_args.stage == "align" and model_args.init_from_tiny and data_args.data_config == "mixture.yaml"
    assert training_args.learning_rate == 1e-4 and training_args.lr_multiplier_patterns == ["sampling_offsets"]
    assert training_args.remove_unused_columns is False and training_args.use_cache is False

    _, _, training_args = parse_arguments(VL_TYPES, [str(path), "--learning_rate", "2e-5", "--output_dir", "x"])
    assert training_args.learning_rate == 2e-5 and training_args.output_dir == "x"


def test_unknown_keys_and_forced_settings(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({**CONFIG, "learning_rat": 1.0}))
    with pytest.raises(ValueError, match="learning_rat"):
        parse_arguments(VL_TYPES, [str(path)])
    with pytest.raises(ValueError, match="learning_rat"):
        parse_arguments(VL_TYPES, [str(path), "--seed", "1"])
    args = ["--init_from_tiny", "--train_file", "a.jsonl", "--remove_unused_columns", "true", "--use_cache", "true"]
    _, _, training_args = parse_arguments(VL_TYPES, args)
    assert training_args.remove_unused_columns is False and training_args.use_cache is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--init_from_tiny", "--model_name_or_path", "x", "--train_file", "a.jsonl"], "exactly one model source"),
        (["--llm_path", "x", "--train_file", "a.jsonl"], "exactly one model source"),
        (["--init_from_tiny"], "exactly one of `--data_config`"),
    ],
)
def test_invalid_combinations(args, message):
    with pytest.raises(ValueError, match=message):
        parse_arguments(VL_TYPES, args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--init_from_tiny", "--data_config", "d.yaml", "--crop_size_range", "896", "448"], "crop_size_range"),
        (["--init_from_tiny", "--data_config", "d.yaml", "--crop_size_range", "448"], "crop_size_range"),
        (["--init_from_tiny", "--vision_model_name_or_path", "dinov2", "--data_config", "d.yaml"], "exactly one of"),
        (["--init_from_tiny"], "--data_config"),
    ],
)
def test_invalid_detection_arguments(args, message):
    types = (DetectionModelArguments, DetectionDataArguments, GromaDetectionTrainingArguments)
    with pytest.raises(ValueError, match=message):
        parse_arguments(types, args)
