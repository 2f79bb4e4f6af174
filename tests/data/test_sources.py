"""bench.data.sources: parsing source strings and the auto fallback order."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from bench.data import DataError, Provenance, Source, load_pets, parse_source, sources, tfds_source
from bench.data.synthetic import SyntheticConfig, write_release

TINY = functools.partial(SyntheticConfig, num_train=3, num_test=2, min_size=40, max_size=48)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Own cache, no configured release, a tiny synthetic default. (Auto calls pass an empty TFDS
    data_dir: TFDS reads $TFDS_DATA_DIR once, at import.)"""
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEGBENCH_PETS_DIR", raising=False)
    monkeypatch.setattr(sources, "SyntheticConfig", TINY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", Source("auto")),
        ("tfds", Source("tfds")),
        ("synthetic", Source("synthetic")),
        ("dir:/data/pets", Source("dir", Path("/data/pets"))),
        (" dir:relative/pets ", Source("dir", Path("relative/pets"))),
    ],
)
def test_parse_source(text, expected):
    parsed = parse_source(text)
    assert parsed == expected
    assert parse_source(str(parsed)) == parsed  # round-trips, so the parsed form can be passed on


@pytest.mark.parametrize("text", ["", "TFDS", "dir:", "dir", "directory:/x", "synthetic:3", "kaggle"])
def test_unknown_source_names_the_valid_forms(text):
    with pytest.raises(ValueError, match=r"'auto', 'tfds', 'dir:PATH', 'synthetic'"):
        parse_source(text)


def test_load_pets_checks_its_arguments():
    with pytest.raises(ValueError, match="valid forms"):
        load_pets("nope")
    with pytest.raises(ValueError, match="image_size"):
        load_pets("synthetic", image_size=0)


def test_synthetic_follows_the_seed(tmp_path):
    a = load_pets("synthetic", seed=1, image_size=16).provenance
    b = load_pets("synthetic", seed=1, image_size=16).provenance
    c = load_pets("synthetic", seed=2, image_size=16).provenance
    assert a == b and a.synthetic and a.fingerprint != c.fingerprint
    assert Path(a.location).is_relative_to(tmp_path / "cache")


def test_auto_without_anything_falls_back_to_synthetic(tmp_path):
    provenance = load_pets("auto", image_size=16, seed=4, data_dir=tmp_path / "tfds").provenance
    assert (provenance.source, provenance.synthetic) == ("synthetic", True)
    assert provenance == load_pets("synthetic", image_size=16, seed=4).provenance


def test_auto_with_download_offline_still_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "probe", lambda host: "offline")
    assert load_pets("auto", image_size=16, download=True, data_dir=tmp_path / "tfds").provenance.synthetic


def test_auto_prefers_the_configured_release(tmp_path, monkeypatch):
    release = tmp_path / "release"
    write_release(release, TINY(seed=9))
    monkeypatch.setenv("SEGBENCH_PETS_DIR", str(release))
    provenance = load_pets("auto", image_size=16, data_dir=tmp_path / "tfds").provenance
    assert (provenance.source, provenance.synthetic, provenance.location) == ("dir", False, str(release))


def test_auto_does_not_hide_a_broken_release(tmp_path, monkeypatch):
    release = tmp_path / "release"
    write_release(release, TINY())
    (release / "annotations" / "test.txt").write_text("")
    monkeypatch.setenv("SEGBENCH_PETS_DIR", str(release))
    with pytest.raises(DataError, match="test split is empty"):
        load_pets("auto", data_dir=tmp_path / "tfds")
    monkeypatch.setenv("SEGBENCH_PETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(DataError, match=r"\$SEGBENCH_PETS_DIR=.*absent: no such directory"):
        load_pets("auto", data_dir=tmp_path / "tfds")


def test_provenance_record_is_json_and_frozen():
    provenance = Provenance("dir", "/x", 3, 2, "ab" * 32, False)
    assert json.loads(json.dumps(provenance.as_dict())) == {
        "source": "dir", "location": "/x", "train_size": 3, "test_size": 2,
        "fingerprint": "ab" * 32, "synthetic": False,
    }
    with pytest.raises(AttributeError):
        provenance.source = "tfds"  # type: ignore[misc]
    assert not provenance.describe().startswith("SYNTHETIC")
