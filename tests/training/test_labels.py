"""Labels supervise exactly the answers (and their `</s>` with the llava template); batching and truncation."""

import pytest
import torch

from transformers_groma import GromaForConditionalGeneration
from transformers_groma.processing import CHAT_TEMPLATE, FIRST_ASSISTANT_MESSAGE, SYSTEM_PROMPT, add_groma_tokens
from transformers_groma.tiny import tiny_groma_config, tiny_groma_processor, tiny_groma_tokenizer
from transformers_groma.tokens import IGNORE_INDEX
from transformers_groma.training import (
    ConversationEncoder,
    DataSource,
    GromaDataCollator,
    InvalidRecordError,
    build_conversation_mixture,
)

from .synthetic import vicuna_like_tokenizer


ANSWERS = ["<roi><ground_box></roi>", "A brown dog."]
MESSAGES = [
    {"role": "user", "content": "Locate <p>the dog</p> in the image."},
    {"role": "assistant", "content": ANSWERS[0]},
    {"role": "user", "content": "What is <roi><refer_box></roi><refer_feat>?"},
    {"role": "assistant", "content": ANSWERS[1]},
]


def vicuna_like_groma_tokenizer():
    tokenizer = vicuna_like_tokenizer()
    add_groma_tokens(tokenizer)
    return tokenizer


@pytest.fixture(scope="module", params=[tiny_groma_tokenizer, vicuna_like_groma_tokenizer])
def tokenizer(request):
    """The tiny byte-level tokenizer, and a SentencePiece-style Llama one (prefix spaces, stripped Groma tokens)."""
    return request.param()


def supervised_spans(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """Runs of consecutive supervised positions, as token ids (checking that labels equal the ids there)."""
    spans, current = [], []
    for token, label in zip(input_ids, labels):
        if label == IGNORE_INDEX:
            if current:
                spans.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    return spans + [current] if current else spans


def test_llava_template_supervises_answers_and_their_eos(tokenizer):
    input_ids, labels, kept = ConversationEncoder(tokenizer, "llava", 2048)(MESSAGES)
    assert kept == 4
    assert input_ids[0] == tokenizer.bos_token_id and labels[0] == IGNORE_INDEX
    spans = supervised_spans(input_ids, labels)
    assert [tokenizer.decode(span).strip() for span in spans] == [answer + "</s>" for answer in ANSWERS]
    # Each answer starts right after the ids of the inference prompt of the conversation so far (system prompt,
    # fixed first exchange with its </s>, the earlier turns, the question and "ASSISTANT:").
    starts = [i for i, label in enumerate(labels) if label != IGNORE_INDEX and labels[i - 1] == IGNORE_INDEX]
    for start, turns in zip(starts, (MESSAGES[:1], MESSAGES[:3]), strict=True):
        prompt = tokenizer.apply_chat_template(
            turns, chat_template=CHAT_TEMPLATE, add_generation_prompt=True, tokenize=False
        )
        assert input_ids[:start] == tokenizer(prompt, add_special_tokens=True).input_ids
    prompt = tokenizer.decode(input_ids[: starts[0]])
    assert SYSTEM_PROMPT in prompt and FIRST_ASSISTANT_MESSAGE + "</s>" in prompt
    eos_positions = [i for i, token in enumerate(input_ids) if token == tokenizer.eos_token_id]
    assert [labels[i] != IGNORE_INDEX for i in eos_positions] == [False, True, True]


@pytest.mark.parametrize("answer", ["2 dogs.", "Because.", "<roi><ground_box></roi>", "[1, 2] and <p>a dog</p>"])
def test_training_ids_continue_the_inference_prompt_and_supervise_all_of_the_answer(tokenizer, answer):
    # Independent of the encoder: the inference prompt (chat template + add_generation_prompt) must be a prefix of
    # the training ids, fully masked, and every token after it (the answer's first token too, e.g. a bare "▁" before
    # a digit) is supervised: what the model learns to produce is exactly what follows the prompt it sees.
    question = [{"role": "user", "content": "How many dogs?"}]
    prompt = tokenizer.apply_chat_template(
        question, chat_template=CHAT_TEMPLATE, add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=True).input_ids
    input_ids, labels, _ = ConversationEncoder(tokenizer, "llava", 2048)(
        [*question, {"role": "assistant", "content": answer}]
    )
    assert input_ids[: len(prompt_ids)] == prompt_ids
    assert set(labels[: len(prompt_ids)]) == {IGNORE_INDEX}
    assert labels[len(prompt_ids) :] == input_ids[len(prompt_ids) :]
    assert input_ids[-1] == tokenizer.eos_token_id
    answer_text = tokenizer.decode(input_ids[len(prompt_ids) : -1])
    # spaces next to Groma tokens are stripped, as the original tokenizer did
    assert "".join(answer_text.split()) == "".join(answer.split())


def test_sep_in_the_conversation_text_is_refused(tokenizer):
    with pytest.raises(ValueError, match="<sep>"):
        ConversationEncoder(tokenizer, "llava", 2048)(
            [{"role": "user", "content": "a <sep> b"}, {"role": "assistant", "content": "c"}]
        )


def test_default_template_supervises_answers_only(tokenizer):
    input_ids, labels, _ = ConversationEncoder(tokenizer, "default", 2048)(MESSAGES)
    spans = supervised_spans(input_ids, labels)
    assert [tokenizer.decode(span).strip() for span in spans] == ANSWERS
    assert tokenizer.eos_token_id not in input_ids  # stage 2 never sees nor trains </s>


def test_long_conversations_lose_whole_trailing_exchanges(tokenizer):
    full_ids, _, _ = ConversationEncoder(tokenizer, "llava", 2048)(MESSAGES)
    first_ids, first_labels, kept = ConversationEncoder(tokenizer, "llava", len(full_ids) - 1)(MESSAGES)
    assert kept == 2 and full_ids[: len(first_ids)] == first_ids
    assert [tokenizer.decode(span).strip() for span in supervised_spans(first_ids, first_labels)] == [
        ANSWERS[0] + "</s>"
    ]
    with pytest.raises(ValueError, match="first exchange alone"):
        ConversationEncoder(tokenizer, "llava", len(first_ids) - 1)(MESSAGES)
    # The build-time check agrees: it passes exactly the records that __call__ can encode.
    ConversationEncoder(tokenizer, "llava", len(first_ids)).check(MESSAGES)
    with pytest.raises(InvalidRecordError, match=f"first exchange alone is {len(first_ids)} tokens"):
        ConversationEncoder(tokenizer, "llava", len(first_ids) - 1).check(MESSAGES)


def test_dataset_and_collator_build_model_inputs(coco, custom_jsonl):
    processor = tiny_groma_processor()
    source = DataSource("custom", str(custom_jsonl), coco["image_dir"])
    dataset = build_conversation_mixture([source], processor.tokenizer, processor.image_processor, "llava", 2048, 8, 0)
    items = [dataset[0], dataset[1]]
    short = ConversationEncoder(processor.tokenizer, "llava", len(items[1]["input_ids"]) - 1)
    dataset.datasets[0].encoder = short  # the second exchange (and its refer box) no longer fits
    items[1] = dataset[1]
    assert items[1]["refer_boxes"].shape == (0, 4) and items[1]["ground_boxes"].shape == (1, 4)

    batch = GromaDataCollator(processor.tokenizer.pad_token_id)(items)
    lengths = [len(item["input_ids"]) for item in items]
    assert batch["input_ids"].shape == (2, max(lengths)) and batch["pixel_values"].shape == (2, 3, 112, 112)
    for row, length in enumerate(lengths):
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (max(lengths) - length)
        assert (batch["input_ids"][row, length:] == processor.tokenizer.pad_token_id).all()
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
    height, width = items[0]["image_size"]
    x1, y1, x2, y2 = items[0]["ground_boxes"][0].tolist()
    expected = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
    assert batch["ground_boxes"][0][0].tolist() == pytest.approx(expected)

    # The model turns <ground_box> into the matched <rK> in ids and labels and supervises the same number of tokens.
    torch.manual_seed(0)
    model = GromaForConditionalGeneration(tiny_groma_config())
    outputs = model(**batch)
    assert torch.isfinite(outputs.loss)
    supervised = outputs.expanded_labels != IGNORE_INDEX
    assert supervised.sum() == (batch["labels"] != IGNORE_INDEX).sum()
    region_ids = outputs.expanded_labels[supervised]
    first_region = model.config.region_index_token_id
    assert ((region_ids >= first_region) & (region_ids < first_region + 8)).sum() == 2  # one <rK> per sample


@pytest.mark.parametrize(
    "text",
    [
        "1 2 3 4 5 6 7 8 9",
        "<roi><r1><r2><r3></roi> <p>a</p> <p>b</p><roi><r4></roi>",
        "ünïcødé 😀 😀 ✓",
        "  a   b    c  ",
    ],
)
def test_no_text_has_more_tokens_than_bytes_plus_two(tokenizer, text):
    # The bound `ConversationEncoder.check` relies on to skip tokenizing short first exchanges.
    encoder = ConversationEncoder(tokenizer, "llava", 2048)
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": text}]
    assert len(encoder.encode(messages)[0]) <= len(encoder.render(messages).encode()) + 2
    assert len(tokenizer(text).input_ids) <= len(text.encode()) + 2
