"""Shared by the GroundingGPT inference examples: command-line arguments, loading a converted folder, asking one
question about some media, and printing the grounded answer."""

import argparse

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import transformers_groma  # noqa: F401  (registers the Auto classes)
from transformers_groma.processing.groundinggpt.prompts import SEPARATOR


# Chat-template content type of each processor media argument.
CONTENT_TYPES = {"images": "image", "videos": "video", "audio": "audio"}


def parse_args(description: str, media: list[str], query: str, output: str | None = None) -> argparse.Namespace:
    """`model_dir`, one positional file per name of `media`, `--query` (default `query`), `--max_new_tokens` and, if
    `output` is given, `--output` (default `output`)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("model_dir", help="A converted GroundingGPT folder (groma-convert).")
    for name in media:
        parser.add_argument(name, help=f"The {name} file.")
    parser.add_argument("--query", default=query, help=f"The question (default: {query!r}).")
    parser.add_argument("--max_new_tokens", type=int, default=256)
    if output is not None:
        parser.add_argument("--output", default=output, help=f"Where to save the picture (default: {output}).")
    return parser.parse_args()


def load(model_dir: str):
    """The model (bfloat16 on a GPU, float32 on the CPU, eval mode) and processor of a converted folder."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    return model, AutoProcessor.from_pretrained(model_dir)


def ask(model, processor, query: str, max_new_tokens: int = 256, **media) -> tuple[dict, dict]:
    """The greedy answer to `query` about one item per media argument (`images=`, `videos=`, `audio=`).

    Returns:
        `(result, inputs)`: `{"text", "boxes", "time_spans"}` from `processor.post_process_grounding` (boxes in
        pixels of the image, time spans in seconds of the video), and the processor's outputs (e.g.
        `video_durations`).
    """
    content = [{"type": CONTENT_TYPES[name]} for name in media] + [{"type": "text", "text": query}]
    messages = [{"role": "user", "content": content}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=prompt, return_tensors="pt", **media).to(model.device)
    for key in ("pixel_values", "pixel_values_videos", "input_features"):
        if key in inputs:
            inputs[key] = inputs[key].to(model.dtype)
    output = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        stop_strings=SEPARATOR,  # "###" ends an answer, however the tokenizer splits it
        tokenizer=processor.tokenizer,
    )
    (result,) = processor.post_process_grounding(
        output[:, inputs["input_ids"].shape[1] :],
        image_sizes=inputs.get("image_sizes"),
        video_durations=inputs.get("video_durations"),
    )
    return result, inputs


def print_answer(result: dict) -> None:
    """The answer's text, then its boxes (pixels) and time spans (seconds)."""
    print(result["text"])
    for box in result["boxes"]:
        print(f"  box [{box['group']}]: {box['box']}")
    for span in result["time_spans"]:
        print(f"  time span: {span['seconds']} s")
