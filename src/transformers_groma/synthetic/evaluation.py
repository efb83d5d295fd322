"""How well a Groma grounds in the synthetic world, measured on scenes generated from given seeds.

| metric | what is counted |
|---|---|
| `proposal_recall` | objects covered by a region of `propose_regions` with IoU >= 0.5 |
| `rec_accuracy` | REC answers whose first box has IoU >= 0.5 with the object (one query per object, phrasings in turn) |
| `region_caption_accuracy` | region captions of an object's box that name its colour and shape and no other |
| `grounded_recall` | objects named (colour and shape) by a grounded-caption phrase whose box has IoU >= 0.5 with them |
| `grounded_invented` | grounded-caption phrases that match no object that way |
"""

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision.ops import box_iou

from ..processing import (
    GROUNDED_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REGION_CAPTION_TEMPLATES,
    GromaProcessor,
    normalized_cxcywh_to_pixel_xyxy,
)
from ..processing.prompts import grounded_caption_prompt, rec_prompt, region_caption_prompt
from .scene import COLORS, SHAPES, SyntheticObject, generate_scene
from .texts import referring_expression


IOU_THRESHOLD = 0.5


def iou(box: Sequence[float], other: Sequence[float]) -> float:
    """IoU of two pixel `[x1, y1, x2, y2]` boxes."""
    return float(box_iou(torch.tensor([box], dtype=torch.float32), torch.tensor([other], dtype=torch.float32))[0, 0])


def named_kinds(text: str) -> tuple[set[str], set[str]]:
    """The colour words and shape words a text mentions."""
    words = {word.strip(".,;:!?").lower() for word in text.split()}
    return words & set(COLORS), words & set(SHAPES)


def names_object(text: str, obj: SyntheticObject) -> bool:
    """Whether `text` names the object's colour and shape and no other colour or shape."""
    return named_kinds(text) == ({obj.color}, {obj.shape})


def chat_prompt(processor: GromaProcessor, query: str) -> str:
    """The inference prompt (the processor's chat template) around a user `query`."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": query}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


@torch.no_grad()
def answer(
    model,
    processor: GromaProcessor,
    images: list[Image.Image],
    queries: list[str],
    boxes: list[list] | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 48,
) -> list[dict]:
    """Greedy answers to `queries` about `images` (one each), parsed by `post_process_grounding` (`text` and
    `entities` with pixel boxes)."""
    results = []
    for start in range(0, len(queries), batch_size):
        stop = start + batch_size
        batch_images = images[start:stop]
        inputs = processor(
            images=batch_images,
            text=[chat_prompt(processor, query) for query in queries[start:stop]],
            boxes=boxes[start:stop] if boxes is not None else None,
            return_tensors="pt",
        ).to(model.device)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, return_dict_in_generate=True)
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        sizes = [image.size[::-1] for image in batch_images]
        results += processor.post_process_grounding(new_tokens, output.region_boxes, target_sizes=sizes)
    return results


@torch.no_grad()
def proposal_recall(model, processor: GromaProcessor, scenes: list, batch_size: int = 32) -> float:
    """Fraction of objects covered (IoU >= 0.5) by one of the regions `model.propose_regions` selects."""
    found = total = 0
    for start in range(0, len(scenes), batch_size):
        batch = scenes[start : start + batch_size]
        pixels = processor(images=[scene.image for scene in batch], return_tensors="pt")["pixel_values"]
        regions, _ = model.propose_regions(pixels.to(model.device))
        for scene, boxes in zip(batch, regions):
            pixel_boxes = normalized_cxcywh_to_pixel_xyxy(boxes.float().cpu(), scene.image.size[::-1])
            for obj in scene.objects:
                total += 1
                found += bool(box_iou(torch.tensor([obj.box]), pixel_boxes).max() >= IOU_THRESHOLD)
    return found / total


def evaluate_synthetic_grounding(
    model, processor: GromaProcessor, seeds: Sequence[int], batch_size: int = 32
) -> dict[str, float]:
    """Every metric of the module docstring on the scenes `generate_scene(seed)` for `seeds`.

    Queries cycle through the phrasings (`REC_TEMPLATES`, `REGION_CAPTION_TEMPLATES`, `GROUNDED_CAPTION_TEMPLATES`),
    so every phrasing is asked about when there are at least as many objects (scenes) as phrasings.

    Returns:
        The metrics, each a fraction in [0, 1], and `num_objects` / `num_scenes`.
    """
    scenes = [generate_scene(seed) for seed in seeds]
    objects = [(scene, obj) for scene in scenes for obj in scene.objects]
    metrics = {"num_scenes": len(scenes), "num_objects": len(objects)}
    metrics["proposal_recall"] = proposal_recall(model, processor, scenes, batch_size)

    images = [scene.image for scene, _ in objects]
    rec_queries = [
        rec_prompt(referring_expression(obj), index % len(REC_TEMPLATES)) for index, (_, obj) in enumerate(objects)
    ]
    rec = answer(model, processor, images, rec_queries, batch_size=batch_size, max_new_tokens=8)
    hits = [
        bool(result["entities"] and result["entities"][0]["boxes"])
        and iou(result["entities"][0]["boxes"][0], obj.box) >= IOU_THRESHOLD
        for result, (_, obj) in zip(rec, objects)
    ]
    metrics["rec_accuracy"] = sum(hits) / len(hits)

    caption_queries = [
        region_caption_prompt(template_index=index % len(REGION_CAPTION_TEMPLATES)) for index in range(len(objects))
    ]
    captions = answer(
        model, processor, images, caption_queries, [[list(obj.box)] for _, obj in objects], batch_size, 12
    )
    correct = [names_object(result["text"], obj) for result, (_, obj) in zip(captions, objects)]
    metrics["region_caption_accuracy"] = sum(correct) / len(correct)

    grounded_queries = [
        grounded_caption_prompt(index % len(GROUNDED_CAPTION_TEMPLATES)) for index in range(len(scenes))
    ]
    grounded = answer(model, processor, [scene.image for scene in scenes], grounded_queries, None, batch_size, 64)
    named = phrases = invented = 0
    for scene, result in zip(scenes, grounded):
        matched = set()
        for entity in result["entities"]:
            if entity["phrase"] is None:
                continue
            phrases += 1
            match = [
                index
                for index, obj in enumerate(scene.objects)
                if names_object(entity["phrase"], obj)
                and any(iou(box, obj.box) >= IOU_THRESHOLD for box in entity["boxes"])
            ]
            matched.update(match)
            invented += not match
        named += len(matched)
    metrics["grounded_recall"] = named / len(objects)
    metrics["grounded_invented"] = invented / max(phrases, 1)
    return metrics
