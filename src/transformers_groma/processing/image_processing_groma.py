"""Image processor for Groma (spec §3.1)."""

from collections.abc import Sequence

import torch
from torchvision.ops import box_convert, nms
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.utils import ModelOutput

from ..saving import RemoteCodeSavingMixin
from .grounding import normalized_cxcywh_to_pixel_xyxy
from .image_inputs import CheckedImagesMixin


class GromaImageProcessor(RemoteCodeSavingMixin, CheckedImagesMixin, TorchvisionBackend):
    r"""Constructs a Groma image processor.

    Every image is converted to RGB and squashed to `size` (448x448 by default) with a bicubic resize that ignores the
    aspect ratio, without cropping or padding, then rescaled by 1/255 and normalized with the ImageNet mean and
    standard deviation. This is the preprocessing of the original demo (`PIL.Image.resize((448, 448))`, whose default
    filter is bicubic, followed by a `BitImageProcessor` that only rescales and normalizes). Because the resize is a
    squash, normalized box coordinates are the same on the original and on the resized image; the original sizes are
    returned so that boxes can be mapped back to pixels.

    Accepts paths, URLs, PIL images, numpy arrays and torch tensors (channels first or last), single or batched,
    checked and read as described in [`~transformers_groma.processing.image_inputs.load_images`] (16-bit images,
    floats already in [0, 1]), and every argument of [`~transformers.image_processing_backends.TorchvisionBackend`]
    (`size`, `resample`, ...).

    Returns a [`~transformers.BatchFeature`] with:

    - **pixel_values** (`torch.Tensor` of shape `(batch_size, 3, height, width)`, a list of `(3, height, width)`
      tensors when `return_tensors=None`) -- the preprocessed images.
    - **image_sizes** (`torch.LongTensor` of shape `(batch_size, 2)`) -- `(height, width)` of each original image.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 448, "width": 448}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    model_input_names = ["pixel_values", "image_sizes"]

    def _preprocess(self, images: list[torch.Tensor], **kwargs) -> BatchFeature:
        # `images` are the channels-first originals: record their size before they are resized.
        image_sizes = torch.tensor([list(image.shape[-2:]) for image in images], dtype=torch.int64).reshape(-1, 2)
        outputs = super()._preprocess(images, **kwargs)
        outputs["image_sizes"] = image_sizes
        return outputs

    def post_process_object_detection(
        self,
        outputs: ModelOutput,
        threshold: float = 0.5,
        target_sizes: torch.Tensor | Sequence[Sequence[int]] | None = None,
        nms_threshold: float | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Turns the proposals of [`GromaForRegionProposal`] into detections, as transformers' detectors do.

        Groma's proposer is class-agnostic: every detection has label 0 (the config's `id2label[0]`).

        Args:
            outputs ([`GromaRegionProposalOutput`] or any output with `pred_boxes` and `scores`):
                `pred_boxes` of shape `(batch_size, num_queries, 4)`, normalized `(center_x, center_y, width,
                height)`, and `scores` of shape `(batch_size, num_queries)`, the fused objectness in [0, 1].
            threshold (`float`, *optional*, defaults to 0.5):
                Keep the proposals whose score is at least this.
            target_sizes (`torch.Tensor` of shape `(batch_size, 2)` or a list of `(height, width)`, *optional*):
                The sizes to express the boxes in, e.g. the `image_sizes` this processor returned. Without them the
                boxes stay normalized to [0, 1].
            nms_threshold (`float`, *optional*):
                Also drop a box that overlaps a higher-scored one by more than this IoU (no suppression by default).

        Returns:
            `list[dict]`: per image, `scores` `(n,)`, `labels` `(n,)` (zeros) and `boxes` `(n, 4)` as `[x1, y1, x2,
            y2]` (pixels with `target_sizes`), highest score first.

        Raises:
            ValueError: for scores and boxes of different shapes, a threshold outside [0, 1] or `target_sizes` that do
                not give one `(height, width)` per image.
        """
        boxes, scores = outputs["pred_boxes"], outputs["scores"]
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or tuple(scores.shape) != tuple(boxes.shape[:2]):
            raise ValueError(
                "`outputs` must hold `pred_boxes` of shape (batch_size, num_queries, 4) and `scores` of shape "
                f"(batch_size, num_queries), got {tuple(boxes.shape)} and {tuple(scores.shape)}."
            )
        for name, value in (("threshold", threshold), ("nms_threshold", nms_threshold)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
        if target_sizes is not None and len(target_sizes) != len(boxes):
            raise ValueError(
                f"`target_sizes` must give one (height, width) per image: got {len(target_sizes)} for {len(boxes)}."
            )
        results = []
        for index, (image_boxes, image_scores) in enumerate(zip(boxes.float(), scores.float())):
            order = image_scores.argsort(descending=True, stable=True)
            order = order[image_scores[order] >= threshold]
            image_boxes, image_scores = image_boxes[order], image_scores[order]
            if target_sizes is None:
                image_boxes = box_convert(image_boxes, in_fmt="cxcywh", out_fmt="xyxy")
            else:
                image_boxes = normalized_cxcywh_to_pixel_xyxy(image_boxes, target_sizes[index])
            if nms_threshold is not None:
                kept = nms(image_boxes, image_scores, nms_threshold)  # indices in descending score order
                image_boxes, image_scores = image_boxes[kept], image_scores[kept]
            labels = torch.zeros(len(image_scores), dtype=torch.int64, device=image_scores.device)
            results.append({"scores": image_scores, "labels": labels, "boxes": image_boxes})
        return results


__all__ = ["GromaImageProcessor"]
