"""Low-memory loading of both models: bitsandbytes 8-bit and 4-bit (on its CPU backend) with the vision path and the
GroundingGPT encoders left unquantized, and `device_map` with CPU and disk offload."""

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, BitsAndBytesConfig

from transformers_groma import GroundingGPTForConditionalGeneration
from transformers_groma.tiny import (
    tiny_groma_model,
    tiny_groma_processor,
    tiny_groundinggpt_config,
    tiny_groundinggpt_model,
    tiny_groundinggpt_processor,
)


bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed (pip install '.[quantization]')")

NEW_TOKENS = 8
QUANTIZED_TYPES = (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit)


def greedy(model: torch.nn.Module, inputs) -> torch.Tensor:
    """The prompt and `NEW_TOKENS` greedy tokens."""
    return model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)


def float_tokens(folder, inputs) -> torch.Tensor:
    """`greedy` tokens of the unquantized model saved in `folder`."""
    return greedy(AutoModelForImageTextToText.from_pretrained(folder).eval(), inputs)


def assert_same_first_new_token(tokens: torch.Tensor, expected: torch.Tensor) -> None:
    # 4-bit weights of a random tiny LLM move its near-tied logits: only the prompt and the first new token are compared
    prompt_and_one = expected.shape[1] - NEW_TOKENS + 1
    assert torch.equal(tokens[:, :prompt_and_one], expected[:, :prompt_and_one])


def chat_inputs(processor, question: str, image: Image.Image):
    """Model inputs of one user turn holding `image` and `question`, with the generation prompt."""
    content = [{"type": "image"}, {"type": "text", "text": question}]
    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    return processor(images=image, text=prompt, return_tensors="pt")


def quantized_module_names(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, QUANTIZED_TYPES)]


@pytest.fixture(scope="module")
def groma_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-groma")
    tiny_groma_model().save_pretrained(folder)
    tiny_groma_processor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def groma_inputs():
    return chat_inputs(
        tiny_groma_processor(), "Locate <p>the dog</p> in the image.", Image.new("RGB", (100, 80), "red")
    )


@pytest.fixture(scope="module")
def groma_tokens(groma_folder, groma_inputs):
    return float_tokens(groma_folder, groma_inputs)


def test_groma_8bit_keeps_the_vision_path_and_generates_the_same_tokens(groma_folder, groma_inputs, groma_tokens):
    model = AutoModelForImageTextToText.from_pretrained(
        groma_folder, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu"
    )
    names = quantized_module_names(model)
    assert "model.multi_modal_projector.linear_1" in names and "model.language_model.layers.0.mlp.up_proj" in names
    assert not [name for name in names if name.split(".")[1] in ("vision_tower", "region_proposer", "region_encoder")]
    assert model.model.vision_tower.dtype == torch.float32 and "lm_head" not in names
    tokens = greedy(model, groma_inputs)
    assert torch.equal(tokens, groma_tokens)


def test_groma_4bit_keeps_the_vision_path_and_starts_like_float32(groma_folder, groma_inputs, groma_tokens):
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForImageTextToText.from_pretrained(groma_folder, quantization_config=config, device_map="cpu")
    assert isinstance(model.model.language_model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert not [name for name in quantized_module_names(model) if "vision_tower" in name or "region_" in name]
    # the unquantized vision path proposes exactly the float model's regions
    float_model = AutoModelForImageTextToText.from_pretrained(groma_folder).eval()
    boxes, scores = model.propose_regions(groma_inputs["pixel_values"])
    float_boxes, float_scores = float_model.propose_regions(groma_inputs["pixel_values"])
    assert all(torch.equal(a, b) for a, b in zip(boxes, float_boxes))
    assert all(torch.equal(a, b) for a, b in zip(scores, float_scores))
    assert_same_first_new_token(greedy(model, groma_inputs), groma_tokens)


def test_groma_loads_with_cpu_and_disk_offload(groma_folder, groma_inputs, groma_tokens, tmp_path):
    device_map = {
        "model.vision_tower": "cpu",
        "model.region_proposer": "disk",
        "model.region_encoder": "disk",
        "model.multi_modal_projector": "cpu",
        "model.language_model": "disk",
        "lm_head": "cpu",
    }
    model = AutoModelForImageTextToText.from_pretrained(
        groma_folder, device_map=device_map, offload_folder=tmp_path / "offload"
    )
    assert model.model.region_proposer.query_embeddings.weight.device.type == "meta"  # really offloaded
    tokens = greedy(model, groma_inputs)
    assert torch.equal(tokens, groma_tokens)


def test_groma_device_map_auto_offloads_within_a_memory_budget(groma_folder, groma_inputs, groma_tokens, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(
        groma_folder, device_map="auto", max_memory={"cpu": "1MB"}, offload_folder=tmp_path / "offload"
    )
    assert "disk" in set(model.hf_device_map.values())
    tokens = greedy(model, groma_inputs)
    assert torch.equal(tokens, groma_tokens)


def test_keep_vision_path_fp32_false_lets_the_vision_path_be_quantized(groma_folder, groma_inputs):
    config = BitsAndBytesConfig(load_in_8bit=True)
    model = AutoModelForImageTextToText.from_pretrained(
        groma_folder, quantization_config=config, device_map="cpu", keep_vision_path_fp32=False
    )
    assert any(name.startswith("model.vision_tower.") for name in quantized_module_names(model))
    model.generate(**groma_inputs, max_new_tokens=2, do_sample=False)  # quantized bridge inputs are cast right


@pytest.fixture(scope="module")
def groundinggpt_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-groundinggpt")
    tiny_groundinggpt_model().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def wide_groundinggpt_folder(tmp_path_factory):
    """The tiny GroundingGPT with a 64-wide LLM: bitsandbytes' CPU 4-bit kernels need whole 64-value blocks per row."""
    folder = tmp_path_factory.mktemp("tiny-groundinggpt-64")
    config = tiny_groundinggpt_config()
    text = config.text_config
    text.hidden_size, text.intermediate_size, text.head_dim = 64, 128, 64 // text.num_attention_heads
    torch.manual_seed(0)
    GroundingGPTForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def groundinggpt_inputs():
    return chat_inputs(tiny_groundinggpt_processor(), "where?", Image.new("RGB", (40, 30), "blue"))


@pytest.fixture(scope="module")
def groundinggpt_tokens(groundinggpt_folder, groundinggpt_inputs):
    return float_tokens(groundinggpt_folder, groundinggpt_inputs)


def unquantized_encoders(model: torch.nn.Module) -> bool:
    return not [name for name in quantized_module_names(model) if name.split(".")[1].endswith("_encoder")]


def test_groundinggpt_8bit_keeps_the_encoders_and_generates_the_same_tokens(
    groundinggpt_folder, groundinggpt_inputs, groundinggpt_tokens
):
    model = AutoModelForImageTextToText.from_pretrained(
        groundinggpt_folder, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu"
    )
    assert "model.language_model.layers.0.self_attn.q_proj" in quantized_module_names(model)
    assert unquantized_encoders(model)
    tokens = greedy(model, groundinggpt_inputs)
    assert torch.equal(tokens, groundinggpt_tokens)


def test_groundinggpt_4bit_keeps_the_encoders_and_starts_like_float32(wide_groundinggpt_folder, groundinggpt_inputs):
    folder = wide_groundinggpt_folder
    float_model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    expected = greedy(float_model, groundinggpt_inputs)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForImageTextToText.from_pretrained(folder, quantization_config=config, device_map="cpu")
    assert isinstance(model.model.language_model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert unquantized_encoders(model)
    pixels = groundinggpt_inputs["pixel_values"]
    with torch.no_grad():  # the unquantized image encoder gives exactly the float model's image tokens
        assert torch.equal(
            model.get_image_features(pixels).pooler_output, float_model.get_image_features(pixels).pooler_output
        )
    assert_same_first_new_token(greedy(model, groundinggpt_inputs), expected)


def test_groundinggpt_loads_with_cpu_and_disk_offload(
    groundinggpt_folder, groundinggpt_inputs, groundinggpt_tokens, tmp_path
):
    device_map = {
        "model.image_encoder": "disk",
        "model.video_encoder": "cpu",
        "model.audio_encoder": "disk",
        "model.language_model": "disk",
        "lm_head": "cpu",
    }
    model = AutoModelForImageTextToText.from_pretrained(
        groundinggpt_folder, device_map=device_map, offload_folder=tmp_path / "offload"
    )
    assert next(model.model.image_encoder.parameters()).device.type == "meta"  # really offloaded
    tokens = greedy(model, groundinggpt_inputs)
    assert torch.equal(tokens, groundinggpt_tokens)


def test_groundinggpt_device_map_auto_offloads_within_a_memory_budget(
    groundinggpt_folder, groundinggpt_inputs, groundinggpt_tokens, tmp_path
):
    size = (groundinggpt_folder / "model.safetensors").stat().st_size
    model = AutoModelForImageTextToText.from_pretrained(
        groundinggpt_folder, device_map="auto", max_memory={"cpu": size // 3}, offload_folder=tmp_path / "offload"
    )
    assert "disk" in set(model.hf_device_map.values())
    tokens = greedy(model, groundinggpt_inputs)
    assert torch.equal(tokens, groundinggpt_tokens)


def test_qlora_trains_adapters_on_a_4bit_model(groma_folder, groma_inputs):
    """The QLoRA recipe of the README: 4-bit base with the bridge left unquantized, LoRA on the LLM."""
    from peft import prepare_model_for_kbit_training

    from transformers_groma.training import apply_lora
    from transformers_groma.training.arguments import LoraArguments

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.float32,
        llm_int8_skip_modules=["lm_head", "model.multi_modal_projector"],
    )
    model = AutoModelForImageTextToText.from_pretrained(
        groma_folder, quantization_config=quantization, device_map="cpu"
    )
    model = apply_lora(
        prepare_model_for_kbit_training(model, use_gradient_checkpointing=False), LoraArguments(lora_r=4)
    )
    quantized_weight = model.base_model.model.model.language_model.layers[0].mlp.up_proj.base_layer.weight
    frozen = quantized_weight.detach().clone()
    optimizer = torch.optim.AdamW([parameter for parameter in model.parameters() if parameter.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = model(**groma_inputs, labels=groma_inputs["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    lora_b = [parameter for name, parameter in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(parameter.abs().sum() > 0 for parameter in lora_b)  # lora_B starts at zero
    assert torch.equal(quantized_weight, frozen)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bitsandbytes' CUDA kernels)")
@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_groma_on_cuda_selects_the_float32_regions(groma_folder, groma_inputs, bits):
    quantization = (
        BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
        if bits == 4
        else BitsAndBytesConfig(load_in_8bit=True)
    )
    model = AutoModelForImageTextToText.from_pretrained(
        groma_folder, quantization_config=quantization, device_map="auto", dtype=torch.bfloat16
    )
    assert model.model.vision_tower.dtype == torch.float32 and model.model.vision_tower.device.type == "cuda"
    assert quantized_module_names(model)
    inputs = {
        key: value.to("cuda") if isinstance(value, torch.Tensor) else value for key, value in groma_inputs.items()
    }
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, return_dict_in_generate=True)
    reference = AutoModelForImageTextToText.from_pretrained(groma_folder).eval()
    expected = reference.generate(**groma_inputs, max_new_tokens=1, do_sample=False, return_dict_in_generate=True)
    torch.testing.assert_close(out.region_boxes[0].cpu(), expected.region_boxes[0], atol=1e-4, rtol=0)
    assert out.sequences.shape[1] > groma_inputs["input_ids"].shape[1]
