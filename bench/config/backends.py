"""The Keras backend a run computes on: TensorFlow, JAX or PyTorch, a recorded choice.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the choice is made per worker
process: the sweep plans each model once per backend asked for, and the worker sets the variable
before anything imports Keras (:mod:`bench.execute.process`). A run on TensorFlow keeps the id it
always had; a run on another backend has the backend in its identity.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: The backends Keras 3 runs on, by the name ``KERAS_BACKEND`` takes, in the order tables show them.
BACKENDS = ("tensorflow", "jax", "torch")
#: Every run stored before backends were a choice ran on TensorFlow.
DEFAULT_BACKEND = "tensorflow"
#: The pip command that brings each backend (its package has the backend's name).
INSTALL = {
    "tensorflow": "pip install -e '.[bench]'",
    "jax": "pip install -e '.[bench,jax]'",
    "torch": "pip install -e '.[bench,torch]'",
}


#: The backends a run can measure on today. The model library builds and trains on all three,
#: and the worker sets each one; the measuring path (tf.data input, the evidence ops, traced
#: timing, FLOPs through TensorFlow's profiler, precise BN) is TensorFlow's still, so `run` refuses
#: the others in one line rather than storing a failed record per model.
MEASURABLE = ("tensorflow",)


class BackendError(ValueError):
    """A backend that is not one Keras runs on, or is not installed: one line with the fix."""


def parse_backends(text: str) -> tuple[str, ...]:
    """``"tensorflow,jax"`` -> ``("tensorflow", "jax")``, in the order given, once each."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise BackendError(
            f"--backend {text!r}: {', '.join(unknown) or 'empty'} is not a Keras backend; "
            f"choose from {', '.join(BACKENDS)} (a comma list runs each)"
        )
    return tuple(dict.fromkeys(names))


def default_backends(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """What ``--backend`` defaults to: ``$KERAS_BACKEND`` where it is set, else TensorFlow."""
    value = (os.environ if environ is None else environ).get("KERAS_BACKEND", "").strip()
    return parse_backends(value) if value else (DEFAULT_BACKEND,)


def installed(backend: str) -> bool:
    """Whether the backend's package can be imported here (found, not imported: that takes seconds)."""
    return importlib.util.find_spec(backend) is not None


def check_installed(backends: tuple[str, ...]) -> None:
    """Raises :class:`BackendError` naming each backend asked for that is not installed, and the fix."""
    missing = [name for name in backends if not installed(name)]
    if missing:
        fixes = "; ".join(f"{name}: {INSTALL[name]}" for name in missing)
        raise BackendError(
            f"--backend {','.join(backends)}: {', '.join(missing)} is not installed in this environment ({fixes})"
        )


def check_measurable(backends: tuple[str, ...]) -> None:
    """Raises :class:`BackendError` for a backend the harness cannot measure on yet, saying why."""
    unsupported = [name for name in backends if name not in MEASURABLE]
    if unsupported:
        raise BackendError(
            f"--backend {','.join(backends)}: the harness measures on {', '.join(MEASURABLE)} only so far "
            f"({', '.join(unsupported)}: its input pipeline, per-image evidence, timing and FLOPs still run "
            "TensorFlow code); the model library itself builds and trains on every backend"
        )


def current() -> str:
    """The backend Keras computes on in this process (imports Keras)."""
    import keras  # lazy: Keras reads KERAS_BACKEND when it is first imported

    return keras.backend.backend()


def traced(fn: Callable[..., Any], *, jit_compile: bool = False, signature: Sequence[Any] | None = None) -> Callable[..., Any]:
    """``fn`` (tensors -> tensors, written in ``keras.ops``) compiled the way this process's backend compiles.

    TensorFlow: one ``tf.function`` (XLA with ``jit_compile``; ``signature`` is its input signature,
    else shapes may vary without a retrace per batch size). JAX: ``jax.jit`` (always XLA; a new
    batch size compiles once more). PyTorch: eager under ``torch.no_grad`` (nothing here needs a
    gradient; compiled only where Keras compiles a model). Outputs stay on the device in every case.
    """
    backend = current()
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the TensorFlow backend only

        if signature is not None:
            return tf.function(fn, input_signature=list(signature), jit_compile=jit_compile)
        return tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)
    if backend == "jax":
        import jax  # lazy: the JAX backend only

        return jax.jit(fn)
    import torch  # lazy: the PyTorch backend only

    def without_gradients(*args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return fn(*args, **kwargs)

    return without_gradients


def to_numpy(tensor: Any) -> Any:
    """A backend tensor as a NumPy array; waits for the device (the sync every timed call ends with)."""
    import keras  # lazy: see current()

    return keras.ops.convert_to_numpy(tensor)
