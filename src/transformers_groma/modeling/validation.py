"""Input checks shared by the models: clear errors instead of shape mismatches deep inside the forward, and checks
of saved folders before `from_pretrained` reads them.

The contract between processors and models: the processors check raw inputs (files, images, boxes in pixels, text
and placeholders, audio) and produce well-formed tensors; `forward`, `generate` and `propose_regions` check only
what a caller building tensors by hand can get wrong, with at most one reduction per tensor, and only when a prompt
is encoded (prefill), never in one-token decoding steps: dtype and layout, a non-empty batch, ids inside the
vocabulary, labels (ids or -100), a 0/1 attention mask, finite pixel values whose size is a multiple of the patch,
box lists, and an expanded prompt that fits the language model's positions.
"""

import os

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import PretrainedConfig, PreTrainedModel

from ..folder_checks import check_json_files, local_folder, read_json_file, weight_headers


def check_box_lists(
    boxes: list | tuple | None,
    name: str,
    batch_size: int,
    max_count: int | None,
    device: torch.device,
    allow_empty: bool = True,
) -> list[torch.Tensor]:
    """Validate per-sample box lists in normalized cxcywh and return them as float32 (n_i, 4) tensors.

    Args:
        boxes: one entry per sample, each (n_i, 4) `[cx, cy, w, h]` in [0, 1] (tensor, array or nested list), or None
            for "no boxes anywhere".
        name: argument name used in error messages.
        batch_size: number of samples the list must have.
        max_count: most boxes allowed per sample (None: no limit).
        allow_empty: whether a sample may have no boxes.
    """
    if boxes is None:
        if not allow_empty:
            raise ValueError(f"`{name}` is required.")
        return [torch.zeros(0, 4, device=device) for _ in range(batch_size)]
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"`{name}` must be a list with one (n, 4) box tensor per sample, got {type(boxes).__name__}.")
    if len(boxes) != batch_size:
        raise ValueError(f"`{name}` has {len(boxes)} entries for a batch of {batch_size}; give one per sample.")
    checked = []
    for i, sample_boxes in enumerate(boxes):
        sample_boxes = torch.as_tensor(sample_boxes, dtype=torch.float32, device=device)
        if sample_boxes.numel() == 0:
            sample_boxes = sample_boxes.reshape(0, 4)
        if sample_boxes.ndim != 2 or sample_boxes.shape[1] != 4:
            raise ValueError(
                f"`{name}[{i}]` must have shape (n, 4) in normalized [cx, cy, w, h], got {tuple(sample_boxes.shape)}."
            )
        if not allow_empty and len(sample_boxes) == 0:
            raise ValueError(f"`{name}[{i}]` is empty; every sample needs at least one box.")
        if max_count is not None and len(sample_boxes) > max_count:
            raise ValueError(f"`{name}[{i}]` has {len(sample_boxes)} boxes, more than max_region_num={max_count}.")
        centers, sizes = sample_boxes[:, :2], sample_boxes[:, 2:]
        corners = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
        if not torch.isfinite(sample_boxes).all() or (sizes <= 0).any():
            raise ValueError(f"`{name}[{i}]` must hold finite [cx, cy, w, h] boxes with w > 0 and h > 0.")
        if (corners < -1e-4).any() or (corners > 1 + 1e-4).any():
            raise ValueError(
                f"`{name}[{i}]` has boxes outside the image: boxes are normalized [cx, cy, w, h] whose corners must "
                "lie in [0, 1] (use GromaProcessor to convert pixel [x1, y1, x2, y2] boxes)."
            )
        checked.append(sample_boxes)
    return checked


def check_pixel_tensor(
    pixel_values: torch.Tensor,
    name: str,
    layout: str | None,
    channels: int = 3,
    patch_size: int | None = None,
    check_values: bool = True,
) -> None:
    """Validate a batch of preprocessed media: a non-empty floating-point tensor of `layout`, finite, whose height
    and width are whole multiples of `patch_size` (the patch embedding would silently crop the rest).

    Args:
        pixel_values: `(batch, channels, ..., height, width)` tensor; its rank is the number of names in `layout`.
        name: argument name used in error messages.
        layout: the expected shape, e.g. `"(batch, 3, height, width)"`, or None when the caller checks the shape.
        channels: size of dimension 1 (with `layout`).
        patch_size: side of the vision tower's patches, or None to skip the size check.
        check_values: also check every value is finite (one reduction; NaN inputs give NaN outputs or, through
            RoIAlign, undefined behaviour).
    """
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(pixel_values).__name__}.")
    if not pixel_values.is_floating_point():
        raise TypeError(
            f"`{name}` must be floating-point (normalized by the processor), got {pixel_values.dtype}: pass the "
            "processor's output, not raw pixels."
        )
    if layout is not None and (pixel_values.ndim != layout.count(",") + 1 or pixel_values.shape[1] != channels):
        raise ValueError(f"`{name}` must be {layout}, got shape {tuple(pixel_values.shape)}.")
    if pixel_values.shape[0] == 0:
        raise ValueError(f"`{name}` holds no item (batch of 0); pass at least one.")
    height, width = pixel_values.shape[-2:]
    if patch_size is not None and (height % patch_size or width % patch_size):
        raise ValueError(
            f"`{name}` is {height}x{width} px, not a multiple of the {patch_size} px patch: the vision tower would "
            f"crop the image. Resize to a multiple of {patch_size} (e.g. the processor's `size`)."
        )
    if check_values and not torch.isfinite(pixel_values).all():
        raise ValueError(f"`{name}` holds NaN or infinite values; check the images and their preprocessing.")


def check_token_ids(input_ids: torch.Tensor, vocab_size: int, name: str = "input_ids") -> None:
    """Validate a non-empty integer `(batch, sequence_length)` tensor of ids in `[0, vocab_size)` (one reduction)."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(input_ids).__name__}.")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold integer token ids, got {input_ids.dtype}.")
    if input_ids.ndim != 2:
        raise ValueError(f"`{name}` must be (batch, sequence_length), got shape {tuple(input_ids.shape)}.")
    if input_ids.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(input_ids.shape)}); pass at least one prompt.")
    low, high = (value.item() for value in torch.aminmax(input_ids))
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"`{name}` holds ids outside the vocabulary [0, {vocab_size}): min {low}, max {high}. Use the model's "
            "own processor/tokenizer."
        )


def check_labels(labels: torch.Tensor, vocab_size: int, ignore_index: int = -100) -> None:
    """Validate integer `labels` holding vocabulary ids or `ignore_index` (one reduction)."""
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        kind = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TypeError(f"`labels` must be an integer tensor of token ids (or {ignore_index}), got {kind}.")
    invalid = (labels != ignore_index) & ((labels < 0) | (labels >= vocab_size))
    if invalid.any():
        raise ValueError(
            f"`labels` holds {labels[invalid][0].item()}: expected ids in [0, {vocab_size}) or {ignore_index} "
            "(not supervised)."
        )


def check_attention_mask(attention_mask: torch.Tensor | None, shape: torch.Size) -> None:
    """Validate an `attention_mask` of `shape` holding only 0 and 1."""
    if attention_mask is None:
        return
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != shape:
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
        raise ValueError(f"`attention_mask` must have the shape of `input_ids` {tuple(shape)}, got {got}.")
    if ((attention_mask != 0) & (attention_mask != 1)).any():
        raise ValueError("`attention_mask` must hold 1 for real tokens and 0 for padding only.")


def check_sequence_length(length: int, text_config: PretrainedConfig, what: str) -> None:
    """Refuse a sequence longer than the language model's `max_position_embeddings` (`what` names the sequence),
    unless its config scales RoPE (`rope_parameters` / `rope_scaling` with a `rope_type` other than "default"), which
    is how a context is extended beyond that length."""
    rope = getattr(text_config, "rope_parameters", None) or getattr(text_config, "rope_scaling", None) or {}
    if isinstance(rope, dict) and rope.get("rope_type", rope.get("type", "default")) != "default":
        return
    max_positions = getattr(text_config, "max_position_embeddings", None)
    if max_positions is not None and length > max_positions:
        raise ValueError(
            f"{what} has {length} tokens, more than the language model's max_position_embeddings "
            f"({max_positions}); shorten the prompt."
        )


def check_prompts(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    pixel_values: torch.Tensor,
    vocab_size: int,
) -> None:
    """Validate a Groma prompt batch: ids (see [`check_token_ids`]), its 0/1 `attention_mask` and labels of the shape
    of `input_ids`, and one `(3, height, width)` image per prompt (values are checked by `encode_image`)."""
    check_token_ids(input_ids, vocab_size)
    check_attention_mask(attention_mask, input_ids.shape)
    if labels is not None:
        check_labels(labels, vocab_size)
        if labels.shape != input_ids.shape:
            raise ValueError(
                f"`labels` must have the shape of `input_ids` {tuple(input_ids.shape)}, got {tuple(labels.shape)}."
            )
    check_pixel_tensor(pixel_values, "pixel_values", "(batch, 3, height, width)", check_values=False)
    if pixel_values.shape[0] != input_ids.shape[0]:
        raise ValueError(
            f"Got {pixel_values.shape[0]} images for {input_ids.shape[0]} prompts; Groma takes one image per prompt "
            "(one row of `pixel_values` per row of `input_ids`)."
        )


# safetensors dtype names of floating-point tensors: every weight of a (non-quantized) Groma/GroundingGPT folder.
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def check_pretrained_folder(
    model_class: type[PreTrainedModel], path: str | os.PathLike, config: PretrainedConfig | None = None
) -> None:
    """Check a local model folder before `from_pretrained` reads it, so that the damaged file is named.

    JSON files must parse; weight files must have intact safetensors headers; the model's floating-point weights
    must be stored as floating point (an integer tensor would be cast silently; quantized folders, with a
    `quantization_config`, are exempt) and have the shapes of the model that `config` (default: its config.json)
    describes. Keys the model does not have are left to `from_pretrained`, which reports them as unexpected. Reads
    headers only (and builds the model on the meta device). `path=None` (weights passed as `state_dict`) checks nothing.

    Raises:
        ValueError: naming the file (and the weight) that is damaged or does not fit.
        FileNotFoundError: naming the index when a shard it lists is missing.
    """
    folder = local_folder(path) if path is not None else None
    if folder is None:
        return
    check_json_files(folder, ("config.json", "generation_config.json"))
    headers = weight_headers(folder)
    if not headers or not (folder / "config.json").is_file():
        return
    if config is None:
        try:
            config = model_class.config_class.from_pretrained(folder)
        except (StrictDataclassError, TypeError, ValueError) as error:
            raise ValueError(f"{folder / 'config.json'} is damaged: {error}") from error
    with torch.device("meta"):
        expected = model_class(config).state_dict()
    if "quantization_config" not in read_json_file(folder / "config.json"):
        wrong_dtype = [
            (key, file, dtype)
            for key, (file, dtype, _) in headers.items()
            if key in expected and expected[key].is_floating_point() and dtype not in FLOAT_DTYPES
        ]
        if wrong_dtype:
            key, file, dtype = wrong_dtype[0]
            raise ValueError(
                f"{file} holds {len(wrong_dtype)} non-floating-point weight(s), e.g. `{key}` as {dtype}: the file is "
                "damaged or was not written by `save_pretrained`."
            )
    for key, (file, _, shape) in headers.items():
        if key in expected and list(expected[key].shape) != shape:
            raise ValueError(
                f"{file} holds `{key}` of shape {tuple(shape)}, but the model its config describes needs "
                f"{tuple(expected[key].shape)}: the weights and config.json do not belong together."
            )


class CheckedLoadingMixin:
    """`from_pretrained` that runs [`check_pretrained_folder`] first (with the `config` passed, if any)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None, *args, **kwargs):
        config = kwargs.get("config")
        check_pretrained_folder(
            cls, pretrained_model_name_or_path, config if isinstance(config, PretrainedConfig) else None
        )
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
