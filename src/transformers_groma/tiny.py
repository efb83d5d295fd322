"""Tiny random models built in code, for tests, examples and `groma predict --tiny` / `--tiny-groundinggpt` (they
run offline in seconds on a CPU).

- Groma: the sizes of the parity fixture: 112 px images (8x8 DINOv2 grid), a 1000-token base vocabulary followed by
  the 114 Groma tokens (ids 1000-1113).
- GroundingGPT: every branch at toy size (28 px images and frames, 4 frames at most, 32 x 24 log-mel clips), 4 / 3 / 2
  image / video / audio tokens, and a character-level Llama tokenizer whose 100-token base vocabulary is followed by
  the 9 GroundingGPT tokens (ids 100-108).
"""

import string

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaTokenizer, PreTrainedTokenizerFast

from .configuration_groma import GromaConfig
from .configuration_groundinggpt import TOKEN_ID_FIELDS, GroundingGPTConfig
from .modeling import GromaForConditionalGeneration
from .modeling.groundinggpt import GroundingGPTForConditionalGeneration
from .processing import CHAT_TEMPLATE, GromaImageProcessor, GromaProcessor, add_groma_tokens, record_legacy_flag
from .processing.groundinggpt import (
    GroundingGPTFeatureExtractor,
    GroundingGPTImageProcessor,
    GroundingGPTProcessor,
    GroundingGPTVideoProcessor,
    add_groundinggpt_tokens,
)
from .tokens import added_token_id


TINY_BASE_VOCAB = 1000
TINY_IMAGE_SIZE = 112
# Tiny GroundingGPT: CLIP and EVA inputs of 28 px (2 x 2 patches of 14 px), at most 4 frames, 32 mel bins x 24 frames.
TINY_GROUNDINGGPT_BASE_VOCAB = 100
TINY_GROUNDINGGPT_IMAGE_SIZE = 28
TINY_GROUNDINGGPT_MAX_FRAMES = 4
TINY_GROUNDINGGPT_MEL_BINS = 32
TINY_GROUNDINGGPT_MEL_FRAMES = 24


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


def tiny_groundinggpt_config(**overrides) -> GroundingGPTConfig:
    """GroundingGPTConfig of a tiny model: Llama 32-wide x 2, CLIP / EVA 16-wide, Q-Formers 16-wide, ImageBind audio
    16-wide x 1; 4 / 3 / 2 image / video / audio tokens; the 9 token ids 100-108 in the original order."""
    qformer = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32}
    tower = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "patch_size": 14}
    settings = {
        "text_config": {
            "model_type": "llama",
            "vocab_size": 120,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 1024,
            "pad_token_id": 0,
        },
        "vision_config": {**tower, "num_hidden_layers": 2, "image_size": TINY_GROUNDINGGPT_IMAGE_SIZE},
        "video_vision_config": {
            **tower,
            "num_hidden_layers": 1,
            "image_size": TINY_GROUNDINGGPT_IMAGE_SIZE,
            "initializer_range": 0.02,
        },
        "video_qformer_config": {
            **qformer,
            "num_hidden_layers": 2,
            "cross_attention_frequency": 2,
            "encoder_hidden_size": 16,
        },
        "video_temporal_qformer_config": {
            **qformer,
            "num_hidden_layers": 1,
            "cross_attention_frequency": 1,
            "encoder_hidden_size": 16,
        },
        "audio_config": {
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "num_mel_bins": TINY_GROUNDINGGPT_MEL_BINS,
            "target_length": TINY_GROUNDINGGPT_MEL_FRAMES,
            "output_size": 12,
        },
        "audio_qformer_config": {
            **qformer,
            "num_hidden_layers": 1,
            "cross_attention_frequency": 1,
            "encoder_hidden_size": 12,
        },
        "num_frame_query_tokens": 2,
        "num_video_query_tokens": 3,
        "max_frames": TINY_GROUNDINGGPT_MAX_FRAMES,
        "num_audio_query_tokens": 2,
        "max_audio_clips": 4,
        **{name: TINY_GROUNDINGGPT_BASE_VOCAB + index for index, name in enumerate(TOKEN_ID_FIELDS)},
    }
    return GroundingGPTConfig(**{**settings, **overrides})


def tiny_groundinggpt_tokenizer() -> LlamaTokenizer:
    """A character-level Llama tokenizer built in code (no merges, legacy SentencePiece behaviour like the released
    model's), with the 9 GroundingGPT tokens right after its 100-token base vocabulary.

    Base vocabulary: `<unk>`=0 (also the padding token), `<s>`=1, `</s>`=2, `▁`=3, then ASCII letters, digits,
    punctuation, newline and tab.
    """
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3}
    for character in string.ascii_letters + string.digits + string.punctuation + "\n\t":
        vocab.setdefault(character, len(vocab))
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[], add_bos_token=True, legacy=True)
    record_legacy_flag(tokenizer)
    add_groundinggpt_tokens(tokenizer)
    return tokenizer


def tiny_groundinggpt_processor() -> GroundingGPTProcessor:
    """Processor of the tiny GroundingGPT: 28 px images and frames, 4 frames, 32 x 24 log-mel clips,
    [`tiny_groundinggpt_tokenizer`] and the tiny model's 4 / 3 / 2 tokens per image / video / audio."""
    size = TINY_GROUNDINGGPT_IMAGE_SIZE
    config = tiny_groundinggpt_config()
    return GroundingGPTProcessor(
        GroundingGPTImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        GroundingGPTVideoProcessor(size={"height": size, "width": size}, num_frames=TINY_GROUNDINGGPT_MAX_FRAMES),
        GroundingGPTFeatureExtractor(
            num_mel_bins=TINY_GROUNDINGGPT_MEL_BINS, target_length=TINY_GROUNDINGGPT_MEL_FRAMES
        ),
        tiny_groundinggpt_tokenizer(),
        num_image_tokens=config.num_image_tokens,
        num_video_tokens=config.num_video_tokens,
        num_audio_tokens=config.num_audio_tokens,
    )


def tiny_groundinggpt_model(seed: int = 0, **config_overrides) -> GroundingGPTForConditionalGeneration:
    """A tiny random `GroundingGPTForConditionalGeneration` (eval mode), reproducible for a given `seed`."""
    torch.manual_seed(seed)
    return GroundingGPTForConditionalGeneration(tiny_groundinggpt_config(**config_overrides)).eval()
