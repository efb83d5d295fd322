"""Readers of the benchmarks' annotation files, each turning a file into [`Sample`]s (one per model query).

Every reader checks what it reads and raises [`AnnotationError`], naming the file and the entry, for anything it
cannot use: a missing field, a box that is not `[x, y, w, h]` with a positive width and height, an image file that
does not exist, a duplicate id. Boxes of the samples are pixel `[x1, y1, x2, y2]` in the original image.

Formats (spec §6.6):
- `read_rec`: groma_data COCO-style REC (RefCOCO/+/g): one `images` entry per expression with `file_name`, `height`,
  `width`, `caption`; its first `annotations` `bbox` is the target.
- `read_region_captions`: COCO-style region captions (RefCOCOg-cap, the Visual Genome test split): `annotations`
  with `bbox` and `caption`; one sample per distinct box of an `images` entry, all captions of that box its references.
- `read_grounded_captions`: Flickr30k Entities in MDETR's format: `images[*].caption`, `annotations` with `bbox` and
  `tokens_positive` (character spans of the caption); crowd boxes are left out.
- `read_lvis`: an LVIS-format file (`images`, `annotations`, `categories`): one sample per (image, category present
  in that image).
- `read_detection`: a COCO detection file: one sample per image.
- `read_llava_bench`: LLaVA-Bench questions, JSON Lines of `{"question_id", "image", "text", "category"}`.
"""

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class AnnotationError(ValueError):
    """An annotation file, or one of its entries, that evaluation cannot use; the message names both."""


@dataclass(frozen=True)
class Sample:
    """One query of a benchmark.

    Attributes:
        id (`str`): Unique within the benchmark; the key of its prediction line (resume, gathering).
        image (`str`): Path of the image file.
        target (`dict`): The task's ground truth and query data (JSON-serializable), e.g. `{"expression": str,
            "box": [x1, y1, x2, y2]}` for REC.
    """

    id: str
    image: str
    target: dict[str, Any] = field(default_factory=dict)


def read_json(path: str | os.PathLike) -> Any:
    """The content of a UTF-8 JSON file; an [`AnnotationError`] names a file that is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as error:
        raise AnnotationError(f"{path}: no such annotation file.") from error
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON ({error}).") from error


def _fail(path, where: str, problem: str) -> AnnotationError:
    return AnnotationError(f"{path}: {where}: {problem}")


def _field(entry: Any, key: str, path, where: str, kind: type | tuple[type, ...]) -> Any:
    """`entry[key]`, which must be of `kind`."""
    if not isinstance(entry, dict):
        raise _fail(path, where, f"expected an object, got {type(entry).__name__}.")
    if key not in entry:
        raise _fail(path, where, f"no {key!r} field.")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _fail(path, where, f"{key!r} must be {names}, got {value!r}.")
    return value


def _box(annotation: dict, path, where: str) -> list[float]:
    """The pixel `[x1, y1, x2, y2]` of an annotation's `bbox` `[x, y, w, h]`."""
    bbox = _field(annotation, "bbox", path, where, list)
    if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        raise _fail(path, where, f"'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}.")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise _fail(path, where, f"'bbox' {bbox!r} has no area (width and height must be positive).")
    return [x, y, x + w, y + h]


def _section(data: Any, key: str, path) -> list:
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise AnnotationError(f"{path}: expected a JSON object with a {key!r} list.")
    return data[key]


def _images(data: Any, path, image_dir: str, file_key: str = "file_name") -> dict[int, tuple[str, dict, str]]:
    """`{image id: (where, entry, image path)}` of the `images` section; ids unique, files present."""
    images = {}
    for index, entry in enumerate(_section(data, "images", path)):
        where = f"images[{index}]"
        image_id = _field(entry, "id", path, where, (int, str))
        where = f"images[{index}] (id {image_id})"
        if image_id in images:
            raise _fail(path, where, "duplicate image id.")
        images[image_id] = (
            where,
            entry,
            _image_path(image_dir, _file_name(entry, path, where, file_key), path, where),
        )
    return images


def _file_name(entry: dict, path, where: str, file_key: str) -> str:
    if file_key == "coco_url" and "file_name" not in entry and "coco_url" in entry:
        # LVIS v1 names images by URL: `http://images.cocodataset.org/val2017/000000000139.jpg` -> `val2017/...`.
        return "/".join(_field(entry, "coco_url", path, where, str).split("/")[-2:])
    return _field(entry, "file_name", path, where, str)


def _image_path(image_dir: str, file_name: str, path, where: str) -> str:
    image = os.path.join(image_dir, file_name)
    if not os.path.isfile(image):
        raise _fail(path, where, f"image file {image} does not exist (check --image_dir).")
    return image


def _annotations_by_image(data: Any, path, images: dict) -> dict[Any, list[tuple[str, dict]]]:
    """`{image id: [(where, annotation), ...]}` in file order; every annotation names a known image."""
    grouped = defaultdict(list)
    for index, annotation in enumerate(_section(data, "annotations", path)):
        where = f"annotations[{index}]"
        image_id = _field(annotation, "image_id", path, where, (int, str))
        if image_id not in images:
            raise _fail(path, where, f"'image_id' {image_id!r} is not the id of an images entry.")
        grouped[image_id].append((where, annotation))
    return grouped


def read_rec(path: str | os.PathLike, image_dir: str) -> list[Sample]:
    """REC samples: `target = {"expression": str, "box": [x1, y1, x2, y2]}` (the entry's first annotation)."""
    data = read_json(path)
    images = _images(data, path, image_dir)
    annotations = _annotations_by_image(data, path, images)
    samples = []
    for image_id, (where, entry, image) in images.items():
        expression = _field(entry, "caption", path, where, str)
        if not expression.strip():
            raise _fail(path, where, "'caption' (the referring expression) is empty.")
        if not annotations[image_id]:
            raise _fail(path, where, "no annotation gives its target box.")
        box = _box(annotations[image_id][0][1], path, annotations[image_id][0][0])
        samples.append(Sample(str(image_id), image, {"expression": expression, "box": box}))
    return samples


def read_region_captions(path: str | os.PathLike, image_dir: str) -> list[Sample]:
    """Region-caption samples, one per distinct box of an image entry: `target = {"box": [x1, y1, x2, y2],
    "references": [caption, ...]}`; the id is `"<image id>:<first annotation id of the box>"`."""
    data = read_json(path)
    images = _images(data, path, image_dir)
    samples = []
    for image_id, entries in _annotations_by_image(data, path, images).items():
        by_box: dict[tuple, tuple[str, list[str]]] = {}
        for where, annotation in entries:
            caption = _field(annotation, "caption", path, where, str)
            annotation_id = _field(annotation, "id", path, where, (int, str))
            key = tuple(_box(annotation, path, where))
            by_box.setdefault(key, (f"{image_id}:{annotation_id}", []))[1].append(caption)
        for box, (sample_id, references) in by_box.items():
            samples.append(Sample(sample_id, images[image_id][2], {"box": list(box), "references": references}))
    return samples


def read_grounded_captions(path: str | os.PathLike, image_dir: str) -> list[Sample]:
    """Grounded-caption samples, one per image entry: `target = {"references": [caption, ...], "phrases":
    [{"phrase": str, "boxes": [[x1, y1, x2, y2], ...]}, ...]}`. The references are the captions of every entry
    showing the same image file; the phrases are this entry's spans in order, each with all its boxes."""
    data = read_json(path)
    images = _images(data, path, image_dir)
    annotations = _annotations_by_image(data, path, images)
    captions_by_file = defaultdict(list)
    for where, entry, image in images.values():
        captions_by_file[image].append(_field(entry, "caption", path, where, str))
    samples = []
    for image_id, (_, entry, image) in images.items():
        caption = entry["caption"]
        phrases: dict[tuple[int, int], list[list[float]]] = {}
        for ann_where, annotation in annotations[image_id]:
            if annotation.get("iscrowd", 0):
                continue
            box = _box(annotation, path, ann_where)
            for span in _field(annotation, "tokens_positive", path, ann_where, list):
                if (
                    not isinstance(span, list)
                    or len(span) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in span)
                    or not 0 <= span[0] < span[1] <= len(caption)
                ):
                    raise _fail(
                        path, ann_where, f"'tokens_positive' span {span!r} is not [start, end) inside the caption."
                    )
                phrases.setdefault(tuple(span), []).append(box)
        target = {
            "references": captions_by_file[image],
            "phrases": [{"phrase": caption[s:e], "boxes": boxes} for (s, e), boxes in sorted(phrases.items())],
        }
        samples.append(Sample(str(image_id), image, target))
    return samples


def read_lvis(path: str | os.PathLike, image_dir: str) -> list[Sample]:
    """LVIS-Ground samples, one per (image, category with a box in it): `target = {"image_id", "category_id",
    "category"}`; the id is `"<image id>:<category id>"`. Checks the fields the LVIS API reads."""
    data = read_json(path)
    categories = {}
    for index, category in enumerate(_section(data, "categories", path)):
        where = f"categories[{index}]"
        category_id = _field(category, "id", path, where, int)
        categories[category_id] = _field(category, "name", path, where, str)
        _field(category, "frequency", path, where, str)
    images = _images(data, path, image_dir, file_key="coco_url")
    for where, entry, _ in images.values():
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            _field(entry, key, path, where, list)
    samples = []
    for image_id, entries in _annotations_by_image(data, path, images).items():
        present = set()
        for where, annotation in entries:
            _box(annotation, path, where)
            _field(annotation, "area", path, where, (int, float))
            _field(annotation, "id", path, where, int)
            category_id = _field(annotation, "category_id", path, where, int)
            if category_id not in categories:
                raise _fail(path, where, f"'category_id' {category_id} is not in 'categories'.")
            present.add(category_id)
        for category_id in sorted(present):
            target = {"image_id": image_id, "category_id": category_id, "category": categories[category_id]}
            samples.append(Sample(f"{image_id}:{category_id}", images[image_id][2], target))
    return samples


def read_detection(path: str | os.PathLike, image_dir: str) -> list[Sample]:
    """Detection samples, one per image: `target = {"image_id"}` (the ground truth stays in the file)."""
    data = read_json(path)
    images = _images(data, path, image_dir)
    for entries in _annotations_by_image(data, path, images).values():
        for where, annotation in entries:
            _box(annotation, path, where)
    return [Sample(str(image_id), image, {"image_id": image_id}) for image_id, (_, _, image) in images.items()]


def read_llava_bench(path: str | os.PathLike, image_dir: str) -> list[Sample]:
    """LLaVA-Bench questions: `target = {"question_id", "text", "category"}`."""
    samples, seen = [], set()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as error:
        raise AnnotationError(f"{path}: no such annotation file.") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise _fail(path, where, f"not valid JSON ({error}).") from error
        question_id = _field(entry, "question_id", path, where, (int, str))
        if question_id in seen:
            raise _fail(path, where, f"duplicate question_id {question_id!r}.")
        seen.add(question_id)
        image = _image_path(image_dir, _field(entry, "image", path, where, str), path, where)
        text = _field(entry, "text", path, where, str)
        category = entry.get("category")
        samples.append(
            Sample(str(question_id), image, {"question_id": question_id, "text": text, "category": category})
        )
    return samples


__all__ = [
    "AnnotationError",
    "Sample",
    "read_detection",
    "read_grounded_captions",
    "read_json",
    "read_llava_bench",
    "read_lvis",
    "read_rec",
    "read_region_captions",
]
