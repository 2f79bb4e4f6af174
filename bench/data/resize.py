"""The chapter's resizing in NumPy, with exactly `tf.image.resize`'s semantics, for the array path.

`tf.image.resize(images, size)` (TensorFlow 2, no antialias) is `ResizeBilinear` /
`ResizeNearestNeighbor` with half-pixel centers; this module repeats their arithmetic step for step
in float32, so an image resized here equals TensorFlow's to the last bit (the tests check it on the
real photos):

    bilinear: source coordinate (x + 0.5) * scale - 0.5 with scale = in / out (float32); the lower
              neighbour floor(coordinate) clamped at 0, the upper ceil(coordinate) clamped at in - 1;
              top = tl + (tr - tl) * dx, bottom = bl + (br - bl) * dx, value = top + (bottom - top) * dy
    nearest:  source index min(floor((x + 0.5) * scale), in - 1)
"""

from __future__ import annotations

import numpy as np


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """`tf.image.resize(image, (size, size), "bilinear")` of one [H, W, C] image: float32 [size, size, C]."""
    rows, row_lerp = _bilinear_taps(image.shape[0], size)
    cols, col_lerp = _bilinear_taps(image.shape[1], size)
    upper, lower = image[rows[0]].astype(np.float32), image[rows[1]].astype(np.float32)
    dx = col_lerp[None, :, None]
    top = upper[:, cols[0]] + (upper[:, cols[1]] - upper[:, cols[0]]) * dx
    bottom = lower[:, cols[0]] + (lower[:, cols[1]] - lower[:, cols[0]]) * dx
    return top + (bottom - top) * row_lerp[:, None, None]


def resize_nearest(image: np.ndarray, size: int) -> np.ndarray:
    """`tf.image.resize(image, (size, size), "nearest")` of one [H, W, C] image, its dtype kept."""
    return image[_nearest_taps(image.shape[0], size)][:, _nearest_taps(image.shape[1], size)]


def _bilinear_taps(in_size: int, out_size: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(source)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(source).astype(np.int64), in_size - 1)
    return (lower, upper), (source - floor).astype(np.float32)


def _nearest_taps(in_size: int, out_size: int) -> np.ndarray:
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
    return np.minimum(np.floor(source).astype(np.int64), in_size - 1)
