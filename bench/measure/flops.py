"""FLOPs of one forward pass, counted from the Keras model on any backend, as TF's profiler counts.

What is counted is what TensorFlow's ``float_operation`` profile counts over the traced inference
graph of one image (batch 1), so that every backend's count reads on the scale of the stored
TensorFlow counts:

- convolutions and matrix products count a multiply-add as 2 FLOPs
  (``2 * K_h * K_w * C_in * H_out * W_out * C_out`` for a convolution; a transposed convolution
  counts TF's ``Conv2DBackpropInput`` formula, the same product divided by the stride area; a
  dilated one counts the padded convolution TF runs, see ``_as_run``: at 96 px that padding is
  40 to 62 % of DeepLabV3's count, its rate-12 and rate-18 ASPP branches on a 6 x 6 map);
- element-wise ops count one per output element: bias adds, merges (``Add``, ``Multiply``, ...),
  rescaling (two), BatchNormalization as its inference graph runs it (``x * inv + shift``: two per
  element, plus six per channel for ``inv = rsqrt(var + eps) * gamma`` and
  ``shift = beta - mean * inv``, the profiler counting ``Rsqrt`` as two);
- pooling counts the window area per output element (a global average one per input element);
- activations count where TF registers a count (softmax five per element); ReLU, ReLU6, sigmoid
  and tanh count zero, as do resizes, padding, concatenation, reshapes and dropout at inference
  (nearest upsampling counts the two scalar multiplies of TF's ``tf.repeat``).

One counter for every backend, TensorFlow included: it equals the profiler exactly on all 32
registered networks (``results/costs`` at 96 px) and on a graph with every rule
(``tests/measure/test_flops.py``), so the stored counts stay comparable, a JAX run and a TF run of
the same model record the same number, and no 450 M-parameter graph is traced to count it.
:func:`profiled_flops` is the profiler itself, the reference the counter is tested against.

The counter knows the layer types in ``_LAYER_FLOPS``. A layer of another type that holds weights
is an error naming its type (a plugin layer must not silently count 0); a weightless one counts 0,
as do ``keras.ops`` calls in a functional graph, even where the profiler would count their
arithmetic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import keras


def flops_per_image(model: keras.Model, image_size: int) -> int:
    """Floating-point operations of one forward pass of one ``image_size`` x ``image_size`` image.

    Counted from the model's layers and the shapes its functional graph recorded, on every
    backend, as TF's profiler counts (module docstring: what, and why not the profiler itself on
    TensorFlow). The model must have been built for ``image_size``.

    Raises:
        ValueError: the model is not functional (or a built Sequential), its input is not
            ``image_size`` square, a shape in its graph is not static, or a layer of a type the
            counter does not know holds weights.
    """
    return sum(flops_by_layer_type(model, image_size).values())


def flops_by_layer_type(model: keras.Model, image_size: int) -> Counter[str]:
    """:func:`flops_per_image` split by layer class name (nested models walked, not listed)."""
    graph = _functional(model)
    if graph is None:
        raise ValueError(f"Model {model.name!r} is not a functional or built Sequential model: it has no graph to walk.")
    if tuple(model.input_shape[1:3]) != (image_size, image_size):
        raise ValueError(
            f"Model {model.name!r} was built for inputs {model.input_shape}; the layer count reads the shapes "
            f"its graph recorded, so it needs a model built for {image_size} x {image_size} images."
        )
    counts: Counter[str] = Counter()
    _walk(graph, counts)
    return counts


# === Walking the functional graph ===


def _walk(model: keras.Model, counts: Counter[str]) -> None:
    # Every call of a layer in this graph is one node: a shared layer counts once per call.
    for nodes in model._nodes_by_depth.values():  # Keras has no public per-call view of a graph
        for node in nodes:
            if node.is_input:
                continue
            layer = node.operation
            inner = _functional(layer)
            if inner is not None:
                _walk(inner, counts)
                continue
            inputs = [_shape(t, layer) for t in node.arguments.keras_tensors]
            outputs = [_shape(t, layer) for t in node.outputs]
            counts[type(layer).__name__] += _layer_flops(layer, inputs, outputs)


def _functional(layer: Any) -> keras.Model | None:
    """The graph to walk into, for a nested functional or (built) Sequential model."""
    if isinstance(layer, keras.Sequential):
        return getattr(layer, "_functional", None)  # the graph a built Sequential runs
    if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
        return layer
    return None


def _shape(tensor: Any, layer: Any) -> tuple[int, ...]:
    """A tensor's shape at batch 1; every other dimension must be static."""
    dims = (1, *tensor.shape[1:])
    if any(d is None for d in dims):
        raise ValueError(f"Layer {layer.name!r} has a dynamic shape {tensor.shape}; the FLOP count needs static shapes.")
    return tuple(int(d) for d in dims)


def _layer_flops(layer: Any, inputs: list[tuple[int, ...]], outputs: list[tuple[int, ...]]) -> int:
    for cls in type(layer).__mro__:  # a subclass (MonteCarloDropout) counts as its base does
        rule = _LAYER_FLOPS.get(cls)
        if rule is not None:
            return rule(layer, inputs, outputs)
    if getattr(layer, "weights", ()):  # a keras.ops call in the graph is an Operation, not a Layer
        raise ValueError(
            f"Layer {layer.name!r} of type {type(layer).__name__} holds weights but the FLOP counter has no rule "
            "for its type; add one to bench.measure.flops._LAYER_FLOPS (a guessed 0 would be a wrong count)."
        )
    return 0  # weightless and unknown: resizing, padding, concatenation, reshapes, dropout...


# === Per-layer rules, TF profiler conventions ===


def _elements(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _bias(layer: Any, output: tuple[int, ...]) -> int:
    return _elements(output) if getattr(layer, "use_bias", False) else 0


# Per output element, for the activations TF's profiler registers a count for (Softmax: 5);
# Relu, Relu6, Sigmoid and Tanh have none. Another activation is an error, not a guess.
_ACTIVATION_FLOPS = {"linear": 0, "relu": 0, "relu6": 0, "sigmoid": 0, "tanh": 0, "softmax": 5}


def _activation(layer: Any, output: tuple[int, ...]) -> int:
    fn = getattr(layer, "activation", None)
    if fn is None:
        return 0
    name = getattr(fn, "__name__", repr(fn))
    if name not in _ACTIVATION_FLOPS:
        raise ValueError(f"Layer {layer.name!r}: the FLOP counter has no rule for activation {name!r}.")
    return _ACTIVATION_FLOPS[name] * _elements(output)


def _conv(layer: Any, inputs: list, outputs: list) -> int:
    kernel = layer.kernel.shape  # (K_h, K_w, C_in / groups, C_out), or (K, C_in / groups, C_out) in 1-D
    kh, kw, cin_per_group = kernel[:3] if len(kernel) == 4 else (1, *kernel[:2])
    (output,) = outputs
    matmul = 2 * _elements(_as_run(layer, inputs, output)) * kh * kw * cin_per_group
    return matmul + _bias(layer, output) + _activation(layer, output)


def _depthwise_conv(layer: Any, inputs: list, outputs: list) -> int:
    kernel = layer.kernel.shape  # (K_h, K_w, C_in, multiplier), or (K, C_in, multiplier) in 1-D
    kh, kw = kernel[:2] if len(kernel) == 4 else (1, kernel[0])
    (output,) = outputs
    matmul = 2 * _elements(_as_run(layer, inputs, output)) * kh * kw
    return matmul + _bias(layer, output) + _activation(layer, output)


def _as_run(layer: Any, inputs: list, output: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of the convolution TF runs, which a dilation can make larger than ``output``.

    TF runs a dilated convolution as space-to-batch, convolution, batch-to-space
    (``nn_ops._WithSpaceToBatch``): each spatial side is padded up to a multiple of its rate
    before the convolution, and the profiler counts the padded one. With ``same`` padding a side
    of ``n`` then runs as ``ceil(n / rate) * rate`` outputs (a 6 x 6 map at rate 18 as 18 x 18);
    with ``valid`` padding ``rate * (k - 1)`` fewer. Channels-last only, as the profiler.
    """
    rates = tuple(layer.dilation_rate)
    if all(r == 1 for r in rates):
        return output
    ((_, *spatial, _),) = inputs
    sides = []
    for n, rate, k in zip(spatial, rates, layer.kernel_size):
        side = math.ceil(n / rate) * rate
        sides.append(side if layer.padding == "same" else side - rate * (k - 1))
    return (output[0], *sides, output[-1])


def _conv_transpose(layer: Any, inputs: list, outputs: list) -> int:
    # TF's Conv2DBackpropInput: 2 * out_elements * kernel_elements / (out_channels * stride area),
    # computed in floating point and truncated, as the profiler does.
    (output,) = outputs
    kernel = layer.kernel.shape  # (K_h, K_w, C_out, C_in)
    stride_area = math.prod(layer.strides)
    matmul = int(2 * _elements(output) * _elements(kernel) / (output[-1] * stride_area))
    return matmul + _bias(layer, output) + _activation(layer, output)


def _dense(layer: Any, inputs: list, outputs: list) -> int:
    ((*_, depth),) = inputs
    (output,) = outputs
    return 2 * depth * _elements(output) + _bias(layer, output) + _activation(layer, output)


def _batch_norm(layer: Any, inputs: list, outputs: list) -> int:
    # tf.nn.batch_normalization at inference: inv = rsqrt(var + eps) [* gamma]; shift = beta - mean * inv
    # (or -mean * inv); y = x * inv + shift. TF's profiler counts Rsqrt as 2 per element.
    (output,) = outputs
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    channels = math.prod(output[a] for a in axes)
    per_channel = 6 if layer.scale else 5
    return 2 * _elements(output) + per_channel * channels


def _merge(extra_per_element: int) -> Callable[[Any, list, list], int]:
    def rule(layer: Any, inputs: list, outputs: list) -> int:
        (output,) = outputs
        return (len(inputs) - 1 + extra_per_element) * _elements(output)

    return rule


def _pool(layer: Any, inputs: list, outputs: list) -> int:
    (output,) = outputs
    return math.prod(layer.pool_size) * _elements(output)


def _global_average(layer: Any, inputs: list, outputs: list) -> int:
    (shape,) = inputs  # TF's Mean: one per input element (the divide folds into the reduction)
    return _elements(shape)


def _two_per_input_element(layer: Any, inputs: list, outputs: list) -> int:
    (shape,) = inputs  # x * scale + offset
    return 2 * _elements(shape)


def _activation_layer(layer: Any, inputs: list, outputs: list) -> int:
    (output,) = outputs
    return _activation(layer, output)


def _softmax(layer: Any, inputs: list, outputs: list) -> int:
    (output,) = outputs
    return _ACTIVATION_FLOPS["softmax"] * _elements(output)


def _upsampling(layer: Any, inputs: list, outputs: list) -> int:
    # Nearest upsampling is two tf.repeat calls (one per axis), each with one scalar Mul in its
    # shape arithmetic that the profiler counts; bilinear is a ResizeBilinear, counted 0.
    return 2 if layer.interpolation == "nearest" else 0


def _zero(layer: Any, inputs: list, outputs: list) -> int:
    return 0


def _segmodels_rules() -> dict[type, Callable[[Any, list, list], int]]:
    from segmodels.backbones.base import ImageNetNormalization

    return {ImageNetNormalization: _two_per_input_element}  # x * 2 - 1, or flip * 255 - mean


_LAYER_FLOPS: dict[type, Callable[[Any, list, list], int]] = {
    keras.layers.Conv1D: _conv,
    keras.layers.Conv2D: _conv,
    keras.layers.DepthwiseConv2D: _depthwise_conv,
    keras.layers.Conv2DTranspose: _conv_transpose,
    keras.layers.Dense: _dense,
    keras.layers.BatchNormalization: _batch_norm,
    keras.layers.Add: _merge(0),
    keras.layers.Subtract: _merge(0),
    keras.layers.Multiply: _merge(0),
    keras.layers.Maximum: _merge(0),
    keras.layers.Minimum: _merge(0),
    keras.layers.Average: _merge(1),  # the sum, then a divide
    keras.layers.MaxPooling2D: _pool,
    keras.layers.AveragePooling2D: _pool,
    keras.layers.GlobalAveragePooling2D: _global_average,
    keras.layers.Rescaling: _two_per_input_element,
    keras.layers.Activation: _activation_layer,
    keras.layers.ReLU: _zero,  # Relu / Relu6: no registered count
    keras.layers.Softmax: _softmax,
    keras.layers.UpSampling2D: _upsampling,
    **_segmodels_rules(),
}


# === TensorFlow's profiler ===


def profiled_flops(model: Any, image_size: int) -> int:
    """TensorFlow's profiler: the ``float_operation`` total over the traced inference graph of one
    image. Needs the TensorFlow backend; the reference the counter is tested against."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    concrete = forward.get_concrete_function(tf.TensorSpec([1, image_size, image_size, 3], tf.float32))
    # The graph profiler's public home is tf.compat.v1.profiler; TF2 has no other FLOP counter.
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    # The variables stay variables (no freezing): their shapes are static in the traced graph, and
    # freezing a 450 M-parameter FCN would copy 1.8 GB of weights into a GraphDef.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler's own deprecation warnings
    try:
        stats = tf.compat.v1.profiler.profile(concrete.graph, options=options)
    finally:
        logger.setLevel(level)
    return int(stats.total_float_ops)
