"""Write a toy dataset in Groma's training formats, to try the training scripts offline with `--init_from_tiny`.

    python examples/make_toy_data.py toy

creates `toy/images/*.png` (coloured squares on grey), `toy/coco.json` (COCO-format boxes, categories and a
RefCOCO-style expression per image), `toy/train.jsonl` (the custom conversation format), `toy/detection.yaml` and
`toy/mixture.yaml` (mixture files for the detection and vision-language stages).
"""

import argparse
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw


CATEGORIES = {1: ("red square", (220, 40, 40)), 2: ("blue square", (40, 40, 220))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--num_images", type=int, default=16)
    args = parser.parse_args()
    root = args.output_dir.resolve()
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)

    images, annotations, conversations = [], [], []
    for image_id in range(1, args.num_images + 1):
        width, height = rng.choice([(160, 120), (200, 150), (144, 176)])
        image = Image.new("RGB", (width, height), (128, 128, 128))
        boxes = []
        for category_id, (_, color) in CATEGORIES.items():
            w, h = rng.randint(40, 70), rng.randint(35, 60)
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            ImageDraw.Draw(image).rectangle([x, y, x + w - 1, y + h - 1], fill=color)
            boxes.append([x, y, x + w, y + h])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        file_name = f"{image_id:04d}.png"
        image.save(root / "images" / file_name)
        images.append(
            {"id": image_id, "file_name": file_name, "width": width, "height": height, "caption": "the red square"}
        )
        conversations.append(
            {
                "image": file_name,
                "boxes": boxes,
                "conversations": [
                    {"from": "human", "value": "Locate <p>the red square</p> in the image."},
                    {"from": "gpt", "value": "<roi><ground_box></roi>", "box_ids": [0]},
                    {"from": "human", "value": "What is <roi><refer_box></roi><refer_feat>?", "box_ids": [1]},
                    {"from": "gpt", "value": "A blue square."},
                ],
            }
        )
    categories = [{"id": key, "name": name} for key, (name, _) in CATEGORIES.items()]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "coco.json").write_text(json.dumps(coco))
    (root / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in conversations))
    source = {"annotation_file": str(root / "coco.json"), "image_dir": str(root / "images")}
    # The same boxes train both objectness heads (Groma fuses their scores; an untrained head caps them).
    detection = [
        {"type": "coco_detection", **source, "head": head, "name": f"toy-{head}"} for head in ("coco", "sa1b")
    ]
    (root / "detection.yaml").write_text(json.dumps({"sources": detection}))
    vl_sources = [{"type": kind, **source} for kind in ("refcoco_rec", "coco_grounding", "refcoco_caption")]
    (root / "mixture.yaml").write_text(json.dumps({"sources": vl_sources}))
    print(f"Wrote {args.num_images} images and the annotation files to {root}")


if __name__ == "__main__":
    main()
