"""`pipeline("image-text-to-text")` runs Groma from a saved folder through the Auto classes."""

from transformers import pipeline

import transformers_groma  # noqa: F401  (registers the Auto classes)
from transformers_groma.cli import demo_image
from transformers_groma.modeling import GromaForConditionalGeneration
from transformers_groma.processing import GromaProcessor
from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor


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
