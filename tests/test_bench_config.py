"""Profiles and run identity (bench.config)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.config import RunConfig, steps_per_epoch, validation_steps
from bench.profiles import PROFILES


def _cfg(**profile_overrides: object) -> RunConfig:
    profile = dataclasses.replace(PROFILES["smoke"], **profile_overrides)
    return RunConfig("unet", "mobilenetv2", 0, profile, "synthetic", "abc123")


def test_profiles_are_frozen_and_named() -> None:
    assert set(PROFILES) == {"smoke", "quick", "full"}
    for name, profile in PROFILES.items():
        assert profile.name == name
        assert profile.image_size % 32 == 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            profile.epochs = 99  # type: ignore[misc]


def test_full_profile_is_the_chapters_protocol() -> None:
    full = PROFILES["full"]
    assert (full.image_size, full.batch_size, full.epochs, full.steps_per_epoch) == (128, 64, 20, None)
    assert full.seeds == (0, 1, 2) and full.weights == "imagenet"
    assert steps_per_epoch(full, 3680) == 3680 // 64
    assert validation_steps(full, 3669) == 3669 // 64 // 5


def test_smoke_profile_is_synthetic_and_tiny() -> None:
    smoke = PROFILES["smoke"]
    assert smoke.data == "synthetic" and smoke.image_size <= 64 and smoke.epochs * smoke.steps_per_epoch <= 4


def test_run_id_is_a_stable_hash_of_the_whole_config() -> None:
    a, b = _cfg(), _cfg()
    assert a.run_id == b.run_id and a.run_id.startswith("unet-mobilenetv2-s0-")
    assert _cfg(epochs=2).run_id != a.run_id
    assert dataclasses.replace(a, seed=1).run_id != a.run_id
    assert dataclasses.replace(a, dataset_fingerprint="other").run_id != a.run_id
    # The data's location is not part of the identity: same fingerprint elsewhere, same run.
    assert dataclasses.replace(a, data="dir:/elsewhere").run_id == a.run_id


def test_config_round_trips_through_json() -> None:
    a = _cfg(seeds=(0, 1))
    b = RunConfig.from_json(a.to_json())
    assert b == a and b.run_id == a.run_id
    flat = a.flat()
    assert flat["profile.timing.min_calls"] == a.profile.timing.min_calls
    assert flat["profile.seeds"] == "0,1"
