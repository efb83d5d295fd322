"""Stand-in for transformers' `tests/exporters/test_export.py`, which its source distribution does not ship.

`ModelTesterMixin` derives from `ExportTesterMixin`; the stand-in adds no test of its own.
"""


class ExportTesterMixin:
    """Empty base of `ModelTesterMixin` (transformers' version adds the `torch.export` tests)."""
