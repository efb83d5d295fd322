"""Audio feature extractor for GroundingGPT: ImageBind's `load_and_transform_audio_data` (spec §4.3)."""

import os
import warnings
from typing import TypedDict

import numpy as np
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType, logging

from ...saving import RemoteCodeSavingMixin
from .audio_io import check_sampling_rate, clip_sample_ranges, load_audio_file, resample


logger = logging.get_logger(__name__)


AudioInput = str | os.PathLike | np.ndarray


class GroundingGPTAudioKwargs(TypedDict, total=False):
    """Call arguments of [`GroundingGPTFeatureExtractor`] (also routed by [`GroundingGPTProcessor`])."""

    sampling_rate: int | None
    allow_short_audio: bool | None
    return_tensors: str | TensorType | None


class GroundingGPTFeatureExtractor(RemoteCodeSavingMixin, SequenceFeatureExtractor):
    r"""Turns audio files or waveforms into the `(num_clips, 1, num_mel_bins, target_length)` log-mel clips of
    GroundingGPT's ImageBind audio branch.

    Per audio: resample to `sampling_rate` (Hann-windowed sinc), cut `num_clips` windows of `clip_duration` seconds
    spread evenly from the start to the end (pytorchvideo's `ConstantClipsPerVideoSampler`), and per clip subtract
    the clip mean, compute Kaldi-compatible filter banks of channel 0 (25 ms Hann window, 10 ms shift, pre-emphasis
    0.97, per-frame DC removal, `num_mel_bins` bins, natural log), zero-pad or cut to `target_length` frames, and
    normalise as `(x - mean) / std`. The filter banks use transformers' NumPy `spectrogram` (as `ASTFeatureExtractor`
    does without torchaudio); they match torchaudio's `kaldi.fbank` to ~1e-4 (float32 rounding of the reference).

    Args:
        feature_size (`int`, *optional*, defaults to 1): Channels of the features.
        sampling_rate (`int`, *optional*, defaults to 16000): Rate the audio is resampled to.
        num_mel_bins (`int`, *optional*, defaults to 128): Mel bins.
        target_length (`int`, *optional*, defaults to 204): Frames per clip after padding/cutting.
        clip_duration (`float`, *optional*, defaults to 2.0): Seconds per clip.
        num_clips (`int`, *optional*, defaults to 3): Clips per audio.
        mean (`float`, *optional*, defaults to -4.268): Normalisation mean (AudioSet statistics).
        std (`float`, *optional*, defaults to 9.138): Normalisation standard deviation (twice AudioSet's).
        padding_value (`float`, *optional*, defaults to 0.0): Filter-bank value of padded frames (before
            normalisation).
        legacy_inplace_mean (`bool`, *optional*, defaults to `True`): Reproduce the original, which subtracts each
            clip's mean *in place* on a view of the waveform, so later clips that overlap earlier ones see samples
            from which an earlier clip's mean was already removed (a step at the overlap; the released model was
            trained on such features). `False` cuts every clip from the untouched waveform.
        allow_short_audio (`bool`, *optional*, defaults to `False`): Accept audio shorter than one clip, as the
            original does (every clip is then the whole audio, zero-padded in the filter banks). By default such
            audio is rejected with a `ValueError`.
    """

    model_input_names = ["input_features"]
    valid_kwargs = GroundingGPTAudioKwargs

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 16000,
        num_mel_bins: int = 128,
        target_length: int = 204,
        clip_duration: float = 2.0,
        num_clips: int = 3,
        mean: float = -4.268,
        std: float = 9.138,
        padding_value: float = 0.0,
        legacy_inplace_mean: bool = True,
        allow_short_audio: bool = False,
        **kwargs,
    ):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.num_mel_bins = num_mel_bins
        self.target_length = target_length
        self.clip_duration = clip_duration
        self.num_clips = num_clips
        self.mean = mean
        self.std = std
        self.legacy_inplace_mean = legacy_inplace_mean
        self.allow_short_audio = allow_short_audio
        # Not serialized (`to_dict` drops these two names).
        self.window = window_function(self.frame_length, "hann", periodic=False)
        with warnings.catch_warnings():
            # With 128 bins the lowest Kaldi filters hold no FFT bin (all zero); ImageBind's features have them too.
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            self.mel_filters = mel_filter_bank(
                num_frequency_bins=self.fft_length // 2 + 1,
                num_mel_filters=num_mel_bins,
                min_frequency=20,
                max_frequency=sampling_rate // 2,
                sampling_rate=sampling_rate,
                norm=None,
                mel_scale="kaldi",
                triangularize_in_mel_space=True,
            )

    @property
    def frame_length(self) -> int:
        """Samples per Kaldi frame (25 ms)."""
        return int(0.025 * self.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Samples between Kaldi frames (10 ms)."""
        return int(0.010 * self.sampling_rate)

    @property
    def fft_length(self) -> int:
        """FFT size: the frame length rounded up to a power of two (Kaldi's `round_to_power_of_two`)."""
        return 2 ** int(np.ceil(np.log2(self.frame_length)))

    def __call__(
        self,
        audio: AudioInput | list[AudioInput],
        sampling_rate: int | None = None,
        allow_short_audio: bool | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Extracts the clips of one or several audios.

        Args:
            audio (`str`, `os.PathLike`, `np.ndarray` or a list of them):
                Audio files (WAV read with the standard library, other formats with `soundfile`) or floating-point
                waveforms, mono `(samples,)` or `(channels, samples)` with values in [-1, 1]; only channel 0 is
                used, as in the original.
            sampling_rate (`int`, *optional*):
                Rate of the waveforms given as arrays (files carry their own). Without it they are taken to be at
                `self.sampling_rate` (16 kHz), with a warning, as transformers' audio feature extractors do: pass it
                whenever the audio may have another rate.
            allow_short_audio (`bool`, *optional*):
                Overrides `self.allow_short_audio` for this call.
            return_tensors (`str` or [`~utils.TensorType`], *optional*):
                `"pt"` or `"np"` to stack the results.
            **kwargs:
                Ignored (lets processors pass their common audio arguments).

        Returns:
            [`~transformers.BatchFeature`] with `input_features`: `(num_audios, num_clips, 1, num_mel_bins,
            target_length)`.

        Raises:
            ValueError: naming `audio` and the item for unreadable files, wrong shapes, a non-positive
                `sampling_rate`, NaN/infinite samples, waveforms beyond [-1, 1] (e.g. int16 PCM values as floats) or
                audio shorter than one clip.
            TypeError: naming the item for a waveform that is not floating point (e.g. int16 PCM samples).
        """
        items = audio if isinstance(audio, (list, tuple)) else [audio]
        if not items:
            raise ValueError("`audio` is empty.")
        if sampling_rate is not None:
            sampling_rate = check_sampling_rate(sampling_rate, "`sampling_rate`")
        elif not all(isinstance(item, (str, os.PathLike)) for item in items):
            logger.warning(
                f"`audio` holds waveforms but no `sampling_rate` was passed: they are taken to be at "
                f"{self.sampling_rate} Hz. Pass `sampling_rate` to have them resampled from their own rate."
            )
        allow_short_audio = self.allow_short_audio if allow_short_audio is None else allow_short_audio
        features = []
        for index, item in enumerate(items):
            waveform = self._load(item, sampling_rate, index)
            features.append(self._extract_clips(waveform, allow_short_audio, index))
        return BatchFeature({"input_features": np.stack(features)}, tensor_type=return_tensors)

    def _load(self, item: AudioInput, sampling_rate: int | None, index: int) -> np.ndarray:
        """Float32 `(channels, samples)` at `self.sampling_rate` (a fresh copy: clips are processed in place)."""
        if isinstance(item, (str, os.PathLike)):
            try:
                waveform, rate = load_audio_file(item)
            except ValueError as error:
                raise ValueError(f"`audio[{index}]`: {error}") from error
        else:
            waveform, rate = np.asarray(item), sampling_rate or self.sampling_rate
            if not np.issubdtype(waveform.dtype, np.floating):
                raise TypeError(
                    f"`audio[{index}]` has {waveform.dtype} samples: pass a floating-point waveform in [-1, 1] (e.g. "
                    "int16 PCM divided by 32768)."
                )
            waveform = waveform.astype(np.float32)
            waveform = waveform[None] if waveform.ndim == 1 else waveform
            if waveform.ndim != 2:
                raise ValueError(
                    f"`audio[{index}]` must be a (samples,) or (channels, samples) waveform, got shape "
                    f"{tuple(np.shape(item))}."
                )
            if waveform.size and np.abs(waveform).max() > 1:
                raise ValueError(
                    f"`audio[{index}]` holds samples beyond [-1, 1] (peak {np.abs(waveform).max():.4g}): pass "
                    "floating-point audio in [-1, 1] (e.g. int16 PCM divided by 32768)."
                )
        if not np.isfinite(waveform).all():
            raise ValueError(f"`audio[{index}]` holds NaN or infinite samples.")
        return np.array(resample(waveform, rate, self.sampling_rate), dtype=np.float32)

    def _extract_clips(self, waveform: np.ndarray, allow_short_audio: bool, index: int) -> np.ndarray:
        num_samples = waveform.shape[-1]
        clip_samples = int(self.clip_duration * self.sampling_rate)
        if num_samples < clip_samples and not allow_short_audio:
            raise ValueError(
                f"`audio[{index}]` lasts {num_samples / self.sampling_rate:.3f} s, shorter than one "
                f"{self.clip_duration} s clip; pass `allow_short_audio=True` to zero-pad it as the original does."
            )
        if num_samples < self.frame_length:
            raise ValueError(f"`audio[{index}]` has {num_samples} samples, fewer than one filter-bank frame.")
        clips = []
        for start, end in clip_sample_ranges(num_samples, self.sampling_rate, self.clip_duration, self.num_clips):
            clip = waveform[:, start:end] if self.legacy_inplace_mean else waveform[:, start:end].copy()
            clip -= clip.mean()  # in place: with the legacy view this also changes later overlapping clips
            clips.append(self._filter_banks(clip[0]))
        return np.stack(clips)[:, None]

    def _filter_banks(self, clip: np.ndarray) -> np.ndarray:
        """(num_mel_bins, target_length) normalised Kaldi log-mel filter banks of one mono clip."""
        fbank = spectrogram(
            clip,
            self.window,
            frame_length=self.frame_length,
            hop_length=self.hop_length,
            fft_length=self.fft_length,
            power=2.0,
            center=False,
            preemphasis=0.97,
            mel_filters=self.mel_filters,
            log_mel="log",
            mel_floor=1.192092955078125e-07,
            remove_dc_offset=True,
        )
        padded = np.full((self.num_mel_bins, self.target_length), self.padding_value, dtype=np.float32)
        frames = min(fbank.shape[1], self.target_length)
        padded[:, :frames] = fbank[:, :frames]
        return (padded - self.mean) / self.std


__all__ = ["GroundingGPTFeatureExtractor"]
