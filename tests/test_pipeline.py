"""`pipeline("image-text-to-text")` runs Groma from a saved folder through the Auto classes, and a grounded answer goes
from `generate` through `post_process_grounding` to a drawn box."""

import pytest
from PIL import Image
from transformers import LogitsProcessorList, pipeline

import transformers_groma  # noqa: F401  (registers the Auto classes)
from transformers_groma.cli import demo_image
from transformers_groma.modeling import GromaForConditionalGeneration
from transformers_groma.processing import GromaProcessor, draw_grounding
from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor

from .forcing import ForceTokens


GROUNDED_ANSWER = "<p>x</p><roi><r0></roi>"
GRAY, RED = (128, 128, 128), (255, 0, 0)


def forced_answer(processor: GromaProcessor, text: str = GROUNDED_ANSWER) -> LogitsProcessorList:
    """A fresh logits processor list that forces `text` followed by `</s>`."""
    tokenizer = processor.tokenizer
    token_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return LogitsProcessorList([ForceTokens(token_ids)])


def pixel_box(cxcywh: list[float], width: int, height: int) -> list[float]:
    center_x, center_y, box_width, box_height = cxcywh
    return [
        (center_x - box_width / 2) * width,
        (center_y - box_height / 2) * height,
        (center_x + box_width / 2) * width,
        (center_y + box_height / 2) * height,
    ]


def test_image_text_to_text_pipeline(tmp_path):
    tiny_groma_model().save_pretrained(tmp_path)
    tiny_groma_processor().save_pretrained(tmp_path)
    pipe = pipeline("image-text-to-text", model=str(tmp_path))
    assert isinstance(pipe.model, GromaForConditionalGeneration) and isinstance(pipe.processor, GromaProcessor)
    messages = [
        {"role": "user", "content": [{"type": "image", "image": demo_image(112)}, {"type": "text", "text": "Hi?"}]}
    ]
    (result,) = pipe(text=messages, max_new_tokens=4)
    reply = result["generated_text"][-1]
    assert reply["role"] == "assistant" and isinstance(reply["content"], str) and reply["content"].strip()
    # A grounded answer comes back as its clean text: the markup is removed, the phrase kept.
    (result,) = pipe(
        text=messages, max_new_tokens=10, generate_kwargs={"logits_processor": forced_answer(pipe.processor)}
    )
    assert result["generated_text"][-1]["content"] == "x"


def test_grounded_answer_is_parsed_and_drawn():
    model, processor = tiny_groma_model(), tiny_groma_processor()
    image = Image.new("RGB", (400, 240), GRAY)
    user_box = [60.0, 40.0, 200.0, 150.0]
    content = [{"type": "image"}, {"type": "text", "text": "[grounding]What is "}, {"type": "box"}]
    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    inputs = processor(images=image, text=prompt, boxes=[[user_box]], return_tensors="pt")
    output = model.generate(
        **inputs,
        max_new_tokens=10,
        do_sample=False,
        return_dict_in_generate=True,
        logits_processor=forced_answer(processor),
    )
    new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
    assert processor.tokenizer.decode(new_tokens[0]) == GROUNDED_ANSWER + "</s>"

    (result,) = processor.post_process_grounding(new_tokens, output.region_boxes, target_sizes=[(240, 400)])
    expected_box = pixel_box(output.region_boxes[0][0].tolist(), width=400, height=240)
    assert expected_box == pytest.approx(user_box, abs=1e-3)  # the user's box is region 0
    assert result["text"] == "x"
    (entity,) = result["entities"]
    assert entity["phrase"] == "x" and entity["region_indices"] == [0] and entity["span"] == (0, 1)
    assert entity["boxes"] == [pytest.approx(expected_box, abs=1e-4)]

    drawn = draw_grounding(image, result["entities"], colors=[RED], line_width=3)
    # left, right and bottom edges of [60, 40, 200, 150] are red; inside and outside stay gray
    assert drawn.getpixel((61, 100)) == RED and drawn.getpixel((199, 100)) == RED and drawn.getpixel((130, 149)) == RED
    assert drawn.getpixel((130, 100)) == GRAY and drawn.getpixel((300, 200)) == GRAY
