"""Shared helpers of the GroundingGPT tests: the tiny random model and tokenizer of `transformers_groma.tiny`, the
constants of their layout, and prompt and media builders."""

import wave

import numpy as np
import pytest
import torch

from transformers_groma import GroundingGPTForConditionalGeneration
from transformers_groma.tiny import tiny_groundinggpt_config, tiny_groundinggpt_model, tiny_groundinggpt_tokenizer


# The tiny model of `transformers_groma.tiny`, under the names the tests use.
tiny_config, make_model, build_tiny_tokenizer = (
    tiny_groundinggpt_config,
    tiny_groundinggpt_model,
    tiny_groundinggpt_tokenizer,
)


# The tiny models are far faster on one thread than on a contended pool.
torch.set_num_threads(1)

# Token ids of the tiny config (`tiny_groundinggpt_config`): <im_patch>, <im_start>, <im_end>, <vi_*>, <so_*> in the
# original order.
IMAGE, IMAGE_START, IMAGE_END = 100, 101, 102
VIDEO, VIDEO_START, VIDEO_END = 103, 104, 105
AUDIO, AUDIO_START, AUDIO_END = 106, 107, 108
NUM_IMAGE_TOKENS, NUM_VIDEO_TOKENS, NUM_AUDIO_TOKENS = 4, 3, 2
IMAGE_SIZE, VIDEO_SIZE, MAX_FRAMES = 28, 28, 4
MEL_BINS, MEL_FRAMES, NUM_CLIPS = 32, 24, 3
SR = 16000


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


def tone(seconds: float, frequency: float = 440.0, rate: int = SR) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * time) + 0.05).astype(np.float32)


def write_wav(path, samples: np.ndarray, width: int, rate: int = SR) -> None:
    """Write integer samples (frames x channels) as PCM with `width` bytes per sample."""
    samples = np.atleast_2d(samples.T).T
    if width == 1:
        raw = (samples + 128).astype(np.uint8).tobytes()
    else:
        raw = b"".join(int(v).to_bytes(width, "little", signed=True) for v in samples.reshape(-1))
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[1])
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(raw)


def write_video(path, num_frames: int, fps: int = 5, codec: str = "mpeg4", options: dict | None = None) -> None:
    """Write a 32 x 32 clip whose frames brighten uniformly, by `250 // num_frames` per frame (container chosen by the
    suffix, `options` are the muxer's)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(num_frames):
            frame = np.full((32, 32, 3), 250 // num_frames * index, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def model() -> GroundingGPTForConditionalGeneration:
    return make_model()
