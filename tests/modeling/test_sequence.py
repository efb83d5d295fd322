"""Batched placeholder expansion: rows with different padding, region counts and box placeholders at once."""

import torch

from transformers_groma.modeling.sequence import expand_placeholders
from transformers_groma.tiny import tiny_groma_config

from .groma_test_utils import BOS, GROUND_BOX, IMAGE, PAD, R0, REFER_BOX, REGION


def test_rows_expand_independently_in_one_batch():
    config = tiny_groma_config()
    input_ids = torch.tensor(
        [
            [PAD, PAD, BOS, IMAGE, 5, REGION, REFER_BOX, 6],  # left-padded, 2 regions, refers to region 1
            [BOS, IMAGE, REGION, GROUND_BOX, 7, PAD, PAD, PAD],  # right-padded, 1 region, grounds region 0
        ]
    )
    labels = torch.tensor(
        [
            [-100, -100, -100, -100, -100, -100, -100, 6],
            [-100, -100, -100, GROUND_BOX, 7, -100, -100, -100],
        ]
    )
    ids, expanded_labels = expand_placeholders(
        input_ids,
        input_ids != PAD,
        labels,
        config=config,
        num_image_tokens=2,
        num_regions=[2, 1],
        refer_indices=[torch.tensor([1]), torch.zeros(0, dtype=torch.long)],
        ground_indices=[torch.zeros(0, dtype=torch.long), torch.tensor([0])],
    )
    assert ids[0].tolist() == [BOS, IMAGE, IMAGE, 5, R0, REGION, R0 + 1, REGION, R0 + 1, 6]
    assert ids[1].tolist() == [BOS, IMAGE, IMAGE, R0, REGION, R0, 7]
    assert expanded_labels[0].tolist() == [-100] * 9 + [6]
    assert expanded_labels[1].tolist() == [-100] * 5 + [R0, 7]
