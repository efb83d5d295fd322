"""GroundingGPT configuration: CLIP image tower, EVA-ViT-g + Q-Formers video branch, ImageBind audio branch, Llama."""

from operator import attrgetter

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, Blip2QFormerConfig, Blip2VisionConfig, CLIPVisionConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_vicuna import VICUNA_7B_BASE_VOCAB, vicuna_7b_config_kwargs


# Vicuna-7B v1.5 vocabulary; the 9 GroundingGPT tokens follow it in this order (spec §1.6).
BASE_VOCAB_SIZE = VICUNA_7B_BASE_VOCAB
GROUNDINGGPT_TOKENS = (
    "<im_patch>",
    "<im_start>",
    "<im_end>",
    "<vi_patch>",
    "<vi_start>",
    "<vi_end>",
    "<so_patch>",
    "<so_start>",
    "<so_end>",
)
# Config field holding the id of each token, in the order of `GROUNDINGGPT_TOKENS`.
TOKEN_ID_FIELDS = (
    "image_token_id",
    "image_start_token_id",
    "image_end_token_id",
    "video_token_id",
    "video_start_token_id",
    "video_end_token_id",
    "audio_token_id",
    "audio_start_token_id",
    "audio_end_token_id",
)


@strict
class GroundingGPTImageBindAudioConfig(PreTrainedConfig):
    r"""Configuration of the audio branch of ImageBind ([`GroundingGPTImageBindAudioModel`]), the frozen encoder that
    turns every 2-second log-mel clip into one embedding. Defaults are ImageBind-Huge's audio branch (spec §1.4).

    Args:
        hidden_size: Width of the transformer trunk.
        num_hidden_layers: Number of pre-LayerNorm transformer blocks.
        num_attention_heads: Attention heads per block.
        intermediate_size: Hidden width of the GELU MLP of every block.
        num_mel_bins: Mel bins of the input spectrogram (its height).
        target_length: Frames of the input spectrogram (its width).
        patch_size: Kernel of the patchifying convolution (no bias).
        patch_stride: Stride of the patchifying convolution (patches overlap).
        stem_layer_norm_eps: Epsilon of the LayerNorm after the convolution (torch's default in ImageBind).
        layer_norm_eps: Epsilon of the block and head LayerNorms.
        output_size: Size of the head projection, i.e. of the embedding of one clip.
        logit_scale: Fixed factor the L2-normalised embedding is multiplied with.
        initializer_range: Standard deviation of the initialisation of new weights.
    """

    model_type = "groundinggpt_imagebind_audio"
    base_config_key = "audio_config"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    num_mel_bins: int = 128
    target_length: int = 204
    patch_size: int = 16
    patch_stride: int = 10
    stem_layer_norm_eps: float = 1e-5
    layer_norm_eps: float = 1e-6
    output_size: int = 1024
    logit_scale: float = 20.0
    initializer_range: float = 0.02

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(rows, columns) of the patches the convolution cuts from one spectrogram (12 x 19 by default)."""
        return tuple(
            (size - self.patch_size) // self.patch_stride + 1 for size in (self.num_mel_bins, self.target_length)
        )

    def validate_architecture(self):
        """Reject geometries the encoder cannot be built with."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if min(self.num_mel_bins, self.target_length) < self.patch_size:
            raise ValueError(
                f"The spectrogram ({self.num_mel_bins} x {self.target_length}) is smaller than one patch "
                f"({self.patch_size})."
            )


# GroundingGPT's sub-configs reuse BLIP-2's config classes, under their own key in the composite config: every class
# names the key it is read from (`base_config_key`), so `SubConfig.from_pretrained(groundinggpt_dir)` loads its own
# part (three Q-Formers share `Blip2QFormerConfig`, and BLIP-2's vision config would read `vision_config`, CLIP's).
class GroundingGPTVideoVisionConfig(Blip2VisionConfig):
    """EVA-ViT-g frame encoder of the video branch ([`Blip2VisionConfig`] read from `video_vision_config`)."""

    base_config_key = "video_vision_config"


class GroundingGPTVideoQFormerConfig(Blip2QFormerConfig):
    """Frame Q-Former of the video branch ([`Blip2QFormerConfig`] read from `video_qformer_config`)."""

    base_config_key = "video_qformer_config"


class GroundingGPTVideoTemporalQFormerConfig(Blip2QFormerConfig):
    """Temporal Q-Former of the video branch ([`Blip2QFormerConfig`] read from `video_temporal_qformer_config`)."""

    base_config_key = "video_temporal_qformer_config"


class GroundingGPTAudioQFormerConfig(Blip2QFormerConfig):
    """Q-Former of the audio branch ([`Blip2QFormerConfig`] read from `audio_qformer_config`)."""

    base_config_key = "audio_qformer_config"


@strict
class GroundingGPTConfig(PreTrainedConfig):
    r"""Configuration of [`GroundingGPTModel`] and [`GroundingGPTForConditionalGeneration`].

    GroundingGPT (arXiv 2401.06071, first released as "LEGO") feeds a Vicuna LLM with soft tokens from three branches:
    CLIP patch features through an MLP (image), EVA-ViT-g + BLIP-2 Q-Former per frame, a frame position embedding and
    a temporal Q-Former (video), and ImageBind clip embeddings, a clip position embedding and an audio Q-Former (audio).
    The tokens of every branch replace the `<xx_patch>` placeholders between `<xx_start>` and `<xx_end>` in the prompt.
    The defaults describe the released GroundingGPT-7B.

    Args:
        text_config: Causal LM config (defaults to Vicuna-7B v1.5 with the 32009-token vocabulary).
        vision_config: CLIP vision config (defaults to `openai/clip-vit-large-patch14-336`).
        video_vision_config: EVA-ViT-g frame encoder as a BLIP-2 vision config (defaults to EVA-ViT-g at 224 px).
        video_qformer_config: The frozen BLIP-2 Q-Former that pools every frame (12 layers, cross-attention in every
            second layer to the EVA features).
        video_temporal_qformer_config: The trained Q-Former that pools all frames (2 layers, cross-attention in every
            layer to the frame queries).
        audio_config: [`GroundingGPTImageBindAudioConfig`] (ImageBind-Huge audio branch).
        audio_qformer_config: The trained Q-Former that pools the clip embeddings (2 layers, cross-attention in every
            layer to the ImageBind embeddings).
        vision_feature_layer: CLIP hidden state (0 = embeddings) whose patch tokens become the image tokens.
        projector_hidden_act: Activation of the 2-layer image MLP.
        num_frame_query_tokens: Learned queries of the frame Q-Former (tokens per frame).
        num_video_query_tokens: Learned queries of the temporal Q-Former (= video tokens in the prompt).
        max_frames: Rows of the frame position embedding, i.e. the most frames a video may have.
        num_audio_query_tokens: Learned queries of the audio Q-Former (= audio tokens in the prompt).
        max_audio_clips: Rows of the clip position embedding, i.e. the most clips an audio may have. The original
            sizes it like the audio queries (8) and uses only the first 3 rows.
        video_layernorm_eps: Epsilon of the LayerNorm on the EVA features (`ln_vision`, torch's default 1e-5, unlike
            the 1e-6 of EVA's own LayerNorms); it is computed in float32 like the original.
        image_token_id, image_start_token_id, image_end_token_id: Ids of `<im_patch>`, `<im_start>`, `<im_end>`.
        video_token_id, video_start_token_id, video_end_token_id: Ids of `<vi_patch>`, `<vi_start>`, `<vi_end>`.
        audio_token_id, audio_start_token_id, audio_end_token_id: Ids of `<so_patch>`, `<so_start>`, `<so_end>`.
        use_cache: Whether the LLM returns a KV cache by default.
        tie_word_embeddings: Tie the LM head to the input embeddings (not in the released model).
    """

    model_type = "groundinggpt"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="llama",
            init_kwargs=vicuna_7b_config_kwargs(BASE_VOCAB_SIZE + len(GROUNDINGGPT_TOKENS), pad_token_id=0),
        ),
        "vision_config": SubConfigSpec(
            config_class=CLIPVisionConfig,
            init_kwargs={
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "image_size": 336,
                "patch_size": 14,
                "projection_dim": 768,
            },
        ),
        "video_vision_config": GroundingGPTVideoVisionConfig,
        "video_qformer_config": SubConfigSpec(
            config_class=GroundingGPTVideoQFormerConfig,
            init_kwargs={"num_hidden_layers": 12, "cross_attention_frequency": 2, "encoder_hidden_size": 1408},
        ),
        "video_temporal_qformer_config": SubConfigSpec(
            config_class=GroundingGPTVideoTemporalQFormerConfig,
            init_kwargs={"num_hidden_layers": 2, "cross_attention_frequency": 1, "encoder_hidden_size": 768},
        ),
        "audio_config": GroundingGPTImageBindAudioConfig,
        "audio_qformer_config": SubConfigSpec(
            config_class=GroundingGPTAudioQFormerConfig,
            init_kwargs={"num_hidden_layers": 2, "cross_attention_frequency": 1, "encoder_hidden_size": 1024},
        ),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    video_vision_config: dict | PreTrainedConfig | None = None
    video_qformer_config: dict | PreTrainedConfig | None = None
    video_temporal_qformer_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    audio_qformer_config: dict | PreTrainedConfig | None = None
    vision_feature_layer: int = -2
    projector_hidden_act: str = "gelu"
    num_frame_query_tokens: int = 32
    num_video_query_tokens: int = 64
    max_frames: int = 64
    num_audio_query_tokens: int = 8
    max_audio_clips: int = 8
    video_layernorm_eps: float = 1e-5
    image_token_id: int = BASE_VOCAB_SIZE
    image_start_token_id: int = BASE_VOCAB_SIZE + 1
    image_end_token_id: int = BASE_VOCAB_SIZE + 2
    video_token_id: int = BASE_VOCAB_SIZE + 3
    video_start_token_id: int = BASE_VOCAB_SIZE + 4
    video_end_token_id: int = BASE_VOCAB_SIZE + 5
    audio_token_id: int = BASE_VOCAB_SIZE + 6
    audio_start_token_id: int = BASE_VOCAB_SIZE + 7
    audio_end_token_id: int = BASE_VOCAB_SIZE + 8
    use_cache: bool = True
    tie_word_embeddings: bool = False

    @property
    def num_image_tokens(self) -> int:
        """`<im_patch>` placeholders per image: one per CLIP patch (576 at 336 px with patch 14)."""
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2

    @property
    def num_video_tokens(self) -> int:
        """`<vi_patch>` placeholders per video."""
        return self.num_video_query_tokens

    @property
    def num_audio_tokens(self) -> int:
        """`<so_patch>` placeholders per audio."""
        return self.num_audio_query_tokens

    def validate_architecture(self):
        """Check that the branches fit together, with errors that name the fields."""
        for name, source in (
            ("video_qformer_config.encoder_hidden_size", "video_vision_config.hidden_size"),
            ("video_temporal_qformer_config.encoder_hidden_size", "video_qformer_config.hidden_size"),
            ("audio_qformer_config.encoder_hidden_size", "audio_config.output_size"),
        ):
            value, source_value = attrgetter(name, source)(self)
            if value != source_value:
                raise ValueError(f"{name} ({value}) must equal {source} ({source_value}).")
        num_states = self.vision_config.num_hidden_layers + 1
        if not -num_states <= self.vision_feature_layer < num_states:
            raise ValueError(
                f"vision_feature_layer={self.vision_feature_layer} is outside [-{num_states}, {num_states})."
            )
        token_ids = [getattr(self, field) for field in TOKEN_ID_FIELDS]
        if len(set(token_ids)) != len(token_ids):
            raise ValueError(
                f"The 9 multimodal token ids must be distinct, got {dict(zip(TOKEN_ID_FIELDS, token_ids))}."
            )
        if max(token_ids) >= self.text_config.vocab_size or min(token_ids) < 0:
            raise ValueError(
                f"The multimodal token ids {token_ids} must lie inside text_config.vocab_size "
                f"({self.text_config.vocab_size})."
            )
        for name in ("num_frame_query_tokens", "num_video_query_tokens", "max_frames", "num_audio_query_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")


__all__ = [
    "GroundingGPTAudioQFormerConfig",
    "GroundingGPTConfig",
    "GroundingGPTImageBindAudioConfig",
    "GroundingGPTVideoQFormerConfig",
    "GroundingGPTVideoTemporalQFormerConfig",
    "GroundingGPTVideoVisionConfig",
]
