"""The evidence, the validation step and precise BN give TensorFlow's numbers on JAX.

Keras picks its backend once a process, so the JAX side runs this file as a script in a fresh
interpreter (``KERAS_BACKEND=jax``) and the test compares its arrays with the same functions run
here, on TensorFlow: counts exactly, floats to 1e-5 relative; and the JAX side never imports
TensorFlow.

Exact counts across backends need inputs on which float32 rounding cannot move a pixel: two
backends' softmax or log may differ in the last bit, which would carry a confidence or an entropy
lying on a bin edge, or a near-tie of two classes, to the other side. The inputs are random, and
every pixel closer than :data:`MARGIN` to an edge or a tie (reckoned in float64) is replaced by a
fixed safe one; exact ties of equal float32 logits are kept on purpose (both backends take the
first class). The forward model is a 1x1 convolution by a scaled permutation, exact in float32.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
#: Distance, in bins (calibration, entropy) or in probability (class margin), a pixel keeps from an edge.
MARGIN = 1e-3
#: A safe pixel: confidence bin position 10.5, entropy bin position 73.0 (0.7, 0.2, 0.1); and one
#: with a zero probability for 0 log 0: 11.25 and 51.2.
SAFE, SAFE_WITH_ZERO = np.array([0.7, 0.2, 0.1]), np.array([0.75, 0.25, 0.0])
#: Image size, the two batch sizes (a smaller last batch: JAX compiles the step once more) and T.
SIZE, BATCHES, SAMPLES = 32, (3, 2), 5


def _distance_to_whole(x: np.ndarray) -> np.ndarray:
    return np.abs(x - np.round(x))


def _well_placed(probs: np.ndarray) -> np.ndarray:
    """Pixels ``(...)`` of float64 probabilities ``(..., 3)`` away from every bin edge and near-tie
    (an exact tie is fine: both backends see the same equal numbers)."""
    from bench.evidence.ops import CALIBRATION_BINS, ENTROPY_BINS

    top2 = np.sort(probs, axis=-1)[..., -2:]
    gap = top2[..., 1] - top2[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(-1)
    return ((gap == 0) | (gap > MARGIN)) \
        & (_distance_to_whole(top2[..., 1] * CALIBRATION_BINS) > MARGIN) \
        & (_distance_to_whole(entropy / math.log(3) * ENTROPY_BINS) > MARGIN)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def inputs() -> dict[str, np.ndarray]:
    """The fixed inputs: masks with the border class, logits with exact ties, MC samples with
    zeros, and images for the forward model (whose logits are ``2 * images`` permuted)."""
    rng = np.random.default_rng(0)
    n = sum(BATCHES)
    masks = rng.integers(0, 3, (n, SIZE, SIZE, 1)).astype(np.uint8)
    masks[:, 8:24, 6:20, 0] = np.where(rng.random((n, 16, 14)) < 0.9, 0, masks[:, 8:24, 6:20, 0])  # a pet
    logits = rng.integers(-4, 5, (n, SIZE, SIZE, 3)).astype(np.float32) / 2  # many exact ties
    logits[: n // 2] += rng.normal(size=logits[: n // 2].shape).astype(np.float32)
    bad = ~_well_placed(_softmax(logits.astype(np.float64)))
    logits[bad] = np.log(SAFE).astype(np.float32)
    samples = rng.dirichlet([0.7, 0.7, 0.7], size=(SAMPLES, n, SIZE, SIZE)).astype(np.float32)
    samples[:, :, :3, :3] = SAFE_WITH_ZERO.astype(np.float32)
    wide = samples.astype(np.float64)
    good = _well_placed(wide[0]) & np.all([_well_placed(wide[:t].mean(0)) for t in (1, 2, 5)], axis=0)
    samples[:, ~good] = SAFE.astype(np.float32)
    images = (logits[..., [2, 0, 1]] / 2).astype(np.float32)
    assert _well_placed(_softmax(2 * images[..., [1, 2, 0]].astype(np.float64))).all()
    return {"masks": masks, "logits": logits, "samples": samples, "images": images, "replaced": bad.sum() + (~good).sum()}


def _models() -> tuple[Any, Any]:
    """The forward model (images -> logits, exact) and a conv-BN model for precise BN, fixed weights."""
    import keras

    inputs_ = keras.Input((SIZE, SIZE, 3))
    permute = keras.layers.Conv2D(3, 1, use_bias=False)
    forward = keras.Model(inputs_, permute(inputs_))
    permute.set_weights([(2 * np.eye(3, dtype=np.float32)[[1, 2, 0]].T)[None, None]])
    x = keras.layers.Conv2D(4, 1, use_bias=False)(inputs_)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    bn_model = keras.Model(inputs_, keras.layers.Conv2D(3, 1)(x))
    rng = np.random.default_rng(1)
    bn_model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in bn_model.get_weights()])
    return forward, bn_model


def evidence() -> dict[str, np.ndarray]:
    """Every output of the functions under test on :func:`inputs`, as NumPy arrays."""
    import keras

    from bench.config.backends import to_numpy, traced
    from bench.evidence import ops
    from bench.measure.precise_bn import batchnorm_layers, recompute_batchnorm_statistics
    from bench.measure.validation import Validation

    x = inputs()
    masks, logits, samples, images = x["masks"], x["logits"], x["samples"], x["images"]
    out: dict[str, np.ndarray] = {}
    width = ops.boundary_width(SIZE)
    step = traced(lambda m, z: ops.batch_evidence(m, z, width))
    for key, value in {**ops.batch_evidence(masks, logits, width), **{f"traced_{k}": v for k, v in step(
            masks, logits).items()}}.items():
        out[f"batch_evidence/{key}"] = to_numpy(value)
    mean, entropy = ops.mc_summary(samples)
    out["mc_summary/mean"], out["mc_summary/entropy"] = to_numpy(mean), to_numpy(entropy)
    out["predictive_entropy"] = to_numpy(ops.predictive_entropy(samples[0]))
    for t, running in ops.running_means(iter(samples), (1, 2, 5)):
        out[f"running_means/{t}"] = to_numpy(running)
    for ignore in (False, True):
        out[f"entropy_histograms/{ignore}"] = to_numpy(ops.entropy_histograms(masks, samples[0], ignore_border=ignore))

    forward, bn_model = _models()
    mc, per_image = ops.MCDropoutAccumulator(SAMPLES), ops.EvidenceAccumulator()
    with_forward = ops.EvidenceAccumulator(forward=lambda z: forward(z, training=False))
    start = 0
    for n in BATCHES:
        part = slice(start, start + n)
        per_image.update_probabilities(masks[part], mc.update(masks[part], iter(samples[:, part])))
        with_forward.update(masks[part], images[part], image_index=np.arange(start, start + n)[::-1])
        start += n
    out.update({f"mc/{k}": v for k, v in mc.result().items()})
    out.update({f"mc_per_image/{k}": v for k, v in per_image.result().items()})
    out.update({f"forward/{k}": v for k, v in with_forward.result().items()})

    validation = Validation([(images[:3], masks[:3]), (images[3:], masks[3:, ..., 0])], None, 0)
    validation.set_model(forward)
    out.update({f"validation/{k}": np.float64(v) for k, v in validation.measure().items()})

    shifted = [images[i : i + 2] * 3 + 1 for i in range(0, 4, 2)]
    layer = batchnorm_layers(bn_model)[0]
    out["precise_bn/layers"] = np.int32(recompute_batchnorm_statistics(bn_model, iter(shifted), 2))
    out["precise_bn/momentum"] = np.float64(layer.momentum)
    out["precise_bn/moving_mean"] = keras.ops.convert_to_numpy(layer.moving_mean)
    out["precise_bn/moving_variance"] = keras.ops.convert_to_numpy(layer.moving_variance)
    return out


@pytest.fixture(scope="module")
def on_jax(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    pytest.importorskip("jax", reason="jax is not installed: pip install -e '.[harness,jax]'")
    path = tmp_path_factory.mktemp("jax") / "evidence.npz"
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True, timeout=600,
                          cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(path) as arrays:
        return dict(arrays)


def test_the_inputs_keep_their_ties_and_leave_few_pixels_replaced() -> None:
    x = inputs()
    top2 = np.sort(x["logits"], axis=-1)[..., -2:]
    assert (top2[..., 0] == top2[..., 1]).mean() > 0.05  # argmax ties, resolved to the first class
    assert x["replaced"] < 0.05 * x["masks"].size and (x["samples"] == 0).any() and (x["masks"] == 2).any()


def test_evidence_validation_and_precise_bn_on_jax_equal_tensorflow(on_jax: dict[str, np.ndarray]) -> None:
    import keras

    assert keras.backend.backend() == "tensorflow"
    here = evidence()
    assert set(here) == set(on_jax)
    assert on_jax["precise_bn/layers"] == 1 and on_jax["precise_bn/momentum"] == 0.9  # restored
    assert on_jax["forward/image_index"].tolist() == [2, 1, 0, 4, 3]
    for key, value in here.items():
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(on_jax[key], value, rtol=1e-5, err_msg=key)
        else:
            assert on_jax[key].dtype == value.dtype and np.array_equal(on_jax[key], value), key
    # Not vacuous: the comparisons cover counts that vary, and precise BN moved the statistics.
    assert len(np.unique(here["forward/confusion"])) > 5 and here["mc/mc_entropy_histogram"].sum() > 0
    assert not np.allclose(here["precise_bn/moving_mean"], 0)


if __name__ == "__main__":  # the JAX side: python test_ops_backends.py OUT.npz, under KERAS_BACKEND=jax
    import keras

    assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
    arrays = evidence()
    assert "tensorflow" not in sys.modules, "the evidence, validation or precise BN imported TensorFlow on JAX"
    np.savez(sys.argv[1], **arrays)
