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


# === A tiny release folder, for the data tests ===


@pytest.fixture
def write_tiny_release():
    """``write(root) -> root``: a small synthetic dataset in the release layout at ``root``."""
    from bench.data.synthetic import SyntheticConfig, write_release

    def write(root: Path) -> Path:
        write_release(root, SyntheticConfig(seed=0, num_train=4, num_test=3, min_size=40, max_size=64))
        return root

    return write


@pytest.fixture
def release(tmp_path: Path, write_tiny_release) -> Path:
    return write_tiny_release(tmp_path / "pets")


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of the test's own: one test's verification record never answers for another's files."""
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
