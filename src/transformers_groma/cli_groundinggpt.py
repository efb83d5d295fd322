"""GroundingGPT jobs of `groma predict`: any subset of --image / --video / --audio per query; answers with image boxes
in pixels and video time spans in seconds.

groma predict --model groundinggpt-7b-hf --video clip.mp4 --query "When does the man open the door?"
groma predict --model groundinggpt-7b-hf --image dog.jpg --audio bark.wav --output out.png --json
"""

import argparse
import math

from PIL import Image

from .cli import batched, open_image
from .processing.groundinggpt import SEPARATOR, draw_grounded_boxes, draw_time_spans


# Default questions (the original demo's phrasings, spec §3.3), by the media a job has.
SOUND_LOCALIZATION_QUERY = (
    "Where is the sound's point of emission in this image? Include the object positions in [x0, y0, x1, y1] format."
)
DEFAULT_QUERIES = {
    "image": "Please describe the image and include the object positions in [x0, y0, x1, y1] format.",
    "video": "Describe this video.",
    "audio": "What can you hear in this audio?",
}
MEDIA_TENSORS = ("pixel_values", "pixel_values_videos", "input_features")


def uses_image(job: dict) -> bool:
    """Whether a job shows an image: its --image, or the demo image when it has no media at all."""
    return job["image"] is not None or (job["video"] is None and job["audio"] is None)


def default_query(job: dict) -> str:
    """The question asked when no --query is given: sound localisation for image + audio, else a description of the
    first medium the job has (image, video, audio)."""
    if uses_image(job) and job["audio"] is not None:
        return SOUND_LOCALIZATION_QUERY
    if uses_image(job):
        return DEFAULT_QUERIES["image"]
    return DEFAULT_QUERIES["video" if job["video"] is not None else "audio"]


def chat_prompt(processor, job: dict, query: str) -> str:
    """The inference prompt of `query` with a placeholder for each medium of `job` (the template orders them)."""
    content = [{"type": "image"}] if uses_image(job) else []
    content += [{"type": kind} for kind in ("video", "audio") if job[kind] is not None]
    messages = [{"role": "user", "content": [*content, {"type": "text", "text": query}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def predict(args: argparse.Namespace, model, processor, jobs: list[dict]) -> list[dict]:
    """Run every job on a GroundingGPT model (greedy decoding).

    Returns:
        One dict per job: `image` / `video` / `audio` (the files, `"<demo image>"`, or None), `query`, and the
        post-processed answer: `text`, `boxes` (pixels of the image in `box`), `time_spans` (seconds of the video in
        `seconds`), plus `video_duration` (seconds, None when unknown) and the private `_image` (the PIL image or
        None) for drawing.

    Raises:
        ValueError: for media that cannot be read or decoded (the message names the file).
    """
    results = []
    for batch in batched(jobs, args.batch_size, desc="groundinggpt"):
        images = [open_image(job["image"]) if uses_image(job) else None for job in batch]
        queries = [job["query"] or default_query(job) for job in batch]
        media = {
            "images": [image for image in images if image is not None],
            "videos": [job["video"] for job in batch if job["video"] is not None],
            "audio": [job["audio"] for job in batch if job["audio"] is not None],
        }
        prompts = [chat_prompt(processor, job, query) for job, query in zip(batch, queries)]
        inputs = processor(text=prompts, **{name: items or None for name, items in media.items()}, return_tensors="pt")
        # Every job of a batch has the same media options, so there is one size / duration per sample or none.
        image_sizes = inputs["image_sizes"].tolist() if "image_sizes" in inputs else None
        durations = inputs["video_durations"].tolist() if "video_durations" in inputs else [math.nan] * len(batch)
        inputs = inputs.to(model.device)
        for key in MEDIA_TENSORS:
            if key in inputs:
                inputs[key] = inputs[key].to(model.dtype)
        output = model.generate(
            **inputs,
            max_new_tokens=args.max_new_tokens,
            do_sample=False,
            pad_token_id=processor.tokenizer.pad_token_id,
            stop_strings=SEPARATOR,  # also when `###` is split over several tokens, like the original
            tokenizer=processor.tokenizer,
        )
        parsed = processor.post_process_grounding(
            output[:, inputs["input_ids"].shape[1] :], image_sizes=image_sizes, video_durations=durations
        )
        for job, query, image, answer, duration in zip(batch, queries, images, parsed, durations):
            results.append(
                {
                    "image": job["image"] or ("<demo image>" if image is not None else None),
                    "video": job["video"],
                    "audio": job["audio"],
                    "query": query,
                    **answer,
                    "video_duration": None if math.isnan(duration) else duration,
                    "_image": image,
                }
            )
    return results


def draw_picture(result: dict) -> Image.Image | None:
    """The image with the answer's boxes; for a job without an image, the timeline of the answer's time spans (when
    the video's duration is known); else None."""
    if result["_image"] is not None:
        return draw_grounded_boxes(result["_image"], result["boxes"])
    if result["video_duration"] is not None:
        return draw_time_spans(result["video_duration"], result["time_spans"])
    return None


def describe(result: dict) -> str:
    """A GroundingGPT result as text: the media and query, the answer, each box group in pixels and each time span
    in seconds."""
    media = ", ".join(f"{kind}: {result[kind]}" for kind in ("image", "video", "audio") if result[kind] is not None)
    lines = [f"[{media}] {result['query']}", f"  -> {result['text']}"]
    for box in result["boxes"]:
        if box["box"] is None:
            lines.append(f"     [{box['group']}] box {box['normalized_box']} (normalised, no image)")
        else:
            lines.append(f"     [{box['group']}] box [{', '.join(f'{value:.0f}' for value in box['box'])}] px")
    for span in result["time_spans"]:
        if span["seconds"] is None:
            lines.append(f"     span {span['fraction'][0]:.2f}-{span['fraction'][1]:.2f} of the video")
        else:
            lines.append(f"     span {span['seconds'][0]:.1f}-{span['seconds'][1]:.1f} s")
    return "\n".join(lines)
