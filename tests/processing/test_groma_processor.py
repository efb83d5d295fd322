"""GromaProcessor: inputs for the model, validation, post-processing, serialization."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data

from transformers_groma.processing import (
    GromaImageProcessor,
    GromaProcessor,
    load_original_tokenizer,
    rec_prompt,
    region_caption_prompt,
)


def prompt(query: str) -> str:
    return (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: Here is an image with region crops from it. "
        "Image: <image>. Regions: <region>. ASSISTANT: Thank you for the image! How can I assist you with it?</s>"
        f"USER: {query} ASSISTANT:"
    )


ASTRONAUT = data.astronaut()  # 512 x 512
COFFEE = data.coffee()  # 400 (height) x 600 (width)


def test_real_photographs_with_and_without_boxes(processor):
    texts = [prompt(region_caption_prompt()), prompt(rec_prompt("the cup"))]
    outputs = processor(
        images=[Image.fromarray(ASTRONAUT), COFFEE], text=texts, boxes=[[[100, 50, 300, 450]], []], return_tensors="pt"
    )
    assert set(outputs) == {"input_ids", "attention_mask", "pixel_values", "image_sizes", "refer_boxes"}
    assert outputs["pixel_values"].shape == (2, 3, 112, 112)
    assert outputs["image_sizes"].tolist() == [[512, 512], [400, 600]]
    assert outputs["input_ids"].shape == outputs["attention_mask"].shape
    # 100..300 x 50..450 on a 512 x 512 image: center (200, 250), size 200 x 400
    torch.testing.assert_close(outputs["refer_boxes"][0], torch.tensor([[200 / 512, 250 / 512, 200 / 512, 400 / 512]]))
    assert outputs["refer_boxes"][1].shape == (0, 4) and outputs["refer_boxes"][1].dtype == torch.float32
    tokenizer = processor.tokenizer
    for ids, mask in zip(outputs["input_ids"], outputs["attention_mask"]):
        kept = ids[mask.bool()].tolist()
        assert kept.count(tokenizer.convert_tokens_to_ids("<image>")) == 1
        assert kept.count(tokenizer.convert_tokens_to_ids("<region>")) == 1
        assert kept[0] == tokenizer.bos_token_id


def test_boxes_are_normalized_by_each_original_size(processor):
    box = [[150, 100, 450, 300]]
    outputs = processor(images=[COFFEE], text=[prompt(region_caption_prompt())], boxes=[box])
    torch.testing.assert_close(outputs["refer_boxes"][0], torch.tensor([[0.5, 0.5, 0.5, 0.5]]))


def test_multiple_boxes_fill_placeholders_in_order(processor):
    text = prompt("What is between <roi><refer_box></roi><refer_feat> and <roi><refer_box></roi><refer_feat>?")
    outputs = processor(images=COFFEE, text=text, boxes=[np.array([[0, 0, 60, 40], [540, 360, 600, 400]])])
    torch.testing.assert_close(
        outputs["refer_boxes"][0], torch.tensor([[0.05, 0.05, 0.1, 0.1], [0.95, 0.95, 0.1, 0.1]])
    )


def test_synthetic_arrays_and_tensors(processor):
    generator = np.random.default_rng(0)
    images = [generator.integers(0, 256, (37, 91, 3), dtype=np.uint8), torch.zeros(3, 64, 48, dtype=torch.uint8)]
    outputs = processor(images=images, text=[prompt("Hi"), prompt("Hello there")], return_tensors="pt")
    assert outputs["image_sizes"].tolist() == [[37, 91], [64, 48]]
    assert outputs["pixel_values"].shape == (2, 3, 112, 112)
    assert [boxes.shape for boxes in outputs["refer_boxes"]] == [(0, 4), (0, 4)]


def test_padding_is_on_the_left_by_default(processor):
    processor.tokenizer.padding_side = "right"  # like the original tokenizer_config.json
    outputs = processor(
        images=[COFFEE, COFFEE], text=[prompt("Hi"), prompt("A much longer question")], return_tensors="pt"
    )
    pad_id = processor.tokenizer.pad_token_id
    short_ids, short_mask = outputs["input_ids"][0], outputs["attention_mask"][0]
    num_pad = int((short_mask == 0).sum())
    assert num_pad == len("A much longer question") - len("Hi")  # character-level toy vocabulary
    assert short_ids[:num_pad].tolist() == [pad_id] * num_pad and short_mask[num_pad:].all()
    right = processor(
        images=[COFFEE, COFFEE], text=[prompt("Hi"), prompt("A longer one")], return_tensors="pt", padding_side="right"
    )
    assert right["input_ids"][0, -1] == pad_id and right["attention_mask"][0, 0] == 1


def test_fixture_inputs_are_reproduced(fixture_dir, meta):
    inputs = load_file(fixture_dir / "inputs.safetensors")
    processor = GromaProcessor(GromaImageProcessor(size=112), load_original_tokenizer(fixture_dir), max_region_num=8)
    # refer box of sample 0: cxcywh (0.4, 0.55, 0.5, 0.6) on a 112 x 112 image
    box = [(0.4 - 0.25) * 112, (0.55 - 0.3) * 112, (0.4 + 0.25) * 112, (0.55 + 0.3) * 112]
    images = [np.zeros((112, 112, 3), dtype=np.uint8)] * 2
    outputs = processor(
        images=images, text=meta["prompts"], boxes=[[box], []], padding_side="right", return_tensors="pt"
    )
    assert torch.equal(outputs["input_ids"], inputs["input_ids"])
    assert torch.equal(outputs["attention_mask"], inputs["attention_mask"])
    for index in range(2):
        torch.testing.assert_close(outputs["refer_boxes"][index], inputs[f"refer_boxes.{index}"])


def test_chat_template_tokenization_reproduces_fixture_labels(fixture_dir, meta):
    inputs = load_file(fixture_dir / "inputs.safetensors")
    processor = GromaProcessor(GromaImageProcessor(size=112), load_original_tokenizer(fixture_dir))
    image = np.zeros((112, 112, 3), dtype=np.uint8)
    ground, refer = meta["spec"]["train_samples"]
    box = [(0.55 - 0.225) * 112, (0.45 - 0.25) * 112, (0.55 + 0.225) * 112, (0.45 + 0.25) * 112]
    conversations = [
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image},
                    {"type": "text", "text": "[grounding]" + ground["user"]},
                ],
            },
            {"role": "assistant", "content": ground["answer"]},
        ],
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image},
                    {"type": "text", "text": "Please describe "},
                    {"type": "box", "box": box},
                    {"type": "text", "text": " in details."},
                ],
            },
            {"role": "assistant", "content": refer["answer"]},
        ],
    ]
    for index, conversation in enumerate(conversations):
        outputs = processor.apply_chat_template(
            conversation, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
        )
        mask = inputs["train_attention_mask"][index] == 1
        assert torch.equal(outputs["input_ids"][0], inputs["train_input_ids"][index][mask])
        # The answer tokens and their </s> are exactly the tokens the original supervises.
        assert torch.equal(outputs["assistant_masks"][0].bool(), inputs["train_labels"][index][mask] != -100)
        torch.testing.assert_close(outputs["refer_boxes"][0], inputs[f"train_refer_boxes.{index}"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"boxes": [[[-5, 0, 10, 10]]]}, ValueError, r"`boxes\[0\]\[0\]` = .* is not inside the image of width 600"),
        ({"boxes": [[[0, 0, 601, 10]]]}, ValueError, r"not inside the image of width 600 and height 400"),
        ({"boxes": [[[10, 0, 10, 10]]]}, ValueError, r"`boxes\[0\]\[0\]` = .* is empty: .* x1 < x2"),
        ({"boxes": [[[0, 20, 10, 10]]]}, ValueError, r"is empty: .* y1 < y2"),
        ({"boxes": [[0, 0, 10, 10]]}, ValueError, r"`boxes\[0\]` must have shape \(n, 4\)"),
        ({"boxes": [[[0, 0, 10]]]}, ValueError, r"`boxes\[0\]` must have shape \(n, 4\)"),
        (
            {"boxes": [[[0, 0, 10, 10], [0, 0, 20, 20]]]},
            ValueError,
            r"has 1 <refer_box> placeholders but `boxes\[0\]` holds 2",
        ),
        ({"boxes": [[]]}, ValueError, r"has 1 <refer_box> placeholders but `boxes\[0\]` holds 0"),
        ({}, ValueError, r"has 1 <refer_box> placeholders but `boxes\[0\]` holds 0"),
        (
            {"boxes": [[[0, 0, 10, 10]], []]},
            ValueError,
            r"`boxes` must hold one entry per image .* got 2 entries for 1",
        ),
        ({"boxes": torch.zeros(1, 1, 4)}, TypeError, r"`boxes` must be a list with one entry of boxes per image"),
    ],
)
def test_box_validation_errors(processor, kwargs, error, message):
    with pytest.raises(error, match=message):
        processor(images=COFFEE, text=prompt(region_caption_prompt()), **kwargs)


def test_too_many_boxes(tiny_tokenizer):
    processor = GromaProcessor(GromaImageProcessor(size=112), tiny_tokenizer, max_region_num=2)
    text = prompt(" ".join(["<roi><refer_box></roi><refer_feat>"] * 3))
    boxes = [[[0, 0, 10, 10]] * 3]
    with pytest.raises(ValueError, match=r"`boxes\[0\]` holds 3 boxes, more than `max_region_num` \(2\)"):
        processor(images=COFFEE, text=text, boxes=boxes)
    processor(images=COFFEE, text=prompt(" ".join(["<roi><refer_box></roi><refer_feat>"] * 2)), boxes=[boxes[0][:2]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("No placeholders at all. ASSISTANT:", r"`text\[0\]` must contain exactly one <image> placeholder, found 0"),
        (prompt("Hi").replace("<region>", "x"), r"`text\[0\]` must contain exactly one <region> placeholder, found 0"),
        (prompt("Two images <image>"), r"exactly one <image> placeholder, found 2"),
        (prompt("Two region lists <region>"), r"exactly one <region> placeholder, found 2"),
    ],
)
def test_placeholder_errors(processor, text, message):
    with pytest.raises(ValueError, match=message):
        processor(images=COFFEE, text=text)


def test_image_and_text_count_errors(processor):
    with pytest.raises(ValueError, match="got 2 prompts in `text` and 1 `images`"):
        processor(images=COFFEE, text=[prompt("a"), prompt("b")])
    with pytest.raises(ValueError, match="got 1 prompts in `text` and 2 `images`"):
        processor(images=[COFFEE, ASTRONAUT], text=prompt("a"))
    with pytest.raises(ValueError, match=r"`text\[0\]` holds <image> but no `images` were given"):
        processor(text=prompt("a"))
    with pytest.raises(ValueError, match="`boxes` needs `text` and `images`"):
        processor(text="Where is it?", boxes=[[[1, 2, 3, 4]]])
    with pytest.raises(ValueError, match="`boxes` needs `text`"):
        processor(images=COFFEE, boxes=[[]])
    with pytest.raises(ValueError, match="needs `images`"):
        processor()
    with pytest.raises(TypeError, match="`text` must be a string or a list of strings"):
        processor(images=COFFEE, text=[3])


def test_truncated_placeholders_are_reported(processor):
    with pytest.raises(ValueError, match="placeholders of `text\\[0\\]` did not survive tokenization"):
        processor(images=COFFEE, text=prompt("Hi"), truncation=True, max_length=20)


@pytest.mark.parametrize("images", [[], (), [[]], [[], []]])
def test_no_image_is_reported(processor, images):
    with pytest.raises(ValueError, match="`images` holds no image: give one image per prompt"):
        processor(images=images)
    with pytest.raises(ValueError, match="`images` holds no image"):
        processor(images=images, text=[])


def test_images_only(processor):
    outputs = processor(images=[COFFEE, ASTRONAUT], return_tensors="pt")
    assert set(outputs) == {"pixel_values", "image_sizes"}
    assert outputs["image_sizes"].tolist() == [[400, 600], [512, 512]]


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


REGIONS = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]])


def test_post_process_grounding(processor, caplog):
    tokenizer = processor.tokenizer
    generations = [
        ids(tokenizer, "<p>A cup</p> <roi><r2></roi> on <p>a table</p> <roi><r0><r1></roi>.</s>"),
        ids(tokenizer, "<roi><r1><r7></roi></s>"),
    ]
    generations[1] = [tokenizer.pad_token_id] * (len(generations[0]) - len(generations[1])) + generations[1]
    with caplog.at_level(logging.WARNING):
        results = processor.post_process_grounding(
            torch.tensor(generations), [REGIONS, REGIONS[:2]], target_sizes=[(400, 600), (100, 200)]
        )
    assert results[0]["text"] == "A cup on a table."
    assert results[0]["entities"] == [
        {"phrase": "A cup", "boxes": [[300.0, 200.0, 600.0, 400.0]], "region_indices": [2], "span": (0, 5)},
        {
            "phrase": "a table",
            "boxes": [[0.0, 0.0, 600.0, 400.0], [0.0, 0.0, 300.0, 200.0]],
            "region_indices": [0, 1],
            "span": (9, 16),
        },
    ]
    assert results[1] == {
        "text": "",
        "entities": [{"phrase": None, "boxes": [[0.0, 0.0, 100.0, 50.0]], "region_indices": [1], "span": None}],
    }
    assert "Dropping region indices [7]" in caplog.text


def test_post_process_grounding_keeps_the_region_order_inside_a_group(processor):
    generation = ids(processor.tokenizer, "<p>Two cups</p> <roi><r1><r0><r2></roi>.</s>")
    result = processor.post_process_grounding(torch.tensor([generation]), [REGIONS], target_sizes=[(400, 600)])[0]
    assert result["entities"][0]["region_indices"] == [1, 0, 2]
    expected = [[0.0, 0.0, 300.0, 200.0], [0.0, 0.0, 600.0, 400.0], [300.0, 200.0, 600.0, 400.0]]
    assert result["entities"][0]["boxes"] == expected


def test_post_process_grounding_checks_lengths(processor):
    with pytest.raises(ValueError, match="one entry per sample, got 1, 2 and 1"):
        processor.post_process_grounding([[1]], [REGIONS, REGIONS], [(10, 10)])


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (([[1]], None, [(10, 10)]), TypeError, r"`region_boxes` must hold one `\(num_regions, 4\)` tensor .*NoneType"),
        (([[1]], [REGIONS], 10), TypeError, r"`target_sizes` must hold one `\(height, width\)` pair .*got int"),
        (
            ([[1]], [REGIONS], [100]),
            ValueError,
            r"`target_sizes\[0\]` must be a positive \(height, width\) pair, got 100",
        ),
        (([[1]], [REGIONS], [(0, 10)]), ValueError, r"`target_sizes\[0\]` must be a positive"),
        (([[1]], [REGIONS[0]], [(10, 10)]), ValueError, r"`region_boxes\[0\]` must have shape \(n, 4\)"),
        ((torch.tensor([1, 2]), [REGIONS], [(10, 10)]), TypeError, r"got int for `generated_ids\[0\]`.*batch dim"),
        (([[1, -5]], [REGIONS], [(10, 10)]), ValueError, r"`generated_ids\[0\]` must hold token ids .*got \[-5\]"),
        ((None, [REGIONS], [(10, 10)]), TypeError, r"`generated_ids` must hold one sequence of token ids per sample"),
    ],
)
def test_post_process_grounding_argument_errors(processor, arguments, error, message):
    with pytest.raises(error, match=message):
        processor.post_process_grounding(*arguments)


def test_post_process_grounding_ignores_label_padding(processor):
    generation = ids(processor.tokenizer, "<p>A cup</p><roi><r2></roi>.")
    # region 2 is (0.75, 0.75, 0.5, 0.5): x and y from 0.5 to 1.0 of 20 pixels
    padded = [[-100, -100, *generation, -100]]
    expected = {
        "text": "A cup.",
        "entities": [{"phrase": "A cup", "boxes": [[10.0, 10.0, 20.0, 20.0]], "region_indices": [2], "span": (0, 5)}],
    }
    assert processor.post_process_grounding(torch.tensor(padded), [REGIONS], target_sizes=[(20, 20)]) == [expected]
    # sizes as a tensor, boxes in bfloat16 (as a 16-bit model returns them)
    sizes = torch.tensor([[20, 20]])
    assert processor.post_process_grounding([generation], [REGIONS.bfloat16()], sizes) == [expected]


@pytest.mark.parametrize("legacy", [True, False])
def test_post_process_grounding_with_the_original_tokenizer(fixture_dir, legacy):
    # A `legacy=False` tokenizer decodes `is <p>a man</p><roi><r0></roi> in` as `is<p>a man</p><roi><r0></roi>in`.
    processor = GromaProcessor(GromaImageProcessor(), load_original_tokenizer(fixture_dir, legacy=legacy))
    text = "There is <p>a man</p><roi><r0></roi> in the picture, next to <p>a dog</p><roi><r1><r2></roi>.</s>"
    (result,) = processor.post_process_grounding([ids(processor.tokenizer, text)], [REGIONS], [(100, 100)])
    assert result["text"] == "There is a man in the picture, next to a dog."
    assert [(entity["phrase"], entity["span"], entity["region_indices"]) for entity in result["entities"]] == [
        ("a man", (9, 14), [0]),
        ("a dog", (39, 44), [1, 2]),
    ]
    assert processor.post_process_image_text_to_text([ids(processor.tokenizer, text)]) == [result["text"]]


def test_post_process_image_text_to_text(processor):
    tokenizer = processor.tokenizer
    generation = ids(tokenizer, "<p>A cup</p><roi><r2></roi> on a table.</s>")
    assert processor.post_process_image_text_to_text([generation]) == ["A cup on a table."]
    kept = processor.post_process_image_text_to_text([generation], skip_special_tokens=False)
    assert kept == ["<p> A cup</p><roi><r2></roi> on a table.</s>"]  # legacy: "▁" after every added token


def test_save_and_reload(processor, tmp_path):
    processor = GromaProcessor(processor.image_processor, processor.tokenizer, max_region_num=7)
    processor.save_pretrained(tmp_path)
    reloaded = GromaProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded.image_processor, GromaImageProcessor)
    assert reloaded.max_region_num == 7
    assert reloaded.chat_template == processor.chat_template
    text = prompt(region_caption_prompt())
    expected = processor(images=COFFEE, text=text, boxes=[[[1, 2, 30, 40]]], return_tensors="pt")
    actual = reloaded(images=COFFEE, text=text, boxes=[[[1, 2, 30, 40]]], return_tensors="pt")
    for key in ("input_ids", "attention_mask", "pixel_values", "image_sizes"):
        assert torch.equal(actual[key], expected[key]), key
    torch.testing.assert_close(actual["refer_boxes"][0], expected["refer_boxes"][0])


def test_model_input_names(processor):
    assert processor.model_input_names == ["pixel_values", "image_sizes", "input_ids", "attention_mask", "refer_boxes"]


def test_text_only_prompts_are_tokenized_for_the_language_model(processor):
    texts = ["What is the capital of France?", "Hi"]
    inputs = processor(text=texts, return_tensors="pt")
    assert set(inputs) == {"input_ids", "attention_mask"}
    expected = processor.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
    torch.testing.assert_close(inputs["input_ids"], expected["input_ids"])
    torch.testing.assert_close(inputs["attention_mask"], expected["attention_mask"])


def test_refer_boxes_stay_a_list_of_tensors(processor):
    inputs = processor(images=COFFEE, text=prompt("a"), return_tensors="pt")
    assert isinstance(inputs["refer_boxes"], list) and inputs["refer_boxes"][0].shape == (0, 4)
