"""Training throughput of Groma: padded sdpa vs padding-free (packed) FlashAttention-2, measured side by side.

Every mode runs forward + backward on the same synthetic batches (variable-length conversations, so padding
matters). Padded modes call the model as the Trainer does; padding-free modes call it with `padding_free=True`,
which packs the expanded sequences into one row with restarting `position_ids` (FlashAttention-2 reads the sequence
boundaries from them; sdpa builds a block-diagonal mask). Reported: tokens/s (real expanded tokens, padding excluded), peak memory, the loss
(padding-free must match padded) and the ratios against `sdpa_padded`.

FlashAttention-2 needs CUDA and the `flash-attn` package; it is skipped with a message otherwise. On CPU the script
prints CPU numbers only, labelled as such (`sdpa_padded` vs `sdpa_padding_free`).

    python benchmarks/train_throughput.py                     # tiny model (seconds on a CPU)
    python benchmarks/train_throughput.py --preset small      # 8-layer 1024-wide LLM, for a GPU
"""

import argparse
import resource
import time

import torch
from transformers.utils import is_flash_attn_2_available

from transformers_groma import GromaForConditionalGeneration
from transformers_groma.processing import rec_prompt
from transformers_groma.tiny import TINY_IMAGE_SIZE, tiny_groma_config, tiny_groma_tokenizer
from transformers_groma.training import ConversationEncoder, GromaDataCollator


PRESETS = {
    "tiny": {},
    "small": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8, "num_attention_heads": 16},
}
WORDS = [
    "a",
    "small",
    "red",
    "square",
    "sits",
    "next",
    "to",
    "the",
    "large",
    "blue",
    "square",
    "on",
    "a",
    "grey",
    "table",
    "in",
    "the",
    "picture",
]


def build_model(preset: str, device: torch.device) -> GromaForConditionalGeneration:
    config = tiny_groma_config()
    config.text_config.update(
        {**PRESETS[preset], "num_key_value_heads": PRESETS[preset].get("num_attention_heads", 4)}
    )
    config.shuffle_regions = False
    torch.manual_seed(0)
    return GromaForConditionalGeneration(config).to(device).eval()  # eval: no dropout, so modes see the same inputs


def synthetic_batches(num_batches: int, batch_size: int, max_answer_words: int, device: torch.device) -> list[dict]:
    """Batches of REC + caption conversations whose answers have random lengths (1 to `max_answer_words` words)."""
    tokenizer = tiny_groma_tokenizer()
    encoder = ConversationEncoder(tokenizer, "llava", max_length=4096)
    collator = GromaDataCollator(tokenizer.pad_token_id)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(num_batches):
        features = []
        for _ in range(batch_size):
            length = int(torch.randint(1, max_answer_words + 1, (), generator=generator))
            answer = " ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (length,), generator=generator))
            messages = [
                {"role": "user", "content": rec_prompt("the red square")},
                {"role": "assistant", "content": "<roi><ground_box></roi>"},
                {"role": "user", "content": "Describe the picture."},
                {"role": "assistant", "content": answer.capitalize() + "."},
            ]
            input_ids, labels, _ = encoder(messages)
            features.append(
                {
                    "input_ids": torch.tensor(input_ids),
                    "labels": torch.tensor(labels),
                    "pixel_values": torch.randn(3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=generator),
                    "refer_boxes": torch.zeros(0, 4),
                    "ground_boxes": torch.tensor([[20.0, 30.0, 60.0, 90.0]]),
                    "image_size": (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
                }
            )
        batch = collator(features)
        batches.append(
            {k: v.to(device) if torch.is_tensor(v) else [b.to(device) for b in v] for k, v in batch.items()}
        )
    return batches


def padded_step(model: GromaForConditionalGeneration, batch: dict) -> tuple[torch.Tensor, int]:
    outputs = model(**batch, use_cache=False)
    return outputs.loss, int(outputs.expanded_attention_mask.sum())


def padding_free_step(model: GromaForConditionalGeneration, batch: dict) -> tuple[torch.Tensor, int]:
    outputs = model(**batch, padding_free=True)
    return outputs.loss, outputs.expanded_input_ids.shape[1]


def measure(model, batches, step, attn_implementation: str, device: torch.device, warmup: int) -> dict:
    model.set_attn_implementation({"text_config": attn_implementation})
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    losses, tokens, elapsed = [], 0, 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for index, batch in enumerate(batches):
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            loss, num_tokens = step(model, batch)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        losses.append(loss.item())
        if index >= warmup:
            elapsed += time.perf_counter() - start
            tokens += num_tokens
    if device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    else:
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB process RSS (cumulative)"
    return {"tokens_per_s": tokens / elapsed, "memory": memory, "loss": sum(losses) / len(losses)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="measured steps per mode (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-answer-words", type=int, default=60)
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.preset, device)
    batches = synthetic_batches(args.warmup + args.steps, args.batch_size, args.max_answer_words, device)
    modes = {"sdpa_padded": ("sdpa", padded_step), "sdpa_padding_free": ("sdpa", padding_free_step)}
    if device.type == "cuda" and is_flash_attn_2_available():
        modes["fa2_padding_free"] = ("flash_attention_2", padding_free_step)
    else:
        print("fa2_padding_free: skipped (needs a CUDA device and the flash-attn package)")
    label = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (these are CPU numbers, not GPU ones)"
    print(f"device: {label}; preset {args.preset}; batch {args.batch_size}; {args.steps} measured steps per mode")

    results = {name: measure(model, batches, step, impl, device, args.warmup) for name, (impl, step) in modes.items()}
    baseline = results["sdpa_padded"]
    print(f"{'mode':<20}{'tokens/s':>12}{'vs sdpa_padded':>16}{'mean loss':>12}  peak memory")
    for name, result in results.items():
        ratio = result["tokens_per_s"] / baseline["tokens_per_s"]
        print(f"{name:<20}{result['tokens_per_s']:>12.0f}{ratio:>15.2f}x{result['loss']:>12.4f}  {result['memory']}")


if __name__ == "__main__":
    main()
