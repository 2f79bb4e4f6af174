"""The ``evidence.npz`` format: which arrays a run stores, their dtypes and shapes, and reading
and writing them. No TensorFlow here: the report reads evidence without loading it; the arrays
are measured on the device by :mod:`bench.evidence.ops`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.evidence.declarations import (  # noqa: F401 (the format's constants, re-exported with it)
    ARRAYS,
    CALIBRATION_BINS,
    ENTROPY_BINS,
    MC_PREFIX,
    undeclared,
)

#: Every stored array (:data:`bench.evidence.declarations.ARRAYS`): name -> (dtype, shape after the
#: leading image axis where per image, else the whole shape; per_image). ``P`` is the number of curve
#: points, known only at run time.
SCHEMA: dict[str, tuple[str, tuple[int | str, ...], bool]] = {a.name: (a.dtype, a.shape, a.per_image) for a in ARRAYS}

#: The arrays that need class probabilities; a hard-label model (a classical segmenter) has none
#: (and no Monte-Carlo copies either).
CALIBRATION_ARRAYS = tuple(a.name for a in ARRAYS if a.probabilities and not a.name.startswith(MC_PREFIX))
#: The per-image arrays of :class:`EvidenceAccumulator` that are stored for the MC prediction, as ``mc_<name>``.
MC_PER_IMAGE = tuple(a.name for a in ARRAYS if a.monte_carlo)


def check_evidence(arrays: Mapping[str, np.ndarray]) -> None:
    """Raises ``ValueError`` when a known array has the wrong dtype or shape (an unknown one, e.g.
    from a newer harness, is left for its reader)."""
    n = None
    for name, value in arrays.items():
        if name not in SCHEMA:
            continue
        dtype, shape, per_image = SCHEMA[name]
        value = np.asarray(value)
        if value.dtype != np.dtype(dtype):
            raise ValueError(f"evidence array {name!r} is {value.dtype}, expected {dtype}.")
        tail = value.shape[1:] if per_image else value.shape
        if per_image:
            n = value.shape[0] if n is None else n
            if value.shape[0] != n:
                raise ValueError(f"evidence array {name!r} has {value.shape[0]} images, others have {n}.")
        if len(tail) != len(shape) or any(s != "P" and s != d for s, d in zip(shape, tail)):
            raise ValueError(f"evidence array {name!r} has shape {value.shape}, expected {shape}.")


def save_evidence(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Checks the arrays against :data:`SCHEMA` and writes them with ``np.savez_compressed``; an
    array no declaration claims is an error (a reader would not know what it holds)."""
    unknown = undeclared(arrays)
    if unknown:
        raise ValueError(f"evidence arrays {', '.join(map(repr, unknown))} are not declared in "
                         "bench.evidence.declarations.ARRAYS: declare their dtype, shape and whether they are "
                         "per image")
    check_evidence(arrays)
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in arrays.items()})


def load_evidence(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a file written by :func:`save_evidence` (no pickles) and checks it."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    check_evidence(arrays)
    return arrays
