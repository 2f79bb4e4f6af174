"""Shared fixtures. The real Oxford-IIIT Pet sample lives beside the repository (../shared) on the
developers' machines and in CI, never in a user's checkout: tests that need it skip without it."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "oxford-iiit-pet-sample"


@pytest.fixture(scope="session")
def pet_sample_dir() -> Path:
    """The real 210-image sample in the release layout (skips where ../shared is absent)."""
    if not (SHARED_SAMPLE / "annotations" / "trainval.txt").is_file():
        pytest.skip(f"real Oxford-IIIT Pet sample not found at {SHARED_SAMPLE}")
    return SHARED_SAMPLE
