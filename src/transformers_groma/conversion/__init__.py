"""Conversion of the released original checkpoints (`groma-convert`)."""

from .config_conversion import convert_config
from .convert_groma_to_hf import convert_checkpoint, main
from .key_mapping import ORIGINAL_TO_NATIVE_KEY_MAPPING, convert_key, convert_state_dict


__all__ = [
    "ORIGINAL_TO_NATIVE_KEY_MAPPING",
    "convert_checkpoint",
    "convert_config",
    "convert_key",
    "convert_state_dict",
    "main",
]
