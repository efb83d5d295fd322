"""`GromaConfig.vision_autocast_dtype`: the vision path under bf16 autocast, with boxes kept in float32."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from transformers_groma import GromaConfig

from .groma_test_utils import cxcywh, make_model, make_prompt, pad_batch, pixels


def test_config_rejects_an_unknown_autocast_dtype():
    with pytest.raises(StrictDataclassClassValidationError, match="vision_autocast_dtype"):
        GromaConfig(vision_autocast_dtype="int8")


def _dtypes_seen(model, inputs) -> dict[str, torch.dtype]:
    """Output dtypes of a DINOv2 matrix product (its last MLP) and of the region encoder's fusion, recorded by forward hooks."""
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen.setdefault(name, (output[0] if isinstance(output, (tuple, list)) else output).dtype)

        return hook

    hooks = [
        model.model.vision_tower.encoder.layer[-1].mlp.fc1.register_forward_hook(record("dinov2")),
        model.model.region_encoder.fusion.register_forward_hook(record("fusion")),
    ]
    with torch.no_grad():
        outputs = model(**inputs)
    for hook in hooks:
        hook.remove()
    return seen, outputs


def test_bf16_autocast_runs_the_vision_path_in_bf16_and_keeps_boxes_fp32():
    ids, mask = pad_batch([make_prompt(2, 2, 3, refer=1), make_prompt(5, 1, 2, refer=1, seed=3)], "left")
    inputs = {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": pixels(2),
        "refer_boxes": [cxcywh([0.3, 0.3, 0.2, 0.2]), cxcywh([0.6, 0.6, 0.3, 0.2])],
    }
    fp32_model = make_model(box_score_threshold=0.0)
    torch.manual_seed(1)
    for head in fp32_model.model.region_proposer.bbox_heads:  # zero-initialised: boxes would be the bare anchors
        torch.nn.init.normal_(head.layers[-1].weight, std=0.1)
    bf16_model = make_model(box_score_threshold=0.0, vision_autocast_dtype="bfloat16")
    bf16_model.load_state_dict(fp32_model.state_dict())
    fp32_seen, _ = _dtypes_seen(fp32_model, inputs)
    bf16_seen, bf16 = _dtypes_seen(bf16_model, inputs)
    assert fp32_seen == {"dinov2": torch.float32, "fusion": torch.float32}
    assert bf16_seen == {"dinov2": torch.bfloat16, "fusion": torch.bfloat16}
    assert bf16_model.model.vision_tower.dtype == torch.float32  # weights stay float32
    assert all(boxes.dtype == torch.float32 for boxes in bf16.region_boxes)
    assert torch.isfinite(bf16.logits).all()
    proposals = {}
    with torch.no_grad():
        for name, model in (("fp32", fp32_model), ("bf16", bf16_model)):
            vision_states, grid = model.model.encode_image(inputs["pixel_values"])
            proposals[name] = model.model.get_region_proposals(vision_states, grid)
    for name in ("pred_boxes", "encoder_pred_boxes", "scores", "encoder_logits"):  # selection reads float32
        assert getattr(proposals["bf16"], name).dtype == torch.float32, name
    # One box per feature position (before any top-k or NMS): bf16 rounding moves it only slightly.
    difference = (proposals["bf16"].encoder_pred_boxes - proposals["fp32"].encoder_pred_boxes).abs().max()
    assert 0 < difference < 0.02
