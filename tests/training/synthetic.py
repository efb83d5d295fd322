"""Synthetic data in the real on-disk formats, and the Trainer settings shared by the training tests."""

import json
import random
import string
from pathlib import Path

from PIL import Image, ImageDraw
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaTokenizer

from transformers_groma.processing import prompts
from transformers_groma.tiny import TINY_BASE_VOCAB


# Trainer settings every end-to-end test uses: no reporting, no progress bars, (on CPU).
QUIET_ARGS = ["--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0"]
CPU_ARGS = ["--use_cpu", "true", *QUIET_ARGS]
COLORS = [(220, 40, 40), (40, 40, 220), (40, 200, 40)]
CAPTION = "the red square next to a blue square"
# Flickr30k-style character spans of the caption: box 0 is "red square", the other boxes "blue square".
CAPTION_SPANS = [
    (CAPTION.index(phrase), CAPTION.index(phrase) + len(phrase)) for phrase in ("red square", "blue square")
]


def draw_image(path: Path, width: int, height: int, boxes: list[list[float]]) -> None:
    """A grey PNG with one filled rectangle per pixel `[x1, y1, x2, y2]` box (box i in `COLORS[i % 3]`)."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=COLORS[index % len(COLORS)])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_json(path: Path, content) -> Path:
    path.write_text(json.dumps(content))
    return path


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def write_yaml_sources(path: Path, sources: list[dict]) -> Path:
    """A mixture file (JSON is valid YAML) with absolute paths."""
    return write_json(path, {"sources": sources})


def make_coco(root: Path, num_images: int = 6, seed: int = 0) -> dict:
    """COCO-style images with two or three boxes each, written as one annotation file.

    The file carries what every COCO-style adapter reads: `images[*].caption` (RefCOCO-style expression),
    `annotations[*].caption` (Visual Genome), `annotations[*].tokens_positive` (Flickr30k) and `categories`.
    """
    rng = random.Random(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        width, height = rng.choice([(160, 120), (144, 176), (200, 150)])
        boxes = []
        for _ in range(rng.choice([2, 3])):
            w, h = rng.randint(40, 70), rng.randint(35, 60)
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            boxes.append([x, y, x + w, y + h])
        file_name = f"{image_id:04d}.png"
        draw_image(root / "images" / file_name, width, height, boxes)
        caption = CAPTION
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, "caption": caption})
        for index, (x1, y1, x2, y2) in enumerate(boxes):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                    "category_id": index % 2 + 1,
                    "caption": ["a red square", "a blue square", "a green square"][index % 3],
                    "tokens_positive": [list(CAPTION_SPANS[min(index, 1)])],
                }
            )
    categories = [{"id": 1, "name": "red_square"}, {"id": 2, "name": "blue square"}]
    path = write_json(root / "coco.json", {"images": images, "annotations": annotations, "categories": categories})
    return {"annotation_file": str(path), "image_dir": str(root / "images"), "images": images}


def custom_lines(coco: dict) -> list[dict]:
    """One custom-JSONL sample per COCO image: a REC question and a region caption question."""
    data = json.loads(Path(coco["annotation_file"]).read_text())
    lines = []
    for image in data["images"]:
        boxes = [
            [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
            for a in data["annotations"]
            if a["image_id"] == image["id"]
        ]
        lines.append(
            {
                "id": f"sample-{image['id']}",
                "image": image["file_name"],
                "boxes": boxes,
                "conversations": [
                    {"from": "human", "value": "Locate <p>the red square</p> in the image."},
                    {"from": "gpt", "value": "<roi><ground_box></roi>", "box_ids": [0]},
                    {"from": "human", "value": "What is <roi><refer_box></roi><refer_feat>?", "box_ids": [1]},
                    {"from": "gpt", "value": "A blue square."},
                ],
            }
        )
    return lines


def vicuna_like_tokenizer() -> LlamaTokenizer:
    """A SentencePiece-style Llama tokenizer (Metaspace, byte fallback) with the tiny model's 1000-token base
    vocabulary and no Groma tokens: the tokenizer of a tiny "Vicuna" folder for `--llm_path`.

    A BPE trained on Groma's prompt strings, padded with byte tokens and unused entries to exactly 1000 tokens.
    """
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_BASE_VOCAB - len(byte_tokens),
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=list(string.ascii_letters + string.digits + string.punctuation),
        show_progress=False,
    )
    corpus = [
        prompts.SYSTEM_PROMPT,
        prompts.FIRST_USER_MESSAGE,
        prompts.FIRST_ASSISTANT_MESSAGE,
        "USER: ASSISTANT:",
        CAPTION,
        *prompts.REC_TEMPLATES,
        *prompts.REGION_CAPTION_TEMPLATES,
        *prompts.CATEGORY_GROUNDING_TEMPLATES,
    ]
    bpe.train_from_iterator(corpus * 4, trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    for token in byte_tokens:
        vocab.setdefault(token, len(vocab))
    for index in range(TINY_BASE_VOCAB - len(vocab)):
        vocab[f"<unused{index}>"] = len(vocab)
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in model["merges"]]
    return LlamaTokenizer(vocab=vocab, merges=merges, legacy=True, add_prefix_space=True, add_bos_token=True)
