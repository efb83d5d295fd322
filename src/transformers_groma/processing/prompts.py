"""Groma's conversation format (spec §3.3) as chat templates, and the task phrasings it was trained on (spec §3.4).

Every Groma prompt is a Vicuna-style conversation whose first exchange is fixed: the user "sends" the image and its
region crops (the `<image>` and `<region>` placeholders, expanded by the model) and the assistant thanks them. The chat
templates insert that exchange before the first user message, so a conversation only holds the real turns:

```python
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": rec_prompt("the dog")}]}]
processor.apply_chat_template(messages, add_generation_prompt=True)
# "A chat between [...] questions. USER: Here is an image with region crops from it. Image: <image>. Regions:
#  <region>. ASSISTANT: Thank you for the image! How can I assist you with it?</s>USER: Locate <p>the dog</p> in the
#  image. ASSISTANT:"  (one line)
```
"""

import numbers
from collections.abc import Callable

from ..tokens import (
    GROUNDING_TOKEN,
    IMAGE_TOKEN,
    PHRASE_END_TOKEN,
    PHRASE_START_TOKEN,
    REFER_BOX_TOKEN,
    REFER_FEAT_TOKEN,
    REGION_TOKEN,
    ROI_END_TOKEN,
    ROI_START_TOKEN,
)


SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
USER_ROLE = "USER"
ASSISTANT_ROLE = "ASSISTANT"
FIRST_USER_MESSAGE = f"Here is an image with region crops from it. Image: {IMAGE_TOKEN}. Regions: {REGION_TOKEN}."
FIRST_ASSISTANT_MESSAGE = "Thank you for the image! How can I assist you with it?"

# A user box in a message: `<refer_box>` becomes the index token of the matching region, `<refer_feat>` its feature.
REFER_REGION = f"{ROI_START_TOKEN}{REFER_BOX_TOKEN}{ROI_END_TOKEN}{REFER_FEAT_TOKEN}"

# Referring expression comprehension (RefCOCO/+/g, GRIT); slot: `<p>expression</p>`. Answer: `<roi><rK></roi>`.
REC_TEMPLATES = (
    "Locate {} in the image.",
    "Can you spot {} in the photograph?",
    "Identify where {} is located in the picture.",
    "Please detect {} in the picture.",
    "Which region matches the description {}?",
    "Please identify the object that corresponds to {}.",
)
# Category grounding (COCO, LVIS); slot: `<p>category</p>`. Answer: one `<roi>` group with every instance.
CATEGORY_GROUNDING_TEMPLATES = (
    "Locate all {} in this image.",
    "Identify all instances of {} in the photo.",
    "Find all instances of {} in the image.",
    "Point out all the {} visible in this picture.",
    "Detect and list each {} that appears in this photo.",
    "What is the position of each {} in the image?",
)
# Short region caption (Visual Genome); slot: `REFER_REGION`.
REGION_CAPTION_TEMPLATES = (
    "What is {}?",
    "Please briefly describe {}.",
    "Provide a short description for {}.",
    "Please give a concise description of region {}.",
)
# Detailed region caption (RefCOCOg); slot: `REFER_REGION`.
DETAILED_REGION_CAPTION_TEMPLATES = (
    "Can you provide me with a detailed description of {}?",
    "Please describe {} in details.",
    "I'm curious about {} in the photo. Can you describe it in detail?",
    "Please give a comprehensive description of the object {}.",
    "What does the object {} in the picture look like? Could you give me a detailed description?",
)
# Grounded caption (Flickr30k entities), prefixed with `[grounding]`. Answer: `<p>phrase</p><roi>...</roi>` markup.
GROUNDED_CAPTION_TEMPLATES = (
    "Give me a concise description of the image.",
    "Please briefly summarize the content of this image.",
    "What does this picture show? Please summarize briefly.",
    "Can you give me a quick overview of what's depicted in this image?",
    "Could you describe the key elements in this photograph?",
    "Offer a brief explanation of what this image represents.",
    "Sum up the contents of this picture in one or two sentences.",
)


def _build_chat_template(sep: str, sep2: str) -> str:
    """Renders the original `Conversation.get_prompt` with `sep_style="two"` as a Jinja chat template.

    `system + sep`, then `ROLE + ": " + text + sep_k` per turn (`sep` after user turns, `sep2` after assistant
    turns) and `ROLE + ":"` for an empty turn. An optional leading `system` message replaces `SYSTEM_PROMPT`. Text
    content items render as is, `{"type": "box"}` items as `REFER_REGION` and image items not at all (the image sits
    in the fixed first exchange). Assistant text (and a `</s>` `sep2`, which the original supervises) is wrapped in
    `{% generation %}` for `return_assistant_tokens_mask`. `add_generation_prompt` needs a conversation that ends
    with a user turn (the fixed exchange ends with the assistant's).
    """
    # A `</s>` ending an answer is supervised in the original; a space is not (it belongs to the next `▁USER` token).
    answer = f"text + {sep2!r}" if sep2.strip() else "text"
    unsupervised_sep2 = "" if sep2.strip() else f"{{{{- {sep2!r} -}}}}"
    lines = [
        "{%- macro render(content) -%}",
        "{%- if content is string -%}{{- content -}}{%- else -%}{%- for item in content -%}",
        "{%- if item['type'] == 'text' -%}{{- item['text'] -}}",
        f"{{%- elif item['type'] == 'box' -%}}{{{{- {REFER_REGION!r} -}}}}",
        "{%- endif -%}{%- endfor -%}{%- endif -%}",
        "{%- endmacro -%}",
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{{- render(messages[0]['content']) -}}{%- set turns = messages[1:] -%}",
        f"{{%- else -%}}{{{{- {SYSTEM_PROMPT!r} -}}}}{{%- set turns = messages -%}}",
        "{%- endif -%}",
        f"{{{{- {sep + USER_ROLE + ': ' + FIRST_USER_MESSAGE + sep!r} -}}}}",
        f"{{{{- {ASSISTANT_ROLE + ': ' + FIRST_ASSISTANT_MESSAGE + sep2!r} -}}}}",
        "{%- for message in turns -%}",
        "{%- if message['role'] != ['user', 'assistant'][loop.index0 % 2] -%}",
        "{{- raise_exception('Groma conversations alternate user and assistant turns, starting with the user.') -}}",
        "{%- endif -%}",
        "{%- set text = render(message['content']) -%}",
        "{%- if message['role'] == 'user' -%}",
        f"{{%- if text -%}}{{{{- {USER_ROLE + ': '!r} + text + {sep!r} -}}}}",
        f"{{%- else -%}}{{{{- {USER_ROLE + ':'!r} -}}}}{{%- endif -%}}",
        "{%- elif text -%}",
        f"{{{{- {ASSISTANT_ROLE + ': '!r} -}}}}",
        f"{{%- generation -%}}{{{{- {answer} -}}}}{{%- endgeneration -%}}{unsupervised_sep2}",
        f"{{%- else -%}}{{{{- {ASSISTANT_ROLE + ':'!r} -}}}}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if add_generation_prompt -%}",
        "{%- if turns | length is even -%}",
        "{{- raise_exception('add_generation_prompt needs a conversation that ends with a user turn.') -}}",
        "{%- endif -%}",
        f"{{{{- {ASSISTANT_ROLE + ':'!r} -}}}}",
        "{%- endif -%}",
    ]
    return "\n".join(lines) + "\n"


# The `llava` conversation of the original: stage-3 (instruction tuning) data and every evaluation/inference script.
CHAT_TEMPLATE = _build_chat_template(sep=" ", sep2="</s>")
# The `default` conversation of the original: stage-2 (alignment) data, where assistant turns end with a space.
STAGE2_CHAT_TEMPLATE = _build_chat_template(sep=" ", sep2=" ")


def _check_int(value: int, argument_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{argument_name}` must be an int, got {type(value).__name__}.")
    return int(value)


def _phrase(value: str, argument_name: str, normalize: Callable[[str], str] = str.strip) -> str:
    """`normalize(value)` between `<p>` and `</p>`; `value` must be a string that does not normalize to nothing."""
    if not isinstance(value, str):
        raise TypeError(f"`{argument_name}` must be a string, got {type(value).__name__}.")
    text = normalize(value)
    if not text:
        raise ValueError(f"`{argument_name}` must be a non-empty phrase, got {value!r}.")
    return f"{PHRASE_START_TOKEN}{text}{PHRASE_END_TOKEN}"


def _select(templates: tuple[str, ...], template_index: int) -> str:
    if not 0 <= _check_int(template_index, "template_index") < len(templates):
        raise ValueError(f"`template_index` must be in [0, {len(templates) - 1}], got {template_index}.")
    return templates[template_index]


def rec_prompt(expression: str, template_index: int = 0) -> str:
    """Referring expression comprehension query, e.g. `"Locate <p>the dog</p> in the image."`.

    Args:
        expression (`str`): The referring expression (not blank); surrounding whitespace is stripped as in training.
        template_index (`int`, *optional*, defaults to 0): Which of the `REC_TEMPLATES` phrasings to use.

    Returns:
        `str`: The query. The model answers `<roi><rK></roi>`.
    """
    return _select(REC_TEMPLATES, template_index).format(_phrase(expression, "expression"))


def category_grounding_prompt(category: str, template_index: int = 0) -> str:
    """Query for every instance of a category, e.g. `"Locate all <p>traffic light</p> in this image."`.

    Args:
        category (`str`): The category name (not blank); lower-cased, `_` replaced by spaces and stripped as in
            training.
        template_index (`int`, *optional*, defaults to 0): Which of the `CATEGORY_GROUNDING_TEMPLATES` to use.

    Returns:
        `str`: The query. The model answers one `<roi>` group with a `<rK>` per instance.
    """
    phrase = _phrase(category, "category", lambda name: name.replace("_", " ").strip().lower())
    return _select(CATEGORY_GROUNDING_TEMPLATES, template_index).format(phrase)


def region_reference(num_boxes: int = 1, separator: str = " and ") -> str:
    """Text that refers to `num_boxes` user boxes: `REFER_REGION` repeated, joined by `separator`.

    Each occurrence consumes one box of the processor's `boxes` argument, in order. Several boxes in one query work
    (one region per `<refer_box>`) but were not part of Groma's training data.

    Args:
        num_boxes (`int`, *optional*, defaults to 1): How many boxes to refer to.
        separator (`str`, *optional*, defaults to `" and "`): Text between two references.

    Returns:
        `str`: e.g. `"<roi><refer_box></roi><refer_feat> and <roi><refer_box></roi><refer_feat>"`.
    """
    if _check_int(num_boxes, "num_boxes") < 1:
        raise ValueError(f"`num_boxes` must be at least 1, got {num_boxes}.")
    return separator.join([REFER_REGION] * num_boxes)


def region_caption_prompt(detailed: bool = False, template_index: int = 0) -> str:
    """Query asking to describe the region of one user box, e.g. `"What is <roi><refer_box></roi><refer_feat>?"`.

    Args:
        detailed (`bool`, *optional*, defaults to `False`): Use the detailed (RefCOCOg) phrasings instead of the short
            (Visual Genome) ones.
        template_index (`int`, *optional*, defaults to 0): Which phrasing of `DETAILED_REGION_CAPTION_TEMPLATES` or
            `REGION_CAPTION_TEMPLATES` to use.

    Returns:
        `str`: The query, with one `REFER_REGION` slot (pass one box with it).
    """
    templates = DETAILED_REGION_CAPTION_TEMPLATES if detailed else REGION_CAPTION_TEMPLATES
    return _select(templates, template_index).format(REFER_REGION)


def grounded_caption_prompt(template_index: int = 0) -> str:
    """Query for a caption whose phrases are grounded, e.g. `"[grounding]Give me a concise description of the image."`.

    Args:
        template_index (`int`, *optional*, defaults to 0): Which of the `GROUNDED_CAPTION_TEMPLATES` to use.

    Returns:
        `str`: The query. The model answers with `<p>phrase</p><roi><rK></roi>` markup.
    """
    return GROUNDING_TOKEN + _select(GROUNDED_CAPTION_TEMPLATES, template_index)


__all__ = [
    "ASSISTANT_ROLE",
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
    "USER_ROLE",
    "category_grounding_prompt",
    "grounded_caption_prompt",
    "rec_prompt",
    "region_caption_prompt",
    "region_reference",
]
