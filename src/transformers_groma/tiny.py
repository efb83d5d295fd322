"""A tiny random Groma, for tests, examples and `groma predict --tiny` (runs offline in seconds on a CPU).

Its sizes are those of the parity fixture: 112 px images (8x8 DINOv2 grid), a 1000-token base vocabulary followed
by the 114 Groma tokens (ids 1000-1113).
"""

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .configuration_groma import GromaConfig
from .modeling import GromaForConditionalGeneration
from .processing import CHAT_TEMPLATE, GromaImageProcessor, GromaProcessor, add_groma_tokens
from .tokens import added_token_id


TINY_BASE_VOCAB = 1000
TINY_IMAGE_SIZE = 112


def tiny_groma_config(**overrides) -> GromaConfig:
    """GromaConfig of a tiny model: DINOv2 64-wide x 5 layers, proposer 64-wide x 2+2 layers, Llama 64-wide x 2."""

    def token_id(token: str) -> int:
        return added_token_id(token, TINY_BASE_VOCAB)

    settings = {
        "vision_config": {
            "model_type": "dinov2",
            "hidden_size": 64,
            "num_hidden_layers": 5,
            "num_attention_heads": 4,
            "patch_size": 14,
            "image_size": 126,
            "layer_norm_eps": 1e-6,
        },
        "text_config": {
            "model_type": "llama",
            "vocab_size": TINY_BASE_VOCAB + 114,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
            "rms_norm_eps": 1e-5,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": token_id("[PAD]"),
        },
        "proposer_config": {
            "d_model": 64,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "decoder_ffn_dim": 128,
            "num_queries": 30,
        },
        "image_feature_layer": -1,
        "max_region_num": 8,
        "region_hidden_size": 48,
        "region_position_hidden_size": 32,
        "region_fuse_groups": 8,
        "pad_token_id": token_id("[PAD]"),
        "image_token_id": token_id("<image>"),
        "region_token_id": token_id("<region>"),
        "refer_box_token_id": token_id("<refer_box>"),
        "ground_box_token_id": token_id("<ground_box>"),
        "refer_feat_token_id": token_id("<refer_feat>"),
        "region_index_token_id": token_id("<r0>"),
    }
    settings.update(overrides)
    return GromaConfig(**settings)


def tiny_groma_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer built in code (no files, no download; any text tokenizes).

    Base vocabulary of 1000: `<unk>`=0, `<s>`=1, `</s>`=2, the 256 byte symbols, then made-up space-prefixed words
    (so a random model's output reads as words), followed by the 114 Groma tokens (ids 1000-1113).
    """
    byte_symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    words = [
        f"\u0120{c}{v}{e}"
        for c in "bdfgklmnprstvz"
        for v in "aeiou"
        for e in ("", "n", "r", "l", "s", "m", "ko", "ri", "ta", "ne", "lo")
    ]
    vocab = ["<unk>", "<s>", "</s>", *byte_symbols, *words][:TINY_BASE_VOCAB]
    backend = Tokenizer(models.BPE({token: i for i, token in enumerate(vocab)}, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True
    )
    add_groma_tokens(tokenizer)
    return tokenizer


def tiny_groma_processor() -> GromaProcessor:
    """Processor of the tiny model: 112 px images and [`tiny_groma_tokenizer`]."""
    image_processor = GromaImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    return GromaProcessor(
        image_processor=image_processor,
        tokenizer=tiny_groma_tokenizer(),
        chat_template=CHAT_TEMPLATE,
        max_region_num=8,
    )


def tiny_groma_model(seed: int = 0, **config_overrides) -> GromaForConditionalGeneration:
    """A tiny random `GromaForConditionalGeneration` (eval mode), reproducible for a given `seed`."""
    torch.manual_seed(seed)
    return GromaForConditionalGeneration(tiny_groma_config(**config_overrides)).eval()
