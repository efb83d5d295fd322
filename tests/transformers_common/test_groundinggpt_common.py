"""transformers' common model, config and processor tests on GroundingGPT, with a tiny tester in the style of llava's.

GroundingGPT's placeholders are expanded by the processor: every prompt here holds one image block
(`<im_start>` + 4 x `<im_patch>` + `<im_end>`) in place, so the language model sees `seq_length` tokens. Skips name the
built-in model that skips the same test.
"""

import logging
import unittest

import torch

from transformers_groma import (
    GroundingGPTConfig,
    GroundingGPTForConditionalGeneration,
    GroundingGPTModel,
    GroundingGPTProcessor,
)
from transformers_groma.tiny import (
    TINY_GROUNDINGGPT_IMAGE_SIZE,
    tiny_groundinggpt_config,
    tiny_groundinggpt_processor,
    tiny_groundinggpt_tokenizer,
)

from .hf_common_tests import (
    HUB_MEDIA,
    HUB_MEDIA_TESTS,
    PromptShapedLabels,
    RegisteredInAutoTables,
    load_common_tests,
    shows_future_warnings,
    skip_common_tests,
    transformers_verbosity,
)


modeling_common, configuration_common, processing_common, GenerationTesterMixin = load_common_tests()

BOS = 1
# one block per medium: <xx_start> + N x <xx_patch> + <xx_end> (ids of the tiny config)
BLOCKS = [[101, *[100] * 4, 102], [104, *[103] * 3, 105], [107, *[106] * 2, 108]]  # image, video, audio


class GroundingGPTModelTester:
    def __init__(self, parent, batch_size: int = 2, seq_length: int = 20, is_training: bool = True):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        config = self.get_config()
        self.vocab_size = config.text_config.vocab_size
        self.hidden_size = config.text_config.hidden_size
        self.num_hidden_layers = config.text_config.num_hidden_layers
        self.num_attention_heads = config.text_config.num_attention_heads
        self.image_size = TINY_GROUNDINGGPT_IMAGE_SIZE
        self.vision_config = config.vision_config.to_dict()
        self.audio_config = config.audio_config.to_dict()  # the audio features carry ImageBind's states
        self.video_config = config.video_vision_config.to_dict()  # the video features carry EVA-ViT's states

    def get_config(self) -> GroundingGPTConfig:
        # the last CLIP layer feeds the image tokens (as in llava's tester), so every CLIP weight gets a gradient; 40
        # plain-text ids above the placeholders (100-108), so the resize tests' shrinking by 15 rows and clamping of
        # the ids keeps the placeholder blocks intact (as llava's tester keeps its image token below the clamp)
        text_config = {**tiny_groundinggpt_config().text_config.to_dict(), "vocab_size": 148}
        return tiny_groundinggpt_config(vision_feature_layer=-1, text_config=text_config)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        input_ids = modeling_common.ids_tensor([self.batch_size, self.seq_length], 96) + 3  # plain text ids 3-98
        input_ids[:, 0] = BOS
        input_ids[:, 2:17] = torch.tensor([token for block in BLOCKS for token in block])
        size, frames = self.image_size, config.max_frames
        audio = config.audio_config
        return config, {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "pixel_values": modeling_common.floats_tensor([self.batch_size, 3, size, size]),
            "pixel_values_videos": modeling_common.floats_tensor([self.batch_size, 3, frames, size, size]),
            "input_features": modeling_common.floats_tensor(
                [self.batch_size, 2, 1, audio.num_mel_bins, audio.target_length]
            ),
        }


@skip_common_tests(
    {
        "test_eager_matches_sdpa_inference": (
            "feeds `input_ids` without the media and pads the batch with random rows; GroundingGPT rejects placeholder "
            "blocks without their media (an open deviation from llava, which embeds them as text). Eager and sdpa are "
            "compared on real prompts in tests/groundinggpt/test_modeling.py."
        ),
        "test_model_rope_scaling_from_config": (
            "feeds random ids from the whole vocabulary without the media: where they hit a placeholder token they "
            "form a block without its media, which GroundingGPT rejects (as above); its long prompt (1.5x "
            "max_position_embeddings) on the default RoPE is refused with a clear error rather than run past the "
            "trained positions. Linear, dynamic and YaRN scaling run on real prompts past the limit in "
            "tests/hardening/test_models.py."
        ),
    }
)
@shows_future_warnings("test_bc_cache_name_forward")
class GroundingGPTModelTest(
    PromptShapedLabels,
    RegisteredInAutoTables,
    modeling_common.ModelTesterMixin,
    GenerationTesterMixin,
    unittest.TestCase,
):
    all_model_classes = (GroundingGPTModel, GroundingGPTForConditionalGeneration)
    _is_composite = True
    # as for Ovis2.5: the image encoder reads a CLIP hidden state, before CLIP's post_layernorm (as the original)
    test_all_params_have_gradient = False

    auto_tables = ("groundinggpt", "GroundingGPTModel", "GroundingGPTForConditionalGeneration")

    def setUp(self):
        self.model_tester = GroundingGPTModelTester(self)
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=GroundingGPTConfig, has_text_modality=False
        )

    def test_config(self):
        # ConfigTester expects transformers' default (warning) verbosity, which other tests of a run may have raised
        with transformers_verbosity(logging.WARNING):
            self.config_tester.run_common_tests()


@skip_common_tests(
    dict.fromkeys(
        (*HUB_MEDIA_TESTS, "test_processor_text_has_no_visual"),  # the latter's chat-template half reads a Hub image
        HUB_MEDIA,
    )
)
class GroundingGPTProcessorTest(processing_common.ProcessorTesterMixin, unittest.TestCase):
    processor_class = GroundingGPTProcessor

    @classmethod
    def _setup_image_processor(cls):
        return tiny_groundinggpt_processor().image_processor

    @classmethod
    def _setup_video_processor(cls):
        return tiny_groundinggpt_processor().video_processor

    @classmethod
    def _setup_feature_extractor(cls):
        # the mixin's audio lasts 1/16 s, under one 2 s clip: zero-padded, as the original does, when allowed
        feature_extractor = tiny_groundinggpt_processor().feature_extractor
        feature_extractor.allow_short_audio = True
        return feature_extractor

    @classmethod
    def _setup_tokenizer(cls):
        return tiny_groundinggpt_tokenizer()

    @classmethod
    def prepare_processor_dict(cls):
        config = tiny_groundinggpt_config()
        return {
            "num_image_tokens": config.num_image_tokens,
            "num_video_tokens": config.num_video_query_tokens,
            "num_audio_tokens": config.num_audio_query_tokens,
        }
