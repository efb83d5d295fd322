"""Placeholder expansion (spec §2.1): turn a prompt with one `<image>` and one `<region>` into the LLM sequence."""

import torch

from ..configuration_groma import GromaConfig
from ..tokens import IGNORE_INDEX


def expand_placeholders(
    input_ids: torch.Tensor,
    real: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    config: GromaConfig,
    num_image_tokens: int,
    num_regions: list[int],
    refer_indices: list[torch.Tensor],
    ground_indices: list[torch.Tensor],
) -> tuple[list[torch.Tensor], list[torch.Tensor] | list[None]]:
    """Expand a batch of prompts, all rows at once (one host read of the placeholder counts for the batch).

    In every row, the real tokens are kept (padding dropped), `<image>` becomes `num_image_tokens` `<image>` slots,
    `<region>` becomes `<r0><region><r1><region>...` for that row's regions, and the j-th `<refer_box>` /
    `<ground_box>` becomes `<r{refer_indices[i][j]}>` / `<r{ground_indices[i][j]}>`, also in `labels` where that
    position is supervised. Labels get -100 on the image and region slots.

    Args:
        input_ids: (B, T) token ids; real: (B, T) bool, the tokens that are not padding.
        labels: (B, T) labels aligned with `input_ids`, or None.
        num_regions: regions per row; refer_indices / ground_indices: per row, (n_i,) region index matched to
            each user / ground-truth box, in box order.

    Returns:
        Per row, the expanded ids (T_i,) and labels (T_i,) (None each if `labels` was None).
    """
    device = input_ids.device
    token_ids = {
        "image": config.image_token_id,
        "region": config.region_token_id,
        "refer_feat": config.refer_feat_token_id,
        "refer_box": config.refer_box_token_id,
        "ground_box": config.ground_box_token_id,
    }
    masks = {name: (input_ids == token_id) & real for name, token_id in token_ids.items()}
    counts = torch.stack([mask.sum(1) for mask in masks.values()], 1)
    positions = torch.stack([masks["image"].long().argmax(1), masks["region"].long().argmax(1), real.sum(1)], 1)
    rows = torch.cat([counts, positions], 1).tolist()  # the one host read of the expansion
    for i, (images, regions, refer_feats, refer_boxes, ground_boxes, image_pos, region_pos, _) in enumerate(rows):
        if images != 1 or regions != 1:
            raise ValueError(
                f"Sample {i}: the prompt must contain exactly one <image> (id {config.image_token_id}) and one "
                f"<region> (id {config.region_token_id}) placeholder, found {images} and {regions}. Build prompts "
                "with GromaProcessor / its chat template."
            )
        if image_pos > region_pos:
            raise ValueError(f"Sample {i}: <image> must come before <region> in the prompt.")
        if refer_feats not in (0, len(refer_indices[i])):
            raise ValueError(
                f"Sample {i}: {refer_feats} <refer_feat> token(s) for {len(refer_indices[i])} box(es) in "
                "`refer_boxes`; write one <refer_feat> per referred box (or none)."
            )
        for found, indices, token_id, name in (
            (refer_boxes, refer_indices[i], config.refer_box_token_id, "refer_boxes"),
            (ground_boxes, ground_indices[i], config.ground_box_token_id, "ground_boxes"),
        ):
            if found != len(indices):
                raise ValueError(
                    f"Sample {i}: {found} placeholder token(s) with id {token_id} but {len(indices)} box(es) in "
                    f"`{name}`; give exactly one box per placeholder."
                )

    # <refer_box> / <ground_box> -> <rK> of their matched region (the j-th placeholder takes the j-th index).
    input_ids = input_ids.clone()
    labels = labels.clone() if labels is not None else None
    for name, indices in (("refer_box", refer_indices), ("ground_box", ground_indices)):
        if not any(len(index) for index in indices):
            continue
        table = pad_sequences([index.to(device) for index in indices], 0, "right")  # (B, n_max)
        slot = (masks[name].long().cumsum(1) - 1).clamp(min=0, max=table.shape[1] - 1)
        pointed = config.region_index_token_id + table.gather(1, slot)
        input_ids = torch.where(masks[name], pointed, input_ids)
        if labels is not None:
            labels = torch.where(masks[name] & (labels != IGNORE_INDEX), pointed, labels)

    # Every token repeated as often as it expands: 0 (padding), num_image_tokens, 2 * regions, or 1.
    repeats = real.long()
    repeats = repeats.masked_fill(masks["image"], num_image_tokens)
    repeats = torch.where(masks["region"], 2 * torch.tensor(num_regions, device=device)[:, None], repeats)
    lengths = [row[-1] - 2 + num_image_tokens + 2 * n for row, n in zip(rows, num_regions)]
    total = sum(lengths)
    flat_repeats = repeats.flatten()
    expanded = input_ids.flatten().repeat_interleave(flat_repeats, output_size=total)
    run_start = (flat_repeats.cumsum(0) - flat_repeats).repeat_interleave(flat_repeats, output_size=total)
    offset = torch.arange(total, device=device) - run_start  # position inside each token's run
    in_region_run = expanded == config.region_token_id
    expanded = torch.where(in_region_run & (offset % 2 == 0), config.region_index_token_id + offset // 2, expanded)
    expanded_ids = list(expanded.split(lengths))
    if labels is None:
        return expanded_ids, [None] * len(expanded_ids)
    expanded_labels = labels.flatten().repeat_interleave(flat_repeats, output_size=total)
    expanded_labels = expanded_labels.masked_fill(in_region_run | (expanded == config.image_token_id), IGNORE_INDEX)
    return expanded_ids, list(expanded_labels.split(lengths))


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
