"""Is the input pipeline ever what limits training? Images/s at 128 px, batch 64, on this machine.

The yardstick is the fastest model's training speed: U-Net MobileNetV2 trains at ~25 images/s on
the 2-core reference machine; the pipeline should deliver at least 5x that, so that it
stays out of the way even while sharing the cores with training. Measured on real photos (the
../shared sample: original-size JPEGs, ~500 px) when present, else on synthetic scenes of the
same sizes. Run: `python -m pytest tests/perf/test_pipeline_perf.py -m perf` (or `nox -s perf`).

Each is measured for both data paths, side by side: `tf_data` (TensorFlow decodes, tf.data
batches) and `arrays` (`load_pets(as_arrays=True)`: Pillow decodes and NumPy resizes once into
cached arrays, NumPy batches).

- decode: load + decode + resize + batch of every image. tf_data: the cost of each pass over the
  test split and of the train split's first epoch (later epochs come from the cache). arrays: the
  cost of building the array cache, paid once per dataset and image size.
- train_steady: the train pipeline from its cache: shuffle, batch, flip (and prefetch, tf_data).
- load: what `load_pets` spends validating and fingerprinting (arrays: and reading and checking the
  cached arrays), per example (reported, not gated).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.data import ArraySplit, PetSplits, load_pets, test_batches, train_batches
from bench.data.arrays import decode_split
from bench.data.decoders import PILLOW
from bench.data.release import SPLIT_LISTS, read_split_list
from bench.data.synthetic import SyntheticConfig, ensure_synthetic

pytestmark = pytest.mark.perf

IMAGE_SIZE = 128
BATCH_SIZE = 64
TRAINING_IMAGES_PER_S = 25.0  # U-Net MobileNetV2 training, 128 px, 2 CPU cores
TARGET_RATIO = 5.0


@pytest.fixture(scope="module")
def release_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return request.getfixturevalue("pet_sample_dir")
    except pytest.skip.Exception:  # no real sample here: synthetic scenes at the photos' sizes
        config = SyntheticConfig(num_train=112, num_test=98, min_size=300, max_size=500)
        return ensure_synthetic(config, tmp_path_factory.mktemp("pets"))


@pytest.fixture(scope="module", params=["tf_data", "arrays"])
def pets(request: pytest.FixtureRequest, release_dir: Path) -> PetSplits:
    return load_pets(f"dir:{release_dir}", image_size=IMAGE_SIZE, as_arrays=request.param == "arrays")


def _batch_size(images) -> int:
    return len(images)  # a tf.Tensor's or an array's first dimension


def _report(benchmark, images: int) -> float:
    images_per_s = images / benchmark.stats.stats.median
    ratio = images_per_s / TRAINING_IMAGES_PER_S
    benchmark.extra_info.update(
        images_per_round=images,
        images_per_s=round(images_per_s, 1),
        ratio_to_training=round(ratio, 1),
    )
    print(f"\n{benchmark.name}: {images_per_s:.0f} images/s = {ratio:.1f}x training's 25 images/s")
    return ratio


def test_decode_throughput(benchmark, pets, release_dir):
    count = pets.provenance.train_size + pets.provenance.test_size
    if isinstance(pets.train, ArraySplit):
        examples = [e for split in SPLIT_LISTS for e in read_split_list(release_dir, split)]

        def one_pass() -> int:
            return len(decode_split(examples, IMAGE_SIZE, PILLOW))
    else:
        examples = pets.train.concatenate(pets.test)

        def one_pass() -> int:
            return sum(_batch_size(images) for images, _ in test_batches(examples, batch_size=BATCH_SIZE))

    assert benchmark.pedantic(one_pass, rounds=3, warmup_rounds=1) == count
    assert _report(benchmark, count) >= TARGET_RATIO


def test_train_steady_throughput(benchmark, pets):
    batches = train_batches(pets.train, batch_size=BATCH_SIZE, seed=0)
    per_epoch = -(-pets.provenance.train_size // BATCH_SIZE)
    stream = iter(batches)
    for _ in range(per_epoch):  # fill the cache
        next(stream)
    epochs = 5

    def some_epochs() -> int:
        return sum(_batch_size(next(stream)[0]) for _ in range(epochs * per_epoch))

    assert benchmark.pedantic(some_epochs, rounds=5, warmup_rounds=1) == epochs * pets.provenance.train_size
    assert _report(benchmark, epochs * pets.provenance.train_size) >= TARGET_RATIO


@pytest.mark.parametrize("as_arrays", [False, True], ids=["tf_data", "arrays"])
def test_load_cost_per_example(benchmark, release_dir, as_arrays):
    def load() -> PetSplits:
        return load_pets(f"dir:{release_dir}", image_size=IMAGE_SIZE, as_arrays=as_arrays)

    load()  # the arrays' cache filled: what every later run pays
    splits = benchmark.pedantic(load, rounds=3)
    count = splits.provenance.train_size + splits.provenance.test_size
    per_example_ms = benchmark.stats.stats.median / count * 1e3
    benchmark.extra_info.update(examples=count, ms_per_example=round(per_example_ms, 2),
                                full_release_s=round(per_example_ms * 7349 / 1e3, 1))
    print(f"\n{benchmark.name}: {per_example_ms:.2f} ms/example, ~{per_example_ms * 7.349:.0f} s for the full release")
    assert per_example_ms < 10  # a full-release load over a minute would be a regression
