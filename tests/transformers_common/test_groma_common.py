"""transformers' common model, config and processor tests on Groma, with a tiny tester in the style of llava's.

Groma expands its prompt inside the model: the one `<image>` placeholder becomes the image tokens (16 here) and
`<region>` becomes `<rK><region>` per selected region (`max_region_num` = 4 here, all kept with
`box_score_threshold=0`), so every sequence the language model sees is `text_length - 2 + 16 + 2 * 4` tokens long.
`seq_length` below is that expanded length, which the common tests compare hidden states and attentions with. Tests
that cannot hold because of this in-model expansion are skipped with that reason; every other skip names the built-in
model that skips the same test.
"""

import logging
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
from transformers_groma.tokens import REGION_TOKEN

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
        self.vision_config = config.vision_config.to_dict()

    def get_config(self) -> GromaConfig:
        proposer = {**tiny_groma_config().proposer_config.to_dict(), "bbox_head_hidden_dim": 32}
        proposer |= {"encoder_ffn_dim": 64, "decoder_ffn_dim": 64}
        vision = tiny_groma_config().vision_config.to_dict()
        vision = {
            key: value for key, value in vision.items() if key not in ("out_features", "out_indices", "stage_names")
        }
        vision["num_hidden_layers"] = 2
        return tiny_groma_config(
            vision_config=vision,
            proposer_feature_layers=[-2, -1],  # 2 layers: 3 hidden states, the region encoder reads all of them
            max_region_num=MAX_REGIONS,
            box_score_threshold=0.0,
            nms_threshold=1.0,
            region_hidden_size=32,
            region_fuse_rounds=2,
            roi_output_size=4,
            proposer_config=proposer,
        )  # under the common tests' 1M parameters

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


EXPANSION = (
    "Groma's in-model placeholder expansion: the prompt's <image> becomes the image tokens and <region> two tokens per "
    "region inside the model, so the sequence the language model sees is longer than `input_ids`. "
)


@skip_common_tests(
    {
        "test_eager_matches_sdpa_inference": EXPANSION
        + "This test feeds `input_ids` without `pixel_values` and pads the batch with random rows, but every Groma "
        "prompt holds one <image> that the model expands from its image (a prompt with <image> and no image is "
        "rejected); eager and sdpa are compared on real prompts in tests/modeling.",
        "test_model_rope_scaling_from_config": EXPANSION
        + "This test feeds random ids from the whole vocabulary without `pixel_values`; where they hit <image> the "
        "prompt is rejected, as every prompt with <image> and no image is. Linear, dynamic and YaRN scaling run on "
        "real prompts past max_position_embeddings in tests/hardening/test_models.py.",
    }
)
@shows_future_warnings("test_bc_cache_name_forward")
class GromaModelTest(
    PromptShapedLabels,
    RegisteredInAutoTables,
    modeling_common.ModelTesterMixin,
    GenerationTesterMixin,
    unittest.TestCase,
):
    all_model_classes = (GromaModel, GromaForConditionalGeneration)
    _is_composite = True
    # as for Ovis2.5 (whose head reads the encoder before post_layernorm): by design the language-modeling loss gives
    # no gradient to the region proposer (its boxes are selected without gradient; it trains in stage 1 with the
    # detection loss), nor to DINOv2's unused mask token and final LayerNorm
    test_all_params_have_gradient = False

    auto_tables = ("groma", "GromaModel", "GromaForConditionalGeneration")

    def setUp(self):
        self.model_tester = GromaModelTester(self)
        self.config_tester = configuration_common.ConfigTester(self, config_class=GromaConfig, has_text_modality=False)

    def test_config(self):
        # ConfigTester expects transformers' default (warning) verbosity, which other tests of a run may have raised
        with transformers_verbosity(logging.WARNING):
            self.config_tester.run_common_tests()

    def test_reverse_loading_mapping(self, check_keys_were_modified=False):
        # Groma saves DINOv2's runtime names (`save_original_format=False`, see `GromaPreTrainedModel.save_pretrained`):
        # the keys are not renamed on save, as in GptOss's and Qwen3-VL-MoE's tests; loading still maps both layouts
        super().test_reverse_loading_mapping(check_keys_were_modified)


@skip_common_tests(
    {
        **dict.fromkeys(HUB_MEDIA_TESTS, HUB_MEDIA),
        "test_processor_text_has_no_visual": EXPANSION
        + "The model pairs row i of `pixel_values` with prompt i's <image>, so a batch holds either one image per "
        "prompt or text-only prompts, not a mix (this test's `images=[[], [image], [image]]`); its chat-template "
        "half also " + HUB_MEDIA + ". Both kinds of batch are tested in tests/processing/test_groma_processor.py.",
    }
)
class GromaProcessorTest(processing_common.ProcessorTesterMixin, unittest.TestCase):
    processor_class = GromaProcessor

    @classmethod
    def _setup_test_attributes(cls, processor):
        # the common tests write `image_token` once per image; a Groma prompt holds `<image>` and `<region>` together
        cls.image_token = processor.image_token + REGION_TOKEN

    @classmethod
    def _setup_image_processor(cls):
        return GromaImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})

    @classmethod
    def _setup_tokenizer(cls):
        return tiny_groma_tokenizer()

    @classmethod
    def prepare_processor_dict(cls):
        return {"max_region_num": MAX_REGIONS}
