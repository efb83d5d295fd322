"""The floating-point dtype a module computes in, also once bitsandbytes has quantized its weights."""

from torch import dtype, nn


def compute_dtype(module: nn.Module) -> dtype:
    """The dtype of the first floating-point parameter of `module`: the dtype to cast its inputs to.

    A bitsandbytes-quantized `Linear` holds int8 (8-bit) or uint8 (4-bit) weights but keeps its bias in the load
    dtype, so this is the dtype the layer computes in, where `module.weight.dtype` would be an integer type.

    Raises:
        ValueError: if `module` has no floating-point parameter.
    """
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    raise ValueError(f"{type(module).__name__} has no floating-point parameter to take the compute dtype from.")
