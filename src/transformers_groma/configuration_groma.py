"""Groma configuration: DINOv2 vision tower, Deformable-DETR region proposer, region encoder and Llama LLM."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_vicuna import VICUNA_7B_BASE_VOCAB, vicuna_7b_config_kwargs
from .tokens import GROMA_ADDED_TOKENS, NUM_REGION_INDEX_TOKENS, added_token_id


_BASE_VOCAB = VICUNA_7B_BASE_VOCAB  # the 114 Groma tokens follow it (spec §1.8.1)


def _token_id(token: str) -> int:
    return added_token_id(token, _BASE_VOCAB)


@strict
class GromaRegionProposerConfig(PreTrainedConfig):
    r"""Settings of Groma's region proposer: a single-level, two-stage Deformable-DETR with box refinement and two
    class-agnostic objectness heads (`coco`, `sa1b`) whose scores are fused as
    `sigmoid(coco) ** coco_score_exponent * sigmoid(sa1b) ** sa1b_score_exponent`.

    The field names follow [`~transformers.DeformableDetrConfig`], so transformers' Deformable-DETR layers are built
    from this config directly. Defaults are the released Groma proposer (spec §1.5.1).

    Args:
        d_model: Width of the proposer.
        encoder_layers / decoder_layers: Number of deformable encoder / decoder layers.
        encoder_attention_heads / decoder_attention_heads: Heads of the deformable (and decoder self-) attention.
        encoder_ffn_dim / decoder_ffn_dim: Hidden width of the feed-forward blocks.
        encoder_n_points / decoder_n_points: Sampling points per head and level of the deformable attention.
        num_queries: Number of two-stage proposals kept for the decoder (= boxes proposed per image).
        num_feature_levels: Feature levels fed to the proposer. Only the single level of the released model exists.
        activation_function: Activation of the encoder/decoder feed-forward blocks.
        dropout / attention_dropout / activation_dropout: Dropout after the attention and feed-forward blocks,
            on the attention weights, and inside the feed-forward blocks.
        bbox_head_hidden_dim: Hidden width of the 3-layer box MLPs (hard-coded 256 in the original).
        input_layer_norm_eps: Epsilon of the channel LayerNorm after the 1x1 input projection.
        coco_score_exponent / sa1b_score_exponent: Exponents of the fused objectness score.
        legacy_frozen_reference_points: Reproduce the original decoder, which never feeds refined boxes to the next
            layer (spec §8.1 Q3). Set `False` for standard iterative box refinement.
        legacy_learned_query_content: Reproduce the original two-stage query selection, where the decoder's content
            queries come from a learned table and only the position part comes from the proposals (spec §8.1 Q4).
            Set `False` to take both from the proposals, as transformers' Deformable-DETR does.
        class_cost / bbox_cost / giou_cost: Hungarian matching costs (detection pretraining).
        cls_loss_coefficient / bbox_loss_coefficient / giou_loss_coefficient: Loss weights.
        focal_alpha: Alpha of the sigmoid focal loss.
        auxiliary_loss: Also supervise every intermediate decoder layer.
        init_std: Standard deviation of the normal weight initialization.
        disable_custom_kernels: Use the PyTorch multi-scale deformable attention instead of a custom kernel.
    """

    model_type = "groma_region_proposer"

    d_model: int = 256
    encoder_layers: int = 6
    decoder_layers: int = 6
    encoder_attention_heads: int = 8
    decoder_attention_heads: int = 8
    encoder_ffn_dim: int = 1024
    decoder_ffn_dim: int = 1024
    encoder_n_points: int = 4
    decoder_n_points: int = 4
    num_queries: int = 300
    num_feature_levels: int = 1
    activation_function: str = "relu"
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    bbox_head_hidden_dim: int = 256
    input_layer_norm_eps: float = 1e-6
    init_std: float = 0.02
    coco_score_exponent: float = 0.4
    sa1b_score_exponent: float = 0.6
    legacy_frozen_reference_points: bool = True
    legacy_learned_query_content: bool = True
    class_cost: float = 2.0
    bbox_cost: float = 5.0
    giou_cost: float = 2.0
    cls_loss_coefficient: float = 2.0
    bbox_loss_coefficient: float = 5.0
    giou_loss_coefficient: float = 2.0
    focal_alpha: float = 0.25
    auxiliary_loss: bool = True
    disable_custom_kernels: bool = False

    def validate_architecture(self):
        """Reject settings the proposer cannot be built with."""
        if self.num_feature_levels != 1:
            raise ValueError(
                f"num_feature_levels={self.num_feature_levels} is not supported: Groma's proposer reads a single "
                "DINOv2 feature level (the released checkpoints use 1)."
            )
        for heads in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, heads) != 0:
                raise ValueError(f"d_model ({self.d_model}) must be divisible by {heads} ({getattr(self, heads)}).")
        if self.num_queries < 1:
            raise ValueError(f"num_queries must be positive, got {self.num_queries}.")


# The special token ids of `GromaConfig`; `<rK>` is `region_index_token_id + K`.
TOKEN_ID_FIELDS = (
    "pad_token_id",
    "image_token_id",
    "region_token_id",
    "refer_box_token_id",
    "ground_box_token_id",
    "refer_feat_token_id",
    "region_index_token_id",
)


@strict
class GromaConfig(PreTrainedConfig):
    r"""Configuration of [`GromaModel`] and [`GromaForConditionalGeneration`].

    Groma (arXiv 2404.13013) encodes an image with DINOv2, proposes boxes with a Deformable-DETR, turns every kept box
    into a region token with a RoIAlign region encoder, and lets a Llama LLM answer with region index tokens `<rK>`.
    The defaults describe the released Groma-7B; every constant the original hard-codes is a field here.

    Args:
        vision_config: DINOv2 config (defaults to `facebook/dinov2-large`).
        text_config: Causal LM config (defaults to Vicuna-7B v1.5 with the merged 32114-token vocabulary).
        proposer_config: [`GromaRegionProposerConfig`].
        image_feature_layer: DINOv2 hidden state (0 = embeddings) turned into the image tokens.
        proposer_feature_layers: DINOv2 hidden states averaged into the proposer input.
        region_feature_layers: DINOv2 hidden states used as the region encoder's levels (finest first after
            resizing to 4x, 2x and 1x the patch grid).
        nms_threshold: IoU above which NMS suppresses a candidate region.
        box_score_threshold: Candidates must score strictly above this to be kept.
        max_region_num: Regions kept per image after NMS (= region tokens in the prompt).
        refer_box_score / ground_box_score: Scores given to user (referring) boxes and ground-truth boxes when they
            join the proposals before NMS.
        shuffle_regions: Randomly permute the kept regions (the original does this at training and inference).
            Off by default: inference keeps the deterministic score-descending order.
        region_hidden_size: Width of a region feature before the projection to the LLM (1024 in the original).
        region_position_hidden_size: Hidden width of the box position MLP (256 in the original).
        region_fuse_rounds: Rounds of multi-level channel shuffling in the region encoder.
        region_fuse_groups: GroupNorm groups of the fusion convolutions.
        roi_output_size: RoIAlign output resolution.
        roi_sampling_ratio: RoIAlign sampling points per bin and axis.
        legacy_roi_box_format: Feed the normalized cxcywh boxes to RoIAlign as if they were xyxy, as the released
            weights were trained (spec §8.1 Q1). Set `False` for correct boxes when training from scratch.
        legacy_roi_spatial_scale: Use RoIAlign spatial scales twice the true ones, as the released weights were
            trained (spec §8.1 Q2). Fix together with `legacy_roi_box_format`.
        legacy_position_interpolation: Interpolate DINOv2's position table like transformers 4.32 did (bicubic with
            scale factor `(grid + 0.1) / table_size`), which the released weights were trained with (spec §8.1 Q5).
        projector_hidden_act: Activation of the image-to-text bridge MLP.
        keep_vision_path_fp32: When the model is loaded in float16/bfloat16 (`from_pretrained(..., dtype=...)`),
            keep the vision tower, region proposer and region encoder in float32, as the original evaluated them;
            the bridge and the LLM take the requested dtype. Set `False` to cast the whole model.
        vision_autocast_dtype: `"bfloat16"` or `"float16"` runs the vision path (DINOv2, the proposer's layers, the
            bridge and the region encoder's convolutions) under `torch.autocast` with that dtype: several times
            faster on GPUs, with its weights still stored in float32. Box math, region selection and the RoIAlign
            coordinates stay float32. `None` (default) computes it in float32, as the original.
        pad_token_id: Id of `[PAD]`, which pads expanded prompts; defaults to `text_config.pad_token_id` (32000 in
            Groma-7B). `None` only where the text config has none either: expanded prompts are then padded with 0,
            and a prompt without `attention_mask` counts as all real tokens.
        image_token_id, region_token_id, refer_box_token_id, ground_box_token_id, refer_feat_token_id:
            Ids of `<image>`, `<region>`, `<refer_box>`, `<ground_box>`, `<refer_feat>`.
        region_index_token_id: Id of `<r0>`; `<rK>` is `region_index_token_id + K`.
        num_region_index_tokens: Number of `<rK>` tokens in the vocabulary.
        use_cache: Whether the LLM returns a KV cache by default.
        tie_word_embeddings: Tie the LM head to the input embeddings (not in the released model).
    """

    model_type = "groma"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="dinov2",
            init_kwargs={
                "hidden_size": 1024,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "patch_size": 14,
                "image_size": 518,
                "layer_norm_eps": 1e-6,
            },
        ),
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="llama",
            init_kwargs=vicuna_7b_config_kwargs(_BASE_VOCAB + len(GROMA_ADDED_TOKENS), _token_id("[PAD]")),
        ),
        "proposer_config": GromaRegionProposerConfig,
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    proposer_config: dict | PreTrainedConfig | None = None
    image_feature_layer: int = -2
    proposer_feature_layers: list[int] | tuple[int, ...] = (-4, -3, -2, -1)
    region_feature_layers: list[int] | tuple[int, ...] = (-3, -2, -1)
    nms_threshold: float = 0.6
    box_score_threshold: float = 0.15
    max_region_num: int = 100
    refer_box_score: float = 1.0
    ground_box_score: float = 0.2
    shuffle_regions: bool = False
    region_hidden_size: int = 1024
    region_position_hidden_size: int = 256
    region_fuse_rounds: int = 5
    region_fuse_groups: int = 64
    roi_output_size: int = 14
    roi_sampling_ratio: int = 2
    legacy_roi_box_format: bool = True
    legacy_roi_spatial_scale: bool = True
    legacy_position_interpolation: bool = True
    projector_hidden_act: str = "gelu"
    keep_vision_path_fp32: bool = True
    vision_autocast_dtype: str | None = None
    pad_token_id: int | None = None
    image_token_id: int = _token_id("<image>")
    region_token_id: int = _token_id("<region>")
    refer_box_token_id: int = _token_id("<refer_box>")
    ground_box_token_id: int = _token_id("<ground_box>")
    refer_feat_token_id: int = _token_id("<refer_feat>")
    region_index_token_id: int = _token_id("<r0>")
    num_region_index_tokens: int = NUM_REGION_INDEX_TOKENS
    use_cache: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.proposer_feature_layers = list(self.proposer_feature_layers)
        self.region_feature_layers = list(self.region_feature_layers)
        super().__post_init__(**kwargs)
        if self.pad_token_id is None:
            self.pad_token_id = self.text_config.pad_token_id

    def to_diff_dict(self) -> dict:
        """The fields that differ from the defaults, and always `pad_token_id` (whose default follows `text_config`)."""
        return {**super().to_diff_dict(), "pad_token_id": self.pad_token_id}

    def validate_architecture(self):
        """Check that the fields describe a model that can be built, with errors that name the field."""
        num_states = self.vision_config.num_hidden_layers + 1
        for name in ("proposer_feature_layers", "region_feature_layers"):
            layers = getattr(self, name)
            if not layers or any(not -num_states <= layer < num_states for layer in layers):
                raise ValueError(
                    f"{name}={layers} must be non-empty DINOv2 hidden-state indices in [-{num_states}, {num_states})."
                )
        if not -num_states <= self.image_feature_layer < num_states:
            raise ValueError(
                f"image_feature_layer={self.image_feature_layer} is outside [-{num_states}, {num_states})."
            )
        for name in ("nms_threshold", "box_score_threshold", "refer_box_score", "ground_box_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if not 1 <= self.max_region_num <= self.num_region_index_tokens:
            raise ValueError(
                f"max_region_num={self.max_region_num} must be between 1 and num_region_index_tokens "
                f"({self.num_region_index_tokens}): every kept region needs its own <rK> token."
            )
        if self.vision_config.hidden_size % 4 or self.vision_config.hidden_size % self.region_fuse_groups:
            raise ValueError(
                f"vision_config.hidden_size ({self.vision_config.hidden_size}) must be divisible by 4 and by "
                f"region_fuse_groups ({self.region_fuse_groups})."
            )
        if self.vision_autocast_dtype not in (None, "bfloat16", "float16"):
            raise ValueError(
                f"vision_autocast_dtype must be None, 'bfloat16' or 'float16', got {self.vision_autocast_dtype!r}."
            )
        for name in ("region_hidden_size", "region_position_hidden_size", "region_fuse_groups", "roi_output_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("region_fuse_rounds", "roi_sampling_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")
        token_ids = {name: getattr(self, name) for name in TOKEN_ID_FIELDS if getattr(self, name) is not None}
        for name, token_id in token_ids.items():
            if not 0 <= token_id < self.text_config.vocab_size:
                raise ValueError(
                    f"{name}={token_id} is outside the vocabulary (text_config.vocab_size={self.text_config.vocab_size})."
                )
        region_indices = {f"<r{k}>": self.region_index_token_id + k for k in range(1, self.num_region_index_tokens)}
        owners = {}
        for name, token_id in {**token_ids, **region_indices}.items():
            if token_id in owners:
                raise ValueError(
                    f"{owners[token_id]} and {name} share the id {token_id}; each Groma token needs its own."
                )
            owners[token_id] = name
        last_token_id = self.region_index_token_id + self.num_region_index_tokens - 1
        if last_token_id >= self.text_config.vocab_size:
            raise ValueError(
                f"text_config.vocab_size ({self.text_config.vocab_size}) does not cover the region index tokens "
                f"(<r0>={self.region_index_token_id} ... <r{self.num_region_index_tokens - 1}>={last_token_id})."
            )


__all__ = ["GromaConfig", "GromaRegionProposerConfig"]
