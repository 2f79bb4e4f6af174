"""The array path: both splits decoded and resized once into NumPy arrays, for every Keras backend.

    splits = load_pets("dir:PATH", image_size=128, as_arrays=True)   # train, test: ArraySplit
    batches = train_batches(splits.train, batch_size=64, seed=0)      # (images, masks) NumPy batches
    model.fit(batches, steps_per_epoch=..., epochs=...)               # JAX, TensorFlow or torch

Decoding is Pillow's (`bench.data.decoders`), resizing `bench.data.resize` (TensorFlow's arithmetic
to the bit), so nothing here needs TensorFlow. The arrays are kept in the cache, keyed by the
dataset's fingerprint, the image size and the decoder, so a sweep decodes the dataset once: a cache
entry is written whole and renamed into place, and one whose files do not match the checksums,
shapes and dtypes its manifest records is discarded and built again, never trusted.

Batching follows the tf.data path with one difference: each epoch is a full shuffle (a fresh
permutation of the whole split), where tf.data's is a 1000-example buffer (the chapter's; the same
as a full shuffle on splits of up to 1000 examples, not on the release's 3680). The batches are
not the tf.data path's batches for the same seed: the two draw from different generators.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.data.cache import atomic_directory, cache_root, discard_directory
from bench.data.decoders import Decoder
from bench.data.errors import DataError
from bench.data.resize import resize_bilinear, resize_nearest

if TYPE_CHECKING:
    from bench.data.release import Example

logger = logging.getLogger(__name__)

# Bump when what is cached changes (preprocessing, file layout): old entries are then not reused.
ARRAYS_VERSION = 1
# Streams of the (seed, stream, counter) seeds: shuffles and flips never share a generator.
_SHUFFLE, _FLIP = 0, 1


@dataclass(frozen=True, eq=False)
class ArraySplit:
    """One split, preprocessed, in its fixed order: what `tf.data.Dataset` elements are, as arrays.

    Attributes:
        images: float32 [N, S, S, 3] in [0, 1].
        masks: uint8 [N, S, S, 1] in {0, 1, 2} (pet, background, border).
    """

    images: np.ndarray
    masks: np.ndarray

    def __post_init__(self) -> None:
        images, masks = self.images, self.masks
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.float32:
            raise ValueError(f"images must be float32 [N, S, S, 3], got {images.dtype} {images.shape}")
        if masks.dtype != np.uint8 or masks.shape != (*images.shape[:3], 1):
            raise ValueError(f"masks must be uint8 {(*images.shape[:3], 1)}, got {masks.dtype} {masks.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(image [S, S, 3], mask [S, S, 1]) pairs in order, as iterating the dataset gives them."""
        return zip(self.images, self.masks)

    def take(self, count: int) -> ArraySplit:
        """The first `count` examples (all of them if there are fewer), as `Dataset.take`."""
        return ArraySplit(self.images[:count], self.masks[:count])

    def subset(self, indices: np.ndarray) -> ArraySplit:
        """The examples at `indices`, in that order."""
        return ArraySplit(self.images[indices], self.masks[indices])


# === Batching ===


def train_batches(
    split: ArraySplit, *, batch_size: int, seed: int, augment: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Infinite, seeded (images, masks) batches: epoch after epoch of the whole split, reshuffled.

    Epoch e is the permutation `default_rng((seed, 0, e))` draws of the whole split, cut into batches
    of `batch_size` (the last of each epoch smaller, as in the chapter). With `augment`, batch i (its
    position in the stream) flips each of its examples left-right with probability 1/2 by
    `default_rng((seed, 1, i))`, image and mask alike.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return _train_batches(split, batch_size, seed, augment)


def _train_batches(
    split: ArraySplit, batch_size: int, seed: int, augment: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    position = 0
    epoch = 0
    while True:
        order = np.random.default_rng((seed, _SHUFFLE, epoch)).permutation(len(split))
        for start in range(0, len(split), batch_size):
            chosen = order[start : start + batch_size]
            images, masks = split.images[chosen], split.masks[chosen]  # copies: flips stay in the batch
            if augment:
                flip = np.random.default_rng((seed, _FLIP, position)).random(len(chosen)) < 0.5
                images[flip] = images[flip, :, ::-1]
                masks[flip] = masks[flip, :, ::-1]
            position += 1
            yield images, masks
        epoch += 1


@dataclass(frozen=True)
class ArrayBatches:
    """A split's (images, masks) batches in its fixed order, the last smaller: like a finite
    `tf.data.Dataset`, each iteration is a new pass (validation iterates it once per epoch).
    `iter(batches)` is a generator, which Keras's `evaluate` and `predict` take."""

    split: ArraySplit
    batch_size: int

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(self.split), self.batch_size):
            end = start + self.batch_size
            yield self.split.images[start:end], self.split.masks[start:end]

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)


def test_batches(split: ArraySplit, *, batch_size: int) -> ArrayBatches:
    """The split's (images, masks) batches in its fixed order, as often as it is iterated."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return ArrayBatches(split, batch_size)


# Not a test, despite its name: keeps pytest from collecting it where a test module imports it.
test_batches.__test__ = False  # type: ignore[attr-defined]


# === Decoding and resizing ===


def preprocess(image: np.ndarray, trimap: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`bench.data.pipeline.preprocess` in NumPy: uint8 [H, W, 3] and trimap [H, W, 1] to image
    float32 [S, S, 3] in [0, 1] and mask uint8 [S, S, 1] in {0, 1, 2}."""
    return resize_bilinear(image, image_size) / np.float32(255.0), resize_nearest(trimap, image_size) - 1


def decode_split(examples: list[Example], image_size: int, decoder: Decoder) -> ArraySplit:
    """Every example of a split read, decoded and resized, in list order (threads: Pillow's decoders
    release the GIL)."""
    images = np.empty((len(examples), image_size, image_size, 3), np.float32)
    masks = np.empty((len(examples), image_size, image_size, 1), np.uint8)

    def fill(index: int) -> None:
        example = examples[index]
        image = decoder.decode_image(example.image.read_bytes())
        trimap = decoder.decode_trimap(example.trimap.read_bytes())
        images[index], masks[index] = preprocess(image, trimap, image_size)

    with ThreadPoolExecutor() as pool:
        list(pool.map(fill, range(len(examples))))
    return ArraySplit(images, masks)


# === The cache ===


def cached_splits(
    fingerprint: str, image_size: int, decoder_tag: str, build: Callable[[], dict[str, ArraySplit]]
) -> dict[str, ArraySplit]:
    """The splits `build` makes, from the cache if they are there and intact, else built and kept.

    Args:
        fingerprint: the dataset's fingerprint (its provenance's).
        image_size: side of the images and masks.
        decoder_tag: what decoded them, with its version (e.g. "pillow-11.0.0"): another decoder's
            pixels are other arrays.
        build: makes {"train": ..., "test": ...} when the cache has no intact copy.
    """
    final = cache_root() / "pets-arrays" / f"{fingerprint[:16]}-{image_size}px-{decoder_tag}-v{ARRAYS_VERSION}"
    key = {"fingerprint": fingerprint, "image_size": image_size, "decoder": decoder_tag, "version": ARRAYS_VERSION}
    if final.is_dir():
        problem, splits = _read_entry(final, key)
        if splits is not None:
            return splits
        logger.warning("The cached arrays in %s are damaged (%s); decoding the dataset again", final, problem)
        discard_directory(final)
    splits = build()
    try:
        with atomic_directory(final) as tmp:
            _write_entry(tmp, key, splits)
    except (OSError, DataError) as error:  # a cache that cannot be written only costs the next run a decode
        logger.warning("Could not keep the decoded arrays in %s (%s); the next load decodes again", final, error)
    return splits


def _write_entry(folder: Path, key: dict[str, object], splits: dict[str, ArraySplit]) -> None:
    files = {}
    for name, split in splits.items():
        for part in ("images", "masks"):
            array = np.ascontiguousarray(getattr(split, part))
            np.save(folder / f"{name}-{part}.npy", array)
            files[f"{name}-{part}.npy"] = {"shape": list(array.shape), "dtype": array.dtype.str,
                                           "sha256": _digest(array)}
    (folder / "manifest.json").write_text(json.dumps({**key, "files": files}, indent=1))


def _read_entry(folder: Path, key: dict[str, object]) -> tuple[str, dict[str, ArraySplit] | None]:
    """(what is wrong, None) for a damaged entry, else ("", its splits), read into memory."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        return f"manifest.json: {error}", None
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in key.items()):
        return "manifest.json does not describe this dataset", None
    arrays = {}
    for file, expected in (manifest.get("files") or {}).items():
        try:
            array = np.load(folder / file, allow_pickle=False)
        except (OSError, ValueError) as error:
            return f"{file}: {error}", None
        if list(array.shape) != expected["shape"] or array.dtype.str != expected["dtype"]:
            return f"{file}: {array.dtype.str} {list(array.shape)}, not {expected['dtype']} {expected['shape']}", None
        if _digest(array) != expected["sha256"]:
            return f"{file}: its contents do not match their checksum", None
        arrays[file] = array
    try:
        return "", {name: ArraySplit(arrays[f"{name}-images.npy"], arrays[f"{name}-masks.npy"])
                    for name in ("train", "test")}
    except (KeyError, ValueError) as error:
        return f"incomplete ({error})", None


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()
