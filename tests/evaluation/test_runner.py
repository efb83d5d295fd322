"""The runner with an oracle predictor (answers from the ground truth): full marks on every task, resume after an
interruption, and output folders of other runs refused."""

import json
from collections import defaultdict

import pytest

from transformers_groma.evaluation import TASKS, OutputFolderError, evaluate


def image_dir(benchmarks, task):
    return str(benchmarks["lvis_ground"].parent if task == "lvis_ground" else benchmarks["image_dir"])


class Oracle:
    """Answers every query of a task with its ground truth, as a model would (Groma's answer format)."""

    def __init__(self, task, samples, annotation_file, fail_after=None):
        self.calls, self.fail_after, self.answers = 0, fail_after, {}
        boxes_of = defaultdict(list)  # (image id, category id) -> boxes, for LVIS and detection
        data = json.loads(annotation_file.read_text()) if annotation_file.suffix == ".json" else {}
        for annotation in data.get("annotations", []):
            x, y, w, h = annotation["bbox"]
            boxes_of[annotation["image_id"], annotation.get("category_id")].append([x, y, x + w, y + h])
            boxes_of[annotation["image_id"], None].append([x, y, x + w, y + h])
        for sample in samples:
            target = sample.target
            if task.name == "rec":
                answer = {"raw": "<roi><r0></roi>", "boxes": [target["box"]]}
            elif task.name == "lvis_ground":
                answer = {"raw": "", "boxes": boxes_of[target["image_id"], target["category_id"]]}
            elif task.name == "region_caption":
                answer = {"raw": "", "caption": target["references"][0]}
            elif task.name == "grounded_caption":
                answer = {"raw": "", "caption": target["references"][0], "entities": target["phrases"]}
            elif task.name == "detection":
                boxes = boxes_of[target["image_id"], None]
                answer = {"boxes": boxes, "scores": [1.0] * len(boxes)}
            else:
                answer = {"text": f"An answer to {target['question_id']}."}
            self.answers[self.key(task.query(sample, "groma")[0])] = answer

    @staticmethod
    def key(query):
        return query.image, query.text, json.dumps(query.boxes)

    def __call__(self, queries):
        if self.fail_after is not None and self.calls == self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.calls += 1
        return [self.answers[self.key(query)] for query in queries]


def run(task_name, benchmarks, output_dir, batch_size=2, fail_after=None, **options):
    task = TASKS[task_name](seed=1, **options)
    annotation_file = benchmarks[task_name]
    samples = task.read(annotation_file, image_dir(benchmarks, task_name))
    oracle = Oracle(task, samples, annotation_file, fail_after)
    run_info = {"task": task_name, "annotation_file": str(annotation_file)}
    metrics = evaluate(task, samples, oracle, output_dir, "groma", batch_size, run_info, str(annotation_file))
    return metrics, oracle


CAPTIONS = ["BLEU-4", "ROUGE-L", "CIDEr"]


@pytest.mark.parametrize(
    ("task_name", "options", "expected"),
    [
        ("rec", {}, {"accuracy@0.5": 1.0, "mean_iou": 1.0, "num_samples": 9, "num_without_box": 0}),
        ("lvis_ground", {}, {"AR": 1.0, "AR@0.5": 1.0, "AR@0.75": 1.0, "num_samples": 9}),
        ("region_caption", {"caption_metrics": CAPTIONS}, {"ROUGE-L": 1.0, "num_samples": 9}),
        ("grounded_caption", {"caption_metrics": CAPTIONS}, {"ROUGE-L": 1.0, "phrase_recall@0.5": 1.0}),
        ("detection", {}, {"AP": 1.0, "AP50": 1.0, "AR100": 1.0, "num_samples": 4}),
        ("conversation", {}, {"num_samples": 4, "num_empty_answers": 0}),
    ],
)
def test_an_oracle_gets_full_marks(tmp_path, benchmarks, task_name, options, expected):
    metrics, _ = run(task_name, benchmarks, tmp_path, **options)
    assert metrics["task"] == task_name
    assert {key: metrics[key] for key in expected} == pytest.approx(expected)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == metrics.get("num_samples", len(lines)) and len({line["id"] for line in lines}) == len(lines)
    assert not list(tmp_path.glob("predictions.partial-*"))
    summary = (tmp_path / "summary.md").read_text()
    assert f"# groma-eval {task_name}" in summary


def test_conversation_answers_are_in_llava_answer_format(tmp_path, benchmarks):
    run("conversation", benchmarks, tmp_path)
    first = json.loads((tmp_path / "predictions.jsonl").read_text().splitlines()[0])
    question = json.loads(benchmarks["conversation"].read_text().splitlines()[0])
    assert first["question_id"] == question["question_id"] and first["prompt"] == question["text"]
    assert first["text"] == "An answer to 0."
    assert {"answer_id", "model_id", "metadata"} <= set(first)


def test_interrupted_run_resumes_to_the_same_predictions_and_metrics(tmp_path, benchmarks):
    whole, _ = run("rec", benchmarks, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run("rec", benchmarks, tmp_path / "resumed", fail_after=2)
    partial = (tmp_path / "resumed" / "predictions.partial-0.jsonl").read_text()
    assert len(partial.splitlines()) == 4  # two batches of two, written as they finished
    # A process killed while writing leaves a cut line: it is predicted again.
    (tmp_path / "resumed" / "predictions.partial-0.jsonl").write_text(partial + '{"id": "7", "templ')
    resumed, oracle = run("rec", benchmarks, tmp_path / "resumed")
    assert oracle.calls == 3  # the 5 missing samples in batches of 2
    assert resumed == whole
    for name in ("predictions.jsonl", "metrics.json"):
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "whole" / name).read_text()
    again, oracle = run("rec", benchmarks, tmp_path / "resumed")
    assert oracle.calls == 0 and again == whole


def test_folders_of_other_runs_are_refused(tmp_path, benchmarks):
    run("rec", benchmarks, tmp_path)
    with pytest.raises(OutputFolderError, match="another run .*task: 'rec' there, 'detection' now"):
        run("detection", benchmarks, tmp_path)
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    (tmp_path / "predictions.jsonl").write_text("\n".join([*lines, json.dumps({"id": "999"})]) + "\n")
    with pytest.raises(OutputFolderError, match="sample '999', which this run does not evaluate"):
        run("rec", benchmarks, tmp_path)
