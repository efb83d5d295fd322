"""Groma modeling: the config's models and their building blocks."""

from .modeling_groma import GromaForConditionalGeneration, GromaForRegionProposal, GromaModel, GromaPreTrainedModel
from .outputs import (
    GromaCausalLMOutputWithPast,
    GromaGenerateBeamOutput,
    GromaGenerateOutput,
    GromaModelOutputWithPast,
    GromaRegionProposalOutput,
    GromaRegionProposerOutput,
)
from .region_encoder import GromaRegionEncoder
from .region_proposer import GromaRegionProposer
from .region_selection import select_regions


__all__ = [
    "GromaCausalLMOutputWithPast",
    "GromaForConditionalGeneration",
    "GromaForRegionProposal",
    "GromaGenerateBeamOutput",
    "GromaGenerateOutput",
    "GromaModel",
    "GromaModelOutputWithPast",
    "GromaPreTrainedModel",
    "GromaRegionEncoder",
    "GromaRegionProposalOutput",
    "GromaRegionProposer",
    "GromaRegionProposerOutput",
    "select_regions",
]
