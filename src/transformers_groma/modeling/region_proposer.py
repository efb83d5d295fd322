"""Groma's region proposer: a class-agnostic, single-level, two-stage Deformable-DETR (spec §1.5).

The deformable encoder/decoder layers, the sine position embedding and the box MLP are transformers'
Deformable-DETR building blocks; this module only writes what Groma does differently: the channel-LayerNorm input
projection, the two-stage query selection with learned content queries, the decoder loop whose reference points are
never refined (legacy) and the two objectness heads (`coco`, `sa1b`).
Adapted from FoundationVision/Groma `groma/model/ddetr_transformer.py` @ d3a95b6.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.models.deformable_detr.modeling_deformable_detr import (
    DeformableDetrDecoderLayer,
    DeformableDetrEncoder,
    DeformableDetrEncoderLayer,
    DeformableDetrMLPPredictionHead,
    DeformableDetrMultiscaleDeformableAttention,
    DeformableDetrSinePositionEmbedding,
    inverse_sigmoid,
)

from ..configuration_groma import GromaRegionProposerConfig
from .dtypes import compute_dtype
from .outputs import GromaRegionProposerOutput


class GromaChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) map (biased variance), as ConvNeXt's."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mean = hidden_states.mean(1, keepdim=True)
        variance = (hidden_states - mean).pow(2).mean(1, keepdim=True)
        hidden_states = (hidden_states - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * hidden_states + self.bias[:, None, None]


def proposal_sine_embedding(
    box_logits: torch.Tensor, num_pos_feats: int, temperature: float = 10000.0
) -> torch.Tensor:
    """Sine embedding of proposal boxes: (B, Q, 4) box logits -> (B, Q, 4 * num_pos_feats), interleaved sin/cos."""
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=box_logits.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    positions = box_logits.sigmoid() * 2 * math.pi
    positions = positions[:, :, :, None] / dim_t  # (B, Q, 4, num_pos_feats)
    return torch.stack((positions[..., 0::2].sin(), positions[..., 1::2].cos()), dim=4).flatten(2)


def head_outside_autocast(head: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """A box or score head run outside autocast, in the dtype of its weights: boxes and objectness scores (and so
    the top-k, NMS and region order) stay float32 when the vision path runs under bf16/fp16 autocast
    (`GromaConfig.vision_autocast_dtype`)."""
    with torch.autocast(hidden_states.device.type, enabled=False):
        return head(hidden_states.to(compute_dtype(head)))


class InitializeContainerModulesMixin:
    """Lets `_init_weights` reach modules that hold no parameters of their own.

    For models defined outside transformers, `PreTrainedModel._initialize_weights` skips every module whose direct
    parameters all count as initialized, which is vacuously true of a container such as Deformable-DETR's attention or
    the region encoder: their `_init_weights` branches would never run. Groma's `_init_weights` only uses
    `transformers.initialization`, which leaves loaded weights alone, so it can be handed every module.
    """

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False):
        super()._initialize_weights(module, is_custom_code=False)


class GromaRegionProposerPreTrainedModel(InitializeContainerModulesMixin, PreTrainedModel):
    """Weight initialization and loading settings of [`GromaRegionProposer`] (Deformable-DETR conventions)."""

    config: GromaRegionProposerConfig
    base_model_prefix = "region_proposer"
    main_input_name = "feature_map"
    input_modalities = ("image",)
    _no_split_modules = ["GromaRegionProposer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module):
        """Deformable-DETR's initialisation: prior-0.01 objectness biases, zero box deltas, radial sampling offsets."""
        super()._init_weights(module)
        if isinstance(module, GromaChannelLayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, GromaRegionProposer):
            init.normal_(module.level_embed)
            init.xavier_uniform_(module.input_proj.weight)
            init.zeros_(module.input_proj.bias)
            prior_bias = -math.log((1 - 0.01) / 0.01)
            for head in [module.encoder_class_head, *module.coco_class_heads, *module.sa1b_class_heads]:
                init.constant_(head.bias, prior_bias)
            for head in module.bbox_heads:
                init.zeros_(head.layers[-1].weight)
                init.zeros_(head.layers[-1].bias)
        elif isinstance(module, DeformableDetrMultiscaleDeformableAttention):
            init.zeros_(module.sampling_offsets.weight)
            thetas = torch.arange(module.n_heads, dtype=torch.float32) * (2.0 * math.pi / module.n_heads)
            grid = torch.stack([thetas.cos(), thetas.sin()], -1)
            grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(module.n_heads, 1, 1, 2)
            grid = grid.repeat(1, module.n_levels, module.n_points, 1)
            grid = grid * torch.arange(1, module.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
            init.copy_(module.sampling_offsets.bias, grid.flatten())
            init.zeros_(module.attention_weights.weight)
            init.zeros_(module.attention_weights.bias)
            init.xavier_uniform_(module.value_proj.weight)
            init.zeros_(module.value_proj.bias)
            init.xavier_uniform_(module.output_proj.weight)
            init.zeros_(module.output_proj.bias)


class GromaRegionProposer(GromaRegionProposerPreTrainedModel):
    """Proposes `num_queries` boxes with fused objectness scores from one DINOv2 feature map.

    Input: a (B, `in_channels`, h, w) map (the mean of the DINOv2 layers named by the parent config's
    `proposer_feature_layers`). Output: [`GromaRegionProposerOutput`] with boxes in normalized cxcywh.
    """

    def __init__(self, config: GromaRegionProposerConfig, in_channels: int = 1024):
        super().__init__(config)
        d_model = config.d_model
        self.input_proj = nn.Conv2d(in_channels, d_model, kernel_size=1)
        self.input_norm = GromaChannelLayerNorm(d_model, eps=config.input_layer_norm_eps)
        self.position_embedding = DeformableDetrSinePositionEmbedding(d_model // 2, normalize=True)
        self.level_embed = nn.Parameter(torch.zeros(config.num_feature_levels, d_model))
        self.encoder_layers = nn.ModuleList([DeformableDetrEncoderLayer(config) for _ in range(config.encoder_layers)])
        self.enc_output = nn.Linear(d_model, d_model)
        self.enc_output_norm = nn.LayerNorm(d_model)
        self.pos_trans = nn.Linear(2 * d_model, 2 * d_model)
        self.pos_trans_norm = nn.LayerNorm(2 * d_model)
        self.query_embeddings = nn.Embedding(config.num_queries, d_model)
        self.decoder_layers = nn.ModuleList([DeformableDetrDecoderLayer(config) for _ in range(config.decoder_layers)])
        # One box MLP per decoder layer, plus the two-stage encoder's as the last entry.
        self.bbox_heads = nn.ModuleList(
            [
                DeformableDetrMLPPredictionHead(d_model, config.bbox_head_hidden_dim, 4, num_layers=3)
                for _ in range(config.decoder_layers + 1)
            ]
        )
        self.encoder_class_head = nn.Linear(d_model, 1)
        self.coco_class_heads = nn.ModuleList([nn.Linear(d_model, 1) for _ in range(config.decoder_layers)])
        self.sa1b_class_heads = nn.ModuleList([nn.Linear(d_model, 1) for _ in range(config.decoder_layers)])
        self.post_init()

    def forward(self, feature_map: torch.Tensor) -> GromaRegionProposerOutput:
        """Propose `num_queries` boxes per image from a (B, C, h, w) DINOv2 feature map.

        Returns the fused objectness `scores` (B, Q) and `pred_boxes` (B, Q, 4, normalized cxcywh) of the last
        decoder layer, with the per-layer and two-stage outputs the detection loss needs.
        """
        height, width = feature_map.shape[-2:]
        if height * width < self.config.num_queries:
            raise ValueError(
                f"The proposer keeps num_queries={self.config.num_queries} of its {height}x{width} = "
                f"{height * width} feature positions; use larger images (the released model expects 448x448)."
            )
        source = self.input_norm(self.input_proj(feature_map))  # (B, d, h, w)
        memory, spatial_shapes = self.encode(source)  # (B, h*w, d)
        enc_class, enc_box_logits, init_reference = self.select_queries(memory, (height, width))
        query_position = self.query_position(init_reference)
        content = self.query_content(query_position, init_reference)
        hidden_states, boxes, reference_points = self.decode(
            content, query_position, memory, init_reference, spatial_shapes, [(height, width)]
        )
        logits_coco = torch.stack(
            [head_outside_autocast(head, h) for head, h in zip(self.coco_class_heads, hidden_states)], 1
        )[..., 0]
        logits_sa1b = torch.stack(
            [head_outside_autocast(head, h) for head, h in zip(self.sa1b_class_heads, hidden_states)], 1
        )[..., 0]
        scores = logits_coco[:, -1].sigmoid() ** self.config.coco_score_exponent
        scores = scores * logits_sa1b[:, -1].sigmoid() ** self.config.sa1b_score_exponent
        return GromaRegionProposerOutput(
            pred_boxes=boxes[:, -1],
            scores=scores,
            logits_coco=logits_coco[:, -1],
            logits_sa1b=logits_sa1b[:, -1],
            all_pred_boxes=boxes,
            all_logits_coco=logits_coco,
            all_logits_sa1b=logits_sa1b,
            encoder_logits=enc_class,
            encoder_pred_boxes=enc_box_logits.sigmoid(),
            init_reference_points=init_reference,
            intermediate_reference_points=reference_points,
            encoder_last_hidden_state=memory,
            last_hidden_state=hidden_states[-1],
        )

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deformable encoder over the flattened map; all positions are valid (no padding)."""
        batch_size, _, height, width = source.shape
        position = self.position_embedding(source.shape, source.device, torch.float32).to(source.dtype)
        position = position.flatten(2).transpose(1, 2) + self.level_embed[0]
        hidden_states = nn.functional.dropout(source.flatten(2).transpose(1, 2), self.config.dropout, self.training)
        spatial_shapes_list = [(height, width)]
        spatial_shapes = torch.tensor(spatial_shapes_list, dtype=torch.long, device=source.device)
        valid_ratios = source.new_ones(batch_size, 1, 2, dtype=torch.float32)
        reference_points = DeformableDetrEncoder.get_reference_points(spatial_shapes_list, valid_ratios, source.device)
        for layer in self.encoder_layers:
            hidden_states = layer(
                hidden_states,
                None,
                spatial_position_embeddings=position,
                reference_points=reference_points.to(hidden_states.dtype),
                spatial_shapes=spatial_shapes,
                spatial_shapes_list=spatial_shapes_list,
                level_start_index=spatial_shapes.new_zeros(1),
            )
        return hidden_states, spatial_shapes

    def select_queries(
        self, memory: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Two-stage selection: score every memory token as a box around its pixel, keep the top `num_queries`.
        `grid` is the feature map's (height, width).

        Returns the encoder class logits (B, h*w, 1), the encoder box logits (B, h*w, 4) and the initial reference
        boxes (B, Q, 4, normalized cxcywh, detached).
        """
        height, width = grid
        grid_y, grid_x = torch.meshgrid(
            torch.arange(height, dtype=torch.float32, device=memory.device),
            torch.arange(width, dtype=torch.float32, device=memory.device),
            indexing="ij",
        )
        centers = torch.stack([(grid_x + 0.5) / width, (grid_y + 0.5) / height], -1).reshape(1, -1, 2)
        anchors = torch.cat([centers, torch.full_like(centers, 0.05)], -1)  # (1, h*w, 4), level 0 size
        valid = ((anchors > 0.01) & (anchors < 0.99)).all(-1, keepdim=True)
        anchor_logits = torch.log(anchors / (1 - anchors)).masked_fill(~valid, float("inf"))
        object_query = self.enc_output_norm(self.enc_output(memory.masked_fill(~valid, 0.0)))
        enc_class = head_outside_autocast(self.encoder_class_head, object_query)
        box_deltas = head_outside_autocast(self.bbox_heads[-1], object_query)
        enc_box_logits = box_deltas + anchor_logits.to(box_deltas.dtype)
        topk = torch.topk(enc_class[..., 0], self.config.num_queries, dim=1).indices
        topk_box_logits = torch.gather(enc_box_logits, 1, topk[..., None].expand(-1, -1, 4)).detach()
        return enc_class, enc_box_logits, topk_box_logits.sigmoid()

    def query_position(self, init_reference: torch.Tensor) -> torch.Tensor:
        """LayerNorm(Linear(sine(boxes))): (B, Q, 2d); the first d channels are the query position embedding."""
        embedding = proposal_sine_embedding(inverse_sigmoid(init_reference), self.config.d_model // 2)
        return self.pos_trans_norm(self.pos_trans(embedding.to(init_reference.dtype)))

    def query_content(self, query_position: torch.Tensor, init_reference: torch.Tensor) -> torch.Tensor:
        """Content queries: the learned table (legacy Groma) or the second half of the proposal embedding."""
        if self.config.legacy_learned_query_content:
            # Called as a module (not `.weight`) so that an offloading hook loads the table first.
            rows = torch.arange(self.query_embeddings.num_embeddings, device=init_reference.device)
            return self.query_embeddings(rows)[None].expand(init_reference.shape[0], -1, -1)
        return query_position[..., self.config.d_model :]

    def decode(
        self,
        content: torch.Tensor,
        query_position: torch.Tensor,
        memory: torch.Tensor,
        init_reference: torch.Tensor,
        spatial_shapes: torch.Tensor,
        spatial_shapes_list: list[tuple[int, int]],
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Decoder layers with box refinement.

        Layer `l` predicts `sigmoid(bbox_heads[l](h_l) + logit(ref_l))` with `ref_0` the initial references and
        `ref_l` the previous layer's refined references. With `legacy_frozen_reference_points` every layer still
        samples around the initial references (the original never feeds the refined boxes forward).
        `spatial_shapes_list` holds `spatial_shapes` as host ints (no device read).
        Returns the per-layer hidden states, boxes (B, L, Q, 4) and refined references (B, L, Q, 4).
        """
        position = query_position[..., : self.config.d_model]
        sampling_reference = previous = init_reference
        hidden_states, all_hidden, all_boxes, all_references = content, [], [], []
        for layer, bbox_head in zip(self.decoder_layers, self.bbox_heads):
            hidden_states = layer(
                hidden_states,
                object_queries_position_embeddings=position,
                reference_points=sampling_reference[:, :, None],
                spatial_shapes=spatial_shapes,
                spatial_shapes_list=spatial_shapes_list,
                level_start_index=spatial_shapes.new_zeros(1),
                encoder_hidden_states=memory,
            )
            delta = head_outside_autocast(bbox_head, hidden_states)
            all_boxes.append((delta + inverse_sigmoid(previous)).sigmoid())
            refined = (delta + inverse_sigmoid(sampling_reference)).sigmoid()
            all_hidden.append(hidden_states)
            all_references.append(refined)
            if self.config.legacy_frozen_reference_points:
                previous = refined  # the original lets gradients flow into the earlier layers' boxes
            else:  # standard iterative refinement: the next layer starts from detached boxes
                sampling_reference = previous = refined.detach()
        return all_hidden, torch.stack(all_boxes, 1), torch.stack(all_references, 1)
