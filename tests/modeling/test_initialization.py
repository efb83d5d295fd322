"""A freshly built Groma gets the initialisation its `_init_weights` describes, also for modules that hold no
parameters of their own (Deformable-DETR's attention, the region encoder), while loaded weights stay as saved."""

import math

import pytest
import torch

from transformers_groma import GromaForConditionalGeneration, GromaForRegionProposal
from transformers_groma.tiny import tiny_groma_config


def radial_grid(n_heads: int, n_levels: int, n_points: int) -> torch.Tensor:
    """Deformable-DETR's initial sampling offsets: head h points along angle 2*pi*h/n_heads, point p at distance p+1
    (in units of the larger of |cos| and |sin|)."""
    rows = []
    for head in range(n_heads):
        angle = 2 * math.pi * head / n_heads
        x, y = math.cos(angle), math.sin(angle)
        scale = max(abs(x), abs(y))
        for _ in range(n_levels):
            for point in range(1, n_points + 1):
                rows.append([x / scale * point, y / scale * point])
    return torch.tensor(rows).flatten()


@pytest.mark.parametrize("model_class", [GromaForConditionalGeneration, GromaForRegionProposal])
def test_fresh_model_gets_the_proposer_and_region_encoder_initialisation(model_class):
    torch.manual_seed(0)
    model = model_class(tiny_groma_config())
    proposer = model.get_submodule("model.region_proposer" if hasattr(model, "model") else "region_proposer")
    attentions = [layer.self_attn for layer in proposer.encoder_layers] + [
        layer.encoder_attn for layer in proposer.decoder_layers
    ]
    for attention in attentions:
        expected = radial_grid(attention.n_heads, attention.n_levels, attention.n_points)
        torch.testing.assert_close(attention.sampling_offsets.bias, expected)
        assert not attention.sampling_offsets.weight.any()
        assert not attention.attention_weights.weight.any() and not attention.attention_weights.bias.any()
    prior = -math.log(0.99 / 0.01)
    for head in [*proposer.coco_class_heads, *proposer.sa1b_class_heads]:
        torch.testing.assert_close(head.bias, torch.full_like(head.bias, prior))
    if model_class is GromaForConditionalGeneration:
        encoder = model.model.region_encoder
        convs = [
            *encoder.level_convs,
            *encoder.fusion.input_convs,
            *(block.conv for block in encoder.fusion.fuse_blocks),
        ]
        weights = torch.cat([conv.weight.flatten() for conv in convs])
        assert weights.std().item() == pytest.approx(0.01, rel=0.05)
        assert all(not conv.bias.any() for conv in convs if conv.bias is not None)


def test_loaded_weights_are_not_reinitialised(tmp_path):
    torch.manual_seed(0)
    model = GromaForConditionalGeneration(tiny_groma_config())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5)  # nothing like any initialisation
    model.save_pretrained(tmp_path)
    loaded = GromaForConditionalGeneration.from_pretrained(tmp_path)
    for (name, saved), (_, reloaded) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(saved, reloaded), name
