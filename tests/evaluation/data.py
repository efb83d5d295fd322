"""Benchmark files written from the synthetic world, in the real formats the evaluation reads."""

import json
from pathlib import Path

from transformers_groma.synthetic import write_datasets


def write_lvis(detection_file: Path, path: Path) -> Path:
    """The COCO detection file as an LVIS v1 file: categories with a `frequency`, images with the exhaustiveness
    lists (empty) and `coco_url` naming (`http://images.cocodataset.org/<folder>/<file>`) instead of `file_name`."""
    data = json.loads(detection_file.read_text())
    for category in data["categories"]:
        category["frequency"] = "f"
    for image in data["images"]:
        image["coco_url"] = f"http://images.cocodataset.org/images/{image.pop('file_name')}"
        image["neg_category_ids"], image["not_exhaustive_category_ids"] = [], []
    path.write_text(json.dumps(data))
    return path


def write_llava_bench(rec_file: Path, path: Path) -> Path:
    """LLaVA-Bench-style questions (JSON Lines) about the synthetic images."""
    images = json.loads(rec_file.read_text())["images"]
    lines = [
        {
            "question_id": index,
            "image": image["file_name"],
            "text": f"What color is {image['caption']}?",
            "category": ["conv", "detail", "complex"][index % 3],
        }  # fmt: skip
        for index, image in enumerate(images[:4])
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_benchmarks(root: Path, num_scenes: int = 4, seed: int = 0) -> dict[str, Path]:
    """Every benchmark file: the synthetic world's (`detection`, `rec`, `region_caption`, `grounded_caption`,
    `image_dir`) plus `lvis_ground` and `conversation`; the images live in `image_dir`, and `lvis_ground` names them
    relative to its parent."""
    paths = write_datasets(root, num_scenes=num_scenes, seed=seed)
    paths["lvis_ground"] = write_lvis(paths["detection"], root / "lvis_ground.json")
    paths["conversation"] = write_llava_bench(paths["rec"], root / "qa_questions.jsonl")
    return paths
