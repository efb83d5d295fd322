"""Training data and resuming on bad inputs and faults: errors name the file and record, and no run is lost."""

import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from transformers_groma.training import CONVERSATION_ADAPTERS, DataSource, InvalidRecordError, build_records
from transformers_groma.training.records import check_conversation_record
from transformers_groma.training.run_vl import run as train_vl
from transformers_groma.training.sources import read_json
from transformers_groma.training.trainer import resolve_checkpoint

from ..training.synthetic import custom_lines, make_coco, write_jsonl
from ..training.test_stages import custom_args


SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def coco(tmp_path):
    return make_coco(tmp_path / "coco", num_images=4)


def build(path: Path, coco: dict):
    source = DataSource("custom", str(path), coco["image_dir"])
    return build_records(
        source, CONVERSATION_ADAPTERS["custom"], lambda r: check_conversation_record(r, max_refer_boxes=8), 0, False
    )


def test_non_utf8_jsonl_line_names_the_file_and_line(coco, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", custom_lines(coco))
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b"Locate", "Localis\u00e9".encode("latin-1"))  # a latin-1 byte in a UTF-8 file
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InvalidRecordError, match=r"custom:train\.jsonl: record line 3: not UTF-8"):
        build(path, coco)


def test_non_utf8_annotation_json_names_the_file(tmp_path):
    path = tmp_path / "coco.json"
    path.write_bytes(b'{"images": ["caf\xe9"]}')
    with pytest.raises(ValueError, match=r"coco\.json is not a UTF-8 JSON file"):
        read_json(str(path))


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_truncated_image_with_an_intact_header_fails_the_data_check(coco, tmp_path, image_format):
    pixels = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format)
    name = f"truncated.{image_format.lower()}"
    (Path(coco["image_dir"]) / name).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    with Image.open(Path(coco["image_dir"]) / name) as image:
        assert image.size == (160, 120)  # the header alone looks fine
    lines = custom_lines(coco)
    lines[1] = {**lines[1], "image": name}
    with pytest.raises(InvalidRecordError, match=rf"record sample-2: image file .*{name}"):
        build(write_jsonl(tmp_path / "train.jsonl", lines), coco)


@pytest.mark.parametrize("field", ["box_ids", "boxes"])
def test_booleans_are_not_box_indices_nor_coordinates(coco, tmp_path, field):
    lines = custom_lines(coco)
    turns = lines[0]["conversations"]
    if field == "box_ids":
        turns[1] = {**turns[1], "box_ids": [True]}  # would be read as index 1
    else:
        lines[0]["boxes"][0] = [True, 0, 40, 40]
    with pytest.raises(InvalidRecordError, match=rf"record sample-1: .*{field}"):
        build(write_jsonl(tmp_path / "train.jsonl", lines), coco)


def args_for(output_dir: Path, auto_resume: bool = True, resume_from_checkpoint=None) -> SimpleNamespace:
    return SimpleNamespace(
        output_dir=str(output_dir), auto_resume=auto_resume, resume_from_checkpoint=resume_from_checkpoint
    )


def write_checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


@pytest.mark.parametrize("damage", ["missing", "half-written"])
def test_resume_skips_newer_incomplete_checkpoints_and_names_them(tmp_path, caplog, damage):
    complete = write_checkpoint(tmp_path / "checkpoint-2", 2)
    broken = write_checkpoint(tmp_path / "checkpoint-10", 10, complete=False)
    if damage == "half-written":
        (broken / "trainer_state.json").write_text('{"global_step": 1')
    with caplog.at_level(logging.WARNING):
        assert resolve_checkpoint(args_for(tmp_path)) == str(complete)
    assert "Skipping incomplete checkpoint(s) ['checkpoint-10']" in caplog.text


def test_finished_run_is_not_extended_nor_overwritten(tmp_path):
    write_checkpoint(tmp_path / "checkpoint-4", 4)
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    for auto_resume in (True, False):
        with pytest.raises(FileExistsError, match=r"--output_dir .* holds a finished run \(4 steps"):
            resolve_checkpoint(args_for(tmp_path, auto_resume))
    assert resolve_checkpoint(args_for(tmp_path, resume_from_checkpoint="x")) == "x"  # continuing on purpose


def test_training_killed_while_saving_resumes_from_the_last_complete_checkpoint(tmp_path, caplog):
    coco = make_coco(tmp_path / "coco", num_images=4)
    jsonl = write_jsonl(tmp_path / "train.jsonl", custom_lines(coco))
    output = tmp_path / "run"
    args = custom_args(jsonl, coco, output, "--max_steps", "2", "--per_device_train_batch_size", "2")
    args += ["--save_strategy", "steps", "--save_steps", "1", "--learning_rate", "1e-3"]
    # The worst moment: checkpoint-2's weights are written, its optimizer state is half-way, the run is at its end.
    script = textwrap.dedent(
        """
        import os, signal, sys
        from transformers import Trainer
        from transformers_groma.training.run_vl import run

        save = Trainer._save_optimizer_and_scheduler
        def save_then_die(self, output_dir):
            if self.state.global_step == 2:
                open(os.path.join(output_dir, "optimizer.pt"), "wb").write(b"PK half")
                os.kill(os.getpid(), signal.SIGKILL)
            save(self, output_dir)
        Trainer._save_optimizer_and_scheduler = save_then_die
        run(sys.argv[1:])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (output / "checkpoint-1" / "trainer_state.json").is_file()
    assert (output / "checkpoint-2" / "model.safetensors").is_file()
    assert not (output / "checkpoint-2" / "trainer_state.json").exists()

    with caplog.at_level(logging.WARNING):
        train_vl(args)
    assert "Skipping incomplete checkpoint(s) ['checkpoint-2']" in caplog.text
    assert f"Resuming from {output / 'checkpoint-1'}" in caplog.text
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 2
    final_model = (output / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="holds a finished run"):  # the same command again
        train_vl(args)
    assert (output / "model.safetensors").read_bytes() == final_model
