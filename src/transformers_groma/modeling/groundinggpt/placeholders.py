"""Where the media tokens go: validation of the `<xx_start>` + N x `<xx_patch>` + `<xx_end>` placeholder blocks,
the in-place splice of the features, and left-aligning padded prompts for generation."""

from typing import NamedTuple

import torch

from ...configuration_groundinggpt import GroundingGPTConfig


class PlaceholderSpec(NamedTuple):
    """One modality's placeholder block and the model argument that carries its media."""

    argument: str
    media: str
    start_token: str
    patch_token: str
    end_token: str
    start_token_id: int
    token_id: int
    end_token_id: int
    num_tokens: int

    @property
    def block(self) -> str:
        """The block as text for error messages, e.g. `<im_start> + 576 x <im_patch> + <im_end>`."""
        return f"{self.start_token} + {self.num_tokens} x {self.patch_token} + {self.end_token}"


def placeholder_specs(config: GroundingGPTConfig) -> dict[str, PlaceholderSpec]:
    """The image, video and audio placeholder blocks of `config`, keyed by modality."""
    layout = (
        ("image", "pixel_values", "im", config.num_image_tokens),
        ("video", "pixel_values_videos", "vi", config.num_video_tokens),
        ("audio", "input_features", "so", config.num_audio_tokens),
    )
    return {
        media: PlaceholderSpec(
            argument=argument,
            media=media,
            start_token=f"<{tag}_start>",
            patch_token=f"<{tag}_patch>",
            end_token=f"<{tag}_end>",
            start_token_id=getattr(config, f"{media}_start_token_id"),
            token_id=getattr(config, f"{media}_token_id"),
            end_token_id=getattr(config, f"{media}_end_token_id"),
            num_tokens=num_tokens,
        )
        for media, argument, tag, num_tokens in layout
    }


def placeholder_mask(input_ids: torch.LongTensor, spec: PlaceholderSpec, num_media: int) -> torch.BoolTensor:
    """(B, L) mask of the patch positions to fill, after checking the placeholder blocks.

    Every start token must be followed by exactly `spec.num_tokens` patch tokens and one end token, there must be no
    other patch token, and there must be one block per media item (`num_media`). The media fill the blocks in reading
    order: sample by sample, left to right.

    Raises:
        ValueError: naming `spec.argument` and what is wrong.
    """
    starts = (input_ids == spec.start_token_id).nonzero()
    if len(starts) != num_media:
        given = f"`{spec.argument}` holds {num_media} {spec.media}(s)" if num_media else f"no `{spec.argument}` given"
        raise ValueError(
            f"{given} but `input_ids` has {len(starts)} {spec.media} placeholder block(s) ({spec.block}): pass one "
            f"{spec.media} per block, in order (GroundingGPTProcessor writes the blocks)."
        )
    offsets = torch.arange(1, spec.num_tokens + 2, device=input_ids.device)
    positions = starts[:, 1:] + offsets  # (num_media, num_tokens + 1): the patches, then the end token
    expected = torch.full_like(positions, spec.token_id)
    expected[:, -1] = spec.end_token_id
    inside = bool((positions[:, -1] < input_ids.shape[1]).all())
    if not inside or not torch.equal(input_ids[starts[:, :1], positions], expected):
        raise ValueError(
            f"Every {spec.media} placeholder block in `input_ids` must be exactly {spec.block}: found one with a "
            "different number of patch tokens or without its end token."
        )
    mask = input_ids == spec.token_id
    if int(mask.sum()) != num_media * spec.num_tokens:
        raise ValueError(
            f"`input_ids` has {int(mask.sum())} {spec.patch_token} tokens for {num_media} block(s) of "
            f"{spec.num_tokens}: {spec.patch_token} outside a {spec.block} block is not allowed."
        )
    return mask


def splice_features(inputs_embeds: torch.Tensor, mask: torch.BoolTensor, features: torch.Tensor) -> torch.Tensor:
    """Replace the embeddings at `mask` ((B, L)) by `features` ((N, tokens, D)) in reading order; out of place."""
    return inputs_embeds.masked_scatter(mask[..., None], features.to(inputs_embeds.dtype))


def left_align(
    input_ids: torch.LongTensor, attention_mask: torch.Tensor | None, inputs_embeds: torch.Tensor | None = None
) -> tuple[torch.LongTensor, torch.Tensor | None, torch.Tensor | None]:
    """Move every prompt's real tokens (`attention_mask == 1`) to the right end, keeping their order.

    Generation appends after the last position, so right-padded prompts must become left-padded. `inputs_embeds`
    ((B, L, D), optional) move with their ids. Returns the ids, the mask and the embeddings.
    """
    if attention_mask is None:
        return input_ids, None, inputs_embeds
    order = torch.argsort(attention_mask.long(), dim=1, stable=True)
    if inputs_embeds is not None:
        inputs_embeds = inputs_embeds.gather(1, order[..., None].expand_as(inputs_embeds))
    return input_ids.gather(1, order), attention_mask.gather(1, order), inputs_embeds


__all__ = ["PlaceholderSpec", "left_align", "placeholder_mask", "placeholder_specs", "splice_features"]
