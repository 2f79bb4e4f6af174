"""Classical segmenters: accuracy on a synthetic pet, valid trimaps on anything, the Keras wrapper.

Accuracy is asserted only on synthetic images with a known shape; on the real sample the tests
assert validity and nothing else (its size supports no accuracy claims).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import segmodels
from segmodels import classical, registry
from segmodels.classical import BACKGROUND, BORDER, PET

METHODS = registry.classical_names()

# Pet IoU each method must reach on the synthetic pet below (measured 0.92-1.00 on seed 0; the margin
# allows for library versions, not for a broken method).
MIN_IOU = {"sobel": 0.85, "canny": 0.85, "otsu": 0.85, "watershed": 0.85, "slic": 0.85, "felzenszwalb": 0.85}


def synthetic_pet(shape: tuple[int, int] = (128, 128), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A striped dark ellipse, a little off centre, on a lighter blotchy background, with noise.

    Returns:
        ``(image float32 (H, W, 3) in [0, 1], true foreground bool (H, W))``.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    fg = ((y - 0.55 * h) / (0.3 * h)) ** 2 + ((x - 0.45 * w) / (0.25 * w)) ** 2 <= 1
    blotches = np.asarray(
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32
    ) / 255
    background = np.stack([0.55 + 0.15 * blotches, 0.65 + 0.1 * blotches, 0.5 + 0.1 * blotches], -1)
    stripes = 0.05 * np.sin(x / 2.0)[..., None]
    pet = np.array([0.35, 0.22, 0.12], np.float32) + stripes
    image = np.where(fg[..., None], pet, background) + rng.normal(0, 0.04, (h, w, 3))
    return np.clip(image, 0, 1).astype(np.float32), fg


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a & b) / np.sum(a | b))


def assert_trimap(mask: np.ndarray, shape: tuple[int, int]) -> None:
    assert mask.shape == shape
    assert mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {PET, BACKGROUND, BORDER}


# === Accuracy on a known shape ===


@pytest.mark.parametrize("method", METHODS)
def test_finds_synthetic_pet(method: str) -> None:
    image, truth = synthetic_pet()
    assert iou(classical.foreground(image, method), truth) >= MIN_IOU[method]
    # The trimap's pet plus border covers the pet: the band straddles the predicted outline.
    mask = classical.segment(image, method)
    assert iou(mask != BACKGROUND, truth) >= MIN_IOU[method] - 0.1


def test_methods_cover_both_families() -> None:
    assert {registry.get_classical(m).family for m in METHODS} == {"edge", "region"}
    assert {"sobel", "canny", "otsu", "watershed", "slic", "felzenszwalb"} <= set(METHODS)


# === Validity on anything ===


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(128, 128), (96, 160), (200, 72), (33, 47)], ids=str)
def test_valid_trimap_of_input_size(method: str, shape: tuple[int, int]) -> None:
    image, _ = synthetic_pet(shape, seed=1)
    assert_trimap(classical.segment(image, method), shape)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "image",
    [
        np.full((64, 80, 3), 0.5, np.float32),
        np.zeros((64, 80, 3), np.uint8),
        np.random.default_rng(2).random((64, 80, 3)).astype(np.float32),
    ],
    ids=["grey", "black-uint8", "noise"],
)
def test_degenerate_images(method: str, image: np.ndarray) -> None:
    mask = classical.segment(image, method)
    assert_trimap(mask, (64, 80))
    if np.ptp(image) == 0:
        assert np.all(mask == BACKGROUND)  # a constant image has no object


@pytest.mark.parametrize("method", METHODS)
def test_uint8_and_float_agree(method: str) -> None:
    image, _ = synthetic_pet(seed=3)
    as_uint8 = np.round(image * 255).astype(np.uint8)
    expected = classical.segment(as_uint8, method)
    np.testing.assert_array_equal(classical.segment(as_uint8.astype(np.float32) / 255, method), expected)
    np.testing.assert_array_equal(classical.segment(as_uint8 / 255.0, method), expected)  # float64


def test_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        classical.segment(np.zeros((32, 32)), "otsu")


def test_unknown_method_lists_known_and_suggests_nearest() -> None:
    # The registry's error, as for an unknown architecture or backbone.
    with pytest.raises(segmodels.UnknownNameError, match="Did you mean 'canny'") as info:
        classical.segment(np.zeros((32, 32, 3)), "cany")
    assert all(name in str(info.value) for name in METHODS)
    with pytest.raises(segmodels.UnknownNameError, match="Known classical methods: "):
        classical.build_classical_model("unet")


# === Border band ===


@pytest.mark.parametrize("size", [128, 256])
def test_border_band_has_the_trimaps_width(size: int) -> None:
    y, x = np.mgrid[0:size, 0:size]
    disk = (y - size / 2) ** 2 + (x - size / 2) ** 2 <= (0.3 * size) ** 2
    trimap = classical.to_trimap(disk)
    expected = classical.BORDER_WIDTH_128 * size / 128
    assert classical.measure_border_width(trimap) == pytest.approx(expected, rel=0.15)
    assert np.all(trimap[disk & (trimap != BORDER)] == PET)


def test_border_width_constant_matches_real_trimaps(pet_sample_dir: Path) -> None:
    """Re-measures ``BORDER_WIDTH_128`` on every real trimap at 128x128 (nearest neighbour)."""
    widths = []
    for path in sorted((pet_sample_dir / "annotations" / "trimaps").glob("*.png")):
        trimap = np.asarray(Image.open(path).resize((128, 128), Image.NEAREST)).astype(np.int64) - 1
        widths.append(classical.measure_border_width(trimap))
    assert len(widths) >= 100
    assert pytest.approx(np.median(widths), abs=0.25) == classical.BORDER_WIDTH_128


# === Real photos: validity only ===


@pytest.mark.parametrize("method", METHODS)
def test_real_photos_give_valid_trimaps(method: str, pet_sample_dir: Path) -> None:
    names = [line.split()[0] for line in (pet_sample_dir / "annotations" / "test.txt").read_text().splitlines() if line]
    for name in names[:20]:
        image = np.asarray(Image.open(pet_sample_dir / "images" / f"{name}.jpg").convert("RGB").resize((128, 128)))
        assert_trimap(classical.segment(image, method), (128, 128))


# === Keras wrapper ===


@pytest.mark.parametrize("method", METHODS)
def test_keras_model_matches_segment(method: str) -> None:
    shape = (48, 64)
    images = np.stack([synthetic_pet(shape, seed=s)[0] for s in range(3)])
    expected = np.stack([classical.segment(image, method) for image in images])
    model = classical.build_classical_model(method, input_shape=(*shape, 3))
    assert model.name == f"classical-{method}"
    assert model.count_params() == 0
    assert model.output_shape == (None, *shape, 3)

    predicted = model.predict(images, batch_size=2, verbose=0)
    assert predicted.dtype == np.float32
    np.testing.assert_array_equal(predicted.sum(-1), 1.0)  # exactly one-hot
    np.testing.assert_array_equal(predicted.argmax(-1), expected)
    np.testing.assert_array_equal(np.asarray(model(images)), predicted)  # eager, deterministic

    graph_call = tf.function(lambda x: model(x, training=False))
    traced = graph_call(tf.constant(images))
    assert traced.shape == (3, *shape, 3)
    np.testing.assert_array_equal(traced.numpy(), predicted)


def test_list_classical_models() -> None:
    assert classical.list_classical_models() == sorted(f"classical-{m}" for m in METHODS)
    assert classical.list_classical_models("classical-s*") == ["classical-slic", "classical-sobel"]
    assert classical.list_classical_models("unet-*") == []

    # The deep registry stays the architecture x backbone product.
    assert not set(segmodels.list_models()) & set(classical.list_classical_models())


def test_keras_layer_config_round_trip() -> None:
    import keras

    # Registered under the model library's package, like its other Keras objects.
    assert keras.saving.get_registered_name(classical.ClassicalSegmenter) == "segmodels>ClassicalSegmenter"
    layer = classical.ClassicalSegmenter("felzenszwalb")
    clone = classical.ClassicalSegmenter.from_config(layer.get_config())
    assert clone.method == "felzenszwalb"
    assert not clone.weights


def test_keras_model_needs_three_classes() -> None:
    with pytest.raises(ValueError, match="num_classes must be 3"):
        classical.build_classical_model("otsu", num_classes=2)
