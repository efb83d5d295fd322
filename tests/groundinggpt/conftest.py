"""Shared helpers of the GroundingGPT tests: a tiny random model, a character-level tokenizer and prompts."""

import string

import pytest
import torch
from transformers import LlamaTokenizer

from transformers_groma import GroundingGPTConfig, GroundingGPTForConditionalGeneration
from transformers_groma.processing.groundinggpt import add_groundinggpt_tokens


# The tiny models are far faster on one thread than on a contended pool.
torch.set_num_threads(1)

# Token ids of the tiny config: <im_patch>, <im_start>, <im_end>, <vi_*>, <so_*> in the original order.
IMAGE, IMAGE_START, IMAGE_END = 100, 101, 102
VIDEO, VIDEO_START, VIDEO_END = 103, 104, 105
AUDIO, AUDIO_START, AUDIO_END = 106, 107, 108
NUM_IMAGE_TOKENS, NUM_VIDEO_TOKENS, NUM_AUDIO_TOKENS = 4, 3, 2
IMAGE_SIZE, VIDEO_SIZE, MAX_FRAMES = 28, 28, 4
MEL_BINS, MEL_FRAMES, NUM_CLIPS = 32, 24, 3


def tiny_config(**overrides) -> GroundingGPTConfig:
    """A tiny GroundingGPT: every branch at toy size, 4/3/2 image/video/audio tokens, token ids 100-108."""
    qformer = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32}
    settings = {
        "text_config": {
            "model_type": "llama",
            "vocab_size": 120,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 256,
            "pad_token_id": 0,
        },
        "vision_config": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 14,
        },
        "video_vision_config": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": VIDEO_SIZE,
            "patch_size": 14,
            "initializer_range": 0.02,
        },
        "video_qformer_config": {**qformer, "num_hidden_layers": 2, "cross_attention_frequency": 2,
                                 "encoder_hidden_size": 16},
        "video_temporal_qformer_config": {**qformer, "num_hidden_layers": 1, "cross_attention_frequency": 1,
                                          "encoder_hidden_size": 16},
        "audio_config": {
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "num_mel_bins": MEL_BINS,
            "target_length": MEL_FRAMES,
            "output_size": 12,
        },
        "audio_qformer_config": {**qformer, "num_hidden_layers": 1, "cross_attention_frequency": 1,
                                 "encoder_hidden_size": 12},
        "num_frame_query_tokens": 2,
        "num_video_query_tokens": NUM_VIDEO_TOKENS,
        "max_frames": MAX_FRAMES,
        "num_audio_query_tokens": NUM_AUDIO_TOKENS,
        "max_audio_clips": 4,
        **{name: 100 + index for index, name in enumerate(
            ("image_token_id", "image_start_token_id", "image_end_token_id", "video_token_id",
             "video_start_token_id", "video_end_token_id", "audio_token_id", "audio_start_token_id",
             "audio_end_token_id"))},
    }  # fmt: skip
    return GroundingGPTConfig(**{**settings, **overrides})


def make_model(seed: int = 0, **overrides) -> GroundingGPTForConditionalGeneration:
    """A tiny random GroundingGPT in eval mode."""
    torch.manual_seed(seed)
    return GroundingGPTForConditionalGeneration(tiny_config(**overrides)).eval()


def block(kind: str) -> list[int]:
    """The placeholder block of one image, video or audio."""
    return {
        "image": [IMAGE_START, *[IMAGE] * NUM_IMAGE_TOKENS, IMAGE_END],
        "video": [VIDEO_START, *[VIDEO] * NUM_VIDEO_TOKENS, VIDEO_END],
        "audio": [AUDIO_START, *[AUDIO] * NUM_AUDIO_TOKENS, AUDIO_END],
    }[kind]


def prompt(*kinds: str, length: int = 5, seed: int = 0) -> torch.Tensor:
    """`[BOS] text <blocks of kinds> text` as a 1-D id tensor (text ids in [3, 99])."""
    text = [3 + (seed * 13 + 7 * k) % 97 for k in range(length)]
    ids = [1, *text[:2]]
    for kind in kinds:
        ids += block(kind)
    return torch.tensor(ids + text[2:])


def media(kind: str, count: int = 1, seed: int = 0, num_frames: int = MAX_FRAMES) -> torch.Tensor:
    """Random inputs of `count` images (N, 3, H, W), videos (N, 3, T, H, W) or audios (N, clips, 1, mel, frames)."""
    generator = torch.Generator().manual_seed(seed)
    shape = {
        "image": (count, 3, IMAGE_SIZE, IMAGE_SIZE),
        "video": (count, 3, num_frames, VIDEO_SIZE, VIDEO_SIZE),
        "audio": (count, NUM_CLIPS, 1, MEL_BINS, MEL_FRAMES),
    }[kind]
    return torch.randn(shape, generator=generator)


def pad_batch(sequences: list[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D sequences padded with 0 on `side`; returns (ids, attention_mask)."""
    length = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), length, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        window = slice(length - len(sequence), length) if side == "left" else slice(0, len(sequence))
        ids[i, window], mask[i, window] = sequence, 1
    return ids, mask


def build_tiny_tokenizer() -> LlamaTokenizer:
    """A character-level Llama tokenizer (no merges) with the 9 GroundingGPT tokens right after its base vocab."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3}
    for character in string.ascii_letters + string.digits + string.punctuation + "\n\t":
        vocab.setdefault(character, len(vocab))
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[], add_bos_token=True, legacy=True)
    tokenizer.init_kwargs["legacy"] = True
    add_groundinggpt_tokens(tokenizer)
    return tokenizer


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def model() -> GroundingGPTForConditionalGeneration:
    return make_model()
