"""Stand-in for transformers' `tests/utils/test_configuration_utils.py`, which its source distribution does not ship.

`ConfigTester.check_config_arguments_init` reads `config_common_kwargs` (it returns early for composite configs such
as Groma's and GroundingGPT's): common `PreTrainedConfig` arguments with non-default values.
"""

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "tie_word_embeddings": False,
    "is_decoder": True,
    "add_cross_attention": True,
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
    "bos_token_id": 151,
    "pad_token_id": 79,
    "eos_token_id": 72,
    "sep_token_id": 133,
    "decoder_start_token_id": 13,
}
