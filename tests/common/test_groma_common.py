"""transformers' common model, config and processor tests on Groma, with a tiny tester in the style of llava's.

Groma expands its prompt inside the model: the one `<image>` placeholder becomes the image tokens (16 here) and
`<region>` becomes `<rK><region>` per selected region (`max_region_num` = 4 here, all kept with
`box_score_threshold=0`), so every sequence the language model sees is `text_length - 2 + 16 + 2 * 4` tokens long.
`seq_length` below is that expanded length, which the common tests compare hidden states and attentions with. Tests
that cannot hold because of this in-model expansion are skipped with that reason; every other skip names the built-in
model that skips the same test.
"""

import unittest

import torch

from transformers_groma import (
    GromaConfig,
    GromaForConditionalGeneration,
    GromaImageProcessor,
    GromaModel,
    GromaProcessor,
)
from transformers_groma.tiny import TINY_IMAGE_SIZE, tiny_groma_config, tiny_groma_tokenizer

from .hf_common_tests import load


modeling_common = load("test_modeling_common")
configuration_common = load("test_configuration_common")
processing_common = load("test_processing_common")
GenerationTesterMixin = load("generation.test_utils").GenerationTesterMixin

BOS, IMAGE, REGION = 1, 1008, 1009
NUM_IMAGE_TOKENS, MAX_REGIONS = 16, 4


class GromaModelTester:
    def __init__(self, parent, batch_size: int = 2, text_length: int = 9, is_training: bool = True):
        self.parent = parent
        self.batch_size = batch_size
        self.text_length = text_length
        self.seq_length = text_length - 2 + NUM_IMAGE_TOKENS + 2 * MAX_REGIONS
        self.is_training = is_training
        config = self.get_config()
        self.vocab_size = config.text_config.vocab_size
        self.hidden_size = config.text_config.hidden_size
        self.num_hidden_layers = config.text_config.num_hidden_layers
        self.num_attention_heads = config.text_config.num_attention_heads
        self.image_size = TINY_IMAGE_SIZE

    def get_config(self) -> GromaConfig:
        return tiny_groma_config(max_region_num=MAX_REGIONS, box_score_threshold=0.0, nms_threshold=1.0)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        text = modeling_common.ids_tensor([self.batch_size, self.text_length], 990) + 3  # plain text ids 3-992
        text[:, 0] = BOS
        text[:, 2] = IMAGE
        text[:, 5] = REGION
        pixel_values = modeling_common.floats_tensor([self.batch_size, 3, self.image_size, self.image_size])
        return config, {
            "input_ids": text,
            "attention_mask": torch.ones_like(text),
            "pixel_values": pixel_values,
        }


class GromaModelTest(modeling_common.ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (GromaModel, GromaForConditionalGeneration)
    _is_composite = True

    def setUp(self):
        self.model_tester = GromaModelTester(self)
        self.config_tester = configuration_common.ConfigTester(self, config_class=GromaConfig, has_text_modality=False)

    def test_config(self):
        self.config_tester.run_common_tests()


class GromaProcessorTest(processing_common.ProcessorTesterMixin, unittest.TestCase):
    processor_class = GromaProcessor

    @classmethod
    def _setup_image_processor(cls):
        return GromaImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})

    @classmethod
    def _setup_tokenizer(cls):
        return tiny_groma_tokenizer()

    @classmethod
    def prepare_processor_dict(cls):
        return {"max_region_num": MAX_REGIONS}
