"""The GroundingGPT side of the demo without the web page: one question about an image, a video and/or an audio file,
answered by `groma predict`'s GroundingGPT job runner."""

import argparse

from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from .. import cli_groundinggpt
from ..processing.groundinggpt import draw_time_spans
from .groma_chat import DemoInputError, read_image


def ask_groundinggpt(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    image: str | None,
    video: str | None,
    audio: str | None,
    question: str,
    max_new_tokens: int,
) -> tuple[dict, Image.Image | None, Image.Image | None]:
    """Answers `question` (blank: the default question for the media given) about the media files (paths or None).

    Returns:
        `(result, picture, timeline)`: the result of [`~transformers_groma.cli_groundinggpt.predict`], the image with
        the answer's boxes (None without an image) and the video timeline of the answer's time spans (None without a
        video of known duration).

    Raises:
        DemoInputError: without any medium, or for a file that cannot be read or decoded.
    """
    if image is None and video is None and audio is None:
        raise DemoInputError("Upload an image, a video or an audio file first.")
    if image is not None:
        read_image(image)  # a clear message for a file that is not an image, before the model runs
    job = {"image": image, "video": video, "audio": audio, "query": (question or "").strip() or None}
    settings = argparse.Namespace(batch_size=1, max_new_tokens=int(max_new_tokens))
    try:
        (result,) = cli_groundinggpt.predict(settings, model, processor, [job])
    except (ImportError, ValueError) as error:
        raise DemoInputError(str(error)) from error
    picture = cli_groundinggpt.draw_picture(result) if result["_image"] is not None else None
    timeline = None
    if video is not None and result["video_duration"] is not None:
        timeline = draw_time_spans(result["video_duration"], result["time_spans"])
    return result, picture, timeline
