"""The LLM both Groma and GroundingGPT are built on: Vicuna-7B v1.5 (a Llama-2-7B finetune)."""

VICUNA_7B_BASE_VOCAB = 32000


def vicuna_7b_config_kwargs(vocab_size: int, pad_token_id: int) -> dict:
    """`LlamaConfig` kwargs of Vicuna-7B v1.5 with the model's extended vocabulary and its pad id."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": pad_token_id,
    }
