"""Audio reading, resampling and clip sampling for GroundingGPT's audio branch (ImageBind's `data.py` rules)."""

import math
import numbers
import os
import wave
from fractions import Fraction
from typing import Any

import numpy as np
import torch


# Scale of each PCM sample width (bytes) to floats in [-1, 1), as torchaudio loads WAV files.
_PCM_SCALE = {1: 2.0**7, 2: 2.0**15, 3: 2.0**23, 4: 2.0**31}


class UnsupportedWavError(ValueError):
    """A WAV file the standard library cannot decode (not PCM), which other readers may still read."""


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file with the standard library.

    Returns:
        `(waveform, sampling_rate)`: float32 `(channels, samples)` in [-1, 1) (integer samples divided by 2^(bits-1),
        8-bit samples re-centred first) and the sampling rate in Hz.

    Raises:
        UnsupportedWavError: when the file is not a PCM WAV file the `wave` module reads.
        ValueError: when its header gives a sampling rate that is not a positive whole number.
    """
    try:
        with wave.open(os.fspath(path), "rb") as handle:
            num_channels, width, rate = handle.getnchannels(), handle.getsampwidth(), handle.getframerate()
            raw = handle.readframes(handle.getnframes())
    except (wave.Error, EOFError) as error:
        raise UnsupportedWavError(f"{path} is not a PCM WAV file the `wave` module can read: {error}") from error
    if width not in _PCM_SCALE:
        raise UnsupportedWavError(f"{path} has {8 * width}-bit samples; only 8/16/24/32-bit PCM is supported.")
    check_sampling_rate(rate, f"{path}: the WAV header's sampling rate")
    data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
    if width == 1:
        samples = data[:, 0].astype(np.int32) - 128
    else:  # little-endian signed integers, sign-extended into int32
        padded = np.zeros((len(data), 4), dtype=np.uint8)
        padded[:, 4 - width :] = data
        samples = padded.view("<i4")[:, 0] >> (8 * (4 - width))
    waveform = (samples / _PCM_SCALE[width]).astype(np.float32)
    return np.ascontiguousarray(waveform.reshape(-1, num_channels).T), rate


def check_sampling_rate(rate: Any, what: str) -> int:
    """`rate` as a positive whole number of Hz; a `ValueError` naming `what` otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < rate < math.inf or rate != int(rate):
        raise ValueError(f"{what} must be a positive whole number of Hz, got {rate!r}.")
    return int(rate)


def load_audio_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """`(waveform (channels, samples) float32, sampling_rate)` of an audio file.

    WAV files are read with the standard library ([`read_wav`]); other formats need the `soundfile` package.

    Raises:
        ValueError: naming the file when it is missing or cannot be decoded.
    """
    if not os.path.isfile(path):
        raise ValueError(f"Audio file {path} does not exist.")
    if os.fspath(path).lower().endswith(".wav"):
        try:
            return read_wav(path)
        except UnsupportedWavError:
            pass  # e.g. floating-point WAV: let soundfile try
    try:
        import soundfile
    except ImportError as error:
        raise ValueError(
            f"Cannot decode {path}: only PCM WAV is read without extra packages; `pip install soundfile` for others."
        ) from error
    try:
        waveform, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except RuntimeError as error:
        raise ValueError(f"Cannot decode {path}: {error}") from error
    return np.ascontiguousarray(waveform.T), rate


def resample(waveform: np.ndarray, orig_freq: int, new_freq: int) -> np.ndarray:
    """Resample `(channels, samples)` audio with a Hann-windowed sinc filter (6 zero crossings, roll-off 0.99).

    This is the algorithm of `torchaudio.functional.resample`'s defaults, which ImageBind uses; it is written here
    because torchaudio is not a dependency (not checked bit for bit against torchaudio).
    """
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    zero_crossings, rolloff = 6, 0.99
    base_freq = min(orig, new) * rolloff
    width = math.ceil(zero_crossings * orig / base_freq)
    times = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    times = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + times) * base_freq
    times = times.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(times * math.pi / zero_crossings / 2) ** 2
    times = times * math.pi
    sinc = torch.where(times == 0, torch.ones_like(times), torch.sin(times) / times)
    kernels = (sinc * window * base_freq / orig).float()
    signal = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    padded = torch.nn.functional.pad(signal[:, None], (width, width + orig))
    output = torch.nn.functional.conv1d(padded, kernels, stride=orig).transpose(1, 2).reshape(len(signal), -1)
    return output[:, : math.ceil(new * signal.shape[-1] / orig)].numpy()


def clip_sample_ranges(
    num_samples: int, sampling_rate: int, clip_duration: float, num_clips: int
) -> list[tuple[int, int]]:
    """Sample ranges `[start, end)` of the clips ImageBind cuts from an audio of `num_samples` samples.

    The rule of pytorchvideo's `ConstantClipsPerVideoSampler` (at the commit ImageBind pins): `num_clips` windows of
    `clip_duration` seconds starting at `i * max(duration - clip_duration, 0) / (num_clips - 1)`, in exact fractions of
    the float duration, and `int()`-truncated to samples. E.g. 3.3 s at 16 kHz gives [0, 32000), [10399, 42399),
    [20799, 52799). When the audio is shorter than a clip every window is [0, clip) and holds the whole audio.
    """
    duration = num_samples / sampling_rate
    clip = Fraction(clip_duration)
    last_start = Fraction(max(duration - clip, 0))
    step = last_start / max(num_clips - 1, 1)
    return [
        (int(i * step * sampling_rate), min(int((i * step + clip) * sampling_rate), num_samples))
        for i in range(num_clips)
    ]


__all__ = ["check_sampling_rate", "clip_sample_ranges", "load_audio_file", "read_wav", "resample"]
