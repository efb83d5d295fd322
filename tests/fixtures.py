"""Locating the shared parity fixtures (present in CI and the dev checkout, absent in a user's clone).

Tests needing something a user's clone may lack (../shared, the installed console scripts) skip without it, except
under `CI=true`, where they fail: CI must run them.
"""

import os
from pathlib import Path

import pytest


SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
GROMA_FIXTURE = SHARED / "groma_reference"
GROUNDINGGPT_FIXTURE = SHARED / "groundinggpt_reference"

IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_unless_ci(reason: str) -> None:
    """Skip the running test for `reason`, or fail it under `CI=true`."""
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true)", pytrace=False)
    pytest.skip(reason)


requires_groma_fixture = pytest.mark.skipif(
    not IN_CI and not (GROMA_FIXTURE / "model.safetensors").is_file(),
    reason=f"Groma parity fixture not found at {GROMA_FIXTURE} (it ships with the project's shared/ folder)",
)

requires_groundinggpt_fixture = pytest.mark.skipif(
    not IN_CI and not (GROUNDINGGPT_FIXTURE / "model.safetensors").is_file(),
    reason=f"GroundingGPT parity fixture not found at {GROUNDINGGPT_FIXTURE} (shipped in the project's shared/ folder)",
)
