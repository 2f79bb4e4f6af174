"""FLOPs of one forward pass, counted by TensorFlow's graph profiler.

What is counted: the profiler's ``float_operation`` statistics over the traced inference graph of
one image (batch 1). Convolutions and matrix products count a multiply-add as 2 FLOPs
(``2 * K_h * K_w * C_in * H_out * W_out * C_out`` for a convolution); element-wise ops (bias adds,
BatchNorm's scale and shift, activations where registered) count one per element. Ops without a
registered count (resizes, pooling, concatenation) count zero; they are a small fraction for
these models. No constant folding is done, so BatchNorm is counted as the inference graph runs it.
"""

from __future__ import annotations

from typing import Any


def flops_per_image(model: Any, image_size: int) -> int:
    """Floating-point operations of one forward pass of one ``image_size`` x ``image_size`` image."""
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
