"""The ImageBind audio encoder against a hand-written reference of its attention (bias-kv) and its output scale."""

import math

import torch

from transformers_groma import GroundingGPTImageBindAudioConfig
from transformers_groma.modeling.groundinggpt import GroundingGPTImageBindAudioModel


CONFIG = GroundingGPTImageBindAudioConfig(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_mel_bins=36,
    target_length=46, output_size=8,
)  # fmt: skip


def bias_kv_attention(attention: torch.nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Multi-head self-attention over `x` (B, L, D) plus one learned key/value slot, written out by hand."""
    batch, length, dim = x.shape
    heads = attention.num_heads
    q, k, v = torch.nn.functional.linear(x, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
    k = torch.cat([k, attention.bias_k.expand(batch, 1, dim)], dim=1)
    v = torch.cat([v, attention.bias_v.expand(batch, 1, dim)], dim=1)
    split = lambda t: t.view(batch, -1, heads, dim // heads).transpose(1, 2)  # noqa: E731
    weights = (split(q) @ split(k).transpose(-1, -2) / math.sqrt(dim // heads)).softmax(-1)
    return attention.out_proj((weights @ split(v)).transpose(1, 2).reshape(batch, length, dim))


def reference_forward(model: GroundingGPTImageBindAudioModel, features: torch.Tensor) -> torch.Tensor:
    tokens = model.patch_layernorm(model.patch_embedding(features).flatten(2).transpose(1, 2))
    x = torch.cat([model.class_embedding.expand(len(tokens), -1, -1), tokens], dim=1) + model.position_embedding
    for block in model.layers:
        x = x + bias_kv_attention(block.attn, block.norm_1(x))
        x = x + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm_2(x))))
    embeds = model.projection(model.head_layernorm(x[:, 0]))
    return 20.0 * embeds / embeds.norm(dim=-1, keepdim=True)


def test_encoder_matches_the_hand_written_reference():
    torch.manual_seed(0)
    model = GroundingGPTImageBindAudioModel(CONFIG).eval()
    torch.nn.init.normal_(model.layers[0].attn.bias_k)  # torch initialises them small; make them matter
    features = torch.randn(3, 1, 36, 46)
    with torch.no_grad():
        out = model(features)
        expected = reference_forward(model, features)
    assert CONFIG.patch_grid == (3, 4) and out.last_hidden_state.shape == (3, 13, 16)
    torch.testing.assert_close(out.audio_embeds, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.audio_embeds.norm(dim=-1), torch.full((3,), 20.0))


def test_the_learned_key_value_slot_changes_the_output():
    torch.manual_seed(0)
    model = GroundingGPTImageBindAudioModel(CONFIG).eval()
    features = torch.randn(2, 1, 36, 46)
    with torch.no_grad():
        before = model(features).audio_embeds
        model.layers[0].attn.bias_v.add_(1.0)
        after = model(features).audio_embeds
    assert not torch.allclose(before, after)
