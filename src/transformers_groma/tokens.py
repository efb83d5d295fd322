"""Groma's added vocabulary (spec §1.8.1), shared by the config, the processor and the converter.

The original adds these 114 strings, in this order, right after the base Llama vocabulary (ids 32000-32113 for
Vicuna-7B). ``<s>``, ``</s>`` and ``<unk>`` belong to the base vocabulary and are not part of the list.
"""

PAD_TOKEN = "[PAD]"
SEP_TOKEN = "<sep>"
IMAGE_START_TOKEN = "<img>"
IMAGE_END_TOKEN = "</img>"
ROI_START_TOKEN = "<roi>"
ROI_END_TOKEN = "</roi>"
PHRASE_START_TOKEN = "<p>"
PHRASE_END_TOKEN = "</p>"
IMAGE_TOKEN = "<image>"
REGION_TOKEN = "<region>"
REFER_BOX_TOKEN = "<refer_box>"
GROUND_BOX_TOKEN = "<ground_box>"
REFER_FEAT_TOKEN = "<refer_feat>"
GROUNDING_TOKEN = "[grounding]"
NUM_REGION_INDEX_TOKENS = 100
REGION_INDEX_TOKENS = [f"<r{i}>" for i in range(NUM_REGION_INDEX_TOKENS)]

GROMA_ADDED_TOKENS = [
    PAD_TOKEN,
    SEP_TOKEN,
    IMAGE_START_TOKEN,
    IMAGE_END_TOKEN,
    ROI_START_TOKEN,
    ROI_END_TOKEN,
    PHRASE_START_TOKEN,
    PHRASE_END_TOKEN,
    IMAGE_TOKEN,
    REGION_TOKEN,
    REFER_BOX_TOKEN,
    GROUND_BOX_TOKEN,
    REFER_FEAT_TOKEN,
    GROUNDING_TOKEN,
    *REGION_INDEX_TOKENS,
]

IGNORE_INDEX = -100


def added_token_id(token: str, base_vocab_size: int) -> int:
    """Id of an added Groma token when the base vocabulary has ``base_vocab_size`` entries."""
    return base_vocab_size + GROMA_ADDED_TOKENS.index(token)
