"""The `tfds` source: `oxford_iiit_pet` 4.* through tensorflow-datasets, the chapter's loader.

Offline first. Prepared data is looked for before anything else and read without the network. A
download happens only when asked (`download=True`), and only after a quick probe of the dataset's
download host: TFDS itself retries an unreachable host for minutes before it gives up, where this
fails in a few seconds and says what to do instead. The download goes to the official archives
(checksummed by TFDS), not the GCS mirror, so the probe checks the host actually used.

TFDS reads its records with TensorFlow, so this source needs TensorFlow even for the array path
(`as_arrays=True`: the tf.data splits decoded once into cached arrays); without TensorFlow or
tensorflow-datasets it is unavailable, and says so in one line.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np

from bench.data.arrays import ArraySplit, cached_splits
from bench.data.errors import DataError, SourceUnavailableError
from bench.data.pipeline import PetSplits, preprocess
from bench.data.provenance import Provenance, fingerprint_json
from bench.data.release import RELEASE_URL
from segmodels._network import host_unreachable

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

DATASET = "oxford_iiit_pet"
VERSION = "4.*.*"
SPLITS = {"train": "train", "test": "test"}
FALLBACK_HOST = "thor.robots.ox.ac.uk"  # where the TFDS builder downloads the release from
#: ``probe(host) -> None | what went wrong``, within seconds even when DNS hangs; a module attribute
#: so that tests can stand in for the network.
probe = host_unreachable

_ALTERNATIVES = (
    f"use source 'dir:PATH' with the release (images.tar.gz and annotations.tar.gz from "
    f"{RELEASE_URL}, or their extracted images/ and annotations/), or source 'synthetic' "
    "for a generated stand-in"
)


def load_tfds(
    *, image_size: int, data_dir: str | Path | None = None, download: bool = False, as_arrays: bool = False
) -> PetSplits:
    """Read the prepared TFDS dataset (preparing it first only if `download`).

    Args:
        image_size: side of the square images and masks.
        data_dir: the TFDS data directory; None for TFDS's default (`$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
        download: download and prepare the dataset (~800 MB) if it is not prepared yet.
        as_arrays: the splits decoded (by TensorFlow, as TFDS stores them) into cached arrays.

    Raises:
        SourceUnavailableError: TensorFlow or tensorflow-datasets is missing, or the data is not
            prepared and `download` is False, or the download host cannot be reached, or a
            dependency of preparing is missing; the message says what to do.
        DataError: the download or preparation failed.
    """
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds  # ~1 s to import: only when this source is used
    except ImportError as error:
        raise SourceUnavailableError(
            f"the tfds source needs TensorFlow and tensorflow-datasets ({error}): pip install -e '.[bench]', "
            f"or {_ALTERNATIVES}"
        ) from None

    builder = tfds.builder(f"{DATASET}:{VERSION}", data_dir=None if data_dir is None else str(data_dir))
    if not builder.is_prepared():
        if not download:
            raise SourceUnavailableError(
                f"TFDS {DATASET}:{VERSION} is not prepared in {builder.data_dir}. To get it: "
                f"load with download=True on a connected machine (about 800 MB), or {_ALTERNATIVES}."
            )
        _prepare(tfds, builder)

    datasets = {
        name: builder.as_dataset(split=split, shuffle_files=False).map(
            lambda example: preprocess(example["image"], _checked_mask(example), image_size),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        for name, split in SPLITS.items()
    }
    info = builder.info
    provenance = Provenance(
        source="tfds",
        location=str(builder.data_dir),
        train_size=info.splits[SPLITS["train"]].num_examples,
        test_size=info.splits[SPLITS["test"]].num_examples,
        fingerprint=fingerprint_json(
            {
                "dataset": info.full_name,
                "splits": {
                    name: {
                        "num_examples": info.splits[split].num_examples,
                        "num_bytes": info.splits[split].num_bytes,
                        "shard_lengths": list(info.splits[split].shard_lengths),
                    }
                    for name, split in SPLITS.items()
                },
                "source_sha256": {url: u.checksum for url, u in (builder.url_infos or {}).items()},
            }
        ),
        synthetic=False,
    )
    if as_arrays:
        arrays = cached_splits(provenance.fingerprint, image_size, f"tensorflow-{tf.__version__}",
                               lambda: {name: _as_arrays(ds) for name, ds in datasets.items()})
        return PetSplits(train=arrays["train"], test=arrays["test"], provenance=provenance)
    return PetSplits(train=datasets["train"], test=datasets["test"], provenance=provenance)


def _as_arrays(ds: tf.data.Dataset) -> ArraySplit:
    pairs = [(image.numpy(), mask.numpy()) for image, mask in ds]
    return ArraySplit(np.stack([image for image, _ in pairs]), np.stack([mask for _, mask in pairs]))


def _checked_mask(example: dict[str, tf.Tensor]) -> tf.Tensor:
    """The trimap, with a check that it holds only 1, 2, 3 (a 0 would wrap to 255 after the -1)."""
    import tensorflow as tf

    mask = example["segmentation_mask"]
    valid = tf.reduce_all((mask >= 1) & (mask <= 3))
    check = tf.debugging.Assert(
        valid, [f"{DATASET}: segmentation_mask values outside {{1, 2, 3}} in", example["file_name"]]
    )
    with tf.control_dependencies([check]):
        return tf.identity(mask)


def _prepare(tfds, builder) -> None:  # untyped: tfds is imported lazily
    if importlib.util.find_spec("importlib_resources") is None:
        raise SourceUnavailableError(
            "tensorflow-datasets needs the importlib_resources package to prepare datasets: "
            "pip install 'importlib_resources>=6'"
        )
    hosts = sorted({urlparse(url).hostname for url in (builder.url_infos or {})} - {None})
    for host in hosts or [FALLBACK_HOST]:
        problem = probe(host)
        if problem:
            raise SourceUnavailableError(
                f"Cannot download TFDS {DATASET}: {host} is unreachable ({problem}). "
                f"Connect this machine to the internet and retry, or {_ALTERNATIVES}."
            )
    logger.info("Downloading and preparing TFDS %s into %s", DATASET, builder.data_dir)
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    except Exception as error:  # TFDS raises many types; the cause stays chained
        raise DataError(
            f"TFDS {DATASET} download/preparation into {builder.data_dir} failed "
            f"({type(error).__name__}: {error}); retry, or {_ALTERNATIVES}"
        ) from error

