"""Class-agnostic detection data of stage 1: COCO-format annotation files and SA-1B per-image JSON files.

| `type` | Annotation file | Used for |
|---|---|---|
| `coco_detection` | a COCO-format JSON (`images`, `annotations[*].bbox` as pixel `[x, y, w, h]`; categories ignored) | COCO, Objects365, OpenImages, V3Det converted to COCO format, and the COCO-format SA-1B subset (`head: sa1b`) |
| `sa1b` | a folder of SA-1B per-image JSON files (`{"image": {image_id, file_name, width, height}, "annotations": [{"bbox": [x, y, w, h]}, ...]}`) | SA-1B as released (`head: sa1b`) |

Crowd and degenerate boxes are dropped and the rest clipped to the image, as mmdet's loader does; training images
without any box are skipped (mmdet's `filter_empty_gt`), evaluation images are all kept. `build_records` logs how many
images and boxes were left out or clipped, per reason. A training image whose boxes all fail the box filter after
augmentation is replaced by another image of its source (mmdet resamples such images).
"""

import glob
import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F
from transformers.utils import logging

from .augmentation import DetectionAugmentation, filter_boxes, normalize, randint, squash
from .data_config import DETECTION_HEADS, DataSource
from .mixture import MixtureDataset
from .records import (
    DETECTION_FEATURES,
    LEFT_OUT,
    InvalidRecordError,
    RecordAdapter,
    build_records,
    check_detection_record,
)
from .sources import NO_BOX, coco_boxes, coco_entries


logger = logging.get_logger(__name__)

MAX_DRAWS = 10  # images drawn for a training sample before one whose boxes all fail the box filter is kept


def detection_record(image_id: int, image: str, boxes: list, width: int, height: int, left_out: Counter) -> dict:
    """A detection record (see `records`); `left_out` counts the annotations the conversion dropped or clipped."""
    return {
        "image_id": image_id,
        "image": image,
        "boxes": boxes,
        "width": width,
        "height": height,
        LEFT_OUT: left_out,
    }


class CocoDetectionAdapter(RecordAdapter):
    """COCO-format detection annotations, class-agnostic.

    Args:
        keep_images_without_boxes: Keep images that have no usable box (evaluation) instead of skipping them.
    """

    features = DETECTION_FEATURES
    entries = staticmethod(coco_entries)

    def __init__(self, keep_images_without_boxes: bool = False):
        self.keep_images_without_boxes = keep_images_without_boxes

    def convert(self, entry: Any, source: DataSource, rng: random.Random) -> dict | str:
        image, annotations, _ = entry
        width, height = int(image["width"]), int(image["height"])
        kept, left_out = coco_boxes(annotations, width, height)
        if not kept and not self.keep_images_without_boxes:
            return NO_BOX
        path = os.path.join(source.image_dir, image["file_name"])
        return detection_record(image["id"], path, [box for box, _ in kept], width, height, left_out)


class Sa1bAdapter(RecordAdapter):
    """A folder of SA-1B per-image annotation files (`sa_*.json`), one record per file."""

    features = DETECTION_FEATURES

    def entries(self, source: DataSource):
        if not os.path.isdir(source.annotation_file):
            raise ValueError(f"Data source {source.name}: `annotation_file` must be a folder of SA-1B JSON files.")
        for path in sorted(glob.glob(os.path.join(source.annotation_file, "*.json"))):
            yield os.path.basename(path), path

    def convert(self, entry: Any, source: DataSource, rng: random.Random) -> dict | str:
        try:
            with open(entry, encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as error:
            raise InvalidRecordError(f"not valid JSON ({error})") from error
        image = data["image"]
        width, height = int(image["width"]), int(image["height"])
        kept, left_out = coco_boxes(data["annotations"], width, height)
        if not kept:
            return NO_BOX
        path = os.path.join(source.image_dir, image["file_name"])
        return detection_record(int(image["image_id"]), path, [box for box, _ in kept], width, height, left_out)


DETECTION_ADAPTERS: dict[str, RecordAdapter] = {"coco_detection": CocoDetectionAdapter(), "sa1b": Sa1bAdapter()}


@dataclass
class BoxFilter:
    """Per-source box filter applied on the model input (see `augmentation.filter_boxes`).

    Args:
        min_side: COCO-style sources keep boxes with both sides above this (px).
        sa1b_area_range: SA-1B keeps boxes whose area lies strictly inside this range (px^2).
    """

    min_side: float = 2.0
    sa1b_area_range: tuple[float, float] = (14.0**2, 400.0**2)

    def __call__(self, boxes: tv_tensors.BoundingBoxes, head: str) -> tv_tensors.BoundingBoxes:
        if head == "sa1b":
            return filter_boxes(boxes, area_range=self.sa1b_area_range)
        return filter_boxes(boxes, min_side=self.min_side)


class DetectionDataset(Dataset):
    """Model inputs of one detection source: `pixel_values` and `labels` for [`GromaForRegionProposal`].

    `labels` holds `boxes` ((n, 4) normalized cxcywh on the model input), `source` (the objectness head),
    `image_id` and `orig_size` ((height, width) of the original image, for evaluation).

    Args:
        records: Detection records (see `records`).
        head: Objectness head of the source, `"coco"` or `"sa1b"`.
        output_size: Side of the square model input.
        augmentation: Training transform; None for evaluation (squash only, no box filter).
        box_filter: Box filter applied after the training transform. A training sample it leaves without boxes is
            replaced by another image of the source, drawn at random (mmdet's resampling), up to `MAX_DRAWS` images.
        source_name: Name of the source, for error messages.
    """

    def __init__(
        self,
        records,
        head: str,
        output_size: int,
        augmentation: DetectionAugmentation | None = None,
        box_filter: BoxFilter | None = None,
        source_name: str = "",
    ):
        self.records = records
        self.head = head
        self.output_size = output_size
        self.augmentation = augmentation
        self.box_filter = box_filter
        self.source_name = source_name

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        if self.augmentation is None:
            record, pixels, boxes = self._load(index)
            return self._item(record, pixels.shape[-2:], *squash(pixels, boxes, self.output_size))
        for draw in range(MAX_DRAWS):
            if draw:  # mmdet's FilterAnnotations (keep_empty=False) rejected the sample: its dataset draws another
                index = randint(0, len(self) - 1)
            record, pixels, boxes = self._load(index)
            image, kept = self.augmentation(pixels, boxes)
            if self.box_filter is not None:
                kept = self.box_filter(kept, self.head)
            if len(kept) or not len(boxes):
                break
        else:
            logger.warning_once(
                f"{self.source_name}: the box filter removed every box of {MAX_DRAWS} images drawn in a row; training "
                "on the last one as an image without objects (check the source's boxes and the `BoxFilter`)."
            )
        return self._item(record, pixels.shape[-2:], image, kept)

    def _load(self, index: int) -> tuple[dict, tv_tensors.Image, tv_tensors.BoundingBoxes]:
        record = self.records[index]
        try:
            with Image.open(record["image"]) as image:
                pixels = tv_tensors.Image(F.pil_to_tensor(image.convert("RGB")))
        except OSError as error:
            raise InvalidRecordError(f"{self.source_name}: record {record['id']}: {error}") from error
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor(record["boxes"], dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=tuple(pixels.shape[-2:]),
        )
        return record, pixels, boxes

    def _item(
        self, record: dict, orig_size: torch.Size, pixels: tv_tensors.Image, boxes: tv_tensors.BoundingBoxes
    ) -> dict:
        normalized = F.convert_bounding_box_format(boxes, new_format="CXCYWH").as_subclass(torch.Tensor)
        return {
            "pixel_values": normalize(pixels),
            "labels": {
                "boxes": normalized / self.output_size,
                "source": self.head,
                "image_id": record["image_id"],
                "orig_size": torch.tensor(orig_size),
            },
        }


def warn_about_untrained_heads(sources: list[DataSource]) -> None:
    """Warn when the mixture leaves an objectness head untrained.

    Each source trains the head named by its `head`. The proposer's score fuses both heads
    (`sigmoid(coco) ** 0.4 * sigmoid(sa1b) ** 0.6`), so a head left at its 0.01 prior caps every score near
    `0.01 ** 0.6 = 0.063`, below Groma's region threshold (`box_score_threshold`, 0.15): the trained model would
    select a single region per image.
    """
    untrained = sorted(set(DETECTION_HEADS) - {source.head for source in sources})
    if untrained:
        logger.warning(
            f"No data source trains the {' and '.join(untrained)} objectness head(s) (`head` of the sources): the "
            "fused proposal scores of the trained model will stay below `box_score_threshold` and it will select one "
            "region per image. Give every head some data, e.g. list a COCO-format file twice in the mixture, once "
            "with `head: coco` and once with `head: sa1b` (and a distinct `name`)."
        )


def build_detection_mixture(
    sources: list[DataSource],
    output_size: int,
    augmentation: DetectionAugmentation,
    box_filter: BoxFilter,
    seed: int,
    skip_bad_records: bool = False,
) -> MixtureDataset:
    """Read, check and sub-sample every source of a detection mixture (see `build_records`)."""
    datasets = []
    for source in sources:
        if source.type not in DETECTION_ADAPTERS:
            raise ValueError(
                f"Data source {source.name}: unknown type {source.type!r} for detection pretraining; choose from "
                f"{sorted(DETECTION_ADAPTERS)}."
            )
        records = build_records(
            source, DETECTION_ADAPTERS[source.type], check_detection_record, seed, skip_bad_records
        )
        datasets.append(DetectionDataset(records, source.head, output_size, augmentation, box_filter, source.name))
    warn_about_untrained_heads(sources)
    mixture = MixtureDataset(datasets, [source.name for source in sources])
    logger.info(f"Detection mixture ({len(mixture)} images):\n{mixture.summary()}")
    return mixture


def build_detection_eval_dataset(
    annotation_file: str, image_dir: str | None, output_size: int, skip_bad_records: bool = False
) -> DetectionDataset:
    """Every image of a COCO-format validation file, squashed to the model input (no augmentation).

    `image_dir` defaults to the folder of `annotation_file`.
    """
    source = DataSource("coco_detection", annotation_file, image_dir or "", name="validation")
    adapter = CocoDetectionAdapter(keep_images_without_boxes=True)
    records = build_records(source, adapter, check_detection_record, seed=0, skip_bad_records=skip_bad_records)
    return DetectionDataset(records, source.head, output_size, source_name=source.name)
