"""The validation split: images carved from trainval, never from the test split.

Model selection (the best epoch, when to stop) must not look at the images a model is ranked on,
so validation images come out of the training split. Which ones is a function of the dataset and
one seed only: every model and every training seed of a sweep is validated on the same images and
trained on the same rest, so their curves and their best epochs compare. The chosen positions (in
the split's fixed order) and their fingerprint are stored with every run and in the folder's
comparison context (the profile's ``val_images`` and ``val_seed`` are context fields).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.data.arrays import ArraySplit

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class ValidationSplit:
    """Which training images are held out for validation.

    Attributes:
        size: Images held out.
        seed: The seed that chose them (the same for every model and training seed).
        trainval_size: Images in the training split before carving.
        indices: Their positions in the training split's fixed order, ascending.
        fingerprint: SHA-256 of the dataset's fingerprint and the positions: the same images on
            any machine give the same value.
    """

    size: int
    seed: int
    trainval_size: int
    indices: tuple[int, ...]
    fingerprint: str

    @property
    def train_size(self) -> int:
        """Images left to train on."""
        return self.trainval_size - self.size

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "indices": list(self.indices)}


def choose_validation(trainval_size: int, size: int, seed: int, dataset_fingerprint: str) -> ValidationSplit:
    """The ``size`` positions out of ``trainval_size`` that ``seed`` holds out.

    Raises:
        ValueError: When ``size`` leaves fewer than one training image.
    """
    if not 0 < size < trainval_size:
        raise ValueError(
            f"--val-images {size} must be at least 1 and leave at least one of the {trainval_size} training "
            f"images to train on: pass at most {trainval_size - 1}"
        )
    positions = np.sort(np.random.default_rng(seed).permutation(trainval_size)[:size])
    digest = hashlib.sha256(f"segbench-val-v1\0{dataset_fingerprint}\0".encode())
    digest.update(positions.astype("<i8").tobytes())
    return ValidationSplit(size, seed, trainval_size, tuple(int(i) for i in positions), digest.hexdigest())


def carve(
    ds: tf.data.Dataset | ArraySplit, split: ValidationSplit
) -> tuple[tf.data.Dataset, tf.data.Dataset] | tuple[ArraySplit, ArraySplit]:
    """``(train, validation)`` of an unbatched dataset (or an ``ArraySplit``) in its fixed order: the
    positions of ``split`` go to validation (in order), every other example to training (in order)."""
    if isinstance(ds, ArraySplit):
        if len(ds) != split.trainval_size:
            raise ValueError(f"the validation split was chosen of {split.trainval_size} images, not {len(ds)}")
        held = np.zeros(len(ds), bool)
        held[list(split.indices)] = True
        return ds.subset(np.flatnonzero(~held)), ds.subset(np.flatnonzero(held))

    from bench.data.pipeline import tensorflow

    tf = tensorflow()
    held = tf.constant(split.indices, tf.int64)

    # Plain graph functions: autograph has nothing to convert in them (and warns on lambdas).
    @tf.autograph.experimental.do_not_convert
    def is_held(i: tf.Tensor, example: Any) -> tf.Tensor:
        return tf.reduce_any(tf.equal(i, held))

    @tf.autograph.experimental.do_not_convert
    def is_kept(i: tf.Tensor, example: Any) -> tf.Tensor:
        return tf.logical_not(is_held(i, example))

    @tf.autograph.experimental.do_not_convert
    def example_of(i: tf.Tensor, example: Any) -> Any:
        return example

    numbered = ds.enumerate()
    # The validation images are read after every epoch: cached, they are decoded once (filtering
    # them out of the whole split again would decode every training image each time). The
    # training part is cached by the training pipeline.
    return numbered.filter(is_kept).map(example_of), numbered.filter(is_held).map(example_of).cache()
