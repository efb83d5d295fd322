"""The chat templates and task prompts against the original conversation format (spec §3.3, §3.4)."""

import numpy as np
import pytest
from jinja2.exceptions import TemplateError

from transformers_groma.processing import (
    STAGE2_CHAT_TEMPLATE,
    category_grounding_prompt,
    grounded_caption_prompt,
    rec_prompt,
    region_caption_prompt,
    region_reference,
)


# Literal strings of the original code (groma/data/conversation.py, the datasets and the eval scripts).
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
FIRST_TURNS = [
    ("USER", "Here is an image with region crops from it. Image: <image>. Regions: <region>."),
    ("ASSISTANT", "Thank you for the image! How can I assist you with it?"),
]
REFER = "<roi><refer_box></roi><refer_feat>"


def original_prompt(turns: list[tuple[str, str]], sep: str = " ", sep2: str = "</s>") -> str:
    """`Conversation.get_prompt` with `sep_style="two"`, applied to the fixed first exchange + `turns`."""
    prompt = SYSTEM + sep
    for index, (role, message) in enumerate(FIRST_TURNS + turns):
        prompt += f"{role}: {message}{(sep, sep2)[index % 2]}" if message else f"{role}:"
    return prompt


def user_turn(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def test_inference_prompts_match_fixture_strings(processor, meta):
    refer_query = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "Can you provide me with a detailed description of "},
                {"type": "box"},
                {"type": "text", "text": "?"},
            ],
        }
    ]
    plain_query = user_turn("[grounding]Please briefly describe this image.")
    rendered = [processor.apply_chat_template(c, add_generation_prompt=True) for c in (refer_query, plain_query)]
    assert rendered == meta["prompts"]


def test_training_conversations_match_fixture_strings(processor, meta):
    ground, refer = meta["spec"]["train_samples"]
    conversations = [
        user_turn("[grounding]" + ground["user"]) + [{"role": "assistant", "content": ground["answer"]}],
        user_turn(region_caption_prompt(detailed=True, template_index=1))
        + [{"role": "assistant", "content": refer["answer"]}],
    ]
    # The original wraps answers in <sep> ... <sep> to build the labels; the text is otherwise identical.
    expected = [prompt.replace("<sep>", "") for prompt in meta["train_prompts"]]
    assert [processor.apply_chat_template(conversation) for conversation in conversations] == expected


REC = [
    "Locate <p>the man in red</p> in the image.",
    "Can you spot <p>the man in red</p> in the photograph?",
    "Identify where <p>the man in red</p> is located in the picture.",
    "Please detect <p>the man in red</p> in the picture.",
    "Which region matches the description <p>the man in red</p>?",
    "Please identify the object that corresponds to <p>the man in red</p>.",
]
CATEGORY = [
    "Locate all <p>traffic light</p> in this image.",
    "Identify all instances of <p>traffic light</p> in the photo.",
    "Find all instances of <p>traffic light</p> in the image.",
    "Point out all the <p>traffic light</p> visible in this picture.",
    "Detect and list each <p>traffic light</p> that appears in this photo.",
    "What is the position of each <p>traffic light</p> in the image?",
]
SHORT_CAPTION = [
    f"What is {REFER}?",
    f"Please briefly describe {REFER}.",
    f"Provide a short description for {REFER}.",
    f"Please give a concise description of region {REFER}.",
]
DETAILED_CAPTION = [
    f"Can you provide me with a detailed description of {REFER}?",
    f"Please describe {REFER} in details.",
    f"I'm curious about {REFER} in the photo. Can you describe it in detail?",
    f"Please give a comprehensive description of the object {REFER}.",
    f"What does the object {REFER} in the picture look like? Could you give me a detailed description?",
]
GROUNDED_CAPTION = [
    "[grounding]Give me a concise description of the image.",
    "[grounding]Please briefly summarize the content of this image.",
    "[grounding]What does this picture show? Please summarize briefly.",
    "[grounding]Can you give me a quick overview of what's depicted in this image?",
    "[grounding]Could you describe the key elements in this photograph?",
    "[grounding]Offer a brief explanation of what this image represents.",
    "[grounding]Sum up the contents of this picture in one or two sentences.",
]
TASK_QUERIES = (
    [(rec_prompt(" the man in red ", i), expected) for i, expected in enumerate(REC)]
    + [(category_grounding_prompt("Traffic_Light", i), expected) for i, expected in enumerate(CATEGORY)]
    + [(region_caption_prompt(template_index=i), expected) for i, expected in enumerate(SHORT_CAPTION)]
    + [(region_caption_prompt(True, i), expected) for i, expected in enumerate(DETAILED_CAPTION)]
    + [(grounded_caption_prompt(i), expected) for i, expected in enumerate(GROUNDED_CAPTION)]
)


@pytest.mark.parametrize(("query", "expected_query"), TASK_QUERIES)
def test_task_prompt_renders_like_the_original(processor, query, expected_query):
    assert query == expected_query
    rendered = processor.apply_chat_template(user_turn(query), add_generation_prompt=True)
    assert rendered == original_prompt([("USER", expected_query), ("ASSISTANT", "")])
    assert rendered.endswith(f"</s>USER: {expected_query} ASSISTANT:")


def test_box_items_render_in_place(processor):
    content = [
        {"type": "image"},
        {"type": "text", "text": "What is between "},
        {"type": "box", "box": [0, 0, 10, 10]},
        {"type": "text", "text": " and "},
        {"type": "box", "box": [5, 5, 20, 20]},
        {"type": "text", "text": "?"},
    ]
    rendered = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    query = f"What is between {REFER} and {REFER}?"
    assert rendered == original_prompt([("USER", query), ("ASSISTANT", "")])
    assert f"What is between {region_reference(2)}?" == query


@pytest.mark.parametrize(("template", "sep2"), [(None, "</s>"), (STAGE2_CHAT_TEMPLATE, " ")])
def test_multi_turn_conversation(processor, template, sep2):
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "[grounding]What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<p>A cat</p> <roi><ground_box></roi>."}]},
        {"role": "user", "content": "And its color?"},
        {"role": "assistant", "content": "Orange."},
    ]
    turns = [("USER", "[grounding]What is this?"), ("ASSISTANT", "<p>A cat</p> <roi><ground_box></roi>.")]
    turns += [("USER", "And its color?"), ("ASSISTANT", "Orange.")]
    rendered = processor.apply_chat_template(conversation, chat_template=template)
    assert rendered == original_prompt(turns, sep2=sep2)
    follow_up = conversation + [{"role": "user", "content": "Where is it?"}]
    rendered = processor.apply_chat_template(follow_up, chat_template=template, add_generation_prompt=True)
    assert rendered == original_prompt(turns + [("USER", "Where is it?"), ("ASSISTANT", "")], sep2=sep2)


def test_stage2_template_uses_space_after_answers(processor):
    rendered = processor.apply_chat_template(user_turn("Hi"), chat_template=STAGE2_CHAT_TEMPLATE)
    assert rendered == (
        f"{SYSTEM} USER: Here is an image with region crops from it. Image: <image>. Regions: <region>. "
        "ASSISTANT: Thank you for the image! How can I assist you with it? USER: Hi "
    )
    assert "</s>" not in rendered


def test_system_message_replaces_system_prompt(processor):
    conversation = [{"role": "system", "content": "Be brief."}] + user_turn("Hi")
    rendered = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert rendered.startswith("Be brief. USER: Here is an image")
    assert rendered.endswith("</s>USER: Hi ASSISTANT:")


@pytest.mark.parametrize(
    "conversation",
    [
        [{"role": "assistant", "content": "Hello"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    ],
)
def test_roles_must_alternate(processor, conversation):
    with pytest.raises(TemplateError, match="alternate user and assistant"):
        processor.apply_chat_template(conversation)


@pytest.mark.parametrize("template", [None, STAGE2_CHAT_TEMPLATE])
@pytest.mark.parametrize(
    "conversation",
    [
        user_turn("q1") + [{"role": "assistant", "content": "a1"}],
        user_turn("q1") + [{"role": "assistant", "content": ""}],
        [{"role": "system", "content": "Be brief."}],
    ],
    ids=["answered", "empty-answer", "no-user-turn"],
)
def test_generation_prompt_needs_a_final_user_turn(processor, conversation, template):
    # Otherwise the assistant would answer twice in a row: "ASSISTANT: a1</s>ASSISTANT:".
    with pytest.raises(TemplateError, match="add_generation_prompt needs a conversation that ends with a user turn"):
        processor.apply_chat_template(conversation, chat_template=template, add_generation_prompt=True)
    processor.apply_chat_template(conversation, chat_template=template)  # without a generation prompt: fine


def test_assistant_mask_covers_answer_and_eos(processor):
    conversation = user_turn("Hi") + [{"role": "assistant", "content": "Yo"}]
    conversation[0]["content"][0]["image"] = np.zeros((8, 8, 3), dtype=np.uint8)
    out = processor.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    # Character-level toy vocabulary: the "▁" before the answer comes from the separator space, not the answer.
    assert processor.tokenizer.convert_ids_to_tokens([i for i, m in zip(ids, mask) if m]) == ["Y", "o", "</s>"]


@pytest.mark.parametrize(
    ("make_prompt", "num_templates"),
    [
        (lambda index: rec_prompt("x", index), 6),
        (lambda index: category_grounding_prompt("x", index), 6),
        (lambda index: region_caption_prompt(False, index), 4),
        (lambda index: region_caption_prompt(True, index), 5),
        (grounded_caption_prompt, 7),
    ],
)
def test_template_index_out_of_range(make_prompt, num_templates):
    with pytest.raises(
        ValueError, match=f"`template_index` must be in \\[0, {num_templates - 1}\\], got {num_templates}"
    ):
        make_prompt(num_templates)
    with pytest.raises(ValueError, match="`template_index`"):
        make_prompt(-1)


def test_region_reference_needs_a_box():
    with pytest.raises(ValueError, match="`num_boxes` must be at least 1"):
        region_reference(0)


@pytest.mark.parametrize(
    ("make_prompt", "error", "message"),
    [
        (lambda: rec_prompt(""), ValueError, "`expression` must be a non-empty phrase, got ''"),
        (lambda: rec_prompt("  "), ValueError, "`expression` must be a non-empty phrase, got '  '"),
        (lambda: rec_prompt(None), TypeError, "`expression` must be a string, got NoneType"),
        (lambda: category_grounding_prompt(3), TypeError, "`category` must be a string, got int"),
        (lambda: category_grounding_prompt(" _ "), ValueError, "`category` must be a non-empty phrase, got ' _ '"),
        (lambda: region_reference(1.5), TypeError, "`num_boxes` must be an int, got float"),
        (lambda: region_reference(True), TypeError, "`num_boxes` must be an int, got bool"),
        (lambda: rec_prompt("x", template_index=True), TypeError, "`template_index` must be an int, got bool"),
        (lambda: grounded_caption_prompt("1"), TypeError, "`template_index` must be an int, got str"),
    ],
)
def test_prompt_helpers_reject_bad_arguments(make_prompt, error, message):
    with pytest.raises(error, match=message):
        make_prompt()
