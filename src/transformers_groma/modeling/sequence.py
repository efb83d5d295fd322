"""Placeholder expansion (spec §2.1): turn a prompt with one `<image>` and one `<region>` into the LLM sequence."""

import torch

from ..configuration_groma import GromaConfig
from ..tokens import IGNORE_INDEX


def expand_placeholders(
    input_ids: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    config: GromaConfig,
    num_image_tokens: int,
    num_regions: int,
    refer_indices: torch.Tensor,
    ground_indices: torch.Tensor,
    sample_index: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expand one sample (padding already removed).

    `<image>` becomes `num_image_tokens` `<image>` slots; `<region>` becomes `<r0><region><r1><region>...` for the
    `num_regions` regions; the j-th `<refer_box>` becomes `<r{refer_indices[j]}>` and the j-th `<ground_box>`
    becomes `<r{ground_indices[j]}>`, also in `labels` where that position is supervised. Labels get -100 on the
    image and region slots.

    Args:
        input_ids: (T,) token ids of one sample.
        labels: (T,) labels aligned with `input_ids`, or None.
        refer_indices / ground_indices: (n,) region index matched to each user / ground-truth box, in box order.
        sample_index: position in the batch, for error messages.

    Returns:
        The expanded ids (T',) and labels (T',) (None if `labels` was None).
    """
    image_positions = (input_ids == config.image_token_id).nonzero()[:, 0]
    region_positions = (input_ids == config.region_token_id).nonzero()[:, 0]
    if len(image_positions) != 1 or len(region_positions) != 1:
        raise ValueError(
            f"Sample {sample_index}: the prompt must contain exactly one <image> (id {config.image_token_id}) and one "
            f"<region> (id {config.region_token_id}) placeholder, found {len(image_positions)} and "
            f"{len(region_positions)}. Build prompts with GromaProcessor / its chat template."
        )
    image_pos, region_pos = image_positions.item(), region_positions.item()
    if image_pos > region_pos:
        raise ValueError(f"Sample {sample_index}: <image> must come before <region> in the prompt.")

    num_refer_feats = int((input_ids == config.refer_feat_token_id).sum())
    if num_refer_feats not in (0, len(refer_indices)):
        raise ValueError(
            f"Sample {sample_index}: {num_refer_feats} <refer_feat> token(s) for {len(refer_indices)} box(es) in "
            "`refer_boxes`; write one <refer_feat> per referred box (or none)."
        )
    input_ids = input_ids.clone()
    labels = labels.clone() if labels is not None else None
    for token_id, indices, name in (
        (config.refer_box_token_id, refer_indices, "refer_boxes"),
        (config.ground_box_token_id, ground_indices, "ground_boxes"),
    ):
        positions = (input_ids == token_id).nonzero()[:, 0]
        if len(positions) != len(indices):
            raise ValueError(
                f"Sample {sample_index}: {len(positions)} placeholder token(s) with id {token_id} but {len(indices)} "
                f"box(es) in `{name}`; give exactly one box per placeholder."
            )
        input_ids[positions] = config.region_index_token_id + indices
        if labels is not None:
            supervised = positions[labels[positions] != IGNORE_INDEX]
            labels[supervised] = input_ids[supervised]

    region_ids = torch.stack(
        [
            config.region_index_token_id + torch.arange(num_regions, device=input_ids.device),
            torch.full((num_regions,), config.region_token_id, device=input_ids.device),
        ],
        dim=1,
    ).flatten()  # <r0> <region> <r1> <region> ...
    image_ids = input_ids.new_full((num_image_tokens,), config.image_token_id)
    expanded_ids = _splice(input_ids, image_pos, region_pos, image_ids, region_ids)
    if labels is None:
        return expanded_ids, None
    ignore = labels.new_full((len(image_ids) + len(region_ids),), IGNORE_INDEX)
    return expanded_ids, _splice(labels, image_pos, region_pos, ignore[: len(image_ids)], ignore[len(image_ids) :])


def _splice(
    sequence: torch.Tensor, image_pos: int, region_pos: int, image_part: torch.Tensor, region_part: torch.Tensor
) -> torch.Tensor:
    """Replace the tokens at `image_pos` and `region_pos` (image first) by `image_part` and `region_part`."""
    return torch.cat(
        (
            sequence[:image_pos],
            image_part,
            sequence[image_pos + 1 : region_pos],
            region_part,
            sequence[region_pos + 1 :],
        )
    )


def pad_sequences(sequences: list[torch.Tensor], padding_value: int, padding_side: str) -> torch.Tensor:
    """Stack 1-D tensors into (B, max_len), padding on `padding_side` ("left" or "right")."""
    return torch.nn.utils.rnn.pad_sequence(
        sequences, batch_first=True, padding_value=padding_value, padding_side=padding_side
    )


def pack_sequences(
    attention_mask: torch.Tensor, *tensors: torch.Tensor | None, labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, list[torch.Tensor | None], torch.Tensor | None]:
    """Padding-free batch: the real tokens of all rows concatenated into one row.

    Args:
        attention_mask: (B, L) 1 for real tokens.
        tensors: (B, L, ...) tensors to pack alike (None passes through).
        labels: (B, L) labels; the first token of every sequence is set to -100 so no loss crosses a boundary.

    Returns:
        `position_ids` (1, T) restarting at 0 for every sequence (FlashAttention-2 and sdpa read the boundaries from
        them), the packed tensors (1, T, ...), and the packed labels (1, T).
    """
    real = attention_mask.bool()
    position_ids = (real.long().cumsum(-1) - 1)[real][None]
    packed = [t[real][None] if t is not None else None for t in tensors]
    packed_labels = labels[real][None].masked_fill(position_ids == 0, IGNORE_INDEX) if labels is not None else None
    return position_ids, packed, packed_labels
