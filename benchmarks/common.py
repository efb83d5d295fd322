"""Shared pieces of the benchmarks: model sizes, synthetic prompts, interleaved timing and result tables.

Every benchmark times its variants side by side in one process: each round runs every variant once (in an order
rotated from round to round), so load changes hit all variants alike, and ratios are taken round by round. A table
reports the median and the spread (min-max) over the rounds, never a lone absolute time.
"""

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from transformers.utils import is_flash_attn_2_available

from transformers_groma import GromaConfig, GromaForConditionalGeneration
from transformers_groma.tiny import tiny_groma_config


REPO_ROOT = Path(__file__).resolve().parent.parent
# Image side per size: the released model reads 448x448 (32x32 DINOv2 grid); the others keep >= num_queries cells.
IMAGE_SIZES = {"tiny": 112, "small": 224, "full": 448}
# A CPU-sized Groma: every stage of the released model, narrower and shallower (runs in minutes on 2 cores).
SMALL_OVERRIDES = {
    "vision_config": {
        "model_type": "dinov2",
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "patch_size": 14,
        "image_size": 224,
        "layer_norm_eps": 1e-6,
    },
    "text_config": {
        "model_type": "llama",
        "vocab_size": 32114,
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 32000,
    },
    "proposer_config": {
        "d_model": 128,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 256,
        "decoder_ffn_dim": 256,
        "num_queries": 100,
    },
    "region_hidden_size": 256,
    "region_position_hidden_size": 64,
    "region_fuse_groups": 32,
}


def add_common_arguments(parser: argparse.ArgumentParser, repeats: int = 5) -> argparse.ArgumentParser:
    """The options every benchmark takes: size, device, rounds, time budget, output folder."""
    cuda = torch.cuda.is_available()
    parser.add_argument(
        "--size",
        choices=sorted(IMAGE_SIZES),
        default="full" if cuda else "small",
        help="model size: full = the released Groma-7B shapes (random weights; default on CUDA), small = a "
        "CPU-sized model with every stage (default on CPU), tiny = the test model",
    )
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--repeats", type=int, default=repeats, help="measured rounds (after one warm-up round)")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds: start no new round past this; the table is written (marked partial) with what was measured",
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="default: benchmarks/results/<device>")
    return parser


def device_label(device: torch.device) -> str:
    """The device named in words: the GPU's name, or the CPU model and thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"CPU: {model}, {torch.get_num_threads()} thread(s)"


def output_dir(args: argparse.Namespace, device: torch.device) -> Path:
    folder = args.output_dir or REPO_ROOT / "benchmarks" / "results" / ("cuda" if device.type == "cuda" else "cpu")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def groma_config(size: str, **overrides) -> GromaConfig:
    """The `GromaConfig` of a benchmark size (see `IMAGE_SIZES`); `overrides` replace top-level fields.

    `box_score_threshold` defaults to 0: random proposers score every box near the 0.01 prior, so the released
    threshold would keep a single region, while a trained model keeps up to `max_region_num`, as here.
    """
    overrides = {"box_score_threshold": 0.0, **overrides}
    if size == "tiny":
        return tiny_groma_config(**overrides)
    if size == "small":
        return GromaConfig(**{**SMALL_OVERRIDES, **overrides})
    return GromaConfig(**overrides)


def build_model(config: GromaConfig, device: torch.device, dtype: torch.dtype) -> GromaForConditionalGeneration:
    """A random-weight model built directly on `device` and cast like `from_pretrained(..., dtype=dtype)` (the
    vision path stays float32 with `config.keep_vision_path_fp32`). Speed does not depend on the values."""
    torch.manual_seed(0)
    with torch.device(device):
        model = GromaForConditionalGeneration(config)
    return model.cast_to(dtype).eval()


def llm_parameter_bytes(model: GromaForConditionalGeneration) -> int:
    """Bytes of the weights one decode step reads: the language model and the LM head."""
    modules = (model.model.language_model, model.lm_head)
    return sum(p.numel() * p.element_size() for module in modules for p in module.parameters())


def rec_prompts(config: GromaConfig, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded REC-style prompts (B, T) and their attention mask: a system text, `<image>`, `<region>`, then a
    referring question of 20-40 tokens (random ids of the base vocabulary; speed does not depend on which)."""
    generator = torch.Generator().manual_seed(seed)
    base_vocab = min(config.image_token_id, config.region_token_id, config.pad_token_id)

    def text(length: int) -> list[int]:
        return torch.randint(3, base_vocab, (length,), generator=generator).tolist()

    prompts = []
    for _ in range(batch_size):
        question = int(torch.randint(20, 41, (), generator=generator))
        prompts.append(
            [1, *text(40), config.image_token_id, *text(4), config.region_token_id, *text(12), *text(question)]
        )
    width = max(len(p) for p in prompts)
    ids = torch.full((batch_size, width), config.pad_token_id)
    mask = torch.zeros(batch_size, width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def random_pixels(batch_size: int, size: str, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    side = IMAGE_SIZES[size]
    return torch.randn(batch_size, 3, side, side, generator=generator)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds `fn` takes, the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def format_memory(gib: float | None) -> str:
    return "n/a (CPU)" if gib is None else f"{gib:.1f}"


def peak_memory(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak allocated device memory (GiB) while `fn` runs; None on the CPU (not measured there)."""
    if device.type != "cuda":
        fn()
        return None
    synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**30


class Deadline:
    """A time budget (seconds from creation); None never expires."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float:
        return float("inf") if self.end is None else self.end - time.monotonic()


def interleaved(
    variants: dict[str, Callable[[], object]],
    device: torch.device,
    repeats: int,
    deadline: Deadline,
    warmup: int = 1,
    progress: str = "",
    peaks: dict[str, float | None] | None = None,
) -> tuple[dict[str, list[float]], bool]:
    """Time every variant `repeats` times, round by round, in an order rotated each round.

    Warm-up rounds (compilation, allocator growth) are not recorded. A round is started only if the previous one
    fits in the time left. Returns the seconds per variant per round and whether all rounds ran. `peaks`, if
    given, receives each variant's peak device memory (GiB) during its first warm-up run (None on the CPU).
    """
    names = list(variants)
    times = {name: [] for name in names}
    last_round = 0.0
    for index in range(warmup + repeats):
        if index > 0 and last_round > deadline.remaining():
            print(f"{progress}time budget reached after {len(times[names[0]])} measured round(s)", flush=True)
            return times, False
        start = time.perf_counter()
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            if deadline.remaining() <= 0:
                print(f"{progress}time budget reached in round {index + 1} (before {name})", flush=True)
                return times, False
            if index == 0 and peaks is not None:
                peaks[name] = peak_memory(variants[name], device)
                continue
            seconds = timed(variants[name], device)
            if index >= warmup:
                times[name].append(seconds)
        last_round = time.perf_counter() - start
        label = "warm-up" if index < warmup else f"round {index - warmup + 1}/{repeats}"
        print(f"{progress}{label} done in {last_round:.1f} s", flush=True)
    return times, True


def spread(values: list[float], scale: float = 1.0, digits: int = 2, suffix: str = "") -> str:
    """`median (min-max)` of `values * scale`, then `suffix`; "n/a" without values."""
    if not values:
        return "n/a"
    scaled = [v * scale for v in values]
    return f"{statistics.median(scaled):.{digits}f} ({min(scaled):.{digits}f}-{max(scaled):.{digits}f}){suffix}"


def ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    """Round-by-round ratios (same round, same load)."""
    return [n / d for n, d in zip(numerator, denominator) if d > 0]


class ResultTable:
    """A Markdown table written to `<output_dir>/<name>.md` with the device, versions, date and command; each
    `write` rewrites the file, so a run cut short still leaves what it measured."""

    def __init__(
        self,
        name: str,
        title: str,
        args: argparse.Namespace,
        device: torch.device,
        notes: list[str],
        model: str | None = "",
    ):
        """`model` describes the model in the header; "" (default) describes `args.size`, None leaves it out."""
        self.path = output_dir(args, device) / f"{name}.md"
        self.title = title
        self.notes = notes
        self.columns: list[str] = []
        self.rows: list[list[str]] = []
        if model == "":
            kind = "released Groma-7B shapes" if args.size == "full" else "reduced"
            model = f"size `{args.size}` ({kind}, random weights)"
        self.header = [
            f"- device: {device_label(device)}",
            *([f"- model: {model}"] if model else []),
            f"- torch {torch.__version__}, transformers {transformers.__version__}, Python {platform.python_version()}",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- command: `{' '.join(['python', *[os.path.relpath(sys.argv[0], REPO_ROOT)], *sys.argv[1:]])}`",
        ]

    def add_row(self, row: dict[str, object]) -> None:
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append([str(row.get(c, "")) for c in self.columns])

    def write(self, complete: bool = True, echo: bool = True) -> None:
        lines = [f"# {self.title}", "", *self.header]
        if not complete:
            lines.append("- PARTIAL: the time budget ended the run early; rows or rounds are missing")
        lines += ["", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row + [""] * (len(self.columns) - len(row))) + " |" for row in self.rows]
        lines += ["", *[f"- {note}" for note in self.notes], ""]
        self.path.write_text("\n".join(lines))
        if echo:
            print("\n".join(lines), flush=True)


def training_batch(config: GromaConfig, size: str, batch_size: int, max_answer_tokens: int, seed: int = 0) -> dict:
    """A right-padded multimodal training batch as `GromaDataCollator` builds it: per sample a prompt with
    `<image>`/`<region>`, a referring question, and a supervised answer of 1 to `max_answer_tokens` random tokens
    that grounds one box (`<ground_box>` -> its `<rK>`); random pixels; one ground-truth box per sample."""
    generator = torch.Generator().manual_seed(seed)
    base_vocab = min(config.image_token_id, config.region_token_id, config.pad_token_id)

    def text(length: int) -> list[int]:
        return torch.randint(3, base_vocab, (length,), generator=generator).tolist()

    rows, labels = [], []
    for _ in range(batch_size):
        prompt = [1, *text(40), config.image_token_id, *text(4), config.region_token_id, *text(30)]
        answer_length = int(torch.randint(1, max_answer_tokens + 1, (), generator=generator))
        answer = [*text(2), config.ground_box_token_id, *text(answer_length), 2]
        rows.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(len(r) for r in rows)
    batch = {
        "input_ids": torch.full((batch_size, width), config.pad_token_id),
        "attention_mask": torch.zeros(batch_size, width, dtype=torch.long),
        "labels": torch.full((batch_size, width), -100),
    }
    for i, (row, label) in enumerate(zip(rows, labels)):
        batch["input_ids"][i, : len(row)] = torch.tensor(row)
        batch["attention_mask"][i, : len(row)] = 1
        batch["labels"][i, : len(row)] = torch.tensor(label)
    batch["pixel_values"] = random_pixels(batch_size, size, seed)
    batch["ground_boxes"] = [torch.tensor([[0.4, 0.5, 0.3, 0.2]]) for _ in range(batch_size)]
    return batch


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else [t.to(device) for t in v] for k, v in batch.items()}


def attention_implementations(device: torch.device) -> tuple[list[str], list[str]]:
    """The LLM attention implementations to compare here, and the ones left out with the reason."""
    names, skipped = ["eager", "sdpa"], []
    if device.type == "cuda" and is_flash_attn_2_available():
        names.append("flash_attention_2")
    else:
        skipped.append("flash_attention_2: needs a CUDA device and the flash-attn package (not installed here)")
    return names, skipped
