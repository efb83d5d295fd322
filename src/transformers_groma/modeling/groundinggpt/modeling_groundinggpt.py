"""GroundingGPT (arXiv 2401.06071) as Transformers models: `GroundingGPTModel`, `GroundingGPTForConditionalGeneration`.

Data flow (spec §1): each media item is encoded by its branch into a fixed number of LLM-width tokens, which replace
the patch tokens of its `<xx_start>` + N x `<xx_patch>` + `<xx_end>` block in the prompt, in place (the sequence
length does not change). Grounding is plain text: boxes `[x1, y1, x2, y2]` and time spans `{t1, t2}`.

Call contract: `input_ids` hold the expanded placeholder blocks (as written by `GroundingGPTProcessor`); the media of
each modality are stacked in the order their blocks appear in the batch (sample by sample, left to right), so a
sample without a modality simply has no block of it and contributes no item.
"""

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_utils import slice_logits_to_keep
from transformers.utils.generic import can_return_tuple

from ...configuration_groundinggpt import GroundingGPTConfig
from ...saving import RemoteCodeSavingMixin
from ..cache_api import CACHE_KWARG, accepts_release_cache_name, cache_kwargs, output_cache
from ..generation import MultimodalGenerationMixin, placeholder_ids_from_embeds
from ..validation import CheckedLoadingMixin, check_labels
from .audio_encoder import GroundingGPTAudioEncoder, GroundingGPTImageBindAudioModel
from .image_encoder import GroundingGPTImageEncoder
from .outputs import (
    GroundingGPTAudioFeaturesOutput,
    GroundingGPTCausalLMOutputWithPast,
    GroundingGPTImageFeaturesOutput,
    GroundingGPTModelOutputWithPast,
    GroundingGPTVideoFeaturesOutput,
)
from .placeholders import left_align, placeholder_mask, placeholder_specs, splice_features
from .validation import check_groundinggpt_inputs
from .video_encoder import GroundingGPTVideoEncoder


class GroundingGPTPreTrainedModel(RemoteCodeSavingMixin, CheckedLoadingMixin, PreTrainedModel):
    """Base class of the GroundingGPT models: config class, weight initialisation (the learned query tokens and the
    ImageBind CLS / position embeddings included) and the attention backends they support."""

    config: GroundingGPTConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "audio", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["GroundingGPTImageBindBlock"]
    # The media encoders (projections included) stay in float32 under float16 and unquantized under bitsandbytes.
    # (The quantizers match these patterns from the start of a module's name, at any depth here.)
    _keep_in_fp32_modules = [rf"(?:.*\.)?{name}" for name in ("image_encoder", "video_encoder", "audio_encoder")]
    _skip_keys_device_placement = [CACHE_KWARG]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, GroundingGPTImageBindAudioModel):
            std = module.config.initializer_range
            init.trunc_normal_(module.class_embedding, std=std)
            init.trunc_normal_(module.position_embedding, std=std)
        elif isinstance(module, GroundingGPTVideoEncoder):
            init.normal_(module.frame_query_tokens, std=self.config.video_qformer_config.initializer_range)
            init.normal_(module.video_query_tokens, std=self.config.video_temporal_qformer_config.initializer_range)
        elif isinstance(module, GroundingGPTAudioEncoder):
            init.normal_(module.query_tokens, std=self.config.audio_qformer_config.initializer_range)


class GroundingGPTModel(GroundingGPTPreTrainedModel):
    """GroundingGPT without the LM head: the three media branches and the base LLM."""

    def __init__(self, config: GroundingGPTConfig):
        super().__init__(config)
        self.image_encoder = GroundingGPTImageEncoder(config)
        self.video_encoder = GroundingGPTVideoEncoder(config)
        self.audio_encoder = GroundingGPTAudioEncoder(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.language_model.set_input_embeddings(value)

    @can_return_tuple
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> GroundingGPTImageFeaturesOutput:
        """Image tokens (`pooler_output`, (N, num_image_tokens, D)) of (N, 3, H, W) images, with CLIP's outputs;
        see [`GroundingGPTImageEncoder`]."""
        return self.image_encoder(pixel_values, output_hidden_states, output_attentions)

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        video_num_frames: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> GroundingGPTVideoFeaturesOutput:
        """Video tokens (`pooler_output`, (N, num_video_tokens, D)) of (N, 3, T, H, W) videos, with EVA-ViT's hidden
        states and attentions when requested; see [`GroundingGPTVideoEncoder`]."""
        return self.video_encoder(pixel_values_videos, video_num_frames, output_hidden_states, output_attentions)

    @can_return_tuple
    def get_audio_features(
        self,
        input_features: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> GroundingGPTAudioFeaturesOutput:
        """Audio tokens (`pooler_output`, (N, num_audio_tokens, D)) of (N, clips, 1, mel, frames) log-mel clips, with
        ImageBind's hidden states and attentions when requested; see [`GroundingGPTAudioEncoder`]."""
        return self.audio_encoder(input_features, output_hidden_states, output_attentions)

    def get_multimodal_embeddings(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_num_frames: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Token embeddings of `input_ids` with every media item's tokens spliced into its placeholder block.

        Each encoder runs once, on all items of its modality. Returns the (B, L, D) embeddings and, per modality given,
        the spliced media tokens (`image_embeds`, `video_embeds`, `audio_embeds`) and the whole encoder output
        (`image_outputs`, `video_outputs`, `audio_outputs`, as from `get_image_features` etc.). `inputs_embeds`
        ((B, L, D), optional) are the token embeddings to splice into, instead of embedding `input_ids`.

        Raises:
            ValueError: when the media do not match the placeholder blocks one to one, or have the wrong layout.
        """
        check_groundinggpt_inputs(
            input_ids,
            {
                "pixel_values": pixel_values,
                "pixel_values_videos": pixel_values_videos,
                "input_features": input_features,
            },
            self.config,
        )
        encoded = {
            "image": None if pixel_values is None else self.image_encoder(pixel_values),
            "video": None
            if pixel_values_videos is None
            else self.video_encoder(pixel_values_videos, video_num_frames),
            "audio": None if input_features is None else self.audio_encoder(input_features),
        }
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        media_outputs = {}
        for modality, spec in placeholder_specs(self.config).items():
            output = encoded[modality]
            mask = placeholder_mask(input_ids, spec, 0 if output is None else len(output.pooler_output))
            if output is not None:
                inputs_embeds = splice_features(inputs_embeds, mask, output.pooler_output)
                media_outputs[f"{modality}_embeds"] = output.pooler_output
                media_outputs[f"{modality}_outputs"] = output
        return inputs_embeds, media_outputs

    def placeholder_ids_from_embeds(self, inputs_embeds: torch.Tensor) -> torch.LongTensor:
        """(B, L) stand-in ids for prompts given as `inputs_embeds`: the placeholder-block tokens where the embedding
        is exactly theirs, 0 elsewhere (see `transformers_groma.modeling.generation.placeholder_ids_from_embeds`)."""
        token_ids = [
            token_id
            for spec in placeholder_specs(self.config).values()
            for token_id in (spec.start_token_id, spec.token_id, spec.end_token_id)
        ]
        return placeholder_ids_from_embeds(self.get_input_embeddings(), inputs_embeds, token_ids)

    @can_return_tuple
    @accepts_release_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_num_frames: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        image_sizes: torch.Tensor | None = None,
        video_durations: torch.Tensor | None = None,
        **kwargs,
    ) -> GroundingGPTModelOutputWithPast:
        r"""Run the LLM on prompts whose placeholder blocks are filled with the encoded media.

        Args:
            input_ids: (B, L) prompts with one `<xx_start>` + N x `<xx_patch>` + `<xx_end>` block per media item.
            pixel_values: (num_images, 3, H, W) padded-to-square, CLIP-normalised images, in block order.
            pixel_values_videos: (num_videos, 3, T, H, W) CLIP-normalised frames (channels before frames), in block
                order; videos with fewer frames are zero-padded to T.
            video_num_frames: (num_videos,) real frames per video; all T when omitted.
            input_features: (num_audios, clips, 1, mel, frames) normalised log-mel clips, in block order.
            inputs_embeds: (B, L, D) instead of `input_ids`, for prompts already embedded; with media, the placeholder
                blocks are found where the embeddings are exactly those of the placeholder tokens (as llava does).
            image_sizes / video_durations: accepted (and ignored) so processor outputs can be passed as they are.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
        media_outputs = {}
        has_media = any(x is not None for x in (pixel_values, pixel_values_videos, input_features))
        if input_ids is not None:
            # A call without a cache reads whole prompts, whose placeholder blocks must come with their media; with a
            # cache and no media the tokens continue a sequence (decoding steps, assisted-decoding candidates): they
            # are plain text, and decoding needs no device-to-host sync.
            if has_media or cache is None:
                inputs_embeds, media_outputs = self.get_multimodal_embeddings(
                    input_ids, pixel_values, pixel_values_videos, video_num_frames, input_features
                )
            else:
                inputs_embeds = self.get_input_embeddings()(input_ids)
        elif has_media:
            inputs_embeds, media_outputs = self.get_multimodal_embeddings(
                self.placeholder_ids_from_embeds(inputs_embeds),
                pixel_values,
                pixel_values_videos,
                video_num_frames,
                input_features,
                inputs_embeds=inputs_embeds,
            )
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache if use_cache is not None else self.config.use_cache,
            **cache_kwargs(cache),
            **kwargs,
        )
        return GroundingGPTModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            **cache_kwargs(output_cache(outputs)),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            inputs_embeds=inputs_embeds,
            **media_outputs,
        )


class GroundingGPTForConditionalGeneration(GroundingGPTPreTrainedModel, MultimodalGenerationMixin):
    """GroundingGPT with its LM head: grounded chat about images, videos and audio, trained with next-token
    cross-entropy.

    `generate` encodes the media once, before the first step, left-aligns padded prompts, and returns the caller's
    `input_ids` followed by the new tokens.
    """

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    # shards the head like the input embeddings it may be tied to (which transformers shards on the vocabulary)
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: GroundingGPTConfig):
        super().__init__(config)
        self.model = GroundingGPTModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> GroundingGPTImageFeaturesOutput:
        """See [`GroundingGPTModel.get_image_features`]."""
        return self.model.get_image_features(pixel_values, **kwargs)

    def get_video_features(self, pixel_values_videos: torch.Tensor, **kwargs) -> GroundingGPTVideoFeaturesOutput:
        """See [`GroundingGPTModel.get_video_features`]."""
        return self.model.get_video_features(pixel_values_videos, **kwargs)

    def get_audio_features(self, input_features: torch.Tensor, **kwargs) -> GroundingGPTAudioFeaturesOutput:
        """See [`GroundingGPTModel.get_audio_features`]."""
        return self.model.get_audio_features(input_features, **kwargs)

    @can_return_tuple
    @accepts_release_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_num_frames: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        image_sizes: torch.Tensor | None = None,
        video_durations: torch.Tensor | None = None,
        **kwargs,
    ) -> GroundingGPTCausalLMOutputWithPast:
        """See [`GroundingGPTModel.forward`]; `labels` (B, L) align with `input_ids` (-100 = not supervised)."""
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            video_num_frames=video_num_frames,
            input_features=input_features,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            check_labels(labels, self.config.text_config.vocab_size)
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return GroundingGPTCausalLMOutputWithPast(
            loss=loss, logits=logits, **{k: v for k, v in outputs.items() if k != "last_hidden_state"}
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_num_frames: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        video_durations: torch.Tensor | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate` for GroundingGPT prompts (arguments as in `forward`; the rest pass through).

        The media are encoded once into the prompt embeddings; prompts padded on the right are moved to the left, so
        a padded batch generates what its samples generate one by one. Without `attention_mask`, the padding token
        marks the padding (as for Groma). `inputs_embeds` ((B, L, D)) may replace or accompany `input_ids`: the
        media go where the embeddings are those of the patch tokens, and, as for any transformers model, only the
        new tokens are returned when no `input_ids` were given.
        """
        if self.is_prepared_generate_call(kwargs):
            return GenerationMixin.generate(self, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        caller_ids = input_ids
        if input_ids is None:
            if inputs_embeds is None:
                raise ValueError(
                    "`generate` needs `input_ids` (the prompts with their placeholder blocks) or `inputs_embeds`."
                )
            input_ids = self.model.placeholder_ids_from_embeds(inputs_embeds)
            caller_ids = input_ids[:, :0]
            if attention_mask is None:  # the stand-in ids say nothing about padding
                attention_mask = torch.ones_like(input_ids)
        elif attention_mask is None and self.config.text_config.pad_token_id is not None:
            attention_mask = (input_ids != self.config.text_config.pad_token_id).long()
        aligned_ids, aligned_mask, aligned_embeds = left_align(input_ids, attention_mask, inputs_embeds)
        prompt_embeds, _ = self.model.get_multimodal_embeddings(
            aligned_ids, pixel_values, pixel_values_videos, video_num_frames, input_features, aligned_embeds
        )
        outputs, sequences, _ = self.generate_from_embeddings(
            caller_ids, aligned_ids, aligned_mask, prompt_embeds, **kwargs
        )
        if isinstance(outputs, torch.Tensor):
            return sequences
        outputs.sequences = sequences
        return outputs


__all__ = ["GroundingGPTForConditionalGeneration", "GroundingGPTModel", "GroundingGPTPreTrainedModel"]
