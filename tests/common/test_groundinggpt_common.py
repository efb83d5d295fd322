"""transformers' common model, config and processor tests on GroundingGPT, with a tiny tester in the style of llava's.

GroundingGPT's placeholders are expanded by the processor: every prompt here holds one image block
(`<im_start>` + 4 x `<im_patch>` + `<im_end>`) in place, so the language model sees `seq_length` tokens. Skips name the
built-in model that skips the same test.
"""

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

from .hf_common_tests import load


modeling_common = load("test_modeling_common")
configuration_common = load("test_configuration_common")
processing_common = load("test_processing_common")
GenerationTesterMixin = load("generation.test_utils").GenerationTesterMixin

BOS, IMAGE, IMAGE_START, IMAGE_END = 1, 100, 101, 102
NUM_IMAGE_TOKENS = 4


class GroundingGPTModelTester:
    def __init__(self, parent, batch_size: int = 2, seq_length: int = 12, is_training: bool = True):
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

    def get_config(self) -> GroundingGPTConfig:
        return tiny_groundinggpt_config()

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        input_ids = modeling_common.ids_tensor([self.batch_size, self.seq_length], 96) + 3  # plain text ids 3-98
        input_ids[:, 0] = BOS
        input_ids[:, 2 : 2 + NUM_IMAGE_TOKENS + 2] = torch.tensor(
            [IMAGE_START, *[IMAGE] * NUM_IMAGE_TOKENS, IMAGE_END]
        )
        pixel_values = modeling_common.floats_tensor([self.batch_size, 3, self.image_size, self.image_size])
        return config, {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "pixel_values": pixel_values,
        }


class GroundingGPTModelTest(modeling_common.ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (GroundingGPTModel, GroundingGPTForConditionalGeneration)
    _is_composite = True

    def setUp(self):
        self.model_tester = GroundingGPTModelTester(self)
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=GroundingGPTConfig, has_text_modality=False
        )

    def test_config(self):
        self.config_tester.run_common_tests()


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
        return tiny_groundinggpt_processor().feature_extractor

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
