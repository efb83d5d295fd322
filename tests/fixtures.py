"""Locating the shared parity fixtures (present in CI and the dev checkout, absent in a user's clone)."""

from pathlib import Path

import pytest


SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
GROMA_FIXTURE = SHARED / "groma_reference"
GROUNDINGGPT_FIXTURE = SHARED / "groundinggpt_reference"

requires_groma_fixture = pytest.mark.skipif(
    not (GROMA_FIXTURE / "model.safetensors").is_file(),
    reason=f"Groma parity fixture not found at {GROMA_FIXTURE} (it ships with the project's shared/ folder)",
)

requires_groundinggpt_fixture = pytest.mark.skipif(
    not (GROUNDINGGPT_FIXTURE / "model.safetensors").is_file(),
    reason=f"GroundingGPT parity fixture not found at {GROUNDINGGPT_FIXTURE} (shipped in the project's shared/ folder)",
)
