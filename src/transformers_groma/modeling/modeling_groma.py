"""Groma (arXiv 2404.13013) as Transformers models: `GromaModel`, `GromaForConditionalGeneration`,
`GromaForRegionProposal`.

Data flow of one prefill (paper Fig. 2, spec §1-2):
pixels -> DINOv2 -> (a) image tokens: 2x2 merge + bridge MLP; (b) region proposer -> region selection (NMS, with the
user's boxes) -> (c) region encoder -> region tokens; the prompt's `<image>` / `<region>` placeholders are expanded
and the features injected into the LLM's input embeddings; generated `<rK>` tokens point at the K-th selected box.
"""

import contextlib
import os

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.generation.utils import GenerateBeamDecoderOnlyOutput
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import slice_logits_to_keep
from transformers.utils import logging
from transformers.utils.generic import can_return_tuple

from ..configuration_groma import GromaConfig
from ..saving import RemoteCodeSavingMixin
from .cache_api import CACHE_KWARG, accepts_release_cache_name, cache_kwargs, output_cache
from .generation import MultimodalGenerationMixin, placeholder_ids_from_embeds
from .loss import detection_loss
from .outputs import (
    GromaCausalLMOutputWithPast,
    GromaGenerateBeamOutput,
    GromaGenerateOutput,
    GromaModelOutputWithPast,
    GromaMultimodalInputs,
    GromaRegionProposalOutput,
    GromaRegionProposerOutput,
)
from .region_encoder import GromaRegionEncoder
from .region_proposer import GromaRegionProposer, InitializeContainerModulesMixin
from .region_selection import match_boxes_to_regions, select_regions, warn_about_unmatched_boxes
from .sequence import expand_placeholders, pack_sequences, pad_sequences
from .validation import (
    CheckedLoadingMixin,
    check_box_lists,
    check_pixel_tensor,
    check_prompts,
    check_sequence_length,
    check_token_ids,
)
from .vision import GromaLegacyDinov2Embeddings, GromaMultiModalProjector, merge_patches_2x2, tokens_to_feature_map


logger = logging.get_logger(__name__)

# The modules from pixels to boxes and region features; `config.keep_vision_path_fp32` keeps them in float32.
VISION_PATH_MODULES = ("vision_tower", "region_proposer", "region_encoder")


class GromaPreTrainedModel(
    InitializeContainerModulesMixin, RemoteCodeSavingMixin, CheckedLoadingMixin, PreTrainedModel
):
    """Shared settings of the Groma models: weight init, attention backends, vision tower construction, saving."""

    config: GromaConfig
    base_model_prefix = "model"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["GromaRegionProposer", "GromaRegionEncoder"]
    _skip_keys_device_placement = [CACHE_KWARG]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, GromaRegionEncoder):
            for conv in [*module.level_convs, *module.fusion.input_convs]:
                init.normal_(conv.weight, std=0.01)
                init.zeros_(conv.bias)
            for block in module.fusion.fuse_blocks:
                init.normal_(block.conv.weight, std=0.01)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, save_original_format: bool = False, **kwargs):
        """`PreTrainedModel.save_pretrained`, writing the runtime parameter names by default.

        transformers would otherwise restore DINOv2's older names (`attention.attention.query`) on save. Loading
        with `from_pretrained` reads both layouts, but the Trainer resumes checkpoints with a plain
        `load_state_dict`, which would silently skip the vision tower's weights.
        """
        return super().save_pretrained(save_directory, *args, save_original_format=save_original_format, **kwargs)

    def _keep_vision_path_fp32(self):
        """With `config.keep_vision_path_fp32`, `from_pretrained(..., dtype=float16/bfloat16)` loads the vision path
        in float32 (transformers' `_keep_in_fp32_modules_strict`), and so does `from_config(..., dtype=...)`, which
        builds the model under that default dtype; bitsandbytes quantization leaves it unquantized (its quantizers
        skip `_keep_in_fp32_modules`). Call before `post_init`."""
        if self.config.keep_vision_path_fp32:
            self._keep_in_fp32_modules_strict = [name for name in VISION_PATH_MODULES if hasattr(self, name)]
            # The quantizers match these patterns from the start of a module's name, at any depth here.
            self._keep_in_fp32_modules = [rf"(?:.*\.)?{name}" for name in self._keep_in_fp32_modules_strict]
            if torch.get_default_dtype() in (torch.float16, torch.bfloat16):
                for name in self._keep_in_fp32_modules_strict:
                    getattr(self, name).float()

    def cast_to(self, dtype: torch.dtype) -> "GromaPreTrainedModel":
        """Cast the floating-point weights to `dtype` in place, as `from_pretrained(..., dtype=dtype)` loads them: a
        16-bit `dtype` leaves the modules transformers keeps in float32 (the vision path with
        `config.keep_vision_path_fp32`) as they are. Returns the model."""
        keep = self._keep_in_fp32_modules_strict if dtype in (torch.float16, torch.bfloat16) else ()
        for name, tensor in [*self.named_parameters(), *self.named_buffers()]:
            if tensor.is_floating_point() and not any(pattern in name for pattern in keep):
                tensor.data = tensor.data.to(dtype)
        return self

    def vision_autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        """`torch.autocast` with `config.vision_autocast_dtype` for the vision path; a no-op without it."""
        if self.config.vision_autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=getattr(torch, self.config.vision_autocast_dtype))

    def _build_vision_tower(self) -> nn.Module:
        vision_tower = AutoModel.from_config(self.config.vision_config)
        if self.config.legacy_position_interpolation:
            vision_tower.embeddings = GromaLegacyDinov2Embeddings(vision_tower.config)
        return vision_tower

    def encode_image(self, pixel_values: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[int, int]]:
        """Run DINOv2 once: all hidden states ((B, 1 + h*w, C) each, pre final LayerNorm) and the grid (h, w)."""
        outputs, grid = self.run_vision_tower(pixel_values)
        return outputs.hidden_states, grid

    def patch_grid(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        """(h, w) DINOv2 patches of (B, 3, H, W) `pixel_values`."""
        patch = self.config.vision_config.patch_size
        return pixel_values.shape[2] // patch, pixel_values.shape[3] // patch

    def run_vision_tower(
        self, pixel_values: torch.Tensor, output_attentions: bool | None = None
    ) -> tuple[BaseModelOutputWithPooling, tuple[int, int]]:
        """DINOv2's output on (B, 3, H, W) `pixel_values` (with all hidden states) and the patch grid (h, w).
        `output_attentions=None` leaves the choice to the vision config."""
        check_pixel_tensor(
            pixel_values, "pixel_values", "(batch, 3, height, width)", patch_size=self.config.vision_config.patch_size
        )
        grid = self.patch_grid(pixel_values)
        if output_attentions is None:
            output_attentions = self.vision_tower.config.output_attentions
        with self.vision_autocast(pixel_values.device.type):
            outputs = self.vision_tower(
                pixel_values.to(self.vision_tower.dtype),
                output_hidden_states=True,
                output_attentions=output_attentions,
            )
        return outputs, grid

    def get_feature_map(
        self, vision_states: tuple[torch.Tensor, ...], layers: list[int], grid: tuple[int, int]
    ) -> torch.Tensor:
        """Mean of the named DINOv2 hidden states as a (B, C, h, w) map (CLS dropped)."""
        tokens = torch.stack([vision_states[layer] for layer in layers]).mean(0)[:, 1:]
        return tokens_to_feature_map(tokens, *grid)

    def get_region_proposals(
        self, vision_states: tuple[torch.Tensor, ...], grid: tuple[int, int]
    ) -> GromaRegionProposerOutput:
        """Proposer boxes (normalized cxcywh) and fused scores for every image."""
        feature_map = self.get_feature_map(vision_states, self.config.proposer_feature_layers, grid)
        with self.vision_autocast(feature_map.device.type):
            return self.region_proposer(feature_map)


class GromaForRegionProposal(GromaPreTrainedModel):
    """DINOv2 + region proposer alone: the detection-pretraining model (stage 1) and a class-agnostic detector.

    `labels`, when given, is one dict per image with `boxes` ((n, 4) normalized cxcywh) and optionally `source`:
    `"coco"` (default; COCO/Objects365/OpenImages/V3Det-style data) or `"sa1b"` (SA-1B-style data), which picks the
    objectness head that image supervises.
    """

    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: GromaConfig):
        super().__init__(config)
        self.vision_tower = self._build_vision_tower()
        self.region_proposer = GromaRegionProposer(config.proposer_config, config.vision_config.hidden_size)
        self._keep_vision_path_fp32()
        self.post_init()

    def forward(
        self, pixel_values: torch.Tensor, labels: list[dict] | None = None, **kwargs
    ) -> GromaRegionProposalOutput:
        """Propose boxes for (B, 3, H, W) `pixel_values`; with `labels`, also the weighted detection loss."""
        vision_states, grid = self.encode_image(pixel_values)
        proposals = self.get_region_proposals(vision_states, grid)
        loss = loss_dict = None
        if labels is not None:
            loss, loss_dict = detection_loss(proposals, labels, self.config.proposer_config)
        return GromaRegionProposalOutput(loss=loss, loss_dict=loss_dict, **proposals)


class GromaModel(GromaPreTrainedModel):
    """Groma without the LM head: vision tower, region proposer, bridge, region encoder and the base LLM."""

    def __init__(self, config: GromaConfig):
        super().__init__(config)
        self.vision_tower = self._build_vision_tower()
        self.region_proposer = GromaRegionProposer(config.proposer_config, config.vision_config.hidden_size)
        self.multi_modal_projector = GromaMultiModalProjector(
            4 * config.vision_config.hidden_size, config.text_config.hidden_size, config.projector_hidden_act
        )
        self.region_encoder = GromaRegionEncoder(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self._keep_vision_path_fp32()
        self.post_init()

    @property
    def dtype(self) -> torch.dtype:
        """The language model's dtype (the vision path may be kept in float32, see `config.keep_vision_path_fp32`)."""
        return self.language_model.dtype

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.language_model.set_input_embeddings(value)

    @can_return_tuple
    @accepts_release_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        refer_boxes: list[torch.Tensor] | None = None,
        ground_boxes: list[torch.Tensor] | None = None,
        region_boxes: list[torch.Tensor] | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        padding_free: bool = False,
        image_sizes: torch.Tensor | None = None,
        **kwargs,
    ) -> GromaModelOutputWithPast:
        r"""Run the LLM on a prompt, expanding and filling its `<image>`/`<region>` placeholders when `pixel_values`
        are given.

        Args:
            input_ids: (B, T) prompts with one `<image>` and one `<region>` placeholder each (padded on either side;
                `attention_mask` tells real tokens; without it, every token but `[PAD]` is real). Without
                `pixel_values` they are fed to the LLM as they are.
            pixel_values: (B, 3, H, W) images normalized with the ImageNet mean/std (see `GromaImageProcessor`).
            refer_boxes: per sample, (n_i, 4) normalized cxcywh boxes the user refers to; one per `<refer_box>`.
            ground_boxes: per sample, (g_i, 4) normalized cxcywh ground-truth boxes (training); one per
                `<ground_box>`, which becomes the matched `<rK>` in the input and the labels.
            region_boxes: per sample, (N_i, 4) normalized cxcywh regions to use instead of running the proposer
                (the two-step path: `propose_regions` first, then generate with these).
            labels: (B, T) labels aligned with `input_ids` (-100 = not supervised); expanded with the prompt.
            padding_free: pack the expanded batch into one row without padding (training): positions restart per
                sample, no cache is built, and the outputs (logits, expanded ids/labels) are (1, total_tokens, ...).
                With FlashAttention-2 this runs the varlen kernels; sdpa/eager get a block-diagonal mask.
            image_sizes: accepted (and ignored) so processor outputs can be passed as they are.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
        multimodal = None
        if pixel_values is not None:
            if position_ids is not None:
                raise ValueError("`position_ids` cannot be given with `pixel_values`: the prompt is expanded first.")
            multimodal = self.prepare_multimodal_inputs(
                input_ids if input_ids is not None else self.placeholder_ids(inputs_embeds),
                pixel_values,
                attention_mask,
                refer_boxes,
                ground_boxes,
                region_boxes,
                labels,
                inputs_embeds=inputs_embeds,
                output_attentions=kwargs.get("output_attentions"),
                output_hidden_states=kwargs.get("output_hidden_states"),
            )
            input_ids, inputs_embeds, attention_mask = None, multimodal.inputs_embeds, multimodal.attention_mask
            if padding_free:
                if "flash" not in (self.language_model.config._attn_implementation or ""):
                    logger.warning_once(
                        "`padding_free=True` without FlashAttention packs the batch into one row under a "
                        "block-diagonal mask whose attention covers the whole packed row, which can be slower than "
                        "padding (compare with benchmarks/train_throughput.py); FlashAttention-2 "
                        "(attn_implementation='flash_attention_2') runs it with varlen kernels instead."
                    )
                position_ids, (inputs_embeds, packed_ids), packed_labels = pack_sequences(
                    attention_mask, inputs_embeds, multimodal.input_ids, labels=multimodal.labels
                )
                multimodal.input_ids, multimodal.labels, attention_mask, use_cache = (
                    packed_ids,
                    packed_labels,
                    None,
                    False,
                )
        elif padding_free:
            raise ValueError("`padding_free` packs a multimodal batch for training; it needs `pixel_values`.")
        else:
            self._check_text_only(input_ids, cache, refer_boxes, ground_boxes, region_boxes)
        outputs = self.language_model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache if use_cache is not None else self.config.use_cache,
            **cache_kwargs(cache),
            **kwargs,
        )
        return GromaModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            **cache_kwargs(output_cache(outputs)),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_outputs=multimodal.image_outputs if multimodal else None,
            region_boxes=multimodal.region_boxes if multimodal else None,
            region_scores=multimodal.region_scores if multimodal else None,
            expanded_input_ids=multimodal.input_ids if multimodal else None,
            expanded_attention_mask=attention_mask,
            expanded_labels=multimodal.labels if multimodal else labels,
        )

    def placeholder_ids(self, inputs_embeds: torch.Tensor) -> torch.LongTensor:
        """(B, T) ids of a prompt given as `inputs_embeds`: `<image>`, `<region>`, `<refer_box>` and `<refer_feat>`
        where the embeddings are theirs, 0 elsewhere (see [`placeholder_ids_from_embeds`])."""
        config = self.config
        placeholders = [config.image_token_id, config.region_token_id, config.refer_box_token_id]
        return placeholder_ids_from_embeds(
            self.get_input_embeddings(), inputs_embeds, [*placeholders, config.refer_feat_token_id]
        )

    def prepare_multimodal_inputs(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        refer_boxes: list[torch.Tensor] | None = None,
        ground_boxes: list[torch.Tensor] | None = None,
        region_boxes: list[torch.Tensor] | None = None,
        labels: torch.LongTensor | None = None,
        padding_side: str = "right",
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> GromaMultimodalInputs:
        """Everything before the LLM: encode, propose, select, encode regions, expand the prompt, inject features.

        See `forward` for the arguments; `padding_side` is where the expanded batch is padded ("left" for generation).
        `inputs_embeds` ((B, T, D), optional) are the caller's embeddings of the prompt tokens: the expanded prompt
        keeps them for its text tokens (the placeholders get the features as usual).
        """
        check_prompts(input_ids, attention_mask, labels, pixel_values, self.config.text_config.vocab_size)
        batch_size = input_ids.shape[0]
        max_regions = self.config.max_region_num
        refer_boxes = check_box_lists(refer_boxes, "refer_boxes", batch_size, max_regions, input_ids.device)
        ground_boxes = check_box_lists(ground_boxes, "ground_boxes", batch_size, None, input_ids.device)

        # 1. Image: DINOv2 -> 2x2 merge -> bridge MLP
        image_outputs = self.get_image_features(
            pixel_values, output_hidden_states=True, output_attentions=output_attentions, return_dict=True
        )
        vision_states, grid = image_outputs.hidden_states, self.patch_grid(pixel_values)
        image_features = image_outputs.pooler_output  # (B, h*w/4, D)
        if not (output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states):
            image_outputs.hidden_states = None
        # 2. Regions: proposals + user/GT boxes -> NMS -> top-k (or the caller's regions)
        if region_boxes is None:
            proposals = self.get_region_proposals(vision_states, grid)
            region_boxes, region_scores = self.select_regions(proposals, refer_boxes, ground_boxes)
        else:
            region_boxes = check_box_lists(
                region_boxes, "region_boxes", batch_size, max_regions, input_ids.device, allow_empty=False
            )
            region_scores = [boxes.new_ones(len(boxes)) for boxes in region_boxes]
            warn_about_unmatched_boxes(refer_boxes, region_boxes)
        # 3. Region tokens: multi-level RoIAlign features of every selected region
        region_features = self.get_region_features(vision_states, grid, region_boxes, tuple(pixel_values.shape[-2:]))
        # 4. Sequence: expand placeholders, point <refer_box>/<ground_box> at their best-matching region
        refer_indices = [match_boxes_to_regions(b, r) for b, r in zip(refer_boxes, region_boxes)]
        ground_indices = [match_boxes_to_regions(b, r) for b, r in zip(ground_boxes, region_boxes)]
        expanded_ids, expanded_labels = self.expand_batch(
            input_ids, attention_mask, labels, image_features.shape[1], region_boxes, refer_indices, ground_indices
        )
        pad_token_id = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        ids = pad_sequences(expanded_ids, pad_token_id, padding_side)
        check_sequence_length(ids.shape[1], self.config.text_config, "The expanded prompt")
        mask = pad_sequences([torch.ones_like(s) for s in expanded_ids], 0, padding_side)
        padded_labels = pad_sequences(expanded_labels, -100, padding_side) if labels is not None else None
        # 5. Embeddings: token embeddings with image, region and referred-region features injected
        has_refer_feat = (ids == self.config.refer_feat_token_id).any(1).tolist()  # one read for the batch
        refer_features = [f[i] for f, i, used in zip(region_features, refer_indices, has_refer_feat) if used]
        text_embeds = None
        if inputs_embeds is not None:
            expansion = (
                input_ids,
                attention_mask,
                image_features.shape[1],
                region_boxes,
                refer_indices,
                ground_indices,
            )
            text_embeds = self.expand_caller_embeddings(ids, inputs_embeds, padding_side, *expansion)
        inputs_embeds = self.merge_multimodal_embeddings(
            ids, image_features, region_features, refer_features, text_embeds
        )
        return GromaMultimodalInputs(
            image_outputs=image_outputs,
            inputs_embeds=inputs_embeds,
            input_ids=ids,
            attention_mask=mask,
            labels=padded_labels,
            region_boxes=region_boxes,
            region_scores=region_scores,
        )

    @can_return_tuple
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """transformers' VLM feature API: the image tokens of (B, 3, H, W) `pixel_values` as `pooler_output`
        ((B, h*w/4, D), what fills each prompt's `<image>` slots), DINOv2's `last_hidden_state` ((B, 1 + h*w, C)),
        and its hidden states and attentions when requested."""
        outputs, grid = self.run_vision_tower(pixel_values, output_attentions)
        if output_hidden_states is None:
            output_hidden_states = self.config.vision_config.output_hidden_states
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.project_image_features(outputs.hidden_states, grid),
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions,
        )

    def project_image_features(self, vision_states: tuple[torch.Tensor, ...], grid: tuple[int, int]) -> torch.Tensor:
        """Image tokens (B, h*w/4, D): the chosen DINOv2 layer, 2x2-merged, through the bridge MLP."""
        feature_map = self.get_feature_map(vision_states, [self.config.image_feature_layer], grid)
        with self.vision_autocast(feature_map.device.type):
            return self.multi_modal_projector(merge_patches_2x2(feature_map))

    def select_regions(
        self, proposals: GromaRegionProposerOutput, refer_boxes: list[torch.Tensor], ground_boxes: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Kept regions per image ((N_i, 4) normalized cxcywh) and their scores, see [`select_regions`]."""
        config = self.config
        return select_regions(
            proposals.pred_boxes.detach().float(),  # selection is not differentiable (as in the original)
            proposals.scores.detach().float(),
            refer_boxes,
            ground_boxes,
            nms_threshold=config.nms_threshold,
            score_threshold=config.box_score_threshold,
            max_regions=config.max_region_num,
            refer_box_score=config.refer_box_score,
            ground_box_score=config.ground_box_score,
            shuffle=config.shuffle_regions and self.training,
        )

    def get_region_features(
        self,
        vision_states: tuple[torch.Tensor, ...],
        grid: tuple[int, int],
        region_boxes: list[torch.Tensor],
        image_size: tuple[int, int],
    ) -> list[torch.Tensor]:
        """Region tokens per image, (N_i, D), from the DINOv2 layers named by `config.region_feature_layers`."""
        feature_maps = [
            self.get_feature_map(vision_states, [layer], grid) for layer in self.config.region_feature_layers
        ]
        with self.vision_autocast(feature_maps[0].device.type):
            return self.region_encoder(feature_maps, region_boxes, image_size)

    def expand_batch(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        labels: torch.LongTensor | None,
        num_image_tokens: int,
        region_boxes: list[torch.Tensor],
        refer_indices: list[torch.Tensor],
        ground_indices: list[torch.Tensor],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Expand every sample's real tokens (see [`expand_placeholders`]); returns unpadded ids and labels."""
        if attention_mask is not None:
            real = attention_mask.bool()
        else:
            real = (
                input_ids != self.config.pad_token_id
                if self.config.pad_token_id is not None
                else torch.ones_like(input_ids, dtype=torch.bool)
            )
        return expand_placeholders(
            input_ids,
            real,
            labels,
            config=self.config,
            num_image_tokens=num_image_tokens,
            num_regions=[len(boxes) for boxes in region_boxes],
            refer_indices=refer_indices,
            ground_indices=ground_indices,
        )

    def expand_caller_embeddings(
        self,
        expanded_ids: torch.LongTensor,
        inputs_embeds: torch.Tensor,
        padding_side: str,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        num_image_tokens: int,
        region_boxes: list[torch.Tensor],
        refer_indices: list[torch.Tensor],
        ground_indices: list[torch.Tensor],
    ) -> torch.Tensor:
        """(B, L, D) embeddings of the expanded prompt: the caller's `inputs_embeds` (B, T, D) at the tokens kept from
        the prompt, the embeddings of `expanded_ids` at the inserted and rewritten ones."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        _, sources = self.expand_batch(
            input_ids, attention_mask, positions, num_image_tokens, region_boxes, refer_indices, ground_indices
        )
        source = pad_sequences(sources, -100, padding_side).clamp(0, input_ids.shape[1] - 1)
        kept = (pad_sequences(sources, -100, padding_side) >= 0) & (expanded_ids == input_ids.gather(1, source))
        caller = inputs_embeds.gather(1, source[..., None].expand(-1, -1, inputs_embeds.shape[-1]))
        own = self.get_input_embeddings()(expanded_ids)
        return torch.where(kept[..., None], caller.to(own.dtype), own)

    def merge_multimodal_embeddings(
        self,
        input_ids: torch.LongTensor,
        image_features: torch.Tensor,
        region_features: list[torch.Tensor],
        refer_features: list[torch.Tensor],
        text_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed the expanded ids (or take `text_embeds`, (B, L, D)) and scatter the features into the `<image>`,
        `<region>` and `<refer_feat>` slots."""
        inputs_embeds = self.get_input_embeddings()(input_ids) if text_embeds is None else text_embeds
        placements = (
            (self.config.image_token_id, image_features.flatten(0, 1)),
            (self.config.region_token_id, torch.cat(region_features)),
            (self.config.refer_feat_token_id, torch.cat(refer_features) if refer_features else None),
        )
        slots = [input_ids == token_id for token_id, _ in placements]
        num_slots = torch.stack([s.sum() for s in slots]).tolist()  # one read for the three checks
        for (token_id, features), token_slots, count in zip(placements, slots, num_slots):
            num_features = 0 if features is None else len(features)
            if count != num_features:
                raise ValueError(
                    f"{count} token(s) with id {token_id} but {num_features} feature vectors to place there."
                )
            if num_features:
                inputs_embeds = inputs_embeds.masked_scatter(token_slots[..., None], features.to(inputs_embeds.dtype))
        return inputs_embeds

    def _check_text_only(self, input_ids, cache, refer_boxes, ground_boxes, region_boxes):
        """Reject media arguments without `pixel_values`, and an `<image>` placeholder in a call without a cache.

        Calls with a cache (decoding steps) are not inspected: generated tokens are plain text, and decoding then
        needs no device-to-host sync (so it can be compiled as one graph).
        """
        if any(boxes is not None for boxes in (refer_boxes, ground_boxes, region_boxes)):
            raise ValueError("`refer_boxes`, `ground_boxes` and `region_boxes` need `pixel_values`.")
        if input_ids is not None and cache is None:
            check_token_ids(input_ids, self.config.text_config.vocab_size)
        if input_ids is not None and cache is None and (input_ids == self.config.image_token_id).any():
            raise ValueError(
                "`input_ids` contain the <image> placeholder but no `pixel_values` were given; pass the image "
                "(e.g. `processor(images=..., text=...)`)."
            )


class GromaForConditionalGeneration(GromaPreTrainedModel, MultimodalGenerationMixin):
    """Groma with its LM head: grounded chat, referring and captioning, trained with next-token cross-entropy.

    `generate` runs the vision path once, expands and left-pads the batch, and returns the caller's prompt followed
    by the new tokens; with `return_dict_in_generate=True` the output also carries `region_boxes`, the boxes the
    generated `<rK>` tokens refer to.
    """

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    # shards the head like the input embeddings it is tied to (which transformers shards on the vocabulary)
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: GromaConfig):
        super().__init__(config)
        self.model = GromaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @property
    def dtype(self) -> torch.dtype:
        """The language model's dtype (the vision path may be kept in float32, see `config.keep_vision_path_fp32`)."""
        return self.model.dtype

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """See [`GromaModel.get_image_features`]."""
        return self.model.get_image_features(pixel_values, **kwargs)

    @can_return_tuple
    @accepts_release_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        refer_boxes: list[torch.Tensor] | None = None,
        ground_boxes: list[torch.Tensor] | None = None,
        region_boxes: list[torch.Tensor] | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        padding_free: bool = False,
        logits_to_keep: int | torch.Tensor = 0,
        image_sizes: torch.Tensor | None = None,
        **kwargs,
    ) -> GromaCausalLMOutputWithPast:
        """See [`GromaModel.forward`]; `labels` (B, T) align with the unexpanded `input_ids` and give the loss.

        `logits` cover the expanded sequence (B, L, vocab_size); `expanded_input_ids` says what each position is.
        """
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            refer_boxes=refer_boxes,
            ground_boxes=ground_boxes,
            region_boxes=region_boxes,
            labels=labels,
            use_cache=use_cache,
            padding_free=padding_free,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=outputs.expanded_labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return GromaCausalLMOutputWithPast(
            loss=loss, logits=logits, **{k: v for k, v in outputs.items() if k != "last_hidden_state"}
        )

    @torch.no_grad()
    def propose_regions(
        self, pixel_values: torch.Tensor, refer_boxes: list[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Step one of the two-step path: the regions (normalized cxcywh) and scores `generate` would select.

        Pass the returned boxes as `region_boxes=` to `generate`/`forward` to skip the proposer there.
        """
        vision_states, grid = self.model.encode_image(pixel_values)
        refer_boxes = check_box_lists(
            refer_boxes, "refer_boxes", len(pixel_values), self.config.max_region_num, pixel_values.device
        )
        proposals = self.model.get_region_proposals(vision_states, grid)
        return self.model.select_regions(
            proposals, refer_boxes, [torch.zeros(0, 4, device=pixel_values.device)] * len(refer_boxes)
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        refer_boxes: list[torch.Tensor] | None = None,
        region_boxes: list[torch.Tensor] | None = None,
        inputs_embeds: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.LongTensor | GromaGenerateOutput | GromaGenerateBeamOutput:
        """`GenerationMixin.generate` for Groma prompts (see the class docstring); other kwargs pass through.

        Length limits apply to the expanded prompt (each `<image>` becomes the image tokens, `<region>` two tokens
        per region), so prefer `max_new_tokens` to `max_length`. `inputs_embeds` ((B, T, D)) may replace or accompany
        `input_ids`: the placeholders are found where the embeddings are those of `<image>`, `<region>`,
        `<refer_box>` and `<refer_feat>`, and, as for any transformers model, only the new tokens are returned when no
        `input_ids` were given.
        """
        if self.is_prepared_generate_call(kwargs):
            return GenerationMixin.generate(self, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if pixel_values is None:
            self.model._check_text_only(input_ids, None, refer_boxes, None, region_boxes)
            return super().generate(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
            )
        caller_ids = input_ids
        if input_ids is None:
            if inputs_embeds is None:
                raise ValueError("`pixel_values` need `input_ids` with the <image>/<region> placeholders.")
            input_ids = self.model.placeholder_ids(inputs_embeds)
            caller_ids = input_ids[:, :0]
        multimodal = self.model.prepare_multimodal_inputs(
            input_ids,
            pixel_values,
            attention_mask,
            refer_boxes,
            None,
            region_boxes,
            padding_side="left",
            inputs_embeds=inputs_embeds,
        )
        outputs, sequences, copies = self.generate_from_embeddings(
            caller_ids, multimodal.input_ids, multimodal.attention_mask, multimodal.inputs_embeds, **kwargs
        )
        if isinstance(outputs, torch.Tensor):
            return sequences
        output_class = (
            GromaGenerateBeamOutput if isinstance(outputs, GenerateBeamDecoderOnlyOutput) else GromaGenerateOutput
        )
        return output_class(
            **{**outputs, "sequences": sequences},
            region_boxes=[boxes for boxes in multimodal.region_boxes for _ in range(copies)],
            region_scores=[scores for scores in multimodal.region_scores for _ in range(copies)],
        )
