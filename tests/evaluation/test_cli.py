"""`groma-eval` end to end on the synthetic benchmark files: every task, batched results equal to a one-by-one
measurement, two processes equal to one, and clear errors."""

import json
import random
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from transformers_groma.evaluation.cli import demo_model_folder, main
from transformers_groma.evaluation.metrics import java_available, pairwise_iou
from transformers_groma.processing import REC_TEMPLATES, normalized_cxcywh_to_pixel_xyxy, rec_prompt

from .test_runner import image_dir


def eval_args(task, benchmarks, output_dir, *extra):
    return [task, "--annotation_file", str(benchmarks[task]), "--image_dir", image_dir(benchmarks, task),
            "--output_dir", str(output_dir), *extra]  # fmt: skip


def read_output(output_dir):
    lines = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    return json.loads((output_dir / "metrics.json").read_text()), lines


EXPECTED_KEYS = {
    "rec": {"accuracy@0.5", "mean_iou", "num_samples"},
    "lvis_ground": {"AR", "AR@0.5", "AR@0.75", "ARs", "ARm", "ARl"},
    "region_caption": {"BLEU-4", "ROUGE-L", "CIDEr"},
    "grounded_caption": {"BLEU-4", "ROUGE-L", "CIDEr", "phrase_recall@0.5"},
    "detection": {"AP", "AP50", "AR100"},
    "conversation": {"num_samples"},
}


@pytest.mark.parametrize("task", sorted(EXPECTED_KEYS))
def test_every_task_runs_end_to_end(tmp_path, benchmarks, task, capsys):
    extra = ["--max_new_tokens", "8"] if task == "conversation" else []
    main([*eval_args(task, benchmarks, tmp_path, "--tiny", "--batch_size", "4"), *extra])
    metrics, lines = read_output(tmp_path)
    assert EXPECTED_KEYS[task] <= set(metrics)
    assert json.loads(capsys.readouterr().out.split("\nWrote")[0]) == metrics
    assert (tmp_path / "summary.md").is_file()
    if task in ("region_caption", "grounded_caption"):
        assert ("METEOR" in metrics) == java_available()


def test_groundinggpt_rec_end_to_end(tmp_path, benchmarks):
    main(eval_args("rec", benchmarks, tmp_path, "--tiny-groundinggpt", "--max_new_tokens", "6"))
    metrics, lines = read_output(tmp_path)
    assert metrics["num_samples"] == 9 and len(lines) == 9
    assert json.loads((tmp_path / "run.json").read_text())["family"] == "groundinggpt"


def measured_rec(model_dir, benchmarks, seed=0):
    """REC accuracy of a model measured one sample at a time with the plain model API (not the evaluation code)."""
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    data = json.loads(benchmarks["rec"].read_text())
    first_region = model.config.region_index_token_id
    boxes, ious = [], []
    for image_entry, annotation in zip(data["images"], data["annotations"]):
        image = Image.open(benchmarks["image_dir"] / image_entry["file_name"]).convert("RGB")
        template = random.Random(f"{seed}:{image_entry['id']}").randrange(len(REC_TEMPLATES))
        query = {"type": "text", "text": rec_prompt(image_entry["caption"], template)}
        messages = [{"role": "user", "content": [{"type": "image"}, query]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(images=image, text=prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=3, do_sample=False, return_dict_in_generate=True)
        regions = out.region_boxes[0]
        new = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
        indices = [t - first_region for t in new if 0 <= t - first_region < len(regions)]
        x, y, w, h = annotation["bbox"]
        if indices:
            box = normalized_cxcywh_to_pixel_xyxy(regions[indices[0] : indices[0] + 1], image.size[::-1])[0].tolist()
            boxes.append(box)
            ious.append(pairwise_iou([box], [[x, y, x + w, y + h]]).item())
        else:
            boxes.append(None)
            ious.append(0.0)
    return boxes, sum(iou > 0.5 for iou in ious) / len(ious), sum(ious) / len(ious)


def model_sources():
    sources = ["region_model"]
    if demo_model_folder() is not None:
        sources.append("demo_model")
    return sources


@pytest.mark.parametrize("source", model_sources())
def test_batched_rec_agrees_with_the_models_measured_accuracy(tmp_path, benchmarks, region_model_dir, source):
    model_dir = region_model_dir if source == "region_model" else demo_model_folder()
    main(eval_args("rec", benchmarks, tmp_path, "--model", str(model_dir), "--batch_size", "4"))
    metrics, lines = read_output(tmp_path)
    boxes, accuracy, mean_iou = measured_rec(model_dir, benchmarks)
    assert [line["box"] for line in lines] == [pytest.approx(box, abs=1e-3) if box else None for box in boxes]
    assert metrics["accuracy@0.5"] == pytest.approx(accuracy)
    assert metrics["mean_iou"] == pytest.approx(mean_iou, abs=1e-5)
    if source == "region_model":
        assert metrics["num_without_box"] == 0 and metrics["mean_iou"] > 0  # region tokens only, overlapping boxes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_give_the_metrics_of_one(tmp_path, benchmarks, region_model_dir):
    main(eval_args("rec", benchmarks, tmp_path / "one", "--model", str(region_model_dir), "--batch_size", "3"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "transformers_groma.evaluation",
        *eval_args("rec", benchmarks, tmp_path / "two", "--model", str(region_model_dir), "--batch_size", "2"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("Wrote") == 1  # only the main process writes
    one, two = read_output(tmp_path / "one"), read_output(tmp_path / "two")
    assert two == one
    assert len({line["id"] for line in two[1]}) == two[0]["num_samples"] == 9
    assert not list((tmp_path / "two").glob("predictions.partial-*"))


def test_clear_errors(tmp_path, benchmarks):
    broken = tmp_path / "rec.json"
    data = json.loads(benchmarks["rec"].read_text())
    del data["images"][2]["caption"]
    broken.write_text(json.dumps(data))
    args = ["rec", "--tiny", "--annotation_file", str(broken), "--image_dir", str(benchmarks["image_dir"])]
    with pytest.raises(SystemExit, match=rf"error: {broken}: images\[2\] \(id 3\): no 'caption' field"):
        main([*args, "--output_dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="lvis_ground evaluates Groma models"):
        main(eval_args("lvis_ground", benchmarks, tmp_path / "g", "--tiny-groundinggpt"))
