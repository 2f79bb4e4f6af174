"""Choosing a source: `parse_source` reads the source string, `load_pets` loads it.

    "tfds"       the prepared TFDS `oxford_iiit_pet` 4.* (downloaded first only with download=True)
    "dir:PATH"   the release on disk: its layout, or its two archives
    "synthetic"  generated pet-like scenes (seeded), cached
    "auto"       the first that is available: TFDS prepared data, then $SEGBENCH_PETS_DIR, then
                 synthetic (which every report then names as such)

Each loads as tf.data pipelines (TensorFlow's decoders: the committed reference's data path) or,
with `as_arrays=True`, as arrays any Keras backend can train on (`bench.data.arrays`; Pillow's
decoders, no TensorFlow needed except by the tfds source). The provenance is the same either way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.data.errors import DataError, SourceUnavailableError
from bench.data.pipeline import PetSplits
from bench.data.release import load_release
from bench.data.synthetic import SyntheticConfig, load_synthetic
from bench.data.tfds_source import load_tfds

logger = logging.getLogger(__name__)

PETS_DIR_ENV = "SEGBENCH_PETS_DIR"
SOURCE_FORMS = ("auto", "tfds", "dir:PATH", "synthetic")


@dataclass(frozen=True)
class Source:
    """A parsed source: its kind, and its path for `dir`. `str()` gives back the source string."""

    kind: Literal["auto", "tfds", "dir", "synthetic"]
    path: Path | None = None

    def __str__(self) -> str:
        return f"dir:{self.path}" if self.kind == "dir" else self.kind


def parse_source(source: str | Source) -> Source:
    """Validate a source string ("auto", "tfds", "dir:PATH" or "synthetic").

    Raises:
        ValueError: anything else, naming the valid forms.
    """
    if isinstance(source, Source):
        return source
    text = source.strip() if isinstance(source, str) else source
    if text in ("auto", "tfds", "synthetic"):
        return Source(text)
    if isinstance(text, str) and text.startswith("dir:") and text[4:].strip():
        return Source("dir", Path(text[4:].strip()).expanduser())
    raise ValueError(
        f"unknown data source {source!r}; valid forms: {', '.join(repr(f) for f in SOURCE_FORMS)}"
    )


def load_pets(
    source: str | Source = "auto",
    *,
    image_size: int = 128,
    data_dir: str | Path | None = None,
    download: bool = False,
    seed: int = 0,
    as_arrays: bool = False,
) -> PetSplits:
    """Load Oxford-IIIT Pet (or its synthetic stand-in) as preprocessed, unbatched splits.

    Args:
        source: "auto", "tfds", "dir:PATH" or "synthetic" (see the module docstring).
        image_size: side of the square images and masks (the chapter's 128).
        data_dir: the TFDS data directory (tfds, and the first step of auto); None for TFDS's default.
        download: let the tfds source download and prepare the dataset if it is not prepared. With
            auto, a download is tried before falling back, and skipped if the host is unreachable.
        seed: the synthetic set's seed (other sources are real data and ignore it).
        as_arrays: train and test as `bench.data.arrays.ArraySplit` (decoded, resized NumPy arrays,
            cached on disk) instead of `tf.data.Dataset`s; `train_batches`, `test_batches` and
            `bench.data.split.carve` take either.

    Returns:
        `PetSplits`: train and test (image, mask) datasets in a fixed order, and their provenance.

    Raises:
        ValueError: an unknown source or a bad image_size.
        SourceUnavailableError: the requested source cannot be had here; the message says what to do.
        DataError: the data is bad (the message names the file and the problem).
    """
    parsed = parse_source(source)
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if parsed.kind == "tfds":
        return load_tfds(image_size=image_size, data_dir=data_dir, download=download, as_arrays=as_arrays)
    if parsed.kind == "dir":
        return load_release(parsed.path, image_size=image_size, as_arrays=as_arrays)
    if parsed.kind == "synthetic":
        return load_synthetic(SyntheticConfig(seed=seed), image_size=image_size, as_arrays=as_arrays)
    return _load_auto(image_size=image_size, data_dir=data_dir, download=download, seed=seed, as_arrays=as_arrays)


def _load_auto(
    *, image_size: int, data_dir: str | Path | None, download: bool, seed: int, as_arrays: bool
) -> PetSplits:
    # Only "not available here" falls through; bad data in an available source is an error.
    try:
        return load_tfds(image_size=image_size, data_dir=data_dir, download=download, as_arrays=as_arrays)
    except SourceUnavailableError as error:
        logger.info("auto: TFDS not used: %s", error)
    pets_dir = os.environ.get(PETS_DIR_ENV)
    if pets_dir:
        if not Path(pets_dir).expanduser().is_dir():
            raise DataError(f"${PETS_DIR_ENV}={pets_dir}: no such directory")
        return load_release(pets_dir, image_size=image_size, as_arrays=as_arrays)
    logger.info("auto: $%s is not set; falling back to the synthetic stand-in", PETS_DIR_ENV)
    return load_synthetic(SyntheticConfig(seed=seed), image_size=image_size, as_arrays=as_arrays)
