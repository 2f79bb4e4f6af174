"""bench.data.release: the `dir` source on a tiny generated layout, its archives, the real sample,
the release's quirks, and every kind of bad input. The tests that decode run on both paths
(`data_path`: tf.data with TensorFlow's decoders, arrays with Pillow's)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from bench.data import DataError, load_pets

pytestmark = pytest.mark.usefixtures("private_cache")


def _names(root: Path, split_list: str = "trainval.txt") -> list[str]:
    return [line.split()[0] for line in (root / "annotations" / split_list).read_text().splitlines()]


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in ds]
    return np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs])


def test_dir_loads_the_layout_preprocessed_in_list_order(data_path, release):
    splits = data_path.load(f"dir:{release}", image_size=32)

    images, masks = _arrays(splits.train)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.float32
    assert masks.shape == (4, 32, 32, 1) and masks.dtype == np.uint8
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert set(np.unique(masks)) == {0, 1, 2}
    first = release / "annotations" / "trimaps" / f"{_names(release)[0]}.png"
    expected = tf.image.resize(np.asarray(Image.open(first))[..., None], (32, 32), method="nearest") - 1
    np.testing.assert_array_equal(masks[0], expected.numpy())
    assert len(list(splits.test)) == 3


def test_dir_provenance_is_content_based(release, tmp_path):
    provenance = load_pets(f"dir:{release}", image_size=32).provenance
    assert (provenance.source, provenance.synthetic) == ("dir", False)
    assert (provenance.train_size, provenance.test_size) == (4, 3)
    assert provenance.location == str(release.resolve())
    json.dumps(provenance.as_dict())

    moved = tmp_path / "elsewhere"
    shutil.copytree(release, moved)
    assert load_pets(f"dir:{moved}", image_size=32).provenance.fingerprint == provenance.fingerprint

    trimap = moved / "annotations" / "trimaps" / f"{_names(moved)[0]}.png"
    pixels = np.asarray(Image.open(trimap)).copy()
    pixels[0, 0] = 3 if pixels[0, 0] != 3 else 2  # one relabelled pixel
    Image.fromarray(pixels).save(trimap)
    assert load_pets(f"dir:{moved}", image_size=32).provenance.fingerprint != provenance.fingerprint


def test_release_quirks_decode_like_pil_rgb(data_path, release):
    """As in the release: a GIF and an RGBA PNG under .jpg names, and a grayscale JPEG."""
    names = _names(release)
    rng = np.random.default_rng(1)
    quirks = {}
    for name, kind in zip(names, ("GIF", "RGBA", "L"), strict=False):
        path = release / "images" / f"{name}.jpg"
        size = Image.open(path).size
        # Smooth content: JPEG decoders (PIL's, TensorFlow's) then agree to a level or two.
        yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
        pixels = np.stack([xx * 255 // size[0], yy * 255 // size[1], (xx + yy) % 256,
                           rng.integers(0, 256, xx.shape)], axis=-1).astype(np.uint8)
        if kind == "GIF":
            image = Image.fromarray(pixels[..., :3]).quantize(64)
            image.save(path, format="GIF")
        elif kind == "RGBA":
            image = Image.fromarray(pixels, "RGBA")
            image.save(path, format="PNG")
        else:
            image = Image.fromarray(pixels[..., 0], "L")
            image.save(path, format="JPEG", quality=95)
        quirks[name] = np.asarray(Image.open(path).convert("RGB"))

    splits = data_path.load(f"dir:{release}", image_size=16)

    for (image, _), name in zip(splits.train, names, strict=False):
        if name in quirks:
            expected = tf.image.resize(quirks[name], (16, 16)) / 255.0
            np.testing.assert_allclose(np.asarray(image), expected.numpy(), atol=3 / 255)


def test_dir_reads_the_two_release_archives_once(release, tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    with tarfile.open(archives / "images.tar.gz", "w:gz") as tar:
        tar.add(release / "images", arcname="images")
    # The real annotations.tar.gz is a plain tar despite its name.
    with tarfile.open(archives / "annotations.tar.gz", "w") as tar:
        tar.add(release / "annotations", arcname="annotations")

    from_archives = load_pets(f"dir:{archives}", image_size=32).provenance
    from_dir = load_pets(f"dir:{release}", image_size=32).provenance
    assert from_archives.fingerprint == from_dir.fingerprint
    extracted = Path(from_archives.location)
    assert extracted.is_relative_to(tmp_path / "cache")
    mtime = extracted.stat().st_mtime_ns
    assert load_pets(f"dir:{archives}", image_size=32).provenance.location == str(extracted)
    assert extracted.stat().st_mtime_ns == mtime  # reused, not extracted again


def test_corrupt_archive_is_named_and_leaves_nothing(release, tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    with tarfile.open(archives / "images.tar.gz", "w:gz") as tar:
        tar.add(release / "images", arcname="images")
    data = (archives / "images.tar.gz").read_bytes()
    (archives / "images.tar.gz").write_bytes(data[: len(data) // 2])  # truncated download
    with tarfile.open(archives / "annotations.tar.gz", "w:gz") as tar:
        tar.add(release / "annotations", arcname="annotations")

    with pytest.raises(DataError, match=r"images\.tar\.gz: corrupt or unreadable archive"):
        load_pets(f"dir:{archives}")
    leftovers = tmp_path / "cache" / "pets-release"
    assert not leftovers.exists() or not any(leftovers.iterdir())


def test_one_archive_missing(tmp_path, release):
    archives = tmp_path / "archives"
    archives.mkdir()
    with tarfile.open(archives / "images.tar.gz", "w:gz") as tar:
        tar.add(release / "images", arcname="images")
    with pytest.raises(DataError, match=r"annotations\.tar\.gz: missing"):
        load_pets(f"dir:{archives}")


def test_not_a_release(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither the release layout"):
        load_pets(f"dir:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="not a directory"):
        load_pets(f"dir:{tmp_path / 'absent'}")


# === Bad input: each names the file and the problem ===


def _trimap_path(root: Path, index: int = 0) -> Path:
    return root / "annotations" / "trimaps" / f"{_names(root)[index]}.png"


def test_trimap_value_outside_1_2_3(data_path, release):
    trimap = _trimap_path(release, 1)
    pixels = np.asarray(Image.open(trimap)).copy()
    pixels[2, 2] = 0
    pixels[3, 3] = 7
    Image.fromarray(pixels).save(trimap)
    with pytest.raises(DataError, match=rf"{trimap.name}: trimap values \[0, 7\] outside \{{1, 2, 3\}}"):
        data_path.load(f"dir:{release}")


def test_image_and_trimap_of_different_sizes(release):
    trimap = _trimap_path(release)
    Image.open(trimap).crop((0, 0, 20, 10)).save(trimap)
    with pytest.raises(DataError, match=rf"{trimap.name}: trimap is 20x10 but its image .* is \d+x\d+"):
        load_pets(f"dir:{release}")


def test_trimap_that_is_not_single_channel(release):
    trimap = _trimap_path(release)
    Image.open(trimap).convert("RGB").save(trimap)
    with pytest.raises(DataError, match=rf"{trimap.name}: trimap must be an 8-bit single-channel PNG"):
        load_pets(f"dir:{release}")


@pytest.mark.parametrize("missing", ["image", "trimap"])
def test_list_line_with_no_image_or_no_trimap(release, missing):
    name = _names(release, "test.txt")[1]
    image, trimap = release / "images" / f"{name}.jpg", release / "annotations" / "trimaps" / f"{name}.png"
    path = image if missing == "image" else trimap
    path.unlink()
    problem = rf"test\.txt:2: '{name}' has no {missing} \(.*{path.name} not found\)"
    with pytest.raises(DataError, match=problem):
        load_pets(f"dir:{release}")


def test_empty_split(release):
    (release / "annotations" / "test.txt").write_text("\n# nothing here\n")
    with pytest.raises(DataError, match=r"test\.txt: the test split is empty"):
        load_pets(f"dir:{release}")


def test_missing_split_list(release):
    (release / "annotations" / "trainval.txt").unlink()
    with pytest.raises(DataError, match=r"trainval\.txt: train split list not found"):
        load_pets(f"dir:{release}")


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff"])
def test_unreadable_image(release, content):
    image = release / "images" / f"{_names(release)[2]}.jpg"
    image.write_bytes(content)
    with pytest.raises(DataError, match=rf"{image.name}: unreadable image"):
        load_pets(f"dir:{release}")


def test_truncated_image(data_path, release):
    """An interrupted copy: the header reads, the pixels do not. Caught at load, not mid-epoch."""
    image = release / "images" / f"{_names(release, 'test.txt')[0]}.jpg"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{image.name}: corrupt JPEG data, cannot be decoded"):
        data_path.load(f"dir:{release}")


def test_same_name_in_both_splits(release):
    leaked = _names(release)[0]
    with open(release / "annotations" / "test.txt", "a") as f:
        f.write(f"{leaked} 1 1 1\n")
    with pytest.raises(DataError, match=rf"test\.txt:4: '{leaked}' is in both splits"):
        load_pets(f"dir:{release}")


# === The real release sample (../shared), when present ===


def test_real_sample_loads(data_path, pet_sample_dir):
    splits = data_path.load(f"dir:{pet_sample_dir}", image_size=64)
    provenance = splits.provenance
    assert (provenance.source, provenance.synthetic) == ("dir", False)
    assert (provenance.train_size, provenance.test_size) == (112, 98)
    images, masks = _arrays(splits.test.take(16))
    assert images.shape == (16, 64, 64, 3) and images.min() >= 0.0 and images.max() <= 1.0
    assert set(np.unique(masks)) == {0, 1, 2}
    # Pets are a good part of each photo, the border a thin band.
    fractions = np.bincount(masks.ravel(), minlength=3) / masks.size
    assert 0.1 < fractions[0] < 0.6 and 0.02 < fractions[2] < 0.3


# === List entries, list files and files that cannot be read ===


@pytest.mark.parametrize("entry", ["../../../outside", "ABSOLUTE"])
def test_list_entry_outside_the_dataset_folder(tmp_path, write_tiny_release, entry):
    root = write_tiny_release(tmp_path / "a" / "b" / "pets")
    if entry == "ABSOLUTE":
        entry = str(tmp_path / "a" / "outside")
    # A valid pair where the entry points, so only the refusal can stop the load.
    name = _names(root)[0]
    image = root / "images" / entry
    trimap = root / "annotations" / "trimaps" / entry
    for source, target in ((root / "images" / f"{name}.jpg", f"{image}.jpg"),
                           (root / "annotations" / "trimaps" / f"{name}.png", f"{trimap}.png")):
        shutil.copy(source, target)
    with open(root / "annotations" / "test.txt", "a") as f:
        f.write(f"{entry} 1 1 1\n")
    problem = rf"test\.txt:4: entry '{re.escape(entry)}' would read .* outside the dataset folder"
    with pytest.raises(DataError, match=problem):
        load_pets(f"dir:{root}")


def test_list_file_that_is_not_utf8(release):
    test_list = release / "annotations" / "test.txt"
    test_list.write_bytes(test_list.read_bytes() + "Ragdoll_caf\u00e9 1 1 1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"test\.txt:4: not UTF-8 text \(byte 0xe9\); .*re-extract"):
        load_pets(f"dir:{release}")


@pytest.mark.parametrize("how", ["permission", "directory"])
def test_image_that_cannot_be_read(release, monkeypatch, how):
    image = release / "images" / f"{_names(release, 'test.txt')[1]}.jpg"
    if how == "directory":
        image.unlink()
        image.mkdir()
        problem = rf"test\.txt:2: the image of '.*', .*{image.name}, is not a regular file"
    else:  # the tests run as root, where chmod 000 reads anyway
        read_bytes = Path.read_bytes

        def refuse(path: Path) -> bytes:
            if path == image:
                raise PermissionError(13, "Permission denied", str(path))
            return read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", refuse)
        problem = rf"{image.name}: cannot read it \(Permission denied\); .*test\.txt:2"
    with pytest.raises(DataError, match=problem):
        load_pets(f"dir:{release}")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` gray pixels, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["image", "trimap"])
@pytest.mark.parametrize(
    ("side", "claim"),
    [(40000, "a huge {kind} .*Image size"),  # Pillow refuses to open it
     (8000, r"8000x8000 pixels, over the 50,000,000")],  # Pillow would, our limit is lower
    ids=["pillow-limit", "loader-limit"],
)
def test_decompression_bomb_is_refused_before_decoding(release, kind, side, claim):
    name = _names(release)[1]
    path = (release / "images" / f"{name}.jpg" if kind == "image"
            else release / "annotations" / "trimaps" / f"{name}.png")
    path.write_bytes(_png_header_only(side, side))
    problem = rf"{path.name}: its header claims {claim.format(kind=kind)}.*trainval\.txt:2"
    with pytest.raises(DataError, match=problem):
        load_pets(f"dir:{release}")
