"""Profiles and run identity (bench.config.run_config)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.config.profiles import PROFILES
from bench.config.run_config import RunConfig, steps_per_epoch


def _cfg(**profile_overrides: object) -> RunConfig:
    profile = dataclasses.replace(PROFILES["smoke"], **profile_overrides)
    return RunConfig("unet", "mobilenetv2", 0, profile, "synthetic", "abc123")


def test_profiles_are_frozen_and_named() -> None:
    assert set(PROFILES) == {"smoke", "quick", "costs", "full"}
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
    # Trained to its plateau within the chapter's 20 epochs, validated on a tenth of trainval.
    assert (full.val_images, full.patience, full.trained_models) == (368, 5, ("*",))


def test_smoke_profile_is_synthetic_and_tiny() -> None:
    smoke = PROFILES["smoke"]
    assert smoke.data == "synthetic" and smoke.image_size <= 64 and smoke.epochs * smoke.steps_per_epoch <= 4


def test_run_id_is_a_stable_hash_of_the_whole_config() -> None:
    a, b = _cfg(), _cfg()
    assert a.run_id == b.run_id and a.run_id.startswith("unet-mobilenetv2-s0-")
    assert _cfg(epochs=a.profile.epochs + 1).run_id != a.run_id
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


def test_the_sweeps_seed_list_is_not_part_of_a_runs_identity() -> None:
    # Widening --seeds 0 to --seeds 0-1 must find the finished seed-0 run, not redo it.
    assert _cfg(seeds=(0,)).run_id == _cfg(seeds=(0, 1)).run_id == _cfg(seeds=tuple(range(50))).run_id
    assert _cfg(jobs=1).run_id == _cfg(jobs=2).run_id
    assert _cfg(description="renamed").run_id == _cfg().run_id


def test_context_is_what_every_ranked_run_shares() -> None:
    a = _cfg()
    assert a.context_id == dataclasses.replace(a, architecture="fpn", seed=3, replicas=2).context_id
    assert a.context_id == _cfg(seeds=(0, 1), jobs=1).context_id
    assert a.context_id != dataclasses.replace(a, dataset_fingerprint="real photos").context_id
    assert a.context_id != _cfg(epochs=5).context_id != _cfg(image_size=96).context_id
    assert a.context_id != dataclasses.replace(a, harness_version=a.harness_version + 1).context_id


def test_profiles_are_checked_in_one_place() -> None:
    from bench.config.profiles import ProfileError

    for changes, message in [
        ({"image_size": 100}, "--image-size must be a multiple of 32"), ({"epochs": 0}, "--epochs must be a positive"),
        ({"seeds": ()}, "at least one seed"), ({"seeds": tuple(range(101))}, "at most 100"),
        ({"weights": "random"}, "--weights must be"), ({"precise_bn_batches": -1}, "--precise-bn-batches"),
    ]:
        with pytest.raises(ProfileError, match=message):
            PROFILES["quick"].override(**changes)


def test_a_random_init_fallback_is_redone_once_the_weights_can_be_had(tmp_path, monkeypatch) -> None:
    from bench.measure.build import imagenet_weights_available
    from bench.plan.matrix import status
    from bench.store.record import new_record
    from bench.store.results import ResultsStore

    monkeypatch.setenv("SEGMODELS_OFFLINE", "1")
    cfg = RunConfig("unet", "mobilenetv2", 0, PROFILES["quick"], "synthetic", "abc123")
    weights_file = tmp_path / "keras" / "mobilenet_v2_no_top.h5"
    record = new_record(cfg)
    record.update(status="ok", weights=(
        "none (imagenet unavailable: ImageNet weights for backbone 'mobilenetv2' are not cached at "
        f"{weights_file} and storage.googleapis.com cannot be reached (offline?))"
    ))
    store = ResultsStore(tmp_path / "results")
    staging = store.staging_dir(record["run_id"])
    store.commit_run(staging, record)
    still_offline = status([cfg], store, weights_available=imagenet_weights_available)
    assert [c.run_id for c in still_offline.done] == [cfg.run_id] and not still_offline.retried_weights
    weights_file.parent.mkdir()
    weights_file.write_bytes(b"weights")  # now in the Keras cache
    now = status([cfg], store, weights_available=imagenet_weights_available)
    assert [c.run_id for c in now.todo] == [cfg.run_id] == [c.run_id for c in now.retried_weights]
    # A run that really had ImageNet weights, and a classical one, are never redone for this.
    store.commit_run(store.staging_dir(record["run_id"]), {**record, "weights": "imagenet"})
    assert status([cfg], store, weights_available=imagenet_weights_available).done
