"""Groma's processor, image processor, tokenizer helpers, prompts and grounded-output utilities."""

from .grounding import (
    GroundedEntity,
    boxes_pixel_xyxy_to_normalized_cxcywh,
    entities_to_boxes,
    normalized_cxcywh_to_pixel_xyxy,
    parse_grounded_text,
    validate_pixel_boxes,
)
from .image_processing_groma import GromaImageProcessor
from .processing_groma import GromaProcessor, GroundedGeneration
from .prompts import (
    CATEGORY_GROUNDING_TEMPLATES,
    CHAT_TEMPLATE,
    DETAILED_REGION_CAPTION_TEMPLATES,
    FIRST_ASSISTANT_MESSAGE,
    FIRST_USER_MESSAGE,
    GROUNDED_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REFER_REGION,
    REGION_CAPTION_TEMPLATES,
    STAGE2_CHAT_TEMPLATE,
    SYSTEM_PROMPT,
    category_grounding_prompt,
    grounded_caption_prompt,
    rec_prompt,
    region_caption_prompt,
    region_reference,
)
from .tokenization import add_groma_tokens, load_original_tokenizer, record_legacy_flag
from .visualization import BOX_COLORS, draw_grounding, draw_proposals


__all__ = [
    "BOX_COLORS",
    "CATEGORY_GROUNDING_TEMPLATES",
    "CHAT_TEMPLATE",
    "DETAILED_REGION_CAPTION_TEMPLATES",
    "FIRST_ASSISTANT_MESSAGE",
    "FIRST_USER_MESSAGE",
    "GROUNDED_CAPTION_TEMPLATES",
    "REC_TEMPLATES",
    "REFER_REGION",
    "REGION_CAPTION_TEMPLATES",
    "STAGE2_CHAT_TEMPLATE",
    "SYSTEM_PROMPT",
    "GromaImageProcessor",
    "GromaProcessor",
    "GroundedEntity",
    "GroundedGeneration",
    "add_groma_tokens",
    "boxes_pixel_xyxy_to_normalized_cxcywh",
    "category_grounding_prompt",
    "draw_grounding",
    "draw_proposals",
    "entities_to_boxes",
    "grounded_caption_prompt",
    "load_original_tokenizer",
    "record_legacy_flag",
    "normalized_cxcywh_to_pixel_xyxy",
    "parse_grounded_text",
    "rec_prompt",
    "region_caption_prompt",
    "region_reference",
    "validate_pixel_boxes",
]
