"""The demo recipe's data mixture (examples/demo_model/train_demo.py): half of the region captions are taught on
loose boxes, as the proposals a grounded caption points at are, without losing or relabelling any annotation."""

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_convert, box_iou

from transformers_groma.synthetic import write_datasets


DEMO_RECIPE = Path(__file__).resolve().parents[2] / "examples" / "demo_model"
sys.path.insert(0, str(DEMO_RECIPE))
train_demo = pytest.importorskip("train_demo")


def xyxy(box):
    return box_convert(torch.tensor([box], dtype=torch.float64), "xywh", "xyxy")


def test_a_loose_box_stays_in_the_image_and_on_its_object():
    rng = random.Random(0)
    for width, height, box in [(300, 200, [10.0, 20.0, 60.0, 60.0]), (224, 224, [0.0, 0.0, 80.0, 50.0])]:
        loose = [train_demo.loose_box(box, width, height, rng) for _ in range(200)]
        overlaps = torch.cat([box_iou(xyxy(other), xyxy(box)) for other in loose]).flatten()
        assert overlaps.min() >= 0.5
        assert overlaps.max() < 1  # every one moved
        assert overlaps.mean() < 0.85  # and not just by a pixel
        for x, y, w, h in loose:
            assert min(x, y) >= 0 and x + w <= width and y + h <= height


def test_loose_region_captions_keep_every_annotation_and_move_half_the_boxes(tmp_path):
    paths = write_datasets(tmp_path / "world", num_scenes=40, seed=3)
    output_file = tmp_path / "loose.json"
    train_demo.write_loose_region_captions(paths["region_caption"], output_file)
    exact, loose = (json.loads(path.read_text()) for path in (paths["region_caption"], output_file))
    assert loose["images"] == exact["images"]
    assert len(loose["annotations"]) == len(exact["annotations"])
    moved = 0
    for before, after in zip(exact["annotations"], loose["annotations"]):
        assert {**after, "bbox": before["bbox"]} == before  # only the box may change
        if after["bbox"] != before["bbox"]:
            moved += 1
            assert box_iou(xyxy(after["bbox"]), xyxy(before["bbox"])).item() >= 0.5
    assert 0.3 < moved / len(exact["annotations"]) < 0.7


def test_the_vl_mixture_reads_the_loose_region_captions(tmp_path):
    paths = write_datasets(tmp_path / "world", num_scenes=4, seed=3)
    train_demo.write_mixtures([paths], tmp_path)
    sources = json.loads((tmp_path / "vl.json").read_text())["sources"]
    region_captions = [source["annotation_file"] for source in sources if source["type"] == "vg_single"]
    assert region_captions == [str(paths["region_caption"].with_name("region_caption_loose.json"))]
