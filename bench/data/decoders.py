"""The two decoders of the release's files: TensorFlow's, which the tf.data path uses, and Pillow's,
which the array path uses (every backend, TensorFlow installed or not).

Both give uint8 RGB [H, W, 3] for an image (a GIF's first frame, an RGBA PNG without its alpha,
grayscale repeated to RGB, as TFDS does) and uint8 [H, W, 1] for a trimap, and both raise
`DecodeError` with the decoder's reason for a file they cannot decode, so `bench.data.verify` gives
the same verdicts with either.

They do not give the same pixels for a JPEG: `tf.io.decode_image` uses libjpeg's fast integer IDCT
(`dct_method="INTEGER_FAST"` is TensorFlow's default), Pillow the accurate one, and Pillow has no
switch for it. On the 210 real sample photos every JPEG differs (up to 4-20 levels of 255, in about
70% of the pixels); Pillow equals `tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")` on all 210,
and the trimaps (PNG) are identical. After the resize to 128 px the two paths differ by 0.0044 on
average, 0.064 at most (in [0, 1]).

libpng (TensorFlow's PNG decoder) refuses a PNG whose critical chunk fails its CRC; Pillow does
not check the CRC of image data, so the Pillow decoder checks them first.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import tensorflow as tf

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DecodeError(Exception):
    """A file the decoder cannot decode; the message is the decoder's reason."""


class Decoder(Protocol):
    """What `bench.data.verify` and the array path need of a decoder."""

    name: str

    @property
    def version(self) -> str: ...

    def decode_image(self, data: bytes) -> np.ndarray: ...

    def decode_trimap(self, data: bytes) -> np.ndarray: ...


class PillowDecoder:
    """Pillow's decoders (libjpeg-turbo, zlib, its own GIF reader), as the array path decodes."""

    name = "pillow"

    @property
    def version(self) -> str:
        import PIL

        return PIL.__version__

    def decode_image(self, data: bytes) -> np.ndarray:
        """uint8 RGB [H, W, 3], as `tf.io.decode_image(channels=3, expand_animations=False)` copes."""
        with _pillow_errors():
            _check_png_chunks(data)
            with Image.open(io.BytesIO(data)) as image:
                image.seek(0)  # a GIF's first frame
                return np.asarray(image.convert("RGB"))

    def decode_trimap(self, data: bytes) -> np.ndarray:
        """uint8 [H, W, 1], as `tf.io.decode_png(channels=1)`."""
        with _pillow_errors():
            _check_png_chunks(data)
            with Image.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert("L"))[..., None]


class TensorFlowDecoder:
    """TensorFlow's decoders, as the tf.data path decodes (imports TensorFlow on first use)."""

    name = "tensorflow"

    @property
    def version(self) -> str:
        return _tensorflow().__version__

    def decode_image(self, data: bytes) -> np.ndarray:
        return _tf_decoded(tf_decode_image, data)

    def decode_trimap(self, data: bytes) -> np.ndarray:
        return _tf_decoded(tf_decode_trimap, data)


def _tf_decoded(decode: Any, data: bytes) -> np.ndarray:
    """``decode(data)`` as an array, TensorFlow's decoding error as a :class:`DecodeError`."""
    tf = _tensorflow()
    try:
        return decode(data).numpy()
    except tf.errors.OpError as error:
        raise DecodeError(_tf_reason(error)) from error


PILLOW = PillowDecoder()
TENSORFLOW = TensorFlowDecoder()


def tf_decode_image(data: bytes | tf.Tensor) -> tf.Tensor:
    """An image file's bytes as a uint8 RGB (height, width, 3) tensor: the tf.data path's decode."""
    return _tensorflow().io.decode_image(data, channels=3, expand_animations=False)


def tf_decode_trimap(data: bytes | tf.Tensor) -> tf.Tensor:
    """A trimap file's bytes as a uint8 (height, width, 1) tensor: the tf.data path's decode."""
    return _tensorflow().io.decode_png(data, channels=1)


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported here (without importing it when it is not loaded yet)."""
    import importlib.util
    import sys

    return sys.modules.get("tensorflow") is not None or (
        "tensorflow" not in sys.modules and importlib.util.find_spec("tensorflow") is not None
    )


def _tensorflow():  # untyped: the module, imported lazily
    import tensorflow as tf

    return tf


@contextlib.contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's many exception types (and zlib's) as one `DecodeError`."""
    try:
        yield
    except (OSError, ValueError, SyntaxError, EOFError, zlib.error, struct.error, IndexError) as error:
        raise DecodeError(str(error) or type(error).__name__) from error


def _check_png_chunks(data: bytes) -> None:
    """Refuse a PNG whose critical chunks (IHDR, PLTE, IDAT, IEND) fail their CRC, as libpng does
    (libpng only warns on an ancillary chunk's, and drops it)."""
    if not data.startswith(_PNG_SIGNATURE):
        return
    at = len(_PNG_SIGNATURE)
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        end = at + 8 + length
        if end + 4 > len(data):
            return  # cut short: the decode itself fails on it
        (crc,) = struct.unpack(">I", data[end : end + 4])
        critical = not kind[0] & 0x20
        if critical and zlib.crc32(data[at + 4 : end]) != crc:
            raise DecodeError(f"{kind.decode('latin-1')}: CRC error")
        if kind == b"IEND":
            return
        at = end + 4


def _tf_reason(error) -> str:  # a tf.errors.OpError
    """TensorFlow's message without its "{{function_node ...}}" prefix and "[Op:...]" suffix."""
    message = re.sub(r"^\{\{.*?\}\}\s*|\s*\[Op:\w+\]\s*$", "", error.message.strip())
    return message or type(error).__name__
