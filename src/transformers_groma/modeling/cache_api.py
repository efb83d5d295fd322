"""The one place that knows how the installed transformers release names the KV cache.

transformers 5.25 passes the cache to `forward` as `cache=` and returns it as `outputs.cache` (the old name
`past_key_values` still works there but warns); earlier 5.x releases use `past_key_values` for both. The models
declare a `cache` argument, take the cache under the installed release's name, and return it under that name, so
`generate` finds it and no deprecation warning is printed on any supported release.
"""

import functools
import inspect
from collections.abc import Callable

from transformers import GenerationMixin
from transformers.utils.deprecation import deprecate_kwarg


# The keyword `GenerationMixin` passes the cache under, and the field name of the cache in transformers' outputs.
CACHE_KWARG: str = (
    "cache"
    if "cache" in inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters
    else "past_key_values"
)


def accepts_release_cache_name(forward: Callable) -> Callable:
    """Decorate a `forward` that declares `cache`: callers may pass the cache under the installed release's name.

    Where the release itself says `cache`, the old `past_key_values` keeps working with transformers' own deprecation
    warning (as for its built-in models); where it says `past_key_values`, that name is renamed silently.
    """
    if CACHE_KWARG == "cache":
        return deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")(forward)

    @functools.wraps(forward)
    def wrapper(*args, **kwargs):
        if "past_key_values" in kwargs:
            if kwargs.get("cache") is not None:
                raise ValueError("Pass the KV cache once, as `cache` or as `past_key_values`, not both.")
            kwargs["cache"] = kwargs.pop("past_key_values")
        return forward(*args, **kwargs)

    # `generate` checks its keyword arguments against the signature: show the release's name there too
    signature = inspect.signature(forward)
    parameters = list(signature.parameters.values())
    old_name = inspect.Parameter("past_key_values", inspect.Parameter.KEYWORD_ONLY, default=None)
    parameters.insert(len(parameters) - 1, old_name)  # before **kwargs
    wrapper.__signature__ = signature.replace(parameters=parameters)
    return wrapper


def cache_kwargs(cache: object) -> dict[str, object]:
    """`{name: cache}` with the installed release's name, to pass a cache to transformers' models or outputs."""
    return {CACHE_KWARG: cache}


def output_cache(outputs: object) -> object:
    """The cache a transformers model output carries (None when it has none)."""
    return getattr(outputs, CACHE_KWARG, None)


__all__ = ["CACHE_KWARG", "accepts_release_cache_name", "cache_kwargs", "output_cache"]
