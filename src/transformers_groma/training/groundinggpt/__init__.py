"""Instruction-stage training of GroundingGPT (`groma-train-groundinggpt`, `run_groundinggpt.main`): the original
data format, label building, batching and model setup, on top of the shared training package (arguments parsing,
record checks, mixtures, the source-grouped sampler and the Trainer subclass)."""

from .arguments import GroundingGPTDataArguments, GroundingGPTModelArguments, GroundingGPTTrainingArguments
from .dataset import (
    GroundingGPTDataCollator,
    GroundingGPTDataset,
    answer_spans,
    build_groundinggpt_mixture,
    chat_messages,
    encode_conversation,
)
from .model_setup import build_groundinggpt_model, configure_groundinggpt_trainable
from .records import GROUNDINGGPT_FEATURES, GroundingGPTAdapter, check_groundinggpt_record


__all__ = [
    "GROUNDINGGPT_FEATURES",
    "GroundingGPTAdapter",
    "GroundingGPTDataArguments",
    "GroundingGPTDataCollator",
    "GroundingGPTDataset",
    "GroundingGPTModelArguments",
    "GroundingGPTTrainingArguments",
    "answer_spans",
    "build_groundinggpt_mixture",
    "build_groundinggpt_model",
    "chat_messages",
    "check_groundinggpt_record",
    "configure_groundinggpt_trainable",
    "encode_conversation",
]
