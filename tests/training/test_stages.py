"""End-to-end runs of the training scripts on tiny models: all three stages, LoRA, overfitting, resuming."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import LlamaConfig, LlamaForCausalLM

from transformers_groma import GromaForConditionalGeneration, GromaForRegionProposal
from transformers_groma.cli import main as cli_main
from transformers_groma.processing import GromaProcessor, rec_prompt
from transformers_groma.tiny import TINY_IMAGE_SIZE, tiny_groma_config, tiny_groma_model, tiny_groma_processor
from transformers_groma.training import (
    GromaDetectionTrainer,
    GromaDetectionTrainingArguments,
    InvalidRecordError,
)
from transformers_groma.training.run_detection import run as train_detection
from transformers_groma.training.run_vl import run as train_vl

from ..fixtures import skip_unless_ci
from .synthetic import CPU_ARGS, custom_lines, vicuna_like_tokenizer, write_jsonl, write_yaml_sources


STEPS = ["--max_steps", "3", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--save_strategy", "no"]


def state(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items() if name.startswith(prefix)}


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


def vl_mixture(tmp_path: Path, coco: dict) -> str:
    sources = [
        {"type": kind, "annotation_file": coco["annotation_file"], "image_dir": coco["image_dir"]}
        for kind in ("refcoco_rec", "coco_grounding", "refcoco_caption")
    ]
    return str(write_yaml_sources(tmp_path / "vl_mixture.yaml", sources))


def test_three_stages_end_to_end(tmp_path, coco):
    torch.manual_seed(0)
    config = tiny_groma_config()
    GromaForRegionProposal(config).save_pretrained(tmp_path / "dinov2_proposer")
    llm = LlamaForCausalLM(LlamaConfig(**{**config.text_config.to_dict(), "vocab_size": 1000, "pad_token_id": None}))
    llm.save_pretrained(tmp_path / "vicuna")
    vicuna_like_tokenizer().save_pretrained(tmp_path / "vicuna")

    # Stage 1: detection pretraining, DINOv2 frozen, class-agnostic AP on a validation file.
    detection_sources = [{"type": "coco_detection", **{k: coco[k] for k in ("annotation_file", "image_dir")}}]
    metrics = train_detection(
        ["--model_name_or_path", str(tmp_path / "dinov2_proposer"), "--image_size", str(TINY_IMAGE_SIZE)]
        + ["--data_config", str(write_yaml_sources(tmp_path / "det.yaml", detection_sources))]
        + ["--validation_annotation_file", coco["annotation_file"], "--validation_image_dir", coco["image_dir"]]
        + ["--output_dir", str(tmp_path / "stage1"), "--weight_decay", "1e-4", *STEPS, *CPU_ARGS]
    )
    assert {"train_loss", "eval_AP", "eval_AP50", "eval_AR100", "eval_loss"} <= metrics.keys()
    start = state(GromaForRegionProposal.from_pretrained(tmp_path / "dinov2_proposer"))
    stage1 = state(GromaForRegionProposal.from_pretrained(tmp_path / "stage1"))
    assert not changed(start, stage1) & {name for name in start if name.startswith("vision_tower.")}
    trained = changed(start, stage1)
    assert {"region_proposer.input_proj.weight", "region_proposer.enc_output.weight"} <= trained
    assert any("sampling_offsets" in name for name in trained)
    assert (tmp_path / "stage1" / "preprocessor_config.json").is_file()

    # Stage 2: proposer + Vicuna assembled; only bridge, region encoder and Groma-token rows train.
    mixture = vl_mixture(tmp_path, coco)
    train_vl(
        [
            "--stage",
            "align",
            "--vision_proposer_path",
            str(tmp_path / "stage1"),
            "--llm_path",
            str(tmp_path / "vicuna"),
        ]
        + ["--data_config", mixture, "--output_dir", str(tmp_path / "stage2"), *STEPS, *CPU_ARGS]
    )
    stage2_model = GromaForConditionalGeneration.from_pretrained(tmp_path / "stage2")
    stage2 = state(stage2_model)
    for name, tensor in stage1.items():
        assert torch.equal(stage2[f"model.{name}"], tensor), name
    vicuna = state(llm)
    for name, tensor in vicuna.items():
        ours = stage2[
            "lm_head.weight" if name == "lm_head.weight" else f"model.language_model.{name[len('model.') :]}"
        ]
        if ours.shape == tensor.shape:
            assert torch.equal(ours, tensor), name  # frozen LLM layers
        else:  # embeddings and LM head: base rows frozen, Groma rows trained
            assert torch.equal(ours[:1000], tensor), name
            assert not torch.equal(ours[1000:], vicuna[name][:1].expand(114, -1))
    roi = stage2_model.config.pad_token_id + 4  # <roi>, used in every answer
    assert not torch.equal(
        stage2["model.language_model.embed_tokens.weight"][roi], vicuna["model.embed_tokens.weight"].mean(0)
    )
    assert stage2_model.config.shuffle_regions and stage2_model.config.use_cache

    # Stage 3: everything but the vision side trains (with activation checkpointing).
    train_vl(
        ["--stage", "finetune", "--model_name_or_path", str(tmp_path / "stage2"), "--data_config", mixture]
        + ["--output_dir", str(tmp_path / "stage3"), "--activation_checkpointing", "true", *STEPS, *CPU_ARGS]
    )
    stage3_model = GromaForConditionalGeneration.from_pretrained(tmp_path / "stage3")
    stage3 = state(stage3_model)
    trained = changed(stage2, stage3)
    assert not {name for name in trained if name.startswith(("model.vision_tower.", "model.region_proposer."))}
    for prefix in ("model.multi_modal_projector.", "model.region_encoder.", "model.language_model.layers.", "lm_head"):
        assert any(name.startswith(prefix) for name in trained), prefix

    # The saved folder is a working Groma: processor + model generate.
    processor = GromaProcessor.from_pretrained(tmp_path / "stage3")
    messages = [{"role": "user", "content": rec_prompt("the red square")}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[torch.zeros(3, 120, 160, dtype=torch.uint8)], text=[prompt], return_tensors="pt")
    generated = stage3_model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, inputs["input_ids"].shape[1] + 3)
    assert "groma" in (tmp_path / "stage3" / "README.md").read_text()


def test_detection_optimizer_scales_sampling_offsets(tmp_path):
    args = GromaDetectionTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], weight_decay=0.1)
    trainer = GromaDetectionTrainer(model=GromaForRegionProposal(tiny_groma_config()), args=args)
    optimizer = trainer.create_optimizer()
    names = {id(parameter): name for name, parameter in trainer.model.named_parameters()}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            name = names[id(parameter)]
            assert group["lr"] == pytest.approx(args.learning_rate * (0.1 if "sampling_offsets" in name else 1.0))
            assert group["weight_decay"] == (0.0 if name.endswith("bias") or "norm" in name else 0.1)
    assert sum(len(group["params"]) for group in optimizer.param_groups) == sum(
        parameter.requires_grad for parameter in trainer.model.parameters()
    )


def custom_args(jsonl: Path, coco: dict, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--stage",
        "custom",
        "--init_from_tiny",
        "--train_file",
        str(jsonl),
        "--image_dir",
        coco["image_dir"],
        "--output_dir",
        str(output_dir),
        *extra,
        *CPU_ARGS,
    ]


@pytest.mark.parametrize("padding_free", ["false", "true"])
def test_tiny_model_overfits_a_handful_of_samples(tmp_path, coco, custom_jsonl, padding_free):
    train_vl(
        custom_args(custom_jsonl, coco, tmp_path / "overfit")
        + ["--max_steps", "30", "--per_device_train_batch_size", "3", "--learning_rate", "3e-3"]
        + ["--lr_scheduler_type", "constant", "--logging_steps", "1", "--save_strategy", "no"]
        + ["--padding_free", padding_free]
    )
    history = json.loads((tmp_path / "overfit" / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 30
    assert sum(losses[-3:]) / 3 < 0.25 * losses[0], losses


def test_resume_continues_with_the_same_data_and_step(tmp_path, coco, custom_jsonl):
    for seed in (0, 1):  # two different initial models
        torch.manual_seed(seed)
        GromaForConditionalGeneration(tiny_groma_config()).save_pretrained(tmp_path / f"init{seed}")
        tiny_groma_processor().save_pretrained(tmp_path / f"init{seed}")

    def run(initial_model: str, output_dir: Path) -> None:
        args = custom_args(custom_jsonl, coco, output_dir, "--max_steps", "4", "--per_device_train_batch_size", "2")
        args[args.index("--init_from_tiny")] = "--model_name_or_path"
        args.insert(args.index("--model_name_or_path") + 1, str(tmp_path / initial_model))
        train_vl(args + ["--learning_rate", "1e-3", "--save_strategy", "steps", "--save_steps", "2"])

    run("init0", tmp_path / "uninterrupted")
    shutil.copytree(tmp_path / "uninterrupted" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    # Starting from another model, the run only ends where the uninterrupted one did if it resumes checkpoint-2
    # (auto_resume) and then trains steps 3-4 (which cross into epoch 2) on the same batches.
    run("init1", tmp_path / "resumed")
    final = [
        state(GromaForConditionalGeneration.from_pretrained(tmp_path / name)) for name in ("uninterrupted", "resumed")
    ]
    assert not changed(*final)
    history = json.loads((tmp_path / "resumed" / "trainer_state.json").read_text())
    assert history["global_step"] == 4


def test_lora_output_is_merged_into_a_full_model_folder(tmp_path, coco, custom_jsonl, capsys):
    output_dir = tmp_path / "lora-merged"
    train_vl(custom_args(custom_jsonl, coco, output_dir, "--lora_r", "4", *STEPS))
    assert not (output_dir / "adapter_config.json").exists()
    model = GromaForConditionalGeneration.from_pretrained(output_dir)
    assert not any("lora_" in name for name in model.state_dict())
    assert changed(
        state(tiny_groma_model(), "model.language_model.layers."), state(model, "model.language_model.layers.")
    )
    capsys.readouterr()  # the training logs
    cli_main(["predict", "--model", str(output_dir), "--max_new_tokens", "2", "--json"])
    assert json.loads(capsys.readouterr().out)[0]["query"]


def test_lora_adapters_train_and_merge(tmp_path, coco, custom_jsonl):
    output_dir = tmp_path / "lora"
    train_vl(custom_args(custom_jsonl, coco, output_dir, "--lora_r", "4", "--merge_lora", "false", *STEPS))
    assert (output_dir / "adapter_config.json").is_file() and (output_dir / "processor_config.json").is_file()
    torch.manual_seed(0)
    base = GromaForConditionalGeneration(tiny_groma_config())
    before = state(base)
    model = PeftModel.from_pretrained(base, output_dir)
    lora_b = [tensor for name, tensor in model.state_dict().items() if "lora_B" in name]
    assert lora_b and all("language_model" in name for name in model.state_dict() if "lora_" in name)
    assert any(tensor.abs().sum() > 0 for tensor in lora_b)  # lora_B starts at zero
    merged = state(model.merge_and_unload())
    trained = changed(before, merged)
    assert any(name.startswith("model.language_model.layers.") for name in trained)
    assert any(name.startswith("model.multi_modal_projector.") for name in trained)  # trained in full, saved too
    assert not any(name.startswith(("model.vision_tower.", "model.region_proposer.", "lm_head")) for name in trained)


def test_bad_records_stop_the_run_unless_skipped(tmp_path, coco):
    lines = custom_lines(coco)
    lines[3] = {**lines[3], "boxes": [[0, 0, 10_000, 10], [0, 0, 5, 5]]}
    jsonl = write_jsonl(tmp_path / "train.jsonl", lines)
    one_step = ["--max_steps", "1", "--per_device_train_batch_size", "2"]
    with pytest.raises(InvalidRecordError, match="record sample-4: .*not inside the image"):
        train_vl(custom_args(jsonl, coco, tmp_path / "strict", *one_step))
    metrics = train_vl(custom_args(jsonl, coco, tmp_path / "lenient", *one_step, "--skip_bad_records", "true"))
    assert metrics["train_loss"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--weight_decay", "0.1"], "weight_decay"), (["--lora_r", "4"], "LoRA adapts the LLM")],
)
def test_align_stage_argument_errors(tmp_path, custom_jsonl, extra, message):
    args = ["--stage", "align", "--init_from_tiny", "--train_file", str(custom_jsonl), "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=message):
        train_vl(args + extra + CPU_ARGS)


def test_console_script_exits_with_status_zero(tmp_path, coco, custom_jsonl):
    """`groma-train` (the installed console script) returns no value from main(), so a good run exits 0."""
    script = shutil.which("groma-train")
    if script is None:
        skip_unless_ci("the package's console scripts are not installed (pip install -e .)")
    args = custom_args(custom_jsonl, coco, tmp_path / "cli", "--max_steps", "1", "--per_device_train_batch_size", "2")
    result = subprocess.run([script, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "cli" / "train_results.json").is_file()
