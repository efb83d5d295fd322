"""Adapters from the on-disk formats of Groma's vision-language training data (spec §6.6) to conversation records.

Every adapter writes its task in Groma's trained phrasing (spec §3.4): one instruction drawn (seeded) from the
task's templates, answers with `<p>phrase</p><roi><ground_box>...</roi>` markup, user boxes as
`<roi><refer_box></roi><refer_feat>`. Boxes are pixel `[x1, y1, x2, y2]`. For the public datasets the boxes are
filtered and clipped to the image as the original loaders did (`build_records` logs how many entries and boxes
were left out or clipped, per reason); the custom format is checked strictly instead.

| `type` | Data (annotation file) | Task |
|---|---|---|
| `refcoco_rec` | RefCOCO/+/g train (`refcoco*_train.json`, COCO-style with `images[*].caption`) | REC |
| `refcoco_caption` | RefCOCOg train (`refcocog_train.json`) | detailed region caption |
| `flickr30k` | Flickr30k Entities (`flickr_entities_train.json`, MDETR-style) | grounded caption |
| `vg_single` / `vg_multi` | Visual Genome (`vg_train_single.json` / `vg_train_multi.json`) | region caption(s) |
| `coco_grounding` / `lvis_grounding` | `instances_train2017.json` / LVIS v1 | category grounding |
| `grit` | GRIT (`grit_filtered_10m.json`) | REC |
| `llava` | LLaVA / ShareGPT4V (`{image, conversations}` lists) | chat, captions |
| `groma_instruct` | Groma Instruct (`groma_instruct.json`) | grounded chat |
| `custom` | your JSONL, see [`CustomJsonlAdapter`] | anything |
"""

import json
import os
import random
from abc import abstractmethod
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import torch
from torchvision.ops import nms

from ..processing import (
    CATEGORY_GROUNDING_TEMPLATES,
    DETAILED_REGION_CAPTION_TEMPLATES,
    GROUNDED_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REGION_CAPTION_TEMPLATES,
    category_grounding_prompt,
    grounded_caption_prompt,
    rec_prompt,
    region_caption_prompt,
)
from ..tokens import (
    GROUND_BOX_TOKEN,
    GROUNDING_TOKEN,
    IMAGE_TOKEN,
    PHRASE_END_TOKEN,
    PHRASE_START_TOKEN,
    REFER_BOX_TOKEN,
    ROI_END_TOKEN,
    ROI_START_TOKEN,
)
from .data_config import DataSource
from .records import LEFT_OUT, InvalidRecordError, RecordAdapter, read_image_size


MIN_IMAGE_SIDE = 32  # the original drops RefCOCO/VG/Flickr images whose shorter side is below this
MAX_VG_REGIONS = 10  # regions per multi-round Visual Genome conversation
VG_NMS_THRESHOLD = 0.6
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
# Reasons `build_records` counts entries and boxes by (see `RecordAdapter.convert`).
SMALL_IMAGE = f"images with a side under {MIN_IMAGE_SIDE} px"
NO_BOX = "images without a usable box"
CLIPPED = "boxes clipped to the image"


def read_json(path: str) -> Any:
    """The content of a UTF-8 JSON file.

    Raises:
        ValueError: naming the file when it is not UTF-8 JSON.
    """
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a UTF-8 JSON file ({error}).") from error


def _number(value: Any) -> float:
    """A JSON number as a float; booleans, which `float` would read as 0 and 1, are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRecordError(f"`boxes` must hold numbers [x1, y1, x2, y2], got {value!r}")
    return float(value)


def image_path(source: DataSource, file_name: str) -> str:
    """Absolute path of an image named in an annotation file (relative to `source.image_dir`)."""
    return os.path.join(source.image_dir, file_name)


def xywh_to_xyxy(box: list) -> list[float]:
    """A pixel `[x, y, w, h]` box as `[x1, y1, x2, y2]`."""
    x, y, w, h = (float(value) for value in box)
    return [x, y, x + w, y + h]


def clip_box(box: list[float], width: float, height: float) -> list[float]:
    """An `[x1, y1, x2, y2]` box clipped to a `width` x `height` image (the original clamps every box)."""
    x1, y1, x2, y2 = box
    return [max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))]


def coco_boxes(annotations: list[dict], width: float, height: float) -> tuple[list[tuple[list[float], dict]], Counter]:
    """The `(box, annotation)` pairs of COCO annotations that mmdet's loader keeps, boxes as `[x1, y1, x2, y2]`
    clipped to the image, and a `Counter` of the annotations dropped or clipped, by reason.

    Dropped: `ignore`/crowd annotations, boxes with `w < 1`, `h < 1` or `area <= 0`, and boxes outside the image.
    """
    kept, left_out = [], Counter()
    for annotation in annotations:
        _, _, w, h = annotation["bbox"]
        if annotation.get("ignore", False) or annotation.get("iscrowd", False):
            left_out["crowd or ignored boxes dropped"] += 1
            continue
        if w < 1 or h < 1 or annotation.get("area", w * h) <= 0:
            left_out["boxes under 1 px or without area dropped"] += 1
            continue
        box = xywh_to_xyxy(annotation["bbox"])
        clipped = clip_box(box, width, height)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            left_out["boxes outside the image dropped"] += 1
            continue
        left_out[CLIPPED] += clipped != box
        kept.append((clipped, annotation))
    return kept, left_out


def conversation(*turns: str) -> list[dict]:
    """Messages from alternating user / assistant texts."""
    return [{"role": ("user", "assistant")[index % 2], "content": text} for index, text in enumerate(turns)]


def ground_answer(num_boxes: int) -> str:
    """`<roi>` followed by `num_boxes` `<ground_box>` placeholders and `</roi>`."""
    return ROI_START_TOKEN + GROUND_BOX_TOKEN * num_boxes + ROI_END_TOKEN


def record(
    image: str,
    messages: list[dict],
    refer_boxes: list | None = None,
    ground_boxes: list | None = None,
    width: int | None = None,
    height: int | None = None,
    left_out: Counter | None = None,
) -> dict:
    """A conversation record (see `records`); `left_out` counts the annotations the conversion dropped or clipped."""
    return {
        "image": image,
        "messages": messages,
        "refer_boxes": refer_boxes or [],
        "ground_boxes": ground_boxes or [],
        "width": width,
        "height": height,
        LEFT_OUT: left_out or Counter(),
    }


def caption_case(text: str) -> str:
    """The original's caption normalisation: stripped, lower-cased, first letter capitalized."""
    return text.strip().lower().capitalize()


def coco_entries(source: DataSource) -> Iterator[tuple[str, Any]]:
    """`(id, (image, its annotations, category names by id))` for every `images` item of a COCO-style file."""
    data = read_json(source.annotation_file)
    annotations = defaultdict(list)
    for annotation in data.get("annotations", []):
        annotations[annotation["image_id"]].append(annotation)
    categories = {category["id"]: category["name"] for category in data.get("categories", [])}
    for image in data["images"]:
        yield f"image id {image['id']}", (image, annotations[image["id"]], categories)


class CocoStyleAdapter(RecordAdapter):
    """Base of the COCO-style conversation formats: one record per `images` item, built from its kept boxes."""

    min_image_side = 0
    entries = staticmethod(coco_entries)

    def convert(self, entry: Any, source: DataSource, rng: random.Random) -> dict | str:
        image, annotations, categories = entry
        width, height = int(image["width"]), int(image["height"])
        if min(width, height) < self.min_image_side:
            return SMALL_IMAGE
        boxes, left_out = coco_boxes(annotations, width, height)
        if not boxes:
            return NO_BOX
        file_name = image.get("file_name") or os.path.basename(image["coco_url"])  # LVIS only has `coco_url`
        messages, refer_boxes, ground_boxes = self.build(image, boxes, categories, rng, left_out)
        return record(image_path(source, file_name), messages, refer_boxes, ground_boxes, width, height, left_out)

    @abstractmethod
    def build(
        self,
        image: dict,
        boxes: list[tuple[list[float], dict]],
        categories: dict,
        rng: random.Random,
        left_out: Counter,
    ) -> tuple[list[dict], list, list]:
        """Messages, refer boxes and ground boxes of one image given its kept `(box, annotation)` pairs; boxes the
        format leaves out are counted in `left_out`, by reason."""


class RefCocoRecAdapter(CocoStyleAdapter):
    """RefCOCO/+/g REC: `images[*].caption` is the expression, its first box the target."""

    min_image_side = MIN_IMAGE_SIDE

    def build(self, image, boxes, categories, rng, left_out):
        query = rec_prompt(image["caption"], rng.randrange(len(REC_TEMPLATES)))
        return conversation(query, ground_answer(1)), [], [boxes[0][0]]


class RefCocoCaptionAdapter(CocoStyleAdapter):
    """RefCOCOg detailed region captions: the box is given, the expression is the answer."""

    min_image_side = MIN_IMAGE_SIDE

    def build(self, image, boxes, categories, rng, left_out):
        query = region_caption_prompt(
            detailed=True, template_index=rng.randrange(len(DETAILED_REGION_CAPTION_TEMPLATES))
        )
        return conversation(query, caption_case(image["caption"])), [boxes[0][0]], []


class VisualGenomeAdapter(CocoStyleAdapter):
    """Visual Genome region captions (`annotations[*].caption`), one region or up to ten per conversation.

    `multi_round=True` keeps up to `MAX_VG_REGIONS` regions after NMS (IoU 0.6) with random (seeded) scores, one
    question/answer pair per region, as the original's multi-round loader.
    """

    min_image_side = MIN_IMAGE_SIDE

    def __init__(self, multi_round: bool):
        self.multi_round = multi_round

    def build(self, image, boxes, categories, rng, left_out):
        unique = {}
        for box, annotation in boxes:
            unique.setdefault(tuple(box), annotation["caption"])
        left_out["duplicate boxes dropped"] += len(boxes) - len(unique)
        regions = list(unique.items())
        if self.multi_round:
            scores = torch.tensor([rng.random() for _ in regions])
            kept = nms(torch.tensor([box for box, _ in regions]), scores, VG_NMS_THRESHOLD)[:MAX_VG_REGIONS]
            regions = [regions[index] for index in kept.tolist()]
        else:
            regions = regions[:1]
        turns = []
        for _, caption in regions:
            template_index = rng.randrange(len(REGION_CAPTION_TEMPLATES))
            turns += [region_caption_prompt(template_index=template_index), caption_case(caption)]
        return conversation(*turns), [list(box) for box, _ in regions], []


class Flickr30kAdapter(CocoStyleAdapter):
    """Flickr30k Entities grounded captions (MDETR-style `tokens_positive` character spans).

    Every grounded span of the caption becomes `<p>span</p><roi><ground_box>...</roi>` with one placeholder per box
    annotated with that span, spans in caption order; a span overlapping the previous one is left ungrounded.
    """

    min_image_side = MIN_IMAGE_SIDE

    def build(self, image, boxes, categories, rng, left_out):
        caption = image["caption"]
        span_boxes = defaultdict(list)
        for box, annotation in boxes:
            for start, end in annotation["tokens_positive"]:
                span_boxes[(start, end)].append(box)
        answer, ground_boxes, position = "", [], 0
        for (start, end), span_box_list in sorted(span_boxes.items()):
            if start < position:
                left_out["boxes of a phrase overlapping an earlier phrase dropped"] += len(span_box_list)
                continue
            phrase = PHRASE_START_TOKEN + caption[start:end] + PHRASE_END_TOKEN
            answer += caption[position:start] + phrase + ground_answer(len(span_box_list))
            ground_boxes += span_box_list
            position = end
        answer += caption[position:]
        query = grounded_caption_prompt(rng.randrange(len(GROUNDED_CAPTION_TEMPLATES)))
        return conversation(query, answer.strip()), [], ground_boxes


class CategoryGroundingAdapter(CocoStyleAdapter):
    """COCO / LVIS category grounding: one category of the image (drawn with the seeded RNG), all its instances."""

    def build(self, image, boxes, categories, rng, left_out):
        by_category = defaultdict(list)
        for box, annotation in boxes:
            by_category[categories[annotation["category_id"]]].append(box)
        category = rng.choice(sorted(by_category))
        query = category_grounding_prompt(category, rng.randrange(len(CATEGORY_GROUNDING_TEMPLATES)))
        return conversation(query, ground_answer(len(by_category[category]))), [], by_category[category]


def json_list_entries(source: DataSource) -> Iterator[tuple[str, Any]]:
    """`(id, entry)` for every item of a JSON list file; the id is the item's index."""
    for index, entry in enumerate(read_json(source.annotation_file)):
        yield f"#{index}", entry


class GritAdapter(RecordAdapter):
    """GRIT REC: `{filename, caption, ref_exps: [[start, end, x1, y1, x2, y2, ...], ...]}`, boxes normalized.

    One referring expression is drawn (seeded); every box annotated with the same span is a target. The boxes are
    scaled by the image file's size (optional `width`/`height` fields must match it).
    """

    entries = staticmethod(json_list_entries)

    def convert(self, entry, source, rng):
        path = image_path(source, entry["filename"])
        height, width = read_image_size(path)
        chosen = rng.choice(entry["ref_exps"])
        start, end = int(chosen[0]), int(chosen[1])
        targets = [
            [float(value) for value in ref_exp[2:6]]
            for ref_exp in entry["ref_exps"]
            if int(ref_exp[0]) == start and int(ref_exp[1]) == end
        ]
        clipped = [clip_box(box, 1.0, 1.0) for box in targets]
        boxes = [[x1 * width, y1 * height, x2 * width, y2 * height] for x1, y1, x2, y2 in clipped]
        left_out = Counter({CLIPPED: sum(box != target for box, target in zip(clipped, targets))})
        query = rec_prompt(entry["caption"][start:end], rng.randrange(len(REC_TEMPLATES)))
        messages = conversation(query, ground_answer(len(boxes)))
        return record(path, messages, [], boxes, entry.get("width"), entry.get("height"), left_out)


class LlavaAdapter(RecordAdapter):
    """LLaVA / ShareGPT4V conversations: `{image, conversations: [{from: human|gpt, value}, ...]}`.

    As in the original, `<image>` is removed from the texts and newlines become spaces.
    """

    entries = staticmethod(json_list_entries)

    def convert(self, entry, source, rng):
        turns = [
            {
                "role": _ROLES.get(turn["from"], turn["from"]),
                "content": turn["value"].replace(IMAGE_TOKEN, "").replace("\n", " "),
            }
            for turn in entry["conversations"]
        ]
        return record(image_path(source, entry["image"]) if entry.get("image") else "", turns)


def conversation_with_boxes(
    turns: list[dict], boxes: list[list[float]], box_ids_key: str, user_prefix: str = ""
) -> tuple[list[dict], list, list]:
    """Messages and refer/ground boxes of `{from, value, <box_ids_key>}` turns sharing one `boxes` list.

    The boxes named by a user turn's ids fill its `<refer_box>` placeholders, those of an answer its `<ground_box>`
    placeholders, in order.

    Raises:
        InvalidRecordError: if a turn's ids are not indices into `boxes`, or are not one per placeholder of the turn.
    """
    messages, refer_boxes, ground_boxes = [], [], []
    for index, turn in enumerate(turns):
        role = _ROLES.get(turn["from"], turn["from"])
        box_ids = turn.get(box_ids_key, [])
        if not isinstance(box_ids, list) or any(
            not isinstance(box_id, int) or isinstance(box_id, bool) or not 0 <= box_id < len(boxes)
            for box_id in box_ids
        ):
            raise InvalidRecordError(
                f"turn {index}: `{box_ids_key}` must be a list of indices into `boxes` (0..{len(boxes) - 1}), "
                f"got {box_ids!r}"
            )
        placeholder = REFER_BOX_TOKEN if role == "user" else GROUND_BOX_TOKEN
        if len(box_ids) != turn["value"].count(placeholder):
            raise InvalidRecordError(
                f"turn {index} ({turn['from']}) has {turn['value'].count(placeholder)} {placeholder} placeholder(s) "
                f"but {len(box_ids)} `{box_ids_key}`: list one box per placeholder of the turn, in order"
            )
        (refer_boxes if role == "user" else ground_boxes).extend(boxes[box_id] for box_id in box_ids)
        messages.append({"role": role, "content": (user_prefix if role == "user" else "") + turn["value"]})
    return messages, refer_boxes, ground_boxes


class GromaInstructAdapter(RecordAdapter):
    """Groma Instruct: `{file_name, width, height, boxes: [[x, y, w, h] px], conversation: [{from, value, box_inds}]}`.

    User turns get the `[grounding]` prefix; the boxes of an answer's `box_inds` fill its `<ground_box>`es.
    """

    entries = staticmethod(json_list_entries)

    def convert(self, entry, source, rng):
        width, height = int(entry["width"]), int(entry["height"])
        targets = [xywh_to_xyxy(box) for box in entry["boxes"]]
        boxes = [clip_box(box, width, height) for box in targets]
        left_out = Counter({CLIPPED: sum(box != target for box, target in zip(boxes, targets))})
        messages, _, ground_boxes = conversation_with_boxes(entry["conversation"], boxes, "box_inds", GROUNDING_TOKEN)
        return record(image_path(source, entry["file_name"]), messages, [], ground_boxes, width, height, left_out)


class CustomJsonlAdapter(RecordAdapter):
    """Your own data: a JSON Lines file, one image and conversation per line.

    ```json
    {"image": "kitchen/0001.jpg",
     "boxes": [[12, 40, 118, 160], [200, 30, 260, 90]],
     "conversations": [
        {"from": "human", "value": "Locate <p>the red mug</p> in the image."},
        {"from": "gpt", "value": "<roi><ground_box></roi>", "box_ids": [0]},
        {"from": "human", "value": "What is <roi><refer_box></roi><refer_feat>?", "box_ids": [1]},
        {"from": "gpt", "value": "A kettle."}]}
    ```

    - `image`: path relative to the source's `image_dir` (or absolute);
    - `boxes`: pixel `[x1, y1, x2, y2]` boxes of the original image, referenced by index;
    - `conversations`: alternating `human` / `gpt` turns, starting with `human` and ending with `gpt`. A human turn
      refers to boxes with `<roi><refer_box></roi><refer_feat>` (the model sees the box's region), a gpt turn
      grounds a phrase in boxes with `<p>phrase</p><roi><ground_box></roi>` (the model learns to answer with that
      region's `<rK>` token). `box_ids` lists, in placeholder order, the box of every `<refer_box>` (human turn) or
      `<ground_box>` (gpt turn) of that turn. Start a human turn with `[grounding]` to ask for a grounded answer;
    - optional `id` (names the record in error messages instead of its line number), `width` and `height` (the
      image's size, checked against the file).

    Unlike the public datasets, boxes are not clipped: a box outside its image is an error (or skipped with
    `--skip_bad_records`).
    """

    def entries(self, source):
        """`(id, entry)` per non-empty line: its parsed JSON (an `InvalidRecordError` when it is not valid JSON), named
        by its `id` field when it has one, else by its line number."""
        with open(source.annotation_file, "rb") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError as error:
                    data = InvalidRecordError(f"not UTF-8 text ({error})")
                except json.JSONDecodeError as error:
                    data = InvalidRecordError(f"not valid JSON ({error})")
                has_id = isinstance(data, dict) and data.get("id") is not None
                yield (str(data["id"]) if has_id else f"line {line_number}"), data

    def convert(self, entry, source, rng):
        if isinstance(entry, InvalidRecordError):
            raise entry
        if not isinstance(entry, dict) or "image" not in entry or "conversations" not in entry:
            raise InvalidRecordError("a line must be a JSON object with `image` and `conversations`")
        boxes = [[_number(value) for value in box] for box in entry.get("boxes", [])]
        messages, refer_boxes, ground_boxes = conversation_with_boxes(entry["conversations"], boxes, "box_ids")
        return record(
            image_path(source, entry["image"]),
            messages,
            refer_boxes,
            ground_boxes,
            entry.get("width"),
            entry.get("height"),
        )


CONVERSATION_ADAPTERS: dict[str, RecordAdapter] = {
    "refcoco_rec": RefCocoRecAdapter(),
    "refcoco_caption": RefCocoCaptionAdapter(),
    "flickr30k": Flickr30kAdapter(),
    "vg_single": VisualGenomeAdapter(multi_round=False),
    "vg_multi": VisualGenomeAdapter(multi_round=True),
    "coco_grounding": CategoryGroundingAdapter(),
    "lvis_grounding": CategoryGroundingAdapter(),
    "grit": GritAdapter(),
    "llava": LlavaAdapter(),
    "groma_instruct": GromaInstructAdapter(),
    "custom": CustomJsonlAdapter(),
}
