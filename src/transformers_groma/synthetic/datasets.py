"""Write synthetic scenes to disk in every annotation format Groma's trainers and evaluation read.

| key | file | format | read by |
|---|---|---|---|
| `"detection"` | `detection.json` | COCO detection (one `images` entry per scene, 12 colour-shape categories) | `coco_detection` / `sa1b` head (stage 1), detection evaluation |
| `"rec"` | `rec.json` | groma_data REC: one `images` entry per expression (`file_name`, `height`, `width`, `caption`), its only annotation the target | `refcoco_rec`, REC evaluation |
| `"region_caption"` | `region_caption.json` | COCO-style: one `images` entry per object, its only annotation carrying the `caption` (also `images[*].caption`) | `vg_single`, `vg_multi`, `refcoco_caption` |
| `"grounded_caption"` | `grounded_caption.json` | Flickr30k Entities (MDETR-style): one `images` entry per scene with its `caption`, annotations with `tokens_positive` spans | `flickr30k` |
| `"custom"` | `custom.jsonl` | the custom JSON Lines: per scene a grounded caption, then a REC and a region-caption exchange per object | `custom` |
| `"image_dir"` | `images/` | the PNG images, `scene_{index:06d}.png` | every format (paths are relative to it) |

Scene `index` of `write_datasets(..., seed=s)` is `generate_scene(scene_seed(s, index))`.
"""

import json
import random
from pathlib import Path

from ..processing import GROUNDED_CAPTION_TEMPLATES, REC_TEMPLATES, REGION_CAPTION_TEMPLATES
from ..processing.prompts import grounded_caption_prompt, rec_prompt, region_caption_prompt
from ..tokens import GROUND_BOX_TOKEN
from .scene import COLORS, SHAPES, SyntheticObject, SyntheticScene, _check_int, generate_scene
from .texts import caption_order, grounded_caption, grounded_caption_answer, referring_expression, region_caption


SCENES_PER_SEED = 1_000_000
CATEGORIES = [f"{color} {shape}" for color in COLORS for shape in SHAPES]
FILE_NAMES = {
    "detection": "detection.json",
    "rec": "rec.json",
    "region_caption": "region_caption.json",
    "grounded_caption": "grounded_caption.json",
    "custom": "custom.jsonl",
    "image_dir": "images",
}


def scene_seed(seed: int, index: int) -> int:
    """The `generate_scene` seed of scene `index` of `write_datasets(..., seed=seed)`."""
    return seed * SCENES_PER_SEED + index


def _xywh(box: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def _annotation(annotation_id: int, image_id: int, obj: SyntheticObject, **extra) -> dict:
    x, y, w, h = _xywh(obj.box)
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": CATEGORIES.index(obj.name) + 1,
        "bbox": [x, y, w, h],
        "area": w * h,
        "iscrowd": 0,
        **extra,
    }


class _CocoFile:
    """A COCO-style annotation file being built: `images`, `annotations` and the 12 categories."""

    def __init__(self):
        self.images, self.annotations = [], []

    def add(self, file_name: str, scene: SyntheticScene, objects: list[SyntheticObject], extra: list[dict], **image):
        image_id = len(self.images) + 1
        width, height = scene.image.size
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, **image})
        for obj, fields in zip(objects, extra):
            self.annotations.append(_annotation(len(self.annotations) + 1, image_id, obj, **fields))

    def write(self, path: Path) -> None:
        categories = [{"id": index + 1, "name": name} for index, name in enumerate(CATEGORIES)]
        content = {"images": self.images, "annotations": self.annotations, "categories": categories}
        path.write_text(json.dumps(content), encoding="utf-8")


def _custom_line(file_name: str, scene: SyntheticScene, rng: random.Random) -> dict:
    ordered = caption_order(scene.objects)
    boxes = [list(obj.box) for obj in ordered]
    caption_answer = grounded_caption_answer(scene.objects)
    turns = [
        {"from": "human", "value": grounded_caption_prompt(rng.randrange(len(GROUNDED_CAPTION_TEMPLATES)))},
        {"from": "gpt", "value": caption_answer, "box_ids": list(range(caption_answer.count(GROUND_BOX_TOKEN)))},
    ]
    for index, obj in enumerate(ordered):
        turns += [
            {"from": "human", "value": rec_prompt(referring_expression(obj), rng.randrange(len(REC_TEMPLATES)))},
            {"from": "gpt", "value": "<roi><ground_box></roi>", "box_ids": [index]},
            {
                "from": "human",
                "value": region_caption_prompt(template_index=rng.randrange(len(REGION_CAPTION_TEMPLATES))),
                "box_ids": [index],
            },
            {"from": "gpt", "value": region_caption(obj)},
        ]
    width, height = scene.image.size
    return {"image": file_name, "width": width, "height": height, "boxes": boxes, "conversations": turns}


def write_datasets(output_dir: str | Path, num_scenes: int, seed: int) -> dict[str, Path]:
    """Generate `num_scenes` scenes and write their images and annotation files to `output_dir` (see the module
    docstring for the files and formats).

    Args:
        output_dir: Folder to write to; created if needed. It must not already hold any of the files written.
        num_scenes: How many scenes, 1 to `SCENES_PER_SEED`.
        seed: Seeds the scenes (`scene_seed(seed, index)`) and the phrasings of the custom file.

    Returns:
        The path of every file (and of the image folder), by key: `"detection"`, `"rec"`, `"region_caption"`,
        `"grounded_caption"`, `"custom"`, `"image_dir"`.

    Raises:
        TypeError: if `num_scenes` or `seed` is not an int.
        ValueError: if `num_scenes` is out of range.
        FileExistsError: if `output_dir` already holds one of the files (nothing is overwritten).
    """
    if not 1 <= _check_int(num_scenes, "num_scenes") <= SCENES_PER_SEED:
        raise ValueError(f"`num_scenes` must be in [1, {SCENES_PER_SEED}], got {num_scenes}.")
    _check_int(seed, "seed")
    output_dir = Path(output_dir)
    paths = {key: output_dir / name for key, name in FILE_NAMES.items()}
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing:
        raise FileExistsError(f"`output_dir` already holds {existing}; write the datasets to a new folder.")
    paths["image_dir"].mkdir(parents=True)
    rng = random.Random(f"synthetic-datasets:{seed}")
    detection, rec, region, grounded = _CocoFile(), _CocoFile(), _CocoFile(), _CocoFile()
    custom_lines = []
    for index in range(num_scenes):
        scene = generate_scene(scene_seed(seed, index))
        file_name = f"scene_{index:06d}.png"
        scene.image.save(paths["image_dir"] / file_name)
        detection.add(file_name, scene, scene.objects, [{}] * len(scene.objects))
        for obj in scene.objects:
            rec.add(file_name, scene, [obj], [{}], caption=referring_expression(obj))
            caption = region_caption(obj)
            region.add(file_name, scene, [obj], [{"caption": caption}], caption=caption)
        caption, spans = grounded_caption(scene.objects)
        span_fields = [{"tokens_positive": [list(span)]} for span in spans]
        grounded.add(file_name, scene, caption_order(scene.objects), span_fields, caption=caption)
        custom_lines.append(json.dumps(_custom_line(file_name, scene, rng)) + "\n")
    for key, coco_file in (
        ("detection", detection),
        ("rec", rec),
        ("region_caption", region),
        ("grounded_caption", grounded),
    ):
        coco_file.write(paths[key])
    paths["custom"].write_text("".join(custom_lines), encoding="utf-8")
    return paths
