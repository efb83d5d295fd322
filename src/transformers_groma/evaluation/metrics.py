"""Benchmark metrics: REC accuracy, phrase-grounding recall, COCO caption metrics (pycocoevalcap) and LVIS recall
(the `lvis` package). Boxes are pixel `[x1, y1, x2, y2]`; IoU does not change under the squash to the model's input
size, so pixel and normalized boxes give the same numbers.

metrics.json holds fractions as the reference tools return them (an accuracy of 0.8953, a CIDEr of 1.073); the
Markdown summary shows them x100, as the papers do.
"""

import contextlib
import importlib.util
import io
import logging
import re
import shutil
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou


REC_THRESHOLD = 0.5
LVIS_METRIC_NAMES = ("AR", "AR@0.5", "AR@0.75", "ARs", "ARm", "ARl")
CAPTION_METRIC_NAMES = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE")
_ARTICLES = re.compile(r"^(a|an|the)\s+")
_NON_WORD = re.compile(r"[^\w\s]")


def pairwise_iou(boxes: Sequence[Sequence[float]], other: Sequence[Sequence[float]]) -> torch.Tensor:
    """IoU of every box of `boxes` `(n, 4)` with every box of `other` `(m, 4)`, as an `(n, m)` float64 tensor."""
    first = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    second = torch.tensor(other, dtype=torch.float64).reshape(-1, 4)
    return box_iou(first, second)


def rec_metrics(ious: Sequence[float | None], threshold: float = REC_THRESHOLD) -> dict[str, float | int]:
    """REC metrics of the original protocol (spec §7.1).

    Args:
        ious: Per sample, the IoU of the predicted box with the target, or `None` when the answer held no box.

    Returns:
        `{"accuracy@0.5": hits / num_samples, "mean_iou": sum of IoUs / num_samples, "num_samples",
        "num_without_box"}`: a hit is an IoU strictly above `threshold`; a sample without a box is a miss and adds 0
        to the IoU sum (the denominator is the dataset size either way). Both are 0 for no sample.
    """
    num_samples = len(ious)
    values = [0.0 if iou is None else float(iou) for iou in ious]
    hits = sum(value > threshold for value in values)
    return {
        f"accuracy@{threshold}": hits / num_samples if num_samples else 0.0,
        "mean_iou": sum(values) / num_samples if num_samples else 0.0,
        "num_samples": num_samples,
        "num_without_box": sum(iou is None for iou in ious),
    }


def normalize_phrase(phrase: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed, a leading article dropped: `"The Dog."` -> `"dog"`."""
    text = " ".join(_NON_WORD.sub(" ", phrase.lower()).split())
    return _ARTICLES.sub("", text)


def phrase_grounding_hits(ground_truth: Sequence[dict], predicted: Sequence[dict]) -> list[bool]:
    """Which ground-truth phrases of one caption the prediction grounds.

    A ground-truth phrase counts when the prediction has a phrase with the same text ([`normalize_phrase`]) one of
    whose boxes has IoU >= 0.5 with one of the ground-truth boxes of that phrase. A phrase the prediction does not
    name, or names without boxes, is a miss.

    Args:
        ground_truth: `[{"phrase": str, "boxes": [[x1, y1, x2, y2], ...]}, ...]`.
        predicted: The same format (e.g. the `entities` of `post_process_grounding`); several entries with the same
            phrase pool their boxes.

    Returns:
        One bool per ground-truth phrase.
    """
    predicted_boxes: dict[str, list] = {}
    for entity in predicted:
        if entity.get("phrase"):
            predicted_boxes.setdefault(normalize_phrase(entity["phrase"]), []).extend(entity["boxes"])
    hits = []
    for phrase in ground_truth:
        boxes = predicted_boxes.get(normalize_phrase(phrase["phrase"]), [])
        hits.append(bool(boxes) and bool((pairwise_iou(boxes, phrase["boxes"]) >= 0.5).any()))
    return hits


def java_available() -> bool:
    """Whether a `java` executable is on the PATH (pycocoevalcap's tokenizer, METEOR and SPICE run on Java)."""
    return shutil.which("java") is not None


def spice_models_present() -> bool:
    """Whether SPICE's Stanford CoreNLP models are installed next to pycocoevalcap's SPICE (it downloads them on
    first use otherwise, which evaluation never does)."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return False
    lib = Path(next(iter(spec.submodule_search_locations))) / "spice" / "lib"
    return (lib / "stanford-corenlp-3.6.0.jar").is_file() and (lib / "stanford-corenlp-3.6.0-models.jar").is_file()


def skipped_caption_metrics() -> dict[str, str]:
    """`{metric: reason}` for the caption metrics this machine cannot compute."""
    skipped = {}
    if not java_available():
        reason = "needs Java (no `java` on the PATH; e.g. `apt-get install default-jre-headless`)"
        skipped["METEOR"] = skipped["SPICE"] = reason
    elif not spice_models_present():
        skipped["SPICE"] = (
            "needs the Stanford CoreNLP 3.6.0 models in pycocoevalcap/spice/lib (pycocoevalcap's "
            "get_stanford_models() downloads them; evaluation does not download anything)"
        )
    return skipped


@cache
def _meteor():
    # One METEOR server per process: starting it loads a 60 MB paraphrase table.
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def _simple_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """Lower case, punctuation removed: what the PTB tokenizer yields for plain captions (used without Java)."""
    return {
        key: [" ".join(_NON_WORD.sub(" ", text.lower()).split()) for text in texts] for key, texts in captions.items()
    }


def caption_metrics(
    references: dict[str, list[str]], predictions: dict[str, str], metrics: Sequence[str] | None = None
) -> tuple[dict[str, float], dict[str, str]]:
    """COCO caption metrics of `predictions` against `references` with the reference scorers of pycocoevalcap.

    Captions are tokenized with pycocoevalcap's PTB tokenizer (Java) as `COCOEvalCap` does, then scored with
    `Bleu(4)`, `Meteor`, `Rouge` and `Cider` (and `Spice` where its models are installed).

    Args:
        references: `{sample id: [reference caption, ...]}` (at least one each).
        predictions: `{sample id: predicted caption}`, the same ids (an empty caption is allowed and scores 0).
        metrics: Subset of `CAPTION_METRIC_NAMES` to compute (default: all).

    Returns:
        `(scores, skipped)`: `{"BLEU-4": ..., "METEOR": ..., "ROUGE-L": ..., "CIDEr": ..., "SPICE": ...}` as
        fractions, and `{metric: reason}` for asked metrics this machine cannot compute (no Java: METEOR and SPICE,
        and the captions are tokenized by lower-casing and removing punctuation; no SPICE models: SPICE).
    """
    wanted = list(CAPTION_METRIC_NAMES if metrics is None else metrics)
    unknown = sorted(set(wanted) - set(CAPTION_METRIC_NAMES))
    if unknown:
        raise ValueError(f"Unknown caption metrics {unknown}; choose from {list(CAPTION_METRIC_NAMES)}.")
    if set(references) != set(predictions):
        raise ValueError("`references` and `predictions` must have the same sample ids.")
    if any(not refs for refs in references.values()):
        raise ValueError("Every sample needs at least one reference caption.")
    if not predictions:
        return dict.fromkeys(wanted, 0.0), {}
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as error:
        raise ImportError("Caption metrics need pycocoevalcap: `pip install transformers-groma[eval]`.") from error
    skipped = {name: reason for name, reason in skipped_caption_metrics().items() if name in wanted}
    if java_available():
        with contextlib.redirect_stdout(io.StringIO()):
            tokenizer = PTBTokenizer()
            gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
            res = tokenizer.tokenize({k: [{"caption": v}] for k, v in predictions.items()})
    else:
        gts, res = _simple_tokenize(references), _simple_tokenize({k: [v] for k, v in predictions.items()})
    scorers = {"BLEU-4": lambda: Bleu(4), "METEOR": _meteor, "ROUGE-L": Rouge, "CIDEr": Cider}
    if "SPICE" in wanted and "SPICE" not in skipped:
        from pycocoevalcap.spice.spice import Spice

        scorers["SPICE"] = Spice
    scores = {}
    for name in wanted:
        if name in skipped:
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            score, _ = scorers[name]().compute_score(gts, res)
        scores[name] = float(score[3] if name == "BLEU-4" else score)
    return scores, skipped


@contextlib.contextmanager
def _numpy_float_alias():
    """Lend `np.float` (removed in NumPy 1.24) to the `lvis` package: its last release (0.5.3) still uses it."""
    missing = not hasattr(np, "float")
    if missing:
        np.float = float
    try:
        yield
    finally:
        if missing:
            del np.float


def lvis_recall(annotation_file: str, detections: list[dict], image_ids: Sequence[int]) -> dict[str, float]:
    """LVIS average recall of `detections` on the images `image_ids` of `annotation_file`, with the LVIS API.

    Returns:
        `{"AR", "AR@0.5", "AR@0.75", "ARs", "ARm", "ARl"}` (at most 300 detections per image, the LVIS default);
        all 0 without detections; -1 where undefined (e.g. no small ground-truth box), as in the LVIS API.
    """
    if not detections:
        return dict.fromkeys(LVIS_METRIC_NAMES, 0.0)
    try:
        from lvis import LVIS, LVISEval
    except ImportError as error:
        raise ImportError("LVIS metrics need the `lvis` package: `pip install transformers-groma[eval]`.") from error
    logging.getLogger("lvis").setLevel(logging.ERROR)
    evaluator = LVISEval(LVIS(str(annotation_file)), detections, iou_type="bbox")
    evaluator.params.img_ids = sorted(set(image_ids))
    with contextlib.redirect_stdout(io.StringIO()), _numpy_float_alias():
        evaluator.evaluate()
        evaluator.accumulate()
    recall = evaluator.eval["recall"]  # (iou thresholds, categories, area ranges); -1 where undefined
    thresholds = evaluator.params.iou_thrs
    areas = evaluator.params.area_rng_lbl

    def mean(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else -1.0

    return {
        "AR": mean(recall[:, :, areas.index("all")]),
        "AR@0.5": mean(recall[np.isclose(thresholds, 0.5)][:, :, areas.index("all")]),
        "AR@0.75": mean(recall[np.isclose(thresholds, 0.75)][:, :, areas.index("all")]),
        "ARs": mean(recall[:, :, areas.index("small")]),
        "ARm": mean(recall[:, :, areas.index("medium")]),
        "ARl": mean(recall[:, :, areas.index("large")]),
    }


__all__ = [
    "CAPTION_METRIC_NAMES",
    "LVIS_METRIC_NAMES",
    "caption_metrics",
    "java_available",
    "lvis_recall",
    "normalize_phrase",
    "pairwise_iou",
    "phrase_grounding_hits",
    "rec_metrics",
    "skipped_caption_metrics",
]
