"""Metric code against hand-computed cases and against the reference scorers called directly."""

import json

import pytest

from transformers_groma.evaluation.metrics import (
    _meteor,
    caption_metrics,
    java_available,
    lvis_recall,
    normalize_phrase,
    pairwise_iou,
    phrase_grounding_hits,
    rec_metrics,
)


def test_iou_of_hand_boxes():
    # [0, 0, 2, 1] and [0, 0, 1, 1]: intersection 1, union 2.
    assert pairwise_iou([[0, 0, 2, 1]], [[0, 0, 1, 1]]).item() == 0.5
    assert pairwise_iou([[0, 0, 1, 1]], [[2, 2, 3, 3]]).item() == 0.0
    assert pairwise_iou([[0, 0, 4, 4]], [[0, 0, 4, 4], [2, 0, 6, 4]]).tolist() == [[1.0, pytest.approx(1 / 3)]]


def test_rec_iou_of_exactly_half_is_a_miss_and_no_box_counts_in_the_denominator():
    metrics = rec_metrics([0.5, 0.5000001, None, 0.9])
    assert metrics == {
        "accuracy@0.5": 2 / 4,  # 0.5 is not > 0.5; the no-box answer is a miss of the 4
        "mean_iou": pytest.approx((0.5 + 0.5000001 + 0 + 0.9) / 4),
        "num_samples": 4,
        "num_without_box": 1,
    }
    assert rec_metrics([])["accuracy@0.5"] == 0.0
    assert rec_metrics([None, None])["accuracy@0.5"] == 0.0


def test_phrase_recall_with_several_boxes_per_phrase():
    ground_truth = [
        {"phrase": "two dogs", "boxes": [[0, 0, 10, 10], [20, 0, 30, 10]]},
        {"phrase": "a cat", "boxes": [[0, 20, 10, 30]]},
        {"phrase": "the ball", "boxes": [[50, 50, 60, 60]]},
        {"phrase": "grass", "boxes": [[0, 0, 100, 100]]},
    ]
    predicted = [
        # The second box matches the second dog exactly: the phrase counts.
        {"phrase": "Two dogs", "boxes": [[70, 70, 80, 80], [20, 0, 30, 10]]},
        # IoU exactly 0.5 with the cat counts (>= 0.5 for phrases).
        {"phrase": "cat", "boxes": [[0, 20, 20, 30]]},
        # Named without a box: a miss.
        {"phrase": "the ball", "boxes": []},
        # A phrase the ground truth does not have changes nothing; "grass" is never named: a miss.
        {"phrase": "sky", "boxes": [[0, 0, 100, 100]]},
        {"phrase": None, "boxes": [[0, 0, 100, 100]]},
    ]
    assert phrase_grounding_hits(ground_truth, predicted) == [True, True, False, False]
    assert phrase_grounding_hits(ground_truth, []) == [False] * 4
    # Two entries with the same phrase pool their boxes.
    split = [{"phrase": "a ball", "boxes": [[0, 0, 1, 1]]}, {"phrase": "the ball", "boxes": [[50, 50, 60, 60]]}]
    assert phrase_grounding_hits(ground_truth[2:3], split) == [True]


def test_normalize_phrase():
    assert normalize_phrase("The  Red square.") == "red square"
    assert normalize_phrase("an apple") == "apple"
    assert normalize_phrase("theater") == "theater"


def test_caption_metrics_equal_the_reference_scorers():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    references = {
        "1": ["A red square on the left.", "a red square"],
        "2": ["a small blue circle"],
        "3": ["the green triangle in the top corner"],
        "4": ["a yellow star"],
    }
    predictions = {"1": "a red square", "2": "", "3": "A green triangle, in the corner.", "4": "a yellow star"}
    metrics = ["BLEU-4", "ROUGE-L", "CIDEr"] + (["METEOR"] if java_available() else [])
    scores, skipped = caption_metrics(references, predictions, metrics)
    assert skipped == {}

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
    res = tokenizer.tokenize({k: [{"caption": v}] for k, v in predictions.items()})
    assert res["2"] == [""]  # the empty answer stays a (zero-scoring) candidate
    assert scores["BLEU-4"] == pytest.approx(Bleu(4).compute_score(gts, res)[0][3])
    assert scores["ROUGE-L"] == pytest.approx(Rouge().compute_score(gts, res)[0])
    assert scores["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0])
    if java_available():
        # The METEOR server of the process (starting one loads a 60 MB table): the reference scorer itself.
        assert scores["METEOR"] == pytest.approx(_meteor().compute_score(gts, res)[0])
    assert scores["CIDEr"] > 0 and 0 < scores["ROUGE-L"] < 1


def test_without_java_meteor_and_spice_are_skipped_with_the_reason(monkeypatch):
    from transformers_groma.evaluation import metrics

    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    scores, skipped = caption_metrics({"1": ["A red, square."], "2": ["a dog"]}, {"1": "a red square", "2": "a cat"})
    assert set(skipped) == {"METEOR", "SPICE"} and "needs Java" in skipped["METEOR"]
    assert set(scores) == {"BLEU-4", "ROUGE-L", "CIDEr"}
    assert scores["ROUGE-L"] == pytest.approx((1.0 + 0.5) / 2)  # punctuation and case do not count


def test_caption_metrics_check_their_input():
    with pytest.raises(ValueError, match="same sample ids"):
        caption_metrics({"1": ["a"]}, {"2": "a"}, ["CIDEr"])
    with pytest.raises(ValueError, match="at least one reference"):
        caption_metrics({"1": []}, {"1": "a"}, ["CIDEr"])
    with pytest.raises(ValueError, match="Unknown caption metrics"):
        caption_metrics({"1": ["a"]}, {"1": "a"}, ["BLEU"])
    assert caption_metrics({}, {}, ["CIDEr"]) == ({"CIDEr": 0.0}, {})


def test_lvis_recall_of_exact_shifted_and_missing_detections(benchmarks):
    data = json.loads(benchmarks["lvis_ground"].read_text())
    exact = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in data["annotations"]
    ]
    image_ids = [image["id"] for image in data["images"]]
    recall = lvis_recall(benchmarks["lvis_ground"], exact, image_ids)
    assert recall["AR"] == pytest.approx(1.0) and recall["AR@0.5"] == pytest.approx(1.0)
    assert recall["AR@0.75"] == pytest.approx(1.0)
    # Boxes moved by their own width overlap nothing.
    shifted = [{**d, "bbox": [d["bbox"][0] + d["bbox"][2], *d["bbox"][1:]]} for d in exact]
    assert lvis_recall(benchmarks["lvis_ground"], shifted, image_ids)["AR"] == 0.0
    # Half of the boxes found (the first image's): recall counts per category, and only on the images evaluated.
    first = [d for d in exact if d["image_id"] == image_ids[0]]
    assert lvis_recall(benchmarks["lvis_ground"], first, image_ids[:1])["AR"] == pytest.approx(1.0)
    assert 0 < lvis_recall(benchmarks["lvis_ground"], first, image_ids)["AR"] < 1
    assert lvis_recall(benchmarks["lvis_ground"], [], image_ids)["AR"] == 0.0
