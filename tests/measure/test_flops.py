"""The layer-walking FLOP counter against TensorFlow's profiler: by hand, live, stored, and on JAX."""

from __future__ import annotations

import csv
import gc
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import segmodels
from bench.measure.flops import flops_by_layer_type, flops_per_image, profiled_flops

REPO = Path(__file__).resolve().parents[2]
COSTS = REPO / "results" / "costs"
STORED_SIZE = 96  # results/costs/context.json: profile.image_size


def _stored_flops() -> dict[str, int]:
    with open(COSTS / "metrics.csv", newline="") as f:
        return {r["model"]: int(float(r["value"])) for r in csv.DictReader(f) if r["metric"] == "flops_per_image"}


# === Known answer ===


def test_known_answer_conv_bn_dense() -> None:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    # conv:  2 * (8*8*4 outputs) * (3*3*3 taps) = 13824, bias one per output: 256  -> 14080
    # BN:    x * inv + shift, 2 per element: 512; per channel add eps, rsqrt (2), * gamma,
    #        mean * inv, beta - that: 6 * 4 = 24                                    ->   536
    # ReLU:  0 (TF registers no count);  global average: one per input element     ->   256
    # dense: 2 * 4 inputs * 2 outputs = 16, bias 2                                  ->    18
    assert flops_per_image(model, 8) == 14080 + 536 + 256 + 18 == 14890
    assert profiled_flops(model, 8) == 14890


# === Every rule against the live profiler ===


def _every_rule_model() -> keras.Model:
    """A small graph with every layer type the counter has a rule for, dilations, a nested model
    and a shared layer (called twice: counted twice)."""
    inner_in = keras.Input((16, 16, 8))
    y = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=3, use_bias=True)(inner_in)
    y = keras.layers.BatchNormalization(scale=False)(y)
    inner = keras.Model(inner_in, keras.layers.Activation("relu")(y), name="inner")

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0, offset=-0.5)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=5, activation="relu")(x)
    x = inner(x)
    x = keras.Sequential([keras.Input((16, 16, 8)), keras.layers.Conv2D(8, 1)])(x)
    shared = keras.layers.Conv2D(8, 1, use_bias=False)
    a, b = shared(x), shared(keras.layers.Conv2D(8, 3, padding="valid", dilation_rate=2)(x))
    b = keras.layers.ZeroPadding2D(2)(b)
    x = keras.layers.Add()([a, b, x])
    x = keras.layers.Multiply()([x, a])
    x = keras.layers.Subtract()([x, b])
    x = keras.layers.Average()([x, a])
    x = keras.layers.Maximum()([x, b])
    x = keras.layers.Minimum()([x, a])
    p = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    q = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Concatenate()([p, q])
    x = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same")(x)
    x = keras.layers.UpSampling2D(2)(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Softmax()(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax")(pooled)
    return keras.Model(inputs, outputs)


def test_every_rule_matches_the_profiler() -> None:
    model = _every_rule_model()
    by_type = flops_by_layer_type(model, 16)
    assert by_type["DepthwiseConv2D"] > 0 and by_type["UpSampling2D"] == 2  # the nested model was walked
    assert sum(by_type.values()) == profiled_flops(model, 16)


def test_unknown_layer_with_weights_is_an_error_weightless_counts_zero() -> None:
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],))

        def call(self, x):
            return x * self.w

    class Identity(keras.layers.Layer):
        def call(self, x):
            return x

    inputs = keras.Input((4, 4, 3))
    x = Identity()(keras.layers.Conv2D(2, 1)(inputs))
    weightless = keras.Model(inputs, keras.ops.flip(x, axis=1))  # a keras.ops call: an Operation node
    assert flops_per_image(weightless, 4) == 2 * 4 * 4 * 2 * 3 + 4 * 4 * 2  # the 1x1 conv and its bias
    with pytest.raises(ValueError, match="type Scale holds weights"):
        flops_per_image(keras.Model(inputs, Scale()(inputs)), 4)


def test_model_built_for_another_size_is_an_error() -> None:
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match="built for 16 x 16"):
        flops_per_image(keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)), 16)


# === The stored TensorFlow counts ===

# Every architecture on MobileNetV2 and DeepLabV3 on ResNet-50: every layer type the registry's
# networks use (transposed, dilated and depthwise convolutions, image pooling, bilinear and
# nearest upsampling, merges, dropout, max pooling, a dilated ResNet stage). The FCNs on ResNet
# are left out: 450 M parameters each, and no new layer type.
STORED_SUBSET = [
    *(f"{a}-mobilenetv2" for a in ("unet", "deeplabv3", "fcn8s", "fcn16s", "fcn32s", "fpn", "segnet", "bayesian_segnet")),
    "deeplabv3-resnet50",
]


@pytest.mark.parametrize("name", STORED_SUBSET)
def test_counter_equals_the_stored_profiler_count(name: str) -> None:
    architecture, backbone = name.split("-")
    model = segmodels.create_model(architecture, backbone, num_classes=3, input_shape=(STORED_SIZE,) * 2 + (3,))
    try:
        assert flops_per_image(model, STORED_SIZE) == _stored_flops()[name]
    finally:
        del model
        keras.backend.clear_session()
        gc.collect()


def test_counter_on_jax_equals_the_profiler_on_tensorflow() -> None:
    code = (
        "import sys\n"
        "from bench.measure.flops import flops_per_image\n"
        "from tests.measure.test_flops import _every_rule_model\n"
        "import keras\n"
        "print(keras.backend.backend(), 'tensorflow' in sys.modules, flops_per_image(_every_rule_model(), 16))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    backend, imported_tf, flops = out.stdout.split()[-3:]
    assert (backend, imported_tf) == ("jax", "False")  # counted without TensorFlow
    assert int(flops) == profiled_flops(_every_rule_model(), 16)
