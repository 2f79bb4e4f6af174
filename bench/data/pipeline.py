"""The (image, mask) pipeline every source feeds: the chapter's preprocessing, train and test batching.

Preprocessing (per example, identical for every source):
    image: bilinear resize to S x S, float32 in [0, 1]
    mask:  nearest-neighbour resize to S x S, trimap {1, 2, 3} -> {0, 1, 2} (pet, background, border)

The train pipeline is the chapter's: cache -> shuffle(1000) -> batch -> repeat -> augment -> prefetch,
with the augmentation a random horizontal flip applied identically to each image and its mask.
The flips are stateless, drawn from (`seed`, the batch's position in the stream), so they do not
depend on threading. The shuffle is `Dataset.shuffle(seed=seed)`, which TensorFlow combines with its
global seed when one is set (as `keras.utils.set_random_seed` does): with the harness's settings the
same seed gives the same batches run to run, and the order also follows the global seed.

`train_batches`, `test_batches` (and `bench.data.split.carve`) also take the array path's splits
(`load_pets(..., as_arrays=True)`, `bench.data.arrays.ArraySplit`), and then give NumPy batches
(see `bench.data.arrays`, whose epochs are full shuffles). TensorFlow is imported only by the
tf.data path, so the array path works without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bench.data import arrays
from bench.data.arrays import ArraySplit
from bench.data.errors import SourceUnavailableError
from bench.data.provenance import Provenance

if TYPE_CHECKING:
    import tensorflow as tf

Batches = Iterator[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class PetSplits:
    """Both splits, unbatched and preprocessed, in a fixed order, and where they came from.

    Elements are `(image, mask)`: image float32 [S, S, 3] in [0, 1], mask uint8 [S, S, 1] in {0, 1, 2}.
    The splits are `tf.data.Dataset`s, or `ArraySplit`s on the array path (`as_arrays=True`); the
    provenance is the same for both.
    """

    train: tf.data.Dataset | ArraySplit
    test: tf.data.Dataset | ArraySplit
    provenance: Provenance


def preprocess(image: tf.Tensor, trimap: tf.Tensor, image_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize and normalize one example, as the chapter does.

    Args:
        image: uint8 [H, W, 3].
        trimap: uint8 [H, W, 1] with values 1 (pet), 2 (background), 3 (border).
        image_size: side S of the square output.

    Returns:
        image float32 [S, S, 3] in [0, 1]; mask uint8 [S, S, 1] in {0, 1, 2}.
    """
    tf = tensorflow()
    size = (image_size, image_size)
    # Bilinear interpolation of values in [0, 255] stays in [0, 255], so the result is in [0, 1].
    image = tf.image.resize(image, size, method="bilinear") / 255.0
    mask = tf.image.resize(trimap, size, method="nearest") - 1
    image = tf.ensure_shape(image, (image_size, image_size, 3))
    mask = tf.ensure_shape(mask, (image_size, image_size, 1))
    return image, mask


def random_flip(images: tf.Tensor, masks: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Flip each (image, mask) pair of a batch left-right with probability 1/2, both the same way.

    Args:
        images: [B, S, S, C].
        masks: [B, S, S, 1].
        seed: int64 [2], the stateless seed for this batch.
    """
    tf = tensorflow()
    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed) < 0.5
    flip = flip[:, tf.newaxis, tf.newaxis, tf.newaxis]
    return (
        tf.where(flip, tf.reverse(images, axis=[2]), images),
        tf.where(flip, tf.reverse(masks, axis=[2]), masks),
    )


def train_batches(
    ds: tf.data.Dataset | ArraySplit,
    *,
    batch_size: int,
    seed: int,
    augment: bool = True,
    buffer_size: int = 1000,
) -> tf.data.Dataset | Batches:
    """The chapter's train pipeline over an unbatched split: infinite, seeded, deterministic.

    cache -> shuffle(buffer_size, seed, reshuffled every epoch) -> batch -> repeat ->
    random horizontal flip (if `augment`) -> prefetch. An `ArraySplit` gets the array path's
    equivalent (`bench.data.arrays.train_batches`: a full shuffle each epoch, `buffer_size` unused).

    Args:
        ds: unbatched (image, mask) examples, e.g. `PetSplits.train`.
        batch_size: examples per batch; each epoch's last batch may be smaller, as in the chapter.
        seed: seeds the shuffle and the flips.
        augment: apply the random horizontal flip.
        buffer_size: shuffle buffer (the chapter's 1000).

    Returns:
        An infinite dataset (an iterator of NumPy arrays, for an `ArraySplit`) of
        (images [B, S, S, 3] float32, masks [B, S, S, 1] uint8).
    """
    if isinstance(ds, ArraySplit):
        return arrays.train_batches(ds, batch_size=batch_size, seed=seed, augment=augment)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tf = tensorflow()
    batches = (
        ds.cache()
        .shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .repeat()
    )
    if augment:
        # Batch i's flips come from the stateless seed (seed, i): independent of threading.
        batches = batches.enumerate().map(
            lambda i, batch: random_flip(*batch, seed=tf.stack([tf.constant(seed, tf.int64), i])),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return batches.prefetch(tf.data.AUTOTUNE)


def test_batches(ds: tf.data.Dataset | ArraySplit, *, batch_size: int) -> tf.data.Dataset | arrays.ArrayBatches:
    """The chapter's test pipeline: batch -> prefetch, in the split's fixed order (an `ArraySplit`:
    NumPy batches in the same order, re-iterable as a dataset, `bench.data.arrays.test_batches`)."""
    if isinstance(ds, ArraySplit):
        return arrays.test_batches(ds, batch_size=batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tf = tensorflow()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# Not a test, despite its name: keeps pytest from collecting it where a test module imports it.
test_batches.__test__ = False  # type: ignore[attr-defined]


def tensorflow():  # untyped: the module, imported on first use
    """TensorFlow, for the tf.data path; without it, one line that says what to do."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise SourceUnavailableError(
            f"the tf.data pipeline needs TensorFlow, which cannot be imported here ({error}): "
            "pip install -e '.[bench]' (TensorFlow and tensorflow-datasets), or load with as_arrays=True"
        ) from None
    return tf
