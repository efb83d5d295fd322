"""Video processor for GroundingGPT: frame sampling and the frame transform of the original (spec §4.2)."""

import os

import numpy as np
import torch
from torchvision.transforms import RandomResizedCrop
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling, SizeDict
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.utils import TensorType
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata, load_video

from ...saving import RemoteCodeSavingMixin


class GroundingGPTVideosKwargs(VideosKwargs, total=False):
    """Extra call arguments of [`GroundingGPTVideoProcessor`].

    random_crop (`bool`):
        Apply the original's training crop (see the class docstring) instead of the deterministic eval transform.
    """

    random_crop: bool | None


def sample_frame_indices(num_frames: int, max_frames: int) -> np.ndarray:
    """The original's uniform, left-aligned frame indices: `arange(0, n, n / min(max_frames, n))` truncated.

    E.g. 100 frames and 64 to keep give 0, 1, 3, 4, 6, 7, 9, ..., 98; videos with fewer frames keep them all.
    """
    if num_frames < 1:
        raise ValueError("The video has no frames.")
    kept = min(max_frames, num_frames)
    return np.arange(0, num_frames, num_frames / kept).astype(int)[:kept]


def _count_frames(path: str, decode: bool = False) -> int:
    """Frames of the first video stream of `path`, counted from its packets (demuxing only) or, with `decode`, by
    decoding them all (exact, slower)."""
    try:  # optional dependency (the `video` extra)
        import av
    except ImportError as error:
        raise ImportError("Reading video files needs PyAV: pip install 'transformers-groma[video]'.") from error

    with av.open(path) as container:
        stream = container.streams.video[0]
        if decode:
            return sum(1 for _ in container.decode(stream))
        return sum(1 for packet in container.demux(stream) if packet.size)


def _load_video(path: str, sample_indices_fn, num_frames: int | None = None) -> tuple[np.ndarray, VideoMetadata]:
    """`load_video` with PyAV, sampling from `num_frames` frames; by default from the count in the container's header
    or, when it has none (WebM, MKV: PyAV reports 0), from the count of its packets."""

    def sample_indices(metadata: VideoMetadata, **kwargs) -> np.ndarray:
        if num_frames is not None or not metadata.total_num_frames:
            metadata.total_num_frames = _count_frames(path) if num_frames is None else num_frames
            metadata.duration = metadata.total_num_frames / metadata.fps if metadata.fps else None
        return sample_indices_fn(metadata=metadata, **kwargs)

    return load_video(path, backend="pyav", sample_indices_fn=sample_indices)


def decode_video(path: str | os.PathLike, sample_indices_fn) -> tuple[np.ndarray, VideoMetadata]:
    """Decode the sampled frames of a video file with PyAV: `((T, H, W, 3) uint8 frames, metadata)`.

    The frames are sampled from the frame count of the container's header; when the header has none (WebM, MKV)
    the packets are counted, and when it announces frames that do not decode (e.g. a truncated file) the decodable
    frames are counted and sampled again. `metadata.total_num_frames` and `metadata.duration` follow that count.

    Raises:
        ValueError: naming the file when it is missing, has no video stream or no frames, or cannot be decoded.
    """
    if not os.path.isfile(path):
        raise ValueError(f"`videos`: the file {path} does not exist.")
    path = os.fspath(path)
    try:
        frames, metadata = _load_video(path, sample_indices_fn)
        if len(frames) != len(metadata.frames_indices):  # the header announces more frames than decode
            frames, metadata = _load_video(path, sample_indices_fn, _count_frames(path, decode=True))
    except ImportError:
        raise
    except Exception as error:  # PyAV raises its own error hierarchy; any of them means "not decodable"
        raise ValueError(f"`videos`: could not decode {path} with PyAV ({type(error).__name__}: {error}).") from error
    return frames, metadata


class GroundingGPTVideoProcessor(RemoteCodeSavingMixin, BaseVideoProcessor):
    r"""Constructs a GroundingGPT video processor.

    Per video: sample at most `num_frames` frames with the original's index rule ([`sample_frame_indices`]),
    resize every frame to `size` ignoring the aspect ratio (the original asks its decoder, decord, for frames already
    at that size; here PyAV decodes and torchvision resizes, bicubic with antialiasing, rounded back to uint8), then
    rescale by 1/255 and normalise with the CLIP mean and standard deviation.

    The original runs its *training* transform at inference too: a random crop of 50-100% of the area (aspect ratio
    3/4-4/3, one crop for all frames) resized back to `size` with bicubic interpolation and cast to uint8 by
    truncation. That makes outputs random, so it is off by default (`random_crop=False`, the deterministic eval
    transform, which equals the original transform with the crop fixed to the whole frame); `random_crop=True`
    reproduces it, drawing the crop from torch's global RNG exactly like the original.

    Accepts video files (decoded with PyAV) and decoded videos (`(T, H, W, 3)` arrays or tensors, or lists of
    frames). Returns a [`~transformers.BatchFeature`] with:

    - **pixel_values_videos** (`(num_videos, 3, T, height, width)`) -- the frames, channels first and frames second
      (the original layout); videos with fewer than T frames are zero-padded.
    - **video_num_frames** (`(num_videos,)` int64) -- the real frames of each video.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"height": 224, "width": 224}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 64
    random_crop = False
    crop_scale = (0.5, 1.0)
    crop_ratio = (3 / 4, 4 / 3)
    valid_kwargs = GroundingGPTVideosKwargs
    model_input_names = ["pixel_values_videos", "video_num_frames"]

    def __init__(self, **kwargs: Unpack[GroundingGPTVideosKwargs]):
        super().__init__(**kwargs)

    def sample_frames(self, metadata: VideoMetadata, num_frames: int | None = None, **kwargs) -> np.ndarray:
        """Indices of the frames to keep (see [`sample_frame_indices`]); other sampling arguments are ignored."""
        try:
            return sample_frame_indices(metadata.total_num_frames, num_frames or self.num_frames)
        except ValueError as error:
            raise ValueError(
                f"`videos`: {error} (the container reports {metadata.total_num_frames} frames)"
            ) from error

    def fetch_videos(self, video_url_or_urls, sample_indices_fn=None):
        """Decode local video files with PyAV (see [`decode_video`])."""
        if isinstance(video_url_or_urls, list):
            return list(zip(*[self.fetch_videos(video, sample_indices_fn) for video in video_url_or_urls]))
        return decode_video(video_url_or_urls, sample_indices_fn)

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | None,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | list[float] | None,
        image_std: float | list[float] | None,
        random_crop: bool | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        processed = []
        for video in videos:  # (T, 3, H, W) uint8
            if do_resize and tuple(video.shape[-2:]) != (size.height, size.width):
                video = self.resize(video, size=size, resample=resample)
            if random_crop:
                video = self._random_resized_crop(video, (size.height, size.width))
            video = self.rescale_and_normalize(video, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            processed.append(video)
        num_frames = torch.tensor([len(video) for video in processed])
        pixel_values_videos = torch.zeros(len(processed), int(num_frames.max()), *processed[0].shape[1:])
        for index, video in enumerate(processed):
            pixel_values_videos[index, : len(video)] = video
        return BatchFeature(
            data={"pixel_values_videos": pixel_values_videos.transpose(1, 2), "video_num_frames": num_frames},
            tensor_type=return_tensors,
        )

    def _random_resized_crop(self, video: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """The original training crop: one random crop for all frames, bicubic resize, uint8 by truncation."""
        top, left, height, width = RandomResizedCrop.get_params(video, list(self.crop_scale), list(self.crop_ratio))
        crop = video[..., top : top + height, left : left + width].float()
        resized = torch.nn.functional.interpolate(crop, size=output_size, mode="bicubic", align_corners=False)
        return resized.to(torch.uint8)


__all__ = ["GroundingGPTVideoProcessor", "decode_video", "sample_frame_indices"]
