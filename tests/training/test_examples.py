"""The example configurations parse, and the toy-data script writes data the scripts can read."""

import runpy
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from transformers_groma.tiny import tiny_groma_processor
from transformers_groma.training import (
    DataArguments,
    DetectionDataArguments,
    DetectionModelArguments,
    GromaDetectionTrainingArguments,
    GromaTrainingArguments,
    ModelArguments,
    build_conversation_mixture,
    load_data_config,
    parse_arguments,
)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NO_GPU = ["--bf16", "false", "--tf32", "false"]  # the paper's precision settings need a GPU to validate


def test_detection_config():
    model_args, data_args, training_args = parse_arguments(
        (DetectionModelArguments, DetectionDataArguments, GromaDetectionTrainingArguments),
        [str(EXAMPLES / "stage1_detection.yaml"), *NO_GPU],
    )
    assert model_args.freeze_vision_tower and data_args.image_size == 448
    assert training_args.per_device_train_batch_size * 8 == 64 and training_args.num_train_epochs == 12
    assert training_args.learning_rate == 2e-4 and training_args.lr_multiplier_patterns == ["sampling_offsets"]


@pytest.mark.parametrize(
    ("name", "stage", "learning_rate", "epochs"),
    [
        ("stage2_align", "align", 1e-4, 2),
        ("stage3_finetune", "finetune", 1e-5, 1),
        ("custom_finetune", "custom", 1e-5, 3),
    ],
)
def test_vl_configs(name, stage, learning_rate, epochs):
    model_args, _, training_args = parse_arguments(
        (ModelArguments, DataArguments, GromaTrainingArguments), [str(EXAMPLES / f"{name}.yaml"), *NO_GPU]
    )
    assert model_args.stage == stage and training_args.num_train_epochs == epochs
    assert training_args.learning_rate == learning_rate and training_args.weight_decay == 0.0
    if name != "custom_finetune":
        global_batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * 8
        assert global_batch == 128


def source_ratios(name: str) -> dict[str, float]:
    """`{source name: ratio}` of an example mixture (names are `type:annotation file name`)."""
    sources = load_data_config(str(EXAMPLES / "data" / f"{name}.yaml"))
    assert len({source.name for source in sources}) == len(sources)
    return {source.name: source.ratio for source in sources}


def test_mixtures_follow_the_paper():
    detection = source_ratios("stage1_detection")
    assert len(detection) == 5 and set(detection.values()) == {1.0}
    refcoco = {f"refcoco_rec:{name}_train.json": 1.0 for name in ("refcoco", "refcoco+", "refcocog")}
    assert source_ratios("stage2_align") == {
        "llava:share-captioner_coco_lcs_sam_1246k_1107.json": 1.0,
        **refcoco,
        "flickr30k:flickr_entities_train.json": 1.0,
        "vg_single:vg_train_single.json": 0.2,
        "grit:grit_filtered_10m.json": 0.1,
        "refcoco_caption:refcocog_train.json": 1.0,
        "coco_grounding:instances_train2017.json": 1.0,
    }
    assert source_ratios("stage3_finetune") == {
        **refcoco,
        "flickr30k:flickr_entities_train.json": 1.0,
        "llava:llava_conversation_reasoning.json": 1.0,
        "llava:sharegpt4v_instruct_gpt4-vision_cap100k.json": 0.23,
        "vg_multi:vg_train_multi.json": 1.0,
        "refcoco_caption:refcocog_train.json": 1.0,
        "coco_grounding:instances_train2017.json": 0.5,
        "groma_instruct:groma_instruct.json": 1.0,
    }


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_accelerate_configs_load(name):
    config = load_config_from_file(str(EXAMPLES / "accelerate" / f"{name}.yaml"))
    assert config.num_processes == 8
    if name == "fsdp":
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    if name.startswith("deepspeed"):
        assert (EXAMPLES.parent / config.deepspeed_config["deepspeed_config_file"]).is_file()


def test_toy_data_builds_a_mixture(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["make_toy_data.py", str(tmp_path), "--num_images", "4"])
    runpy.run_path(str(EXAMPLES / "make_toy_data.py"), run_name="__main__")
    processor = tiny_groma_processor()
    sources = load_data_config(str(tmp_path / "mixture.yaml"))
    mixture = build_conversation_mixture(sources, processor.tokenizer, processor.image_processor, "llava", 2048, 8, 0)
    assert mixture.source_sizes == [4, 4, 4]
    assert mixture[0]["ground_boxes"].shape == (1, 4)
