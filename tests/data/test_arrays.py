"""bench.data.arrays: the array path (Pillow decode, NumPy resize, cached arrays, NumPy batches),
against the tf.data path it stands in for, and on every Keras backend."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import ArraySplit, load_pets, test_batches, train_batches
from bench.data import arrays as arrays_module
from bench.data.decoders import PILLOW
from bench.data.resize import resize_bilinear, resize_nearest
from bench.data.split import carve, choose_validation

pytestmark = pytest.mark.usefixtures("private_cache")

SIZE = 12
REPO = Path(__file__).resolve().parents[2]


def _examples(n: int = 10, size: int = SIZE) -> ArraySplit:
    """n examples whose content says where it came from (as tests/data/test_pipeline.py's): channel
    0 rises left to right and the mask is 0 / 1 / 2 by column third, so a flip shows in both;
    channel 1 holds the example's index."""
    columns = np.linspace(0.0, 1.0, size, dtype=np.float32)
    images = np.zeros((n, size, size, 3), np.float32)
    images[..., 0] = columns
    images[..., 1] = (np.arange(n, dtype=np.float32) / n)[:, None, None]
    masks = np.broadcast_to((np.arange(size) * 3 // size).astype(np.uint8)[None, None, :, None],
                            (n, size, size, 1)).copy()
    return ArraySplit(images, masks)


def _ids(images: np.ndarray, n: int) -> list[int]:
    return np.rint(images[:, 0, 0, 1] * n).astype(int).tolist()


def _take(batches, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [next(batches) for _ in range(count)]


def _names(root: Path, split_list: str) -> list[str]:
    return [line.split()[0] for line in (root / "annotations" / split_list).read_text().splitlines() if line.strip()]


# === The split ===


def test_array_split_holds_checked_arrays_and_behaves_like_the_dataset():
    split = _examples(10)
    assert len(split) == 10 and len(split.take(3)) == 3 and len(split.take(50)) == 10
    pairs = list(split.take(4))
    assert len(pairs) == 4 and pairs[2][0].shape == (SIZE, SIZE, 3) and pairs[2][1].shape == (SIZE, SIZE, 1)
    assert _ids(np.stack([image for image, _ in pairs]), 10) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="images must be float32"):
        ArraySplit(split.images.astype(np.float64), split.masks)
    with pytest.raises(ValueError, match="masks must be uint8"):
        ArraySplit(split.images, split.masks[:5])


# === Batching ===


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
    stream = train_batches(_examples(n), batch_size=4, seed=1, augment=False)
    batches = _take(stream, 30)  # ten epochs: it does not end
    assert [len(x) for x, _ in batches[:9]] == [4, 4, 2] * 3  # each epoch ends with a partial batch
    epochs = [sum((_ids(x, n) for x, _ in batches[i : i + 3]), []) for i in range(0, 30, 3)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(n))
    assert len({tuple(epoch) for epoch in epochs}) > 1
    # A full shuffle: the first epoch's order is the seeded permutation of the whole split.
    assert epochs[0] == np.random.default_rng((1, 0, 0)).permutation(n).tolist()


def test_flip_is_the_same_for_image_and_mask_and_seeded():
    flipped = unflipped = 0
    for images, masks in _take(train_batches(_examples(), batch_size=5, seed=3), 8):
        assert images.dtype == np.float32 and masks.dtype == np.uint8
        for image, mask in zip(images, masks, strict=True):
            if image[0, 0, 0] == 1.0:  # channel 0 now falls left to right
                flipped += 1
                np.testing.assert_array_equal(mask[0, :, 0], np.arange(SIZE)[::-1] * 3 // SIZE)
            else:
                unflipped += 1
                np.testing.assert_array_equal(mask[0, :, 0], np.arange(SIZE) * 3 // SIZE)
    assert flipped > 5 and unflipped > 5


def test_flips_are_drawn_from_the_seed_and_the_batch_position():
    plain = _take(train_batches(_examples(), batch_size=4, seed=3, augment=False), 6)
    augmented = _take(train_batches(_examples(), batch_size=4, seed=3), 6)
    for position, ((x, y), (fx, fy)) in enumerate(zip(plain, augmented, strict=True)):
        flip = np.random.default_rng((3, 1, position)).random(len(x)) < 0.5
        np.testing.assert_array_equal(fx, np.where(flip[:, None, None, None], x[:, :, ::-1], x))
        np.testing.assert_array_equal(fy, np.where(flip[:, None, None, None], y[:, :, ::-1], y))


def test_batches_leave_the_split_as_it_was():
    split = _examples()
    before = split.images.copy(), split.masks.copy()
    _take(train_batches(split, batch_size=5, seed=3), 8)
    np.testing.assert_array_equal(split.images, before[0])
    np.testing.assert_array_equal(split.masks, before[1])


def test_no_augmentation_leaves_examples_as_they_are():
    for images, masks in _take(train_batches(_examples(), batch_size=5, seed=3, augment=False), 4):
        assert (images[:, 0, 0, 0] == 0.0).all() and (masks[:, 0, 0, 0] == 0).all()


def test_test_batches_keep_order_and_end_and_can_be_read_again():
    batches = test_batches(_examples(10), batch_size=4)
    assert len(batches) == 3
    for _ in range(2):  # validation reads the same batches after every epoch
        passed = list(batches)
        assert [len(x) for x, _ in passed] == [4, 4, 2]
        assert sum((_ids(x, 10) for x, _ in passed), []) == list(range(10))


@pytest.mark.parametrize("make", [train_batches, test_batches])
def test_batch_size_must_be_positive(make):
    kwargs = {"seed": 0} if make is train_batches else {}
    with pytest.raises(ValueError, match="batch_size"):
        make(_examples(), batch_size=0, **kwargs)


def test_carve_by_index_as_the_dataset_is_carved():
    tf = pytest.importorskip("tensorflow")
    split = _examples(10)
    validation = choose_validation(10, 3, seed=4, dataset_fingerprint="f" * 64)
    train, held = carve(split, validation)
    assert _ids(held.images, 10) == list(validation.indices)
    assert _ids(train.images, 10) == [i for i in range(10) if i not in validation.indices]
    ds_train, ds_held = carve(tf.data.Dataset.from_tensor_slices((split.images, split.masks)), validation)
    assert _ids(np.stack([x.numpy() for x, _ in ds_held]), 10) == _ids(held.images, 10)
    assert _ids(np.stack([x.numpy() for x, _ in ds_train]), 10) == _ids(train.images, 10)
    with pytest.raises(ValueError, match="chosen of 10 images, not 9"):
        carve(split.take(9), validation)


# === Resizing: tf.image.resize's arithmetic ===


@pytest.mark.parametrize(("height", "width", "size"), [(37, 53, 16), (7, 5, 16), (500, 375, 128), (128, 128, 128)])
def test_resize_is_tf_image_resize(height, width, size):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(height)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    trimap = rng.integers(1, 4, (height, width, 1), dtype=np.uint8)
    expected = tf.image.resize(image, (size, size), method="bilinear").numpy()
    ours = resize_bilinear(image, size)
    assert ours.dtype == np.float32 and ours.shape == (size, size, 3)
    assert np.abs(ours - expected).max() <= 1e-6 * 255
    np.testing.assert_array_equal(resize_nearest(trimap, size),
                                  tf.image.resize(trimap, (size, size), method="nearest").numpy())


def test_decode_and_resize_match_tensorflow_on_the_real_photos(pet_sample_dir):
    """Every sample photo: Pillow decodes as TensorFlow's accurate IDCT does (TensorFlow's default
    is the fast one: see bench.data.decoders), trimaps as decode_png does; the resizes equal."""
    tf = pytest.importorskip("tensorflow")
    names = _names(pet_sample_dir, "trainval.txt") + _names(pet_sample_dir, "test.txt")
    assert len(names) == 210
    worst = 0.0
    for name in names:
        data = (pet_sample_dir / "images" / f"{name}.jpg").read_bytes()
        image = PILLOW.decode_image(data)
        np.testing.assert_array_equal(image, tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"))
        trimap_data = (pet_sample_dir / "annotations" / "trimaps" / f"{name}.png").read_bytes()
        trimap = PILLOW.decode_trimap(trimap_data)
        np.testing.assert_array_equal(trimap, tf.io.decode_png(trimap_data, channels=1))
        for size in (128, 333):
            expected = (tf.image.resize(image, (size, size)) / 255.0).numpy()
            worst = max(worst, float(np.abs(resize_bilinear(image, size) / np.float32(255.0) - expected).max()))
            np.testing.assert_array_equal(resize_nearest(trimap, size),
                                          tf.image.resize(trimap, (size, size), method="nearest").numpy())
    assert worst <= 1e-6


def test_decoders_read_the_release_quirks_alike():
    """An RGBA PNG loses its alpha, grayscale is repeated, a GIF gives its first frame: the same pixels."""
    pytest.importorskip("tensorflow")
    from bench.data.decoders import TENSORFLOW

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    files = {}
    for kind, image in (("rgba-png", Image.fromarray(pixels, "RGBA")), ("gray-png", Image.fromarray(pixels[..., 0])),
                        ("gif", Image.fromarray(pixels[..., :3]).quantize(64)), ("bmp", Image.fromarray(pixels[..., :3]))):
        buffer = io.BytesIO()
        image.save(buffer, format={"rgba-png": "PNG", "gray-png": "PNG"}.get(kind, kind.upper()))
        files[kind] = buffer.getvalue()
    for kind, data in files.items():
        np.testing.assert_array_equal(PILLOW.decode_image(data), TENSORFLOW.decode_image(data), err_msg=kind)


# === The array path against the tf.data path ===


def _both_paths(root: Path, size: int):
    return (load_pets(f"dir:{root}", image_size=size, as_arrays=True),
            load_pets(f"dir:{root}", image_size=size))


def _assert_same_examples(arrays: ArraySplit, dataset, *, max_abs: float, mean_abs: float) -> None:
    reference = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert len(arrays) == len(reference)
    images = np.stack([x for x, _ in reference])
    masks = np.stack([y for _, y in reference])
    np.testing.assert_array_equal(arrays.masks, masks)
    difference = np.abs(arrays.images - images)
    # The JPEG decoders' IDCTs differ (bench.data.decoders); the order and the examples do not.
    assert difference.max() <= max_abs and difference.mean() <= mean_abs, (difference.max(), difference.mean())
    assert np.argmin(np.abs(arrays.images[:, None] - images[None]).mean(axis=(2, 3, 4)), axis=1).tolist() == list(
        range(len(images)))


def test_array_path_gives_the_tf_data_paths_examples_in_order(release):
    pytest.importorskip("tensorflow")
    arrays, datasets = _both_paths(release, 32)
    assert arrays.provenance == datasets.provenance
    assert isinstance(arrays.train, ArraySplit) and arrays.train.images.shape == (4, 32, 32, 3)
    _assert_same_examples(arrays.train, datasets.train, max_abs=0.1, mean_abs=0.01)
    _assert_same_examples(arrays.test, datasets.test, max_abs=0.1, mean_abs=0.01)
    _assert_same_examples(arrays.test.take(2), datasets.test.take(2), max_abs=0.1, mean_abs=0.01)


def test_array_path_on_the_real_sample(pet_sample_dir):
    pytest.importorskip("tensorflow")
    arrays, datasets = _both_paths(pet_sample_dir, 64)
    assert arrays.provenance == datasets.provenance
    assert (len(arrays.train), len(arrays.test)) == (112, 98)
    _assert_same_examples(arrays.train, datasets.train, max_abs=0.1, mean_abs=0.01)
    _assert_same_examples(arrays.test, datasets.test, max_abs=0.1, mean_abs=0.01)


def test_synthetic_source_as_arrays(monkeypatch):
    from bench.data import sources
    from bench.data.synthetic import SyntheticConfig

    monkeypatch.setattr(sources, "SyntheticConfig",
                        lambda seed: SyntheticConfig(seed=seed, num_train=3, num_test=2, min_size=40, max_size=48))
    splits = load_pets("synthetic", image_size=16, seed=2, as_arrays=True)
    assert splits.provenance.synthetic and (len(splits.train), len(splits.test)) == (3, 2)
    assert splits.train.images.min() >= 0.0 and splits.train.images.max() <= 1.0
    assert set(np.unique(splits.train.masks)) <= {0, 1, 2}


# === The cache ===


def _count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    decode_split = arrays_module.decode_split

    def counting(examples, image_size, decoder):
        calls.append(len(examples))
        return decode_split(examples, image_size, decoder)

    monkeypatch.setattr("bench.data.release.decode_split", counting)
    return calls


def test_arrays_are_decoded_once_per_dataset_and_size(release, monkeypatch):
    calls = _count_decodes(monkeypatch)
    first = load_pets(f"dir:{release}", image_size=24, as_arrays=True)
    assert calls == [4, 3]
    again = load_pets(f"dir:{release}", image_size=24, as_arrays=True)
    assert calls == [4, 3]  # from the cache
    np.testing.assert_array_equal(again.train.images, first.train.images)
    np.testing.assert_array_equal(again.test.masks, first.test.masks)
    images, _ = next(train_batches(again.train, batch_size=4, seed=0))  # cached arrays batch (and flip) too
    assert images.shape == (4, 24, 24, 3)
    load_pets(f"dir:{release}", image_size=16, as_arrays=True)
    assert calls == [4, 3, 4, 3]  # another size, other arrays


@pytest.mark.parametrize("damage", ["flipped-byte", "cut-short", "manifest", "missing"])
def test_a_damaged_cache_entry_is_rebuilt_not_trusted(release, monkeypatch, caplog, damage):
    calls = _count_decodes(monkeypatch)
    good = load_pets(f"dir:{release}", image_size=24, as_arrays=True)
    entry = next((Path(os.environ["SEGBENCH_CACHE"]) / "pets-arrays").iterdir())
    target = entry / "train-images.npy"
    data = bytearray(target.read_bytes())
    if damage == "flipped-byte":
        data[-5] ^= 0x40
        target.write_bytes(bytes(data))
    elif damage == "cut-short":
        target.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "manifest":
        (entry / "manifest.json").write_text("{not json")
    else:
        target.unlink()
    with caplog.at_level(logging.WARNING, logger="bench.data.arrays"):
        rebuilt = load_pets(f"dir:{release}", image_size=24, as_arrays=True)
    assert calls == [4, 3, 4, 3] and "damaged" in caplog.text
    np.testing.assert_array_equal(rebuilt.train.images, good.train.images)
    assert load_pets(f"dir:{release}", image_size=24, as_arrays=True) and calls == [4, 3, 4, 3]  # kept again


def test_an_unwritable_cache_still_loads(release, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("SEGBENCH_CACHE", str(blocker))
    assert len(load_pets(f"dir:{release}", image_size=16, as_arrays=True).train) == 4


# === Without TensorFlow, and on every backend ===


def _run(script: str, tmp_path: Path, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "SEGBENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO), **env},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


_WITHOUT_TENSORFLOW = """
    import sys
    sys.modules["tensorflow"] = None  # import tensorflow now raises ImportError, as where it is absent
    import numpy as np
    import bench.data
    from bench.data import DataError, load_pets, train_batches, test_batches
    from bench.data.split import carve, choose_validation
    splits = load_pets("dir:" + sys.argv[1], image_size=16, as_arrays=True)
    images, masks = next(train_batches(splits.train, batch_size=3, seed=0))
    assert images.shape == (3, 16, 16, 3) and masks.dtype == np.uint8
    train, val = carve(splits.train, choose_validation(4, 1, 0, splits.provenance.fingerprint))
    assert (len(train), len(val)) == (3, 1) and len(list(test_batches(splits.test, batch_size=2))) == 2
    for source in ("tfds", "dir:" + sys.argv[1]):
        try:
            load_pets(source, image_size=16)
        except DataError as error:
            assert "\\n" not in str(error) and "pip install" in str(error), error
            print(source, "->", error)
        else:
            raise AssertionError(source + " loaded without TensorFlow")
    print("ok", sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""


def test_the_array_path_needs_no_tensorflow(release, tmp_path):
    out = _run(_WITHOUT_TENSORFLOW.replace("sys.argv[1]", repr(str(release))), tmp_path)
    assert "ok ['tensorflow']" in out  # only the blocked entry: nothing imported TensorFlow or Keras


_FIT = """
    import sys
    import keras
    from bench.data import load_pets, train_batches
    load_pets("dir:" + sys.argv[1], image_size=16, as_arrays=True)
    splits = load_pets("dir:" + sys.argv[1], image_size=16, as_arrays=True)  # from the cache
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    batches = train_batches(splits.train, batch_size=3, seed=0)  # epochs of 3 + 1 examples
    history = model.fit(batches, steps_per_epoch=2, epochs=2, verbose=0)
    print(keras.backend.backend(), len(history.history["loss"]))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_keras_fit_takes_the_batches_on_every_backend(release, tmp_path, backend):
    pytest.importorskip(backend)
    out = _run(_FIT.replace("sys.argv[1]", repr(str(release))), tmp_path, KERAS_BACKEND=backend)
    assert out.split()[-2:] == [backend, "2"]
