"""The source-grouped sampler: single-source chunks, seeded per epoch."""

import pytest

from transformers_groma.training import SourceGroupedSampler


SIZES = [10, 7, 4]
STARTS = [0, 10, 17, 21]


def source_of(index: int) -> int:
    return next(source for source in range(len(SIZES)) if STARTS[source] <= index < STARTS[source + 1])


def draw(seed: int = 0, epoch: int = 0, chunk_size: int = 3) -> list[int]:
    sampler = SourceGroupedSampler(SIZES, chunk_size=chunk_size, seed=seed)
    sampler.set_epoch(epoch)
    order = list(sampler)
    assert len(order) == len(sampler)
    return order


def test_chunks_hold_a_single_source():
    order = draw()
    assert len(order) == 9 + 6 + 3 and len(set(order)) == len(order)
    chunks = [order[i : i + 3] for i in range(0, len(order), 3)]
    assert all(len({source_of(index) for index in chunk}) == 1 for chunk in chunks)
    # Each source contributes its full chunks: the remainder (10 % 3, 7 % 3, 4 % 3) is dropped for the epoch.
    assert [sum(source_of(index) == source for index in order) for source in range(3)] == [9, 6, 3]
    assert len({tuple(sorted({source_of(index) for index in chunk})) for chunk in chunks}) == 3


def test_order_depends_only_on_seed_and_epoch():
    assert draw(seed=1, epoch=2) == draw(seed=1, epoch=2)
    assert draw(seed=1, epoch=2) != draw(seed=1, epoch=3)
    assert draw(seed=1, epoch=2) != draw(seed=2, epoch=2)
    assert draw(seed=1, epoch=1) != draw(seed=2, epoch=0)  # not seeded with seed + epoch


def test_rejects_empty_chunks():
    with pytest.raises(ValueError, match="chunk_size"):
        SourceGroupedSampler(SIZES, chunk_size=0)
