"""Detection augmentation: boxes follow the pixels through resize, crop, squash and flip; box filters; datasets."""

import json
import logging

import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from transformers_groma.training import BoxFilter, DataSource, DetectionAugmentation, build_detection_mixture
from transformers_groma.training.augmentation import filter_boxes

from .synthetic import draw_image


def red_pixel_box(image: torch.Tensor) -> list[float]:
    """Pixel `[x1, y1, x2, y2]` extent of the red pixels of a uint8 CHW image."""
    red, green, blue = image.int()
    mask = (red > 180) & (green < 90) & (blue < 90)
    ys, xs = mask.nonzero(as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


@pytest.mark.parametrize("seed", range(6))
def test_boxes_follow_the_pixels(tmp_path, seed):
    box = [30, 20, 110, 70]
    draw_image(tmp_path / "image.png", 160, 120, [box])
    image = tv_tensors.Image(F.pil_to_tensor(Image.open(tmp_path / "image.png").convert("RGB")))
    boxes = tv_tensors.BoundingBoxes([box], format="XYXY", canvas_size=(120, 160), dtype=torch.float32)
    torch.manual_seed(seed)
    augmentation = DetectionAugmentation(112, crop_size_range=(300, 600), flip_prob=0.5)
    out_image, out_boxes = augmentation(image, boxes)
    assert out_image.shape == (3, 112, 112) and out_boxes.canvas_size == (112, 112)
    assert len(out_boxes) == 1  # the crop is redrawn until it keeps the box
    assert out_boxes[0].tolist() == pytest.approx(red_pixel_box(out_image), abs=1.5)


def test_flip_mirrors_boxes(tmp_path):
    draw_image(tmp_path / "image.png", 160, 120, [[10, 20, 50, 60]])
    image = tv_tensors.Image(F.pil_to_tensor(Image.open(tmp_path / "image.png").convert("RGB")))
    boxes = tv_tensors.BoundingBoxes([[10, 20, 50, 60]], format="XYXY", canvas_size=(120, 160), dtype=torch.float32)
    augmentation = DetectionAugmentation(112, crop_size_range=(2000, 3000), flip_prob=1.0)  # the crop keeps all
    out_image, out_boxes = augmentation(image, boxes)
    x1, _, x2, _ = out_boxes[0].tolist()
    assert x1 > 56 and x2 == pytest.approx(112 - 10 * 112 / 160, abs=0.05)
    assert out_boxes[0].tolist() == pytest.approx(red_pixel_box(out_image), abs=1.5)


def test_box_filters():
    boxes = tv_tensors.BoundingBoxes(
        [[0, 0, 2, 10], [0, 0, 3, 3], [0, 0, 14, 14], [0, 0, 15, 14], [0, 0, 400, 400], [0, 0, 399, 400]],
        format="XYXY",
        canvas_size=(448, 448),
    )
    kept = filter_boxes(boxes, min_side=2.0)
    assert isinstance(kept, tv_tensors.BoundingBoxes) and len(kept) == 5  # a 2-px side is dropped
    assert filter_boxes(boxes, area_range=(14.0**2, 400.0**2))[:, 2].tolist() == [15, 399]
    assert len(BoxFilter()(boxes, "sa1b")) == 2 and len(BoxFilter()(boxes, "coco")) == 5


def test_detection_dataset_items(coco, tmp_path):
    sa1b_dir = tmp_path / "sa1b"
    sa1b_dir.mkdir()
    draw_image(sa1b_dir / "sa_1.jpg", 200, 150, [[20, 20, 120, 100]])
    (sa1b_dir / "sa_1.json").write_text(
        '{"image": {"image_id": 1, "file_name": "sa_1.jpg", "width": 200, "height": 150}, '
        '"annotations": [{"bbox": [20, 20, 100, 80], "area": 8000}]}'
    )
    sources = [
        DataSource("coco_detection", coco["annotation_file"], coco["image_dir"]),
        DataSource("sa1b", str(sa1b_dir), head="sa1b"),
    ]
    mixture = build_detection_mixture(sources, 112, DetectionAugmentation(112), BoxFilter(), seed=0)
    assert mixture.source_sizes == [len(coco["images"]), 1]
    torch.manual_seed(0)
    for index in (0, len(mixture) - 1):
        item = mixture[index]
        labels = item["labels"]
        assert item["pixel_values"].shape == (3, 112, 112) and item["pixel_values"].dtype == torch.float32
        assert labels["source"] == ("sa1b" if index else "coco")
        assert labels["boxes"].ndim == 2 and ((labels["boxes"] >= 0) & (labels["boxes"] <= 1)).all()
    assert mixture[len(mixture) - 1]["labels"]["orig_size"].tolist() == [150, 200]


def sa1b_folder(root, images: dict[int, tuple[int, int, list[float]]]) -> str:
    """An SA-1B-style folder: per image id, a `width` x `height` image with one `[x, y, w, h]` box."""
    root.mkdir()
    for image_id, (width, height, (x, y, w, h)) in images.items():
        draw_image(root / f"sa_{image_id}.jpg", width, height, [[x, y, x + w, y + h]])
        image = {"image_id": image_id, "file_name": f"sa_{image_id}.jpg", "width": width, "height": height}
        (root / f"sa_{image_id}.json").write_text(
            json.dumps({"image": image, "annotations": [{"bbox": [x, y, w, h], "area": w * h}]})
        )
    return str(root)


HUGE = (1000, 800, [10, 10, 980, 780])  # its box always exceeds SA-1B's 400^2 px area limit on the 448-px input


@pytest.mark.parametrize("seed", range(4))
def test_samples_left_without_boxes_by_the_filter_are_replaced(tmp_path, seed):
    # mmdet's FilterAnnotations (keep_empty=False) makes the dataset draw another image instead of a pure negative.
    folder = sa1b_folder(tmp_path / "sa1b", {1: HUGE, 2: (600, 500, [100, 100, 200, 150])})
    mixture = build_detection_mixture(
        [DataSource("sa1b", folder, head="sa1b")], 448, DetectionAugmentation(448), BoxFilter(), seed=0
    )
    torch.manual_seed(seed)
    item = mixture[0]  # the huge-box image
    assert item["labels"]["image_id"] == 2 and len(item["labels"]["boxes"]) == 1
    assert item["labels"]["orig_size"].tolist() == [500, 600] and item["labels"]["source"] == "sa1b"


def test_a_source_whose_boxes_always_fail_the_filter_is_reported(tmp_path, caplog):
    folder = sa1b_folder(tmp_path / "only_huge", {1: HUGE})
    mixture = build_detection_mixture(
        [DataSource("sa1b", folder, head="sa1b")], 448, DetectionAugmentation(448), BoxFilter(), seed=0
    )
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        item = mixture[0]
    assert len(item["labels"]["boxes"]) == 0  # bounded: after MAX_DRAWS images, kept as an image without objects
    assert "sa1b:only_huge: the box filter removed every box of 10 images drawn in a row" in caplog.text
