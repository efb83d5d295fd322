"""A two-process CPU run (torchrun, gloo) of the vision-language script."""

import json
import socket
import subprocess
import sys

import pytest

from .synthetic import CPU_ARGS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_cpu_run(tmp_path, coco, custom_jsonl):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "transformers_groma.training.run_vl",
        "--stage",
        "custom",
        "--init_from_tiny",
        "--train_file",
        str(custom_jsonl),
        "--image_dir",
        coco["image_dir"],
        "--output_dir",
        str(tmp_path / "ddp"),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "1",
        "--ddp_backend",
        "gloo",
        "--save_strategy",
        "no",
        *CPU_ARGS,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # Two processes x one sample per step: an epoch of 6 samples takes 3 steps.
    assert state["log_history"][-1]["epoch"] == pytest.approx(2 / 3)
    assert (tmp_path / "ddp" / "model.safetensors").is_file()
