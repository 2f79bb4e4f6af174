"""bench.data.tfds_source through tfds.testing.mock_data: prepared data read offline, the fail-fast
paths when it is not prepared, and the mask check."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bench.data import DataError, SourceUnavailableError, load_pets, tfds_source

SPLIT_SIZES = {"train": 5, "test": 3}


@pytest.fixture
def prepared_dir(tmp_path: Path) -> Path:
    """A TFDS data dir whose oxford_iiit_pet metadata says it is prepared (the records are mocked)."""
    builder = tfds.builder("oxford_iiit_pet", data_dir=str(tmp_path))
    builder.info.set_splits(
        tfds.core.SplitDict(
            [tfds.core.SplitInfo(name=name, shard_lengths=[n], num_bytes=1000 * n)
             for name, n in SPLIT_SIZES.items()]
        )
    )
    Path(builder.data_dir).mkdir(parents=True)
    builder.info.write_to_directory(builder.data_dir)
    return tmp_path


def _mock_examples(self, split, decoders=None, read_config=None, **kwargs):  # the signature of the method it replaces
    """Examples of varied sizes with trimaps in {1, 2, 3} (mock_data's random masks are not)."""
    count = SPLIT_SIZES[str(split)]
    offset = 0 if str(split) == "train" else 100

    def examples():
        for i in range(offset, offset + count):
            rng = np.random.default_rng(i)
            height, width = (int(v) for v in rng.integers(20, 48, size=2))
            yield {
                "image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                "segmentation_mask": rng.integers(1, 4, (height, width, 1), dtype=np.uint8),
                "file_name": f"pet_{i}.jpg",
                "label": 0,
                "species": 0,
                "head_bbox": np.zeros(4, np.float32),
            }

    return tf.data.Dataset.from_generator(
        examples,
        output_signature={
            "image": tf.TensorSpec((None, None, 3), tf.uint8),
            "segmentation_mask": tf.TensorSpec((None, None, 1), tf.uint8),
            "file_name": tf.TensorSpec((), tf.string),
            "label": tf.TensorSpec((), tf.int64),
            "species": tf.TensorSpec((), tf.int64),
            "head_bbox": tf.TensorSpec((4,), tf.float32),
        },
    )


def test_prepared_tfds_is_preprocessed_like_every_source(prepared_dir):
    with tfds.testing.mock_data(
        as_dataset_fn=_mock_examples, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(prepared_dir)
    ):
        splits = load_pets("tfds", data_dir=prepared_dir, image_size=16)
        train = [(x.numpy(), y.numpy()) for x, y in splits.train]
        test = list(splits.test)

    assert len(train) == 5 and len(test) == 3
    for (image, mask), i in zip(train, range(5), strict=True):
        rng = np.random.default_rng(i)
        height, width = (int(v) for v in rng.integers(20, 48, size=2))
        raw_image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        raw_mask = rng.integers(1, 4, (height, width, 1), dtype=np.uint8)
        np.testing.assert_allclose(image, tf.image.resize(raw_image, (16, 16)).numpy() / 255.0, atol=1e-6)
        np.testing.assert_array_equal(mask, tf.image.resize(raw_mask, (16, 16), method="nearest") - 1)

    provenance = splits.provenance
    assert (provenance.source, provenance.synthetic) == ("tfds", False)
    assert (provenance.train_size, provenance.test_size) == (5, 3)
    assert provenance.location.startswith(str(prepared_dir))
    assert len(provenance.fingerprint) == 64


def test_masks_outside_1_2_3_fail_naming_the_file(prepared_dir):
    # mock_data's own examples: random masks in 0..255.
    with tfds.testing.mock_data(
        num_examples=2, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(prepared_dir)
    ):
        splits = load_pets("tfds", data_dir=prepared_dir, image_size=16)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"segmentation_mask values outside"):
            list(splits.train)


def test_not_prepared_fails_fast_offline_and_says_what_to_do(tmp_path):
    start = time.monotonic()
    what_to_do = r"not prepared in .*download=True.*'dir:PATH'.*'synthetic'"
    with pytest.raises(SourceUnavailableError, match=what_to_do):
        load_pets("tfds", data_dir=tmp_path)
    assert time.monotonic() - start < 10
    assert not any(tmp_path.iterdir())  # nothing written


def test_download_with_unreachable_host_fails_fast(tmp_path, monkeypatch):
    probed = []
    monkeypatch.setattr(tfds_source, "probe", lambda host: probed.append(host) or "timed out")
    with pytest.raises(SourceUnavailableError, match=r"unreachable \(timed out\).*Connect.*'dir:PATH'"):
        load_pets("tfds", data_dir=tmp_path, download=True)
    assert probed == ["thor.robots.ox.ac.uk"]  # the host in TFDS's checksums for the release


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "probe", lambda host: None)

    def broken(self, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", broken)
    with pytest.raises(DataError, match=r"download/preparation .* failed \(OSError: connection reset\)"):
        load_pets("tfds", data_dir=tmp_path, download=True)


def test_probe_answers_within_its_timeout():
    start = time.monotonic()
    assert tfds_source.probe("segbench.invalid", timeout=2.0)  # RFC 6761: never resolves
    assert time.monotonic() - start < 3.0


def test_prepared_tfds_as_arrays_is_the_same_data(prepared_dir, tmp_path, monkeypatch):
    """TFDS needs TensorFlow to read its records: the array path holds what its tf.data path gives."""
    from bench.data import ArraySplit

    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    with tfds.testing.mock_data(
        as_dataset_fn=_mock_examples, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(prepared_dir)
    ):
        datasets = load_pets("tfds", data_dir=prepared_dir, image_size=16)
        arrays = load_pets("tfds", data_dir=prepared_dir, image_size=16, as_arrays=True)
        expected = [(x.numpy(), y.numpy()) for x, y in datasets.train]
    assert arrays.provenance == datasets.provenance
    assert isinstance(arrays.train, ArraySplit) and (len(arrays.train), len(arrays.test)) == (5, 3)
    np.testing.assert_array_equal(arrays.train.images, np.stack([x for x, _ in expected]))
    np.testing.assert_array_equal(arrays.train.masks, np.stack([y for _, y in expected]))
