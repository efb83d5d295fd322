"""The `grounded-image-text-to-text` pipeline: ask about images, get the answer text and its phrases grounded to pixel
boxes, for Groma and GroundingGPT (`pipeline("grounded-image-text-to-text", model=folder)`)."""

from collections.abc import Sequence
from typing import Any

import torch
from transformers import Pipeline
from transformers.image_utils import load_image


GROUNDED_TASK = "grounded-image-text-to-text"


class GroundedImageTextToTextPipeline(Pipeline):
    """Answers a question about each image and grounds the answer in pixel boxes.

    Call it with `images` (one image, a path or URL, or a list of them) and `text` (one question for every image or
    one per image). The question goes into the model's chat template as the user turn after the image, so a Groma
    question can ask for grounding with `<p>phrase</p>` (e.g. "Locate <p>the dog</p> in the image.") and a
    GroundingGPT question asks in words (e.g. "Please provide the bounding box coordinate of the region this
    sentence describes: the dog.").

    Each result is `{"text": str, "entities": [...]}`:

    - Groma: `entities` as [`~transformers_groma.processing.parse_grounded_text`] gives them: `phrase`, `boxes`
      (pixel `[x1, y1, x2, y2]`), `region_indices` and `span` (the phrase's character range in `text`).
    - GroundingGPT: one entity per run of boxes written back to back: `boxes` (pixel `[x1, y1, x2, y2]`) and `span`
      (the character range of the written boxes in `text`).

    Generation arguments (`max_new_tokens`, or any in `generate_kwargs`) are passed to `generate`; `batch_size`
    batches the images (results equal the one-by-one results).
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The pipeline feeds images and text only: GroundingGPT's audio feature extractor takes no part, and its
        # padding side must not be checked against the tokenizer's when batches are collated.
        self.feature_extractor = None

    def __call__(self, images: Any, text: str | Sequence[str], **kwargs) -> dict[str, Any] | list[dict[str, Any]]:
        """Ground the answers to `text` about `images`; one result for one image, else a list, in order."""
        single = not isinstance(images, (list, tuple))
        images = [images] if single else list(images)
        questions = [text] * len(images) if isinstance(text, str) else list(text)
        if len(questions) != len(images):
            raise ValueError(
                f"`text` must be one question for all images or one per image: got {len(questions)} for "
                f"{len(images)} image(s)."
            )
        inputs = [{"image": image, "text": question} for image, question in zip(images, questions)]
        results = super().__call__(inputs, **kwargs)
        return results[0] if single else results

    def _sanitize_parameters(self, max_new_tokens: int | None = None, generate_kwargs: dict | None = None, **kwargs):
        forward_kwargs = dict(generate_kwargs or {})
        if max_new_tokens is not None:
            forward_kwargs["max_new_tokens"] = max_new_tokens
        preprocess_kwargs = {"timeout": kwargs["timeout"]} if "timeout" in kwargs else {}
        return preprocess_kwargs, forward_kwargs, {}

    def preprocess(self, inputs: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        image = load_image(inputs["image"], timeout=timeout)
        if not isinstance(inputs["text"], str):
            raise TypeError(f"Each question must be a string, got {type(inputs['text']).__name__}.")
        content = [{"type": "image"}, {"type": "text", "text": inputs["text"]}]
        prompt = self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        model_inputs = dict(self.processor(images=image, text=prompt, return_tensors="pt"))
        model_inputs["target_size"] = torch.tensor([[image.height, image.width]])
        return model_inputs

    def _forward(self, model_inputs: dict[str, Any], **generate_kwargs) -> dict[str, Any]:
        target_size = model_inputs.pop("target_size")
        prompt_length = model_inputs["input_ids"].shape[1]
        # Batching pads the tensors and puts per-sample lists (Groma's `refer_boxes`) in a list of lists.
        model_inputs = {
            key: [item for sample in value for item in sample]
            if isinstance(value, list) and all(isinstance(sample, list) for sample in value)
            else value
            for key, value in model_inputs.items()
        }
        output = self.model.generate(**model_inputs, **generate_kwargs, return_dict_in_generate=True)
        result = {"new_tokens": output.sequences[:, prompt_length:].cpu(), "target_size": target_size}
        if getattr(output, "region_boxes", None) is not None:  # Groma: the regions `<rK>` refers to
            result["region_boxes"] = [boxes.cpu() for boxes in output.region_boxes]
        return result

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        # One sample: `new_tokens` (1, T), `target_size` (1, 2) and, for Groma, its (num_regions, 4) regions (the
        # batch iterator hands them over as (1, num_regions, 4)).
        target_size = [int(value) for value in model_outputs["target_size"][0]]
        if "region_boxes" in model_outputs:
            (result,) = self.processor.post_process_grounding(
                model_outputs["new_tokens"], [model_outputs["region_boxes"][0]], target_sizes=[target_size]
            )
            return result
        (result,) = self.processor.post_process_grounding(model_outputs["new_tokens"], image_sizes=[target_size])
        return {"text": result["text"], "entities": _box_groups(result["boxes"])}


def _box_groups(boxes: list[dict]) -> list[dict]:
    """GroundingGPT's parsed boxes as entities: one per group of boxes written back to back."""
    entities: list[dict] = []
    for box in boxes:
        if entities and entities[-1]["group"] == box["group"]:
            entities[-1]["boxes"].append(box["box"])
            entities[-1]["span"] = (entities[-1]["span"][0], box["span"][1])
        else:
            entities.append({"group": box["group"], "boxes": [box["box"]], "span": tuple(box["span"])})
    return [{"boxes": entity["boxes"], "span": entity["span"]} for entity in entities]


def register_grounded_pipeline() -> None:
    """Register the `grounded-image-text-to-text` task with transformers' `pipeline` (idempotent)."""
    from transformers import AutoModelForImageTextToText
    from transformers.pipelines import PIPELINE_REGISTRY

    if PIPELINE_REGISTRY.supported_tasks.get(GROUNDED_TASK, {}).get("impl") is not GroundedImageTextToTextPipeline:
        PIPELINE_REGISTRY.register_pipeline(
            GROUNDED_TASK,
            pipeline_class=GroundedImageTextToTextPipeline,
            pt_model=AutoModelForImageTextToText,
            type="multimodal",
        )


__all__ = ["GROUNDED_TASK", "GroundedImageTextToTextPipeline", "register_grounded_pipeline"]
