"""`from_pretrained` of damaged model and processor folders, and the `groma` CLI on them: the error (a one-line
reason in the CLI, no traceback) names the damaged file."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText

from transformers_groma import GromaForConditionalGeneration, GromaProcessor, GroundingGPTForConditionalGeneration
from transformers_groma.cli import main as groma_cli
from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor, tiny_groundinggpt_model


torch.set_num_threads(1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "groma"
    tiny_groma_model().save_pretrained(folder)
    tiny_groma_processor().save_pretrained(folder)
    return folder


def rewrite_weights(folder, change):
    state_dict = load_file(folder / "model.safetensors")
    change(state_dict)
    save_file(state_dict, folder / "model.safetensors", metadata={"format": "pt"})


def cut_projector(state_dict):
    key = "model.multi_modal_projector.linear_1.weight"
    state_dict[key] = state_dict[key][:, :5].contiguous()


def int32_head(state_dict):
    state_dict["lm_head.weight"] = (state_dict["lm_head.weight"] * 1000).to(torch.int32)


DAMAGE = {
    "corrupt config.json": (
        lambda folder: (folder / "config.json").write_text('{"model_type": "groma",'),
        r"config\.json",
    ),
    "config.json not an object": (lambda folder: (folder / "config.json").write_text("[1, 2]"), r"config\.json"),
    "truncated weights": (
        lambda folder: (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:5000]),
        r"model\.safetensors is damaged \(truncated or not a safetensors file\)",
    ),
    "mis-shaped weight": (
        lambda folder: rewrite_weights(folder, cut_projector),
        r"model\.safetensors holds `model\.multi_modal_projector\.linear_1\.weight` of shape \(64, 5\)",
    ),
    "integer weight": (
        lambda folder: rewrite_weights(folder, int32_head),
        r"model\.safetensors holds 1 non-floating-point weight\(s\), e\.g\. `lm_head\.weight` as I32",
    ),
}


@pytest.fixture
def damaged(saved, tmp_path, request):
    folder = tmp_path / "damaged"
    shutil.copytree(saved, folder)
    damage, message = DAMAGE[request.param]
    damage(folder)
    return folder, message


@pytest.mark.parametrize("damaged", sorted(DAMAGE), indirect=True)
@pytest.mark.parametrize("loader", [GromaForConditionalGeneration, AutoModelForImageTextToText])
def test_damaged_model_folder_names_the_file(damaged, loader):
    folder, message = damaged
    with pytest.raises((OSError, ValueError), match=message):
        loader.from_pretrained(folder)


@pytest.mark.parametrize("damaged", sorted(DAMAGE), indirect=True)
def test_cli_gives_a_one_line_reason_without_traceback(damaged, capsys):
    folder, message = damaged
    with pytest.raises(SystemExit) as exit_info:
        groma_cli(["predict", "--model", str(folder), "--device", "cpu"])
    reason = str(exit_info.value.code).splitlines()[0]
    assert reason.startswith("error: --model") and ("config.json" in reason or "model.safetensors" in reason)
    assert "Traceback" not in capsys.readouterr().err


def test_groundinggpt_truncated_weights_are_named(tmp_path):
    tiny_groundinggpt_model().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match=r"model\.safetensors is damaged"):
        GroundingGPTForConditionalGeneration.from_pretrained(tmp_path)


def test_missing_tokenizer_is_named_not_a_package_hint(saved, tmp_path):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(saved, folder)
    for name in ("tokenizer.json", "tokenizer.model"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match=r"no-tokenizer has no tokenizer: expected one of tokenizer\.json"):
        GromaProcessor.from_pretrained(folder)


def test_corrupt_processor_config_is_named(saved, tmp_path):
    folder = tmp_path / "bad-processor"
    shutil.copytree(saved, folder)
    (folder / "processor_config.json").write_text(json.dumps([1])[:-1])
    with pytest.raises((OSError, ValueError), match=r"processor_config\.json"):
        GromaProcessor.from_pretrained(folder)


def test_a_local_path_that_does_not_exist_is_not_reported_as_a_hub_id(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing is not a folder"):
        GromaForConditionalGeneration.from_pretrained(tmp_path / "missing")
