"""Stand-in for transformers' `tests/generation/test_utils.py`, which its source distribution does not ship.

`test_modeling_common` imports `GenerationTesterMixin` from it only to check that the tester of a model that can
generate inherits it. This package's generation tests, against a full-forward greedy reference, live in
`tests/test_generation_contract.py` (continuing from a returned cache, `inputs_embeds`, dict outputs with and without
a cache, assisted and prompt-lookup decoding, left padding, static cache, compile).
"""


class GenerationTesterMixin:
    """Marks a tester whose model's `generate` is covered by `tests/test_generation_contract.py`."""
