"""Instruction-stage training of GroundingGPT: the entry point on toy data in the original format, labels token by
token, truncation, batching, frozen encoders, malformed records and the example configuration."""

import json
import logging
import runpy
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from PIL import Image
from safetensors.torch import load_file
from transformers import set_seed

from transformers_groma import GroundingGPTForConditionalGeneration
from transformers_groma.tiny import tiny_groundinggpt_config, tiny_groundinggpt_processor
from transformers_groma.tokens import IGNORE_INDEX
from transformers_groma.training import InvalidRecordError, parse_arguments
from transformers_groma.training.groundinggpt import (
    GroundingGPTDataArguments,
    GroundingGPTDataCollator,
    GroundingGPTModelArguments,
    GroundingGPTTrainingArguments,
    build_groundinggpt_mixture,
    chat_messages,
    configure_groundinggpt_trainable,
    encode_conversation,
)
from transformers_groma.training.groundinggpt.model_setup import (
    FROZEN_MODULES,
    FROZEN_PARAMETERS,
    LORA_MODULES_TO_SAVE,
)
from transformers_groma.training.run_groundinggpt import main


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "groundinggpt"
CPU_ARGS = ["--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0"]
FROZEN = (*FROZEN_MODULES, *FROZEN_PARAMETERS)
ANSWERS = ["The red square[0.100, 0.200, 0.500, 0.600].", "In {0.25, 0.75}."]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """The example toy dataset: 2 samples x 4 tasks (image, video, sound, image + sound) in the original format."""
    root = tmp_path_factory.mktemp("toy")
    argv = sys.argv
    sys.argv = ["make_toy_data.py", str(root), "--num_samples", "2"]
    try:
        runpy.run_path(str(EXAMPLES / "make_toy_data.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return root


def data_args(toy: Path, **overrides) -> GroundingGPTDataArguments:
    settings = {f"{kind}_folder": str(toy / f"{kind}s") for kind in ("image", "video", "sound")}
    return GroundingGPTDataArguments(**{"data_path": str(toy / "train.json"), **settings, **overrides})


def folder_args(toy: Path) -> list[str]:
    return [
        argument for kind in ("image", "video", "sound") for argument in (f"--{kind}_folder", str(toy / f"{kind}s"))
    ]


def record(toy: Path, *kinds: str) -> dict:
    """A two-exchange record with the given media of the toy data."""
    files = {"image": "images/000.png", "video": "videos/000.mp4", "sound": "sounds/000.wav"}
    return {
        "id": "#0",
        **{kind: str(toy / files[kind]) if kind in kinds else "" for kind in files},
        "messages": [
            {"role": "user", "content": "Where is it?"},
            {"role": "assistant", "content": ANSWERS[0]},
            {"role": "user", "content": "And when?"},
            {"role": "assistant", "content": ANSWERS[1]},
        ],
    }


def test_entry_point_trains_the_adapters_and_llm_only(toy, tmp_path):
    output_dir = tmp_path / "run"
    main(
        ["--init_from_tiny", "--data_path", str(toy / "train.json"), *folder_args(toy)]
        + ["--output_dir", str(output_dir), "--max_steps", "4", "--per_device_train_batch_size", "2"]
        + ["--learning_rate", "1e-3", "--save_strategy", "no", *CPU_ARGS]
    )
    metrics = json.loads((output_dir / "train_results.json").read_text())
    assert metrics["epoch"] == 1.0 and metrics["train_loss"] > 0
    assert (output_dir / "processor_config.json").is_file()
    trained = GroundingGPTForConditionalGeneration.from_pretrained(output_dir)
    set_seed(42)  # the run's seed: the same random initialisation
    initial = GroundingGPTForConditionalGeneration(tiny_groundinggpt_config())
    before, after = initial.state_dict(), trained.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    frozen = {name for name in before if name.startswith(FROZEN)}
    assert frozen and not changed & frozen
    assert changed == {name for name, _ in initial.named_parameters()} - frozen


def test_frozen_encoders_stay_in_eval_mode():
    model = GroundingGPTForConditionalGeneration(tiny_groundinggpt_config())
    configure_groundinggpt_trainable(model)
    model.train()
    ids = torch.tensor([[1, 104, 103, 103, 103, 105, 5, 6]])
    model(input_ids=ids, pixel_values_videos=torch.randn(1, 3, 4, 28, 28), labels=ids).loss.backward()
    video_encoder = model.model.video_encoder  # its frozen parts ran in eval mode, the rest in training mode
    assert not video_encoder.vision_tower.training and not video_encoder.frame_qformer.training
    assert video_encoder.temporal_qformer.training and model.model.language_model.training
    assert all(parameter.grad is None for name, parameter in model.named_parameters() if name.startswith(FROZEN))


def supervised_runs(input_ids: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """Runs of consecutive supervised positions, as token ids."""
    runs, previous = [], IGNORE_INDEX
    for token, label in zip(input_ids.tolist(), labels.tolist()):
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(token)
        previous = label
    return runs


@pytest.mark.parametrize("kinds", [(), ("image",), ("video",), ("sound",), ("image", "video", "sound")])
def test_labels_supervise_exactly_the_answers_token_by_token(toy, kinds):
    processor = tiny_groundinggpt_processor()
    sample = record(toy, *kinds)
    item = encode_conversation(processor, sample, 2048)
    input_ids, labels = item["input_ids"], item["labels"]

    messages = chat_messages(sample)
    media = {}
    if "image" in kinds:
        media["images"] = [Image.open(sample["image"]).convert("RGB")]
    media.update(
        {argument: [sample[kind]] for kind, argument in (("video", "videos"), ("sound", "audio")) if kind in kinds}
    )

    def ids_of(prompt: str) -> torch.Tensor:
        return processor(text=prompt, **media, return_tensors="pt")["input_ids"][0]

    # The ids are the inference ids of the whole conversation.
    assert torch.equal(input_ids, ids_of(processor.apply_chat_template(messages, tokenize=False)))
    # Token by token: answer k is supervised from the end of the prompt that asks for it (`...###Assistant:`) to the
    # end of its turn; everything else is -100.
    expected = torch.full_like(input_ids, IGNORE_INDEX)
    for index in (1, 3):
        start = len(
            ids_of(processor.apply_chat_template(messages[:index], add_generation_prompt=True, tokenize=False))
        )
        end = len(ids_of(processor.apply_chat_template(messages[: index + 1], tokenize=False)))
        expected[start:end] = input_ids[start:end]
    assert torch.equal(labels, expected)
    decoded = [processor.tokenizer.decode(run) for run in supervised_runs(input_ids, labels)]
    assert [text.strip() for text in decoded] == [answer + "###" for answer in ANSWERS]
    media_keys = {
        "image": {"pixel_values"},
        "video": {"pixel_values_videos", "video_num_frames"},
        "sound": {"input_features"},
    }
    assert set(item) == {"input_ids", "labels"}.union(*(media_keys[kind] for kind in kinds))


def test_long_conversations_lose_whole_trailing_exchanges(toy, caplog):
    processor = tiny_groundinggpt_processor()
    sample = record(toy, "image")
    with caplog.at_level(logging.WARNING):
        full = encode_conversation(processor, sample, 2048)
    assert not caplog.records
    first_answer_end = int((full["labels"] != IGNORE_INDEX).nonzero()[0]) + len(ANSWERS[0]) + 4  # "▁" + "###"
    with caplog.at_level(logging.WARNING):
        truncated = encode_conversation(processor, sample, len(full["input_ids"]) - 1)
    (warning,) = caplog.records
    assert f"Record #0: {len(full['input_ids'])} tokens" in warning.message
    assert "training on its first 1 of 2 exchanges" in warning.message
    assert len(truncated["input_ids"]) == first_answer_end
    assert torch.equal(truncated["input_ids"], full["input_ids"][:first_answer_end])
    assert processor.tokenizer.decode(truncated["input_ids"][-3:]) == "###"
    with pytest.raises(ValueError, match=f"first exchange alone is {first_answer_end} tokens"):
        encode_conversation(processor, sample, first_answer_end - 1)


def test_collator_stacks_each_modality_in_sample_order():
    def item(length: int, **media) -> dict:
        return {"input_ids": torch.arange(1, length + 1), "labels": torch.arange(1, length + 1), **media}

    video = {"pixel_values_videos": torch.ones(1, 3, 2, 28, 28), "video_num_frames": torch.tensor([2])}
    long_video = {"pixel_values_videos": torch.full((1, 3, 4, 28, 28), 2.0), "video_num_frames": torch.tensor([4])}
    features = [
        item(3, pixel_values=torch.zeros(1, 3, 28, 28), **video),
        item(5, input_features=torch.zeros(1, 3, 1, 32, 24)),
        item(4, pixel_values=torch.ones(1, 3, 28, 28), **long_video),
    ]
    batch = GroundingGPTDataCollator(pad_token_id=0)(features)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0, 0], [1, 2, 3, 4, 5], [1, 2, 3, 4, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5, [1, 1, 1, 1, 0]]
    assert batch["labels"][0].tolist() == [1, 2, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["pixel_values"][:, 0, 0, 0].tolist() == [0.0, 1.0]
    assert batch["pixel_values_videos"].shape == (2, 3, 4, 28, 28) and batch["video_num_frames"].tolist() == [2, 4]
    assert batch["pixel_values_videos"][0, 0, :, 0, 0].tolist() == [1.0, 1.0, 0.0, 0.0]  # zero-padded frames
    assert batch["input_features"].shape == (1, 3, 1, 32, 24)


def test_a_mixed_batch_of_the_toy_data_trains_the_model(toy):
    mixture = build_groundinggpt_mixture(str(toy / "train.json"), tiny_groundinggpt_processor(), data_args(toy), 0)
    batch = GroundingGPTDataCollator(pad_token_id=0)([mixture[index] for index in range(4)])
    assert batch["pixel_values"].shape[0] == 2 and batch["input_features"].shape[0] == 2
    loss = GroundingGPTForConditionalGeneration(tiny_groundinggpt_config())(**batch).loss
    assert torch.isfinite(loss)


def conversation(first: str, *rest: str) -> list[dict]:
    turns = [first, "An answer.", *rest]
    return [{"from": ("human", "gpt")[index % 2], "value": text} for index, text in enumerate(turns)]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"image": "000.png", "conversations": conversation("Where?")},
            r"0 <image> placeholder\(s\) but the record has 1 `image`",
        ),
        (
            {"conversations": conversation("<video>\nWhen?")},
            r"1 <video> placeholder\(s\) but the record has 0 `video`",
        ),
        (
            {"image": "000.png", "conversations": conversation("<image>\nWhat?", "<image>\nAnd?", "Yes.")},
            "turn 2 contains <image>",
        ),
        (
            {"sound": "missing.wav", "conversations": conversation("<sound>\nHear?")},
            "sound file .*missing.wav' does not exist",
        ),
        ({"conversations": conversation("Hi <im_patch>")}, "turn 0 contains <im_patch>"),
        ({"conversations": conversation("Hi", "Again?")}, "the conversation has 3 turns"),
        ({"image": "000.png"}, r"malformed entry \(KeyError\('conversations'\)\)"),
    ],
)
def test_malformed_records_are_named(toy, tmp_path, entry, message):
    good = {"image": "000.png", "conversations": conversation("<image>\nWhere?")}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good, entry]))
    args = data_args(toy, data_path=str(path))
    with pytest.raises(InvalidRecordError, match=f"groundinggpt:bad.json: record #1: .*{message}"):
        build_groundinggpt_mixture(str(path), tiny_groundinggpt_processor(), args, 0)
    args.skip_bad_records = True
    assert len(build_groundinggpt_mixture(str(path), tiny_groundinggpt_processor(), args, 0)) == 1


def test_undecodable_media_and_bad_records_stop_the_entry_point(toy, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    entries = [{"video": str(tmp_path / "broken.mp4"), "conversations": conversation("<video>\nWhen?")}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(entries))
    mixture = build_groundinggpt_mixture(str(path), tiny_groundinggpt_processor(), data_args(toy), 0)
    with pytest.raises(InvalidRecordError, match=r"groundinggpt:bad.json: record #0: `videos`: could not decode"):
        mixture[0]
    path.write_text(json.dumps([{"conversations": conversation("<image>\nWhere?")}]))
    with pytest.raises(InvalidRecordError, match="record #0: the first turn has 1 <image>"):
        main(["--init_from_tiny", "--data_path", str(path), "--output_dir", str(tmp_path / "run"), *CPU_ARGS])
    with pytest.raises(ValueError, match="padding_free"):
        main(["--init_from_tiny", "--data_path", str(path), "--output_dir", str(tmp_path / "run")]
             + ["--padding_free", "true", *CPU_ARGS])  # fmt: skip


def test_example_configuration_follows_the_original_finetune_script():
    model_args, data_args_, training_args = parse_arguments(
        (GroundingGPTModelArguments, GroundingGPTDataArguments, GroundingGPTTrainingArguments),
        [str(EXAMPLES / "instruction.yaml"), "--bf16", "false", "--tf32", "false"],
    )
    assert model_args.model_name_or_path and not model_args.init_from_tiny
    assert len(data_args_.data_path.split(",")) == 4 and data_args_.model_max_length == 2048
    assert training_args.learning_rate == 2e-5 and training_args.weight_decay == 0.0
    assert training_args.per_device_train_batch_size == 32 and training_args.gradient_accumulation_steps == 2
    assert training_args.num_train_epochs == 1 and not training_args.group_by_source


def test_lora_trains_adapters_and_the_projections_only(toy, tmp_path):
    output_dir = tmp_path / "lora"
    main(
        ["--init_from_tiny", "--data_path", str(toy / "train.json"), *folder_args(toy), "--lora_r", "4"]
        + ["--output_dir", str(output_dir), "--max_steps", "2", "--per_device_train_batch_size", "2"]
        + ["--learning_rate", "1e-2", "--save_strategy", "no", *CPU_ARGS]
    )
    adapter = load_file(output_dir / "adapter_model.safetensors")
    lora_b = {name: tensor for name, tensor in adapter.items() if "lora_B" in name}
    assert lora_b and all(".language_model.layers." in name for name in lora_b)
    assert any(tensor.abs().sum() > 0 for tensor in lora_b.values())  # lora_B starts at zero
    saved_in_full = {name for name in adapter if "lora_" not in name}
    for module in LORA_MODULES_TO_SAVE:
        assert any(f"{module}." in name for name in saved_in_full), module
    assert not any("qformer" in name or "embed_tokens" in name for name in adapter)

    set_seed(42)  # the run's seed: the same random initialisation
    base = GroundingGPTForConditionalGeneration(tiny_groundinggpt_config())
    merged = PeftModel.from_pretrained(base, output_dir).merge_and_unload()
    projection = merged.model.image_encoder.projector.linear_1.weight
    set_seed(42)
    assert not torch.equal(
        projection,
        GroundingGPTForConditionalGeneration(tiny_groundinggpt_config()).model.image_encoder.projector.linear_1.weight,
    )
    card = (output_dir / "README.md").read_text()
    assert "LoRA adapter" in card and "[](" not in card
