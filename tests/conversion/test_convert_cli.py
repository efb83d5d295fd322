"""`groma-convert` on the fixture in every weight layout, the detection checkpoint, and its failure modes."""

import json
import shutil
import subprocess
import sys

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoImageProcessor, AutoModelForImageTextToText

from transformers_groma import GromaForRegionProposal
from transformers_groma.conversion import main

from ..fixtures import GROMA_FIXTURE, requires_groma_fixture


pytestmark = requires_groma_fixture
TINY_ARGS = ["--image_size", "112", "--override", "region_fuse_groups=8"]


def copy_fixture(tmp_path, weights="safetensors"):
    """The fixture checkpoint with its weights in another of the released layouts."""
    folder = tmp_path / f"original-{weights}"
    folder.mkdir()
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
    ):
        shutil.copy(GROMA_FIXTURE / name, folder / name)
    state_dict = load_file(GROMA_FIXTURE / "model.safetensors")
    if weights == "safetensors":
        shutil.copy(GROMA_FIXTURE / "model.safetensors", folder / "model.safetensors")
    elif weights == "bin":
        torch.save(state_dict, folder / "pytorch_model.bin")
    elif weights == "sharded-bin":
        keys = sorted(state_dict)
        shards = {"pytorch_model-00001-of-00002.bin": keys[::2], "pytorch_model-00002-of-00002.bin": keys[1::2]}
        for shard, shard_keys in shards.items():
            torch.save({k: state_dict[k] for k in shard_keys}, folder / shard)
        index = {"weight_map": {k: shard for shard, shard_keys in shards.items() for k in shard_keys}}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("weights", ["bin", "sharded-bin"])
def test_pickled_layouts_convert_to_the_same_weights(tmp_path, weights):
    main(["--input_dir", str(copy_fixture(tmp_path, weights)), "--output_dir", str(tmp_path / "out"), *TINY_ARGS])
    main(["--input_dir", str(GROMA_FIXTURE), "--output_dir", str(tmp_path / "ref"), *TINY_ARGS])
    converted, reference = (
        load_file(tmp_path / "out" / "model.safetensors"),
        load_file(tmp_path / "ref" / "model.safetensors"),
    )
    assert converted.keys() == reference.keys()
    assert all(torch.equal(converted[k], reference[k]) for k in reference)


def test_console_script_writes_a_complete_folder_and_bf16(tmp_path):
    output_dir = tmp_path / "bf16"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "transformers_groma.conversion",
            "--input_dir",
            str(GROMA_FIXTURE),
            "--output_dir",
            str(output_dir),
            "--dtype",
            "bfloat16",
            *TINY_ARGS,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "all keys mapped, reloaded weights identical" in result.stdout
    names = {p.name for p in output_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
        "README.md",
    } <= names
    weights = load_file(output_dir / "model.safetensors")
    vision_path = ("model.vision_tower.", "model.region_proposer.", "model.region_encoder.")
    assert {name.startswith(vision_path) for name in weights} == {True, False}
    for name, tensor in weights.items():  # the vision path stays float32, as `from_pretrained` will load it
        assert tensor.dtype == (torch.float32 if name.startswith(vision_path) else torch.bfloat16), name
    model = AutoModelForImageTextToText.from_pretrained(output_dir, dtype="auto")
    assert model.dtype == torch.bfloat16 and model.model.vision_tower.dtype == torch.float32
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "groma" and "vis_encoder_path" not in json.dumps(config)
    assert json.loads((output_dir / "generation_config.json").read_text())["do_sample"] is False


def test_bf16_without_the_float32_vision_path(tmp_path):
    main(
        ["--input_dir", str(GROMA_FIXTURE), "--output_dir", str(tmp_path / "out"), "--dtype", "bfloat16", *TINY_ARGS]
        + ["--override", "keep_vision_path_fp32=false"]
    )
    assert all(t.dtype == torch.bfloat16 for t in load_file(tmp_path / "out" / "model.safetensors").values())


def test_detection_checkpoint_converts_to_region_proposal_model(tmp_path):
    folder = tmp_path / "det"
    folder.mkdir()
    original = json.loads((GROMA_FIXTURE / "config.json").read_text())["perceiver_cfg"]
    (folder / "config.json").write_text(json.dumps(original))
    state_dict = load_file(GROMA_FIXTURE / "model.safetensors")
    save_file(
        {k.removeprefix("perceiver."): v for k, v in state_dict.items() if k.startswith("perceiver.")},
        folder / "model.safetensors",
    )
    main(["--input_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--image_size", "112"])
    image_processor = AutoImageProcessor.from_pretrained(tmp_path / "out")
    assert type(image_processor).__name__ == "GromaImageProcessor"
    assert image_processor(images=Image.new("RGB", (50, 30)), return_tensors="pt")["pixel_values"].shape[-2:] == (
        112,
        112,
    )
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.pipeline_tag == "object-detection" and "vicuna" not in str(card.data.base_model)
    assert card.data.license == "apache-2.0"  # DINOv2 + proposer: no Vicuna weights
    assert 'pipeline("object-detection"' in card.text and "generate(" not in card.text
    assert "merged vocabulary" not in card.text
    model = GromaForRegionProposal.from_pretrained(tmp_path / "out").eval()
    inputs, expected = (
        load_file(GROMA_FIXTURE / "inputs.safetensors"),
        load_file(GROMA_FIXTURE / "expected.safetensors"),
    )
    with torch.no_grad():
        out = model(inputs["pixel_values"])
    torch.testing.assert_close(out.pred_boxes, expected["proposer_pred_boxes"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.scores, expected["proposer_scores_fused"], atol=1e-4, rtol=1e-4)


def test_a_path_that_looks_like_a_repo_id_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a local folder, and downloading it as a Hub repo id failed"):
        main(["--input_dir", "missing/checkpoint", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_missing_vocabulary_part_is_named(tmp_path):
    folder = copy_fixture(tmp_path)
    state_dict = load_file(folder / "model.safetensors")
    del state_dict["new_input_embs.weight"]
    save_file(state_dict, folder / "model.safetensors")
    with pytest.raises(KeyError, match="new_input_embs.weight"):
        main(["--input_dir", str(folder), "--output_dir", str(tmp_path / "out"), *TINY_ARGS])
    assert not (tmp_path / "out").exists()


def test_missing_files_raise_and_write_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        main(["--input_dir", str(empty), "--output_dir", str(tmp_path / "out")])
    folder = copy_fixture(tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no weights"):
        main(["--input_dir", str(folder), "--output_dir", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        main(["--input_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_wrong_model_type_raises(tmp_path):
    folder = copy_fixture(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    with pytest.raises(ValueError, match="model_type='llava'"):
        main(["--input_dir", str(folder), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_truncated_state_dict_raises_and_leaves_no_partial_output(tmp_path):
    folder = copy_fixture(tmp_path)
    state_dict = load_file(folder / "model.safetensors")
    del state_dict["region_encoder.roi_align.updims.weight"]
    save_file(state_dict, folder / "model.safetensors")
    with pytest.raises(KeyError, match="missing"):
        main(["--input_dir", str(folder), "--output_dir", str(tmp_path / "out"), *TINY_ARGS])
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_refuses_to_overwrite_a_non_empty_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        main(["--input_dir", str(GROMA_FIXTURE), "--output_dir", str(tmp_path / "out"), *TINY_ARGS])
    assert (tmp_path / "out" / "keep.txt").read_text() == "user data"
