"""`pipeline("grounded-image-text-to-text")` returns the answer and its phrases grounded to pixel boxes, batched, for
Groma and GroundingGPT."""

import pytest
from PIL import Image
from transformers import LogitsProcessorList, pipeline

import transformers_groma  # noqa: F401  (registers the task)
from transformers_groma import GroundedImageTextToTextPipeline
from transformers_groma.tiny import (
    tiny_groma_model,
    tiny_groma_processor,
    tiny_groundinggpt_model,
    tiny_groundinggpt_processor,
)

from .forcing import ForceTokens
from .test_pipeline import forced_answer, pixel_box


IMAGES = [Image.new("RGB", (160, 120), "gray"), Image.new("RGB", (90, 150), "white")]


@pytest.fixture(scope="module")
def groma_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("groma")
    tiny_groma_model(box_score_threshold=0.0).save_pretrained(folder)  # every proposal kept: region 0 exists
    tiny_groma_processor().save_pretrained(folder)
    return folder


def test_groma_answers_come_with_pixel_boxes_batched_or_not(groma_folder):
    grounder = pipeline("grounded-image-text-to-text", model=str(groma_folder))
    assert isinstance(grounder, GroundedImageTextToTextPipeline)
    question = "Locate <p>the dog</p> in the image."

    def forced() -> dict:
        return {"logits_processor": forced_answer(grounder.processor)}

    singles = [grounder(image, text=question, max_new_tokens=10, generate_kwargs=forced()) for image in IMAGES]
    batched = grounder(IMAGES, text=question, max_new_tokens=10, generate_kwargs=forced(), batch_size=2)
    assert batched == singles

    # The box is region 0 of the model's own selection, in pixels of each image.
    processor = grounder.processor
    for image, result in zip(IMAGES, singles):
        prompt = processor.apply_chat_template(_messages(question), add_generation_prompt=True, tokenize=False)
        inputs = processor(images=image, text=prompt, return_tensors="pt")
        region_boxes = grounder.model.generate(**inputs, max_new_tokens=1, return_dict_in_generate=True).region_boxes
        expected = pixel_box(region_boxes[0][0].tolist(), *image.size)
        (entity,) = result["entities"]
        assert result["text"] == "x" and entity["phrase"] == "x" and entity["region_indices"] == [0]
        assert entity["boxes"] == [pytest.approx(expected, abs=1e-3)]


def test_questions_must_match_the_images(groma_folder):
    grounder = pipeline("grounded-image-text-to-text", model=str(groma_folder))
    with pytest.raises(ValueError, match="one per image"):
        grounder(IMAGES, text=["a?", "b?", "c?"])


def test_groundinggpt_boxes_are_mapped_from_the_padded_square_to_pixels(tmp_path):
    tiny_groundinggpt_model().save_pretrained(tmp_path)
    tiny_groundinggpt_processor().save_pretrained(tmp_path)
    grounder = pipeline("grounded-image-text-to-text", model=str(tmp_path))
    answer = "dog[0.250, 0.250, 0.750, 0.500][0.0, 0.0, 1.0, 1.0] and cat[0.5, 0.5, 0.6, 0.6]"
    ids = grounder.processor.tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids += [grounder.processor.tokenizer.eos_token_id]

    def forced() -> dict:
        return {"logits_processor": LogitsProcessorList([ForceTokens(ids)])}

    singles = [grounder(image, text="where?", max_new_tokens=len(ids), generate_kwargs=forced()) for image in IMAGES]
    batched = grounder(IMAGES, text="where?", max_new_tokens=len(ids), generate_kwargs=forced(), batch_size=2)
    assert batched == singles
    first, second = singles
    assert first["text"] == answer
    # 160 x 120 pasted on a 160-px square 20 px down: y = 0.25 * 160 - 20 = 20, 0.5 * 160 - 20 = 60
    assert first["entities"] == [
        {"boxes": [[40.0, 20.0, 120.0, 60.0], [0.0, 0.0, 160.0, 120.0]], "span": (3, answer.index(" and"))},
        {"boxes": [[80.0, 60.0, 96.0, 76.0]], "span": (answer.index("[0.5"), len(answer))},
    ]
    # 90 x 150 pasted on a 150-px square 30 px to the right: x = 0.25 * 150 - 30 = 7.5 -> 8 (whole pixels)
    assert second["entities"][0]["boxes"][0] == [8.0, 38.0, 82.0, 75.0]


def _messages(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
