"""Queries of the tasks (the original phrasings, seeded per sample), benchmark names and the paper's numbers."""

from transformers_groma.evaluation import TASKS, Sample
from transformers_groma.evaluation.report import summary_markdown
from transformers_groma.evaluation.tasks import GROUNDINGGPT_REC_PROMPT, infer_benchmark
from transformers_groma.processing import (
    DETAILED_REGION_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REFER_REGION,
    REGION_CAPTION_TEMPLATES,
)


SAMPLES = [Sample(str(i), "image.png", {"expression": f"the dog {i}", "box": [0, 0, 5, 5]}) for i in range(40)]


def test_rec_phrasing_is_seeded_per_sample():
    task = TASKS["rec"](seed=0)
    texts = [task.query(sample, "groma")[0].text for sample in SAMPLES]
    # The same sample gets the same phrasing whatever comes before it; every phrasing is used.
    assert [task.query(sample, "groma")[0].text for sample in reversed(SAMPLES)] == texts[::-1]
    used = {next(i for i, t in enumerate(REC_TEMPLATES) if text == t.format(f"<p>the dog {n}</p>")) for n, text in
            enumerate(texts)}  # fmt: skip
    assert used == set(range(len(REC_TEMPLATES)))
    other_seed = [TASKS["rec"](seed=1).query(sample, "groma")[0].text for sample in SAMPLES]
    assert other_seed != texts
    query, extra = task.query(SAMPLES[0], "groma")
    assert query.max_new_tokens == 3 and query.boxes == [] and extra["template"] in range(6)


def test_groundinggpt_rec_query():
    query, extra = TASKS["rec"]().query(SAMPLES[1], "groundinggpt")
    assert query.text == GROUNDINGGPT_REC_PROMPT.format("the dog 1") and extra == {}
    assert TASKS["rec"](max_new_tokens=9).query(SAMPLES[1], "groundinggpt")[0].max_new_tokens == 9


def test_region_caption_phrasings_follow_the_benchmark():
    sample = Sample("1", "image.png", {"box": [1, 2, 3, 4], "references": ["a dog"]})
    short = TASKS["region_caption"](benchmark="vg").query(sample, "groma")[0]
    detailed = TASKS["region_caption"](benchmark="refcocog_cap").query(sample, "groma")[0]
    assert short.text in [t.format(REFER_REGION) for t in REGION_CAPTION_TEMPLATES]
    assert detailed.text in [t.format(REFER_REGION) for t in DETAILED_REGION_CAPTION_TEMPLATES]
    assert short.boxes == detailed.boxes == [[1, 2, 3, 4]] and short.max_new_tokens == 100


def test_benchmarks_are_told_by_the_file_name():
    assert infer_benchmark("rec", "groma_data/refcoco+_testA.json") == "refcoco+_testA"
    assert infer_benchmark("rec", "refcocog_val.json") == "refcocog_val"
    assert infer_benchmark("rec", "rec.json") is None
    assert infer_benchmark("region_caption", "refcocog_cap_val.json") == "refcocog_cap"
    assert infer_benchmark("region_caption", "vg_test.json") == "vg"
    assert infer_benchmark("lvis_ground", "lvis_ground.json") == "lvis_ground"


def test_summary_puts_the_papers_number_beside_ours():
    metrics = {"task": "rec", "accuracy@0.5": 0.875, "mean_iou": 0.7, "num_samples": 8, "num_without_box": 1}
    run = {"model": "m", "family": "groma", "benchmark": "refcoco_val", "annotation_file": "refcoco_val.json"}
    summary = summary_markdown("rec", metrics, run)
    assert "| accuracy@0.5 | 87.50 | 89.53 |" in summary and "| num_samples | 8 |  |" in summary
    assert "| accuracy@0.5 | 87.50 | 88.02 |" in summary_markdown("rec", metrics, {**run, "family": "groundinggpt"})
    skipped = {**metrics, "skipped_metrics": {"SPICE": "needs its models"}}
    assert "SPICE not computed: needs its models." in summary_markdown("rec", skipped, run)
