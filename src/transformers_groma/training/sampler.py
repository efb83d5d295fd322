"""The source-grouped sampler of the original (`group_by_data_source`, spec §6.7), seeded and resumable."""

import hashlib
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class SourceGroupedSampler(Sampler[int]):
    """Indices of a [`MixtureDataset`] in chunks that each hold one source.

    Every epoch, the indices of each source are shuffled and cut into chunks of `chunk_size` (the remainder that
    does not fill a chunk is dropped for that epoch), then the chunks of all sources are shuffled together. With
    `chunk_size` a multiple of the per-device batch size, every micro-batch holds a single source, which the
    detection loss needs (it picks the objectness head by source) and which keeps vision-language batches
    homogeneous as in the original.

    The order depends only on `seed` and the epoch (`set_epoch`, called by the Trainer), so every process draws the
    same order and a resumed run replays the interrupted epoch's order before skipping the batches already seen.
    Unlike the original, `len()` counts only the indices actually yielded.

    Args:
        source_sizes: Number of samples of each source, in the order they are concatenated.
        chunk_size: Indices per single-source chunk (the original uses per-device batch x gradient accumulation).
        seed: Seed of the shuffles.
    """

    def __init__(self, source_sizes: Sequence[int], chunk_size: int, seed: int = 0):
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be positive, got {chunk_size}.")
        self.source_sizes = list(source_sizes)
        self.chunk_size = chunk_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields (the Trainer calls it before every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(size - size % self.chunk_size for size in self.source_sizes)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        chunks, start = [], 0
        for size in self.source_sizes:
            indices = start + torch.randperm(size, generator=generator)
            usable = size - size % self.chunk_size
            chunks.extend(indices[:usable].split(self.chunk_size))
            start += size
        order = torch.randperm(len(chunks), generator=generator).tolist()
        for chunk_index in order:
            yield from chunks[chunk_index].tolist()


def epoch_seed(seed: int, epoch: int) -> int:
    """A 64-bit seed for `(seed, epoch)`: the same in every process and run, and (a SHA-256 digest) practically never
    the same for two pairs, unlike `seed + epoch`, which gives seed 1 / epoch 1 the order of seed 2 / epoch 0."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}".encode()).digest()[:8], "little")
