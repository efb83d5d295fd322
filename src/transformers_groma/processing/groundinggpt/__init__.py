"""GroundingGPT's processor, media preprocessing, tokenizer helpers, prompt format, grounding parser and drawing."""

from .audio_io import clip_sample_ranges, load_audio_file, read_wav, resample
from .feature_extraction_groundinggpt import GroundingGPTFeatureExtractor
from .grounding import (
    GroundedBox,
    GroundedTimeSpan,
    format_box,
    padded_square_box_to_pixels,
    parse_boxes,
    parse_time_spans,
    pixels_to_padded_square_box,
)
from .image_processing_groundinggpt import GroundingGPTImageProcessor
from .processing_groundinggpt import GroundingGPTGeneration, GroundingGPTProcessor
from .prompts import AUDIO_PLACEHOLDER, CHAT_TEMPLATE, IMAGE_PLACEHOLDER, SEPARATOR, SYSTEM_PROMPT, VIDEO_PLACEHOLDER
from .tokenization import add_groundinggpt_tokens, load_original_groundinggpt_tokenizer
from .video_processing_groundinggpt import GroundingGPTVideoProcessor, decode_video, sample_frame_indices
from .visualization import draw_grounded_boxes, draw_time_spans


__all__ = [
    "AUDIO_PLACEHOLDER",
    "CHAT_TEMPLATE",
    "IMAGE_PLACEHOLDER",
    "SEPARATOR",
    "SYSTEM_PROMPT",
    "VIDEO_PLACEHOLDER",
    "GroundedBox",
    "GroundedTimeSpan",
    "GroundingGPTFeatureExtractor",
    "GroundingGPTGeneration",
    "GroundingGPTImageProcessor",
    "GroundingGPTProcessor",
    "GroundingGPTVideoProcessor",
    "add_groundinggpt_tokens",
    "clip_sample_ranges",
    "decode_video",
    "draw_grounded_boxes",
    "draw_time_spans",
    "format_box",
    "load_audio_file",
    "load_original_groundinggpt_tokenizer",
    "padded_square_box_to_pixels",
    "parse_boxes",
    "parse_time_spans",
    "pixels_to_padded_square_box",
    "read_wav",
    "resample",
    "sample_frame_indices",
]
