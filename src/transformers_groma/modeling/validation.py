"""Input checks shared by the models: clear errors instead of shape mismatches deep inside the forward."""

import torch


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
