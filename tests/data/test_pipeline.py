"""bench.data.pipeline: the chapter's preprocessing and the seeded train / test batching."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bench.data import preprocess, test_batches, train_batches
from bench.data.synthetic import SyntheticConfig, write_release

SIZE = 12


def _examples(n: int = 10, size: int = SIZE) -> tf.data.Dataset:
    """n (image, mask) examples whose content says where it came from.

    Channel 0 of the image rises left to right and the mask is 0 / 1 / 2 by column third, so a flip
    shows in both; channel 1 holds the example's index.
    """
    columns = np.linspace(0.0, 1.0, size, dtype=np.float32)
    images = np.zeros((n, size, size, 3), np.float32)
    images[..., 0] = columns
    images[..., 1] = (np.arange(n, dtype=np.float32) / n)[:, None, None]
    masks = np.broadcast_to((np.arange(size) * 3 // size).astype(np.uint8)[None, None, :, None],
                            (n, size, size, 1)).copy()
    return tf.data.Dataset.from_tensor_slices((images, masks))


def _ids(images: tf.Tensor, n: int) -> list[int]:
    return np.rint(images[:, 0, 0, 1].numpy() * n).astype(int).tolist()


def _take(ds: tf.data.Dataset, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]


def test_preprocess_is_the_chapters():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    trimap = rng.integers(1, 4, (37, 53, 1), dtype=np.uint8)

    out_image, out_mask = preprocess(tf.constant(image), tf.constant(trimap), 16)

    assert out_image.dtype == tf.float32 and out_image.shape == (16, 16, 3)
    assert out_mask.dtype == tf.uint8 and out_mask.shape == (16, 16, 1)
    expected = tf.image.resize(tf.cast(image, tf.float32), (16, 16), method="bilinear") / 255.0
    np.testing.assert_allclose(out_image.numpy(), expected.numpy(), atol=1e-6)
    assert out_image.numpy().min() >= 0.0 and out_image.numpy().max() <= 1.0
    nearest = tf.image.resize(trimap, (16, 16), method="nearest").numpy()
    np.testing.assert_array_equal(out_mask.numpy(), nearest - 1)
    assert set(np.unique(out_mask.numpy())) <= {0, 1, 2}


def test_trimap_labels_map_to_pet_background_border():
    trimap = tf.constant([[[1], [2], [3]]], tf.uint8)
    _, mask = preprocess(tf.zeros((1, 3, 3), tf.uint8), trimap, 3)
    np.testing.assert_array_equal(mask.numpy()[0, :, 0], [0, 1, 2])


def test_train_batches_same_seed_same_batches_and_different_seed_differs():
    first = _take(train_batches(_examples(), batch_size=4, seed=7), 9)
    again = _take(train_batches(_examples(), batch_size=4, seed=7), 9)
    other = _take(train_batches(_examples(), batch_size=4, seed=8), 9)

    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert any(not np.array_equal(x1, x2) for (x1, _), (x2, _) in zip(first, other, strict=True))


def test_train_batches_epochs_are_reshuffled_permutations_and_infinite():
    n = 10
    batches = _take(train_batches(_examples(n), batch_size=4, seed=1, augment=False), 9)
    sizes = [len(x) for x, _ in batches]
    assert sizes == [4, 4, 2] * 3  # batch -> repeat: each epoch ends with a partial batch
    epochs = [sum((_ids(tf.constant(x), n) for x, _ in batches[i:i + 3]), []) for i in (0, 3, 6)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(n))
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    assert train_batches(_examples(n), batch_size=4, seed=1).cardinality() == tf.data.INFINITE_CARDINALITY


def test_flip_is_the_same_for_image_and_mask_and_seeded():
    flipped = unflipped = 0
    for images, masks in _take(train_batches(_examples(), batch_size=5, seed=3), 8):
        for image, mask in zip(images, masks, strict=True):
            if image[0, 0, 0] == 1.0:  # channel 0 now falls left to right
                flipped += 1
                np.testing.assert_array_equal(mask[0, :, 0], np.arange(SIZE)[::-1] * 3 // SIZE)
            else:
                unflipped += 1
                np.testing.assert_array_equal(mask[0, :, 0], np.arange(SIZE) * 3 // SIZE)
    assert flipped > 5 and unflipped > 5


def test_no_augmentation_leaves_examples_as_they_are():
    for images, masks in _take(train_batches(_examples(), batch_size=5, seed=3, augment=False), 4):
        assert (images[:, 0, 0, 0] == 0.0).all()
        assert (masks[:, 0, 0, 0] == 0).all()


def test_test_batches_keep_order_and_end():
    batches = list(test_batches(_examples(10), batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert sum((_ids(x, 10) for x, _ in batches), []) == list(range(10))


@pytest.mark.parametrize("make", [train_batches, test_batches])
def test_batch_size_must_be_positive(make):
    kwargs = {"seed": 0} if make is train_batches else {}
    with pytest.raises(ValueError, match="batch_size"):
        make(_examples(), batch_size=0, **kwargs)


_DIGEST_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import keras, tensorflow as tf
    keras.utils.set_random_seed(123)
    tf.config.experimental.enable_op_determinism()
    from bench.data import load_pets, train_batches
    splits = load_pets("dir:" + sys.argv[1], image_size=32)
    digest = hashlib.sha256()
    for images, masks in train_batches(splits.train, batch_size=3, seed=5).take(6):
        digest.update(images.numpy().tobytes() + masks.numpy().tobytes())
    print(digest.hexdigest())
    """
)


def test_batches_are_identical_run_to_run_under_the_harness_settings(tmp_path):
    """Fresh processes with seeded Keras and op determinism, as the harness runs: same batches."""
    root = tmp_path / "pets"
    write_release(root, SyntheticConfig(num_train=7, num_test=2, min_size=40, max_size=56))
    env = {**os.environ, "SEGBENCH_CACHE": str(tmp_path / "cache")}
    runs = [
        subprocess.Popen([sys.executable, "-c", _DIGEST_SCRIPT, str(root)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    digests = []
    for run in runs:
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err[-2000:]
        digests.append(out.strip().splitlines()[-1])
    assert digests[0] == digests[1]
