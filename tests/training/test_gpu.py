"""GPU only: a bf16 training step with flash_attention_2 matches sdpa (skipped without CUDA and flash-attn)."""

import pytest
import torch
from transformers.utils import is_flash_attn_2_available


# Skipped before the training imports, so a GPU machine without the `train` extra skips instead of failing.
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)
if not is_flash_attn_2_available():
    pytest.skip("needs the flash-attn package", allow_module_level=True)

from transformers_groma import GromaForConditionalGeneration  # noqa: E402
from transformers_groma.tiny import tiny_groma_config, tiny_groma_processor  # noqa: E402
from transformers_groma.training import DataSource, GromaDataCollator, build_conversation_mixture  # noqa: E402
from transformers_groma.training.run_vl import run as train_vl  # noqa: E402

from .synthetic import QUIET_ARGS  # noqa: E402


pytestmark = pytest.mark.gpu


def loss_and_grads(batch: dict, attn_implementation: str) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = GromaForConditionalGeneration(tiny_groma_config()).cuda().eval()  # eval: no dropout, same regions
    model.set_attn_implementation({"text_config": attn_implementation})
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    return loss.float().detach(), model.model.multi_modal_projector.linear_1.weight.grad.float().flatten()


def test_flash_attention_bf16_step_matches_sdpa(coco, custom_jsonl):
    processor = tiny_groma_processor()
    source = DataSource("custom", str(custom_jsonl), coco["image_dir"])
    dataset = build_conversation_mixture([source], processor.tokenizer, processor.image_processor, "llava", 2048, 8, 0)
    batch = GromaDataCollator(processor.tokenizer.pad_token_id)([dataset[i] for i in range(4)])
    batch = {
        key: value.cuda() if torch.is_tensor(value) else [b.cuda() for b in value] for key, value in batch.items()
    }
    sdpa_loss, sdpa_grad = loss_and_grads(batch, "sdpa")
    fa2_loss, fa2_grad = loss_and_grads(batch, "flash_attention_2")
    assert torch.allclose(fa2_loss, sdpa_loss, rtol=2e-2)
    assert torch.nn.functional.cosine_similarity(fa2_grad, sdpa_grad, dim=0) > 0.99


def test_training_script_runs_with_flash_attention_bf16(tmp_path, coco, custom_jsonl):
    metrics = train_vl(
        ["--stage", "custom", "--init_from_tiny", "--train_file", str(custom_jsonl), "--image_dir", coco["image_dir"]]
        + ["--output_dir", str(tmp_path / "fa2"), "--attn_implementation", "flash_attention_2", "--bf16", "true"]
        + ["--max_steps", "2", "--per_device_train_batch_size", "2", "--save_strategy", "no", *QUIET_ARGS]
    )
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
