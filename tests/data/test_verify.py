"""bench.data.verify: every file decoded once, as the pipeline decodes it, and remembered by the
dataset's fingerprint; corrupt and cut-short files are named before any training. Each test runs on
both paths (`data_path`: tf.data with TensorFlow's decoders, arrays with Pillow's): the same verdicts."""

from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import DataError, verify
from bench.data.decoders import DecodeError

pytestmark = pytest.mark.usefixtures("private_cache")


def _names(root: Path, split_list: str) -> list[str]:
    return [line.split()[0] for line in (root / "annotations" / split_list).read_text().splitlines()]


def _decodes(data_path, data: bytes) -> bool:
    try:
        data_path.decoder.decode_image(data)
    except DecodeError:
        return False
    return True


def _corrupt_in_the_middle(data: bytes) -> bytes:
    """A second start-of-image marker halfway through the compressed data: header and end intact."""
    middle = len(data) // 2
    return data[:middle] + b"\xff\xd8" + data[middle + 2 :]


def _cut_and_given_back_its_end(data: bytes) -> bytes:
    """Cut at two thirds (an interrupted copy), then the end-of-image marker appended back."""
    return data[: len(data) * 2 // 3] + b"\xff\xd9"


def test_jpeg_corrupt_in_the_middle_is_named_before_training(data_path, release):
    image = release / "images" / f"{_names(release, 'test.txt')[1]}.jpg"
    image.write_bytes(_corrupt_in_the_middle(image.read_bytes()))
    assert Image.open(image).format == "JPEG" and not _decodes(data_path, image.read_bytes())  # as training would

    reason = {"tensorflow": "jpeg::Uncompress failed", "pillow": "broken data stream"}[data_path.name]
    problem = (rf"{image.name}: corrupt JPEG data, cannot be decoded \({reason}.*\); "
               r"re-download/re-extract the release .*, or delete the file and its line .*test\.txt:2")
    with pytest.raises(DataError, match=problem):
        data_path.load(f"dir:{release}")


def test_jpeg_cut_short_then_given_back_its_end_marker(data_path, release):
    image = release / "images" / f"{_names(release, 'trainval.txt')[2]}.jpg"
    image.write_bytes(_cut_and_given_back_its_end(image.read_bytes()))
    assert _decodes(data_path, image.read_bytes())  # TensorFlow decodes it without a word: the rest is grey

    problem = rf"{image.name}: truncated JPEG: its data ends .*trainval\.txt:3"
    with pytest.raises(DataError, match=problem):
        data_path.load(f"dir:{release}")


def test_every_file_that_fails_is_named_at_once(data_path, release):
    """A full decode of the release takes a while: one pass names every bad file, not the first."""
    images = [release / "images" / f"{name}.jpg" for name in _names(release, "test.txt")[:2]]
    for image in images:
        image.write_bytes(_corrupt_in_the_middle(image.read_bytes()))
    problem = rf"2 of 7 examples fail to decode:\n  .*{images[0].name}: .*\n  .*{images[1].name}: "
    with pytest.raises(DataError, match=problem):
        data_path.load(f"dir:{release}")


def test_trimap_that_pillow_reads_but_tensorflow_cannot(data_path, release):
    """A bad CRC: Pillow does not check it, libpng (the pipeline's decoder) refuses the file."""
    trimap = release / "annotations" / "trimaps" / f"{_names(release, 'test.txt')[0]}.png"
    data = bytearray(trimap.read_bytes())
    idat = data.find(b"IDAT")
    crc_at = idat + 4 + struct.unpack(">I", data[idat - 4 : idat])[0]
    data[crc_at] ^= 0xFF
    trimap.write_bytes(bytes(data))
    np.asarray(Image.open(io.BytesIO(bytes(data))))

    with pytest.raises(DataError, match=rf"{trimap.name}: corrupt PNG data, cannot be decoded"):
        data_path.load(f"dir:{release}")


def test_trimap_value_outside_1_2_3_is_found_by_the_full_decode(data_path, release):
    trimap = release / "annotations" / "trimaps" / f"{_names(release, 'test.txt')[2]}.png"
    pixels = np.asarray(Image.open(trimap)).copy()
    pixels[-1, -1] = 4
    Image.fromarray(pixels).save(trimap)
    with pytest.raises(DataError, match=rf"{trimap.name}: trimap values \[4\] outside .*test\.txt:3"):
        data_path.load(f"dir:{release}")


def test_verification_is_remembered_by_fingerprint(data_path, release, monkeypatch):
    decoded = []
    decode_image = type(data_path.decoder).decode_image

    def counting(self, data):
        decoded.append(len(data))
        return decode_image(self, data)

    monkeypatch.setattr(type(data_path.decoder), "decode_image", counting)
    fingerprint = data_path.load(f"dir:{release}", image_size=16).provenance.fingerprint
    assert len(decoded) >= 7 * 2  # every image, JPEGs twice (see the module docstring)
    assert verify.is_verified(fingerprint, data_path.decoder)
    record = json.loads(next(verify.verified_dir().glob(f"{fingerprint}.*.json")).read_text())
    assert (record["decoder"], record["decoder_version"]) == (data_path.name, data_path.decoder.version)

    decoded.clear()
    data_path.load(f"dir:{release}", image_size=16)
    assert decoded == []  # a lookup, no decoding

    trimap = release / "annotations" / "trimaps" / f"{_names(release, 'test.txt')[0]}.png"
    pixels = np.asarray(Image.open(trimap)).copy()
    pixels[0, 0] = 3 if pixels[0, 0] != 3 else 2
    Image.fromarray(pixels).save(trimap)
    changed = data_path.load(f"dir:{release}", image_size=16).provenance.fingerprint
    assert changed != fingerprint and len(decoded) >= 7  # other data: verified again


def test_failed_verification_is_not_remembered(data_path, release):
    image = release / "images" / f"{_names(release, 'test.txt')[0]}.jpg"
    good = image.read_bytes()
    image.write_bytes(_corrupt_in_the_middle(good))
    with pytest.raises(DataError):
        data_path.load(f"dir:{release}")
    assert not list(verify.verified_dir().glob("*"))
    image.write_bytes(good)
    data_path.load(f"dir:{release}")


def test_unwritable_cache_still_loads(data_path, release, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("SEGBENCH_CACHE", str(blocker))
    data_path.load(f"dir:{release}", image_size=16)  # verified, just not remembered


# === Real photos (the sample in ../shared, when present) ===


def _sample_copy(sample: Path, root: Path, per_split: int = 3) -> Path:
    """A small release of real photos: the first `per_split` names of each split of the sample."""
    for directory in ("images", "annotations/trimaps"):
        (root / directory).mkdir(parents=True)
    for split_list in ("trainval.txt", "test.txt"):
        lines = (sample / "annotations" / split_list).read_text().splitlines()[:per_split]
        (root / "annotations" / split_list).write_text("\n".join(lines) + "\n")
        for name in (line.split()[0] for line in lines):
            _copy_example(sample, root, name)
    return root


def _copy_example(sample: Path, root: Path, name: str) -> None:
    shutil.copy(sample / "images" / f"{name}.jpg", root / "images")
    shutil.copy(sample / "annotations" / "trimaps" / f"{name}.png", root / "annotations" / "trimaps")


def test_real_photo_corrupt_in_the_middle(data_path, pet_sample_dir, tmp_path):
    root = _sample_copy(pet_sample_dir, tmp_path / "pets")
    image = root / "images" / f"{_names(root, 'test.txt')[0]}.jpg"
    data = bytearray(image.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(0).bytes(2000)
    image.write_bytes(bytes(data))
    assert not _decodes(data_path, bytes(data))

    with pytest.raises(DataError, match=rf"{image.name}: corrupt JPEG data, cannot be decoded"):
        data_path.load(f"dir:{root}")


# Abyssinian_120 is one of the sample's two progressive JPEGs: many scans, cut in one of them.
@pytest.mark.parametrize("name", ["Abyssinian_1", "Abyssinian_120"])
def test_real_photo_cut_short_then_given_back_its_end_marker(data_path, pet_sample_dir, tmp_path, name):
    root = _sample_copy(pet_sample_dir, tmp_path / "pets")
    with open(root / "annotations" / "test.txt", "a") as f:
        f.write(f"{name} 1 1 1\n")
    _copy_example(pet_sample_dir, root, name)
    image = root / "images" / f"{name}.jpg"
    image.write_bytes(_cut_and_given_back_its_end(image.read_bytes()))
    assert _decodes(data_path, image.read_bytes())

    problem = rf"{image.name}: truncated JPEG: its data ends .*test\.txt:4"
    with pytest.raises(DataError, match=problem):
        data_path.load(f"dir:{root}")


def test_the_decoder_warnings_of_the_check_stay_off_the_terminal(data_path, release, capfd):
    """The check's second decode made libjpeg print a line for every JPEG (hundreds on a first load)."""
    image = release / "images" / f"{_names(release, 'trainval.txt')[2]}.jpg"
    whole = image.read_bytes()
    image.write_bytes(_cut_and_given_back_its_end(whole))
    capfd.readouterr()
    with pytest.raises(DataError, match=rf"{image.name}: truncated JPEG"):  # the verdict is kept
        data_path.load(f"dir:{release}")
    err = capfd.readouterr().err
    assert "Corrupt JPEG data" not in err and "Premature end of JPEG file" not in err, err
    image.write_bytes(whole)
    data_path.load(f"dir:{release}")  # all complete: still a second decode of each, still quiet
    assert "Corrupt JPEG data" not in capfd.readouterr().err
