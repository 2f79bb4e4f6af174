"""The data tests' fixtures: each verdict on a bad file is checked with both decoders."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from bench.data import load_pets
from bench.data.decoders import PILLOW, TENSORFLOW, Decoder, tensorflow_available


@dataclass(frozen=True)
class DataPath:
    """One of the two data paths: the loader that uses it, and the decoder it decodes with."""

    decoder: Decoder
    load: Callable

    @property
    def name(self) -> str:
        return self.decoder.name


_PATHS = {
    "tensorflow": DataPath(TENSORFLOW, functools.partial(load_pets, as_arrays=False)),
    "pillow": DataPath(PILLOW, functools.partial(load_pets, as_arrays=True)),
}


@pytest.fixture(params=list(_PATHS))
def data_path(request: pytest.FixtureRequest) -> DataPath:
    """The tf.data path (TensorFlow's decoders, where TensorFlow is installed) and the array path
    (Pillow's, always): `path.load` is `load_pets` with that path."""
    if request.param == "tensorflow" and not tensorflow_available():
        pytest.skip("TensorFlow is not installed")
    return _PATHS[request.param]
