"""bench.data.synthetic: deterministic pet-like scenes whose trimaps behave like the real ones."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.measure import perimeter

from bench.data import synthetic
from bench.data.synthetic import SyntheticConfig, ensure_synthetic, load_synthetic, write_release

TINY = SyntheticConfig(seed=0, num_train=4, num_test=3, min_size=40, max_size=64)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path):
    write_release(tmp_path / "a", TINY)
    write_release(tmp_path / "b", TINY)
    write_release(tmp_path / "c", SyntheticConfig(seed=1, num_train=4, num_test=3, min_size=40, max_size=64))

    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert len(a) == 2 * 7 + 2
    assert all(a[name] != c.get(name) for name in a if name.startswith("images/"))


def test_a_scene_does_not_depend_on_how_many_are_generated(tmp_path):
    write_release(tmp_path / "few", SyntheticConfig(num_train=2, num_test=1, min_size=40, max_size=64))
    write_release(tmp_path / "more", SyntheticConfig(num_train=5, num_test=1, min_size=40, max_size=64))
    few, more = _files(tmp_path / "few"), _files(tmp_path / "more")
    train = [line.split()[0] for line in few["annotations/trainval.txt"].decode().splitlines()]
    for name in train:
        assert more[f"images/{name}.jpg"] == few[f"images/{name}.jpg"]
        assert more[f"annotations/trimaps/{name}.png"] == few[f"annotations/trimaps/{name}.png"]


def test_release_layout_and_list_lines(tmp_path):
    write_release(tmp_path, TINY)
    train = (tmp_path / "annotations" / "trainval.txt").read_text().splitlines()
    test = (tmp_path / "annotations" / "test.txt").read_text().splitlines()
    assert (len(train), len(test)) == (4, 3)
    for line in train + test:
        name, class_id, species, breed = line.split()
        assert (tmp_path / "images" / f"{name}.jpg").is_file()
        assert (tmp_path / "annotations" / "trimaps" / f"{name}.png").is_file()
        assert (name.startswith("synthetic_cat"), class_id, species) in {(True, "1", "1"), (False, "2", "2")}
    assert not {line.split()[0] for line in train} & {line.split()[0] for line in test}


def test_trimaps_have_pet_background_and_a_thin_border_band_like_the_real_ones():
    widths = []
    for i in range(16):
        rng = np.random.default_rng((3, 0, i))
        image, trimap = synthetic.render_scene(rng, 160, 224, species=("cat", "dog")[i % 2])
        assert image.shape == (160, 224, 3) and image.dtype == np.uint8
        assert trimap.shape == (160, 224) and set(np.unique(trimap)) == {1, 2, 3}
        pet, background, border = (trimap == 1), (trimap == 2), (trimap == 3)
        # The band separates pet from background: they never touch.
        assert not (pet[:, 1:] & background[:, :-1]).any() and not (pet[:, :-1] & background[:, 1:]).any()
        assert not (pet[1:] & background[:-1]).any() and not (pet[:-1] & background[1:]).any()
        assert 0.03 < pet.mean() < 0.7
        # Band width: area over the mean length of its two edges, relative to the long side.
        length = (perimeter(pet) + perimeter(~background)) / 2
        widths.append(border.sum() / length / 224)
        # The pet does not look like its background: its mean colour differs.
        assert np.abs(image[pet].mean(0) - image[background].mean(0)).max() > 3
    # Real trimaps: median 0.030 of the long side (10th-90th percentile 0.017-0.042).
    assert 0.02 < np.median(widths) < 0.045
    assert min(widths) > 0.01 and max(widths) < 0.07


def test_set_is_generated_once_atomically_and_reused(tmp_path, monkeypatch):
    calls = []
    real_write = synthetic.write_release
    def counted(root, config):
        calls.append(root)
        real_write(root, config)

    monkeypatch.setattr(synthetic, "write_release", counted)

    first = ensure_synthetic(TINY, tmp_path)
    second = ensure_synthetic(TINY, tmp_path)

    assert first == second == tmp_path / TINY.key
    assert len(calls) == 1 and calls[0] != first  # written elsewhere, then renamed into place
    assert sorted(p.name for p in tmp_path.iterdir()) == [TINY.key]


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    real_render = synthetic.render_scene
    count = [0]

    def failing(*args, **kwargs):
        count[0] += 1
        if count[0] == 3:
            raise KeyboardInterrupt  # even an interrupt leaves no half-written set
        return real_render(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(TINY, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_synthetic_says_it_is_synthetic(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="bench.data"):
        splits = load_synthetic(TINY, image_size=32)
    provenance = splits.provenance
    assert (provenance.source, provenance.synthetic) == ("synthetic", True)
    assert (provenance.train_size, provenance.test_size) == (4, 3)
    assert Path(provenance.location) == tmp_path / "pets-synthetic" / TINY.key
    assert provenance.describe().startswith("SYNTHETIC")
    assert "SYNTHETIC" in caplog.text
    x, y = next(iter(splits.train))
    assert x.shape == (32, 32, 3) and y.shape == (32, 32, 1)


@pytest.mark.parametrize(
    "kwargs", [{"num_train": 0}, {"num_test": 0}, {"min_size": 16}, {"min_size": 100, "max_size": 90}]
)
def test_config_is_checked(kwargs):
    with pytest.raises(ValueError):
        SyntheticConfig(**kwargs)


def test_saved_files_are_what_the_loader_expects(tmp_path):
    write_release(tmp_path, TINY)
    trimap = next((tmp_path / "annotations" / "trimaps").iterdir())
    with Image.open(trimap) as t:
        assert (t.format, t.mode) == ("PNG", "L")
    with Image.open(tmp_path / "images" / f"{trimap.stem}.jpg") as i:
        assert (i.format, i.mode) == ("JPEG", "RGB") and i.size == t.size


def test_a_damaged_synthetic_cache_is_named_and_generated_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    root = ensure_synthetic(TINY)
    whole = _files(root)
    image = sorted((root / "images").iterdir())[1]
    image.write_bytes(image.read_bytes()[:200])  # cut short, as a full disk or a kill might
    with caplog.at_level(logging.WARNING, logger="bench.data.synthetic"):
        splits = load_synthetic(TINY, image_size=32)
    said = [r.getMessage() for r in caplog.records if "cache is damaged" in r.getMessage()]
    assert len(said) == 1 and image.name in said[0] and "generating it again" in said[0], said
    assert "re-download" not in said[0]  # the advice for a real release does not apply
    assert _files(root) == whole and splits.provenance.synthetic
    assert not list(root.parent.glob(".*damaged*"))
