"""The Keras backend a run computes on: TensorFlow, JAX or PyTorch, a recorded choice.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the choice is made per worker
process: the sweep plans each model once per backend asked for, and the worker sets the variable
before anything imports Keras (:mod:`bench.execute.process`). A run on TensorFlow keeps the id it
always had; a run on another backend has the backend in its identity.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

#: The backends Keras 3 runs on, by the name ``KERAS_BACKEND`` takes, in the order tables show them.
BACKENDS = ("tensorflow", "jax", "torch")
#: Every run stored before backends were a choice ran on TensorFlow.
DEFAULT_BACKEND = "tensorflow"
#: The pip command that brings each backend (its package has the backend's name).
INSTALL = {
    "tensorflow": "pip install -e '.[bench]'",
    "jax": "pip install -e '.[harness,jax]'",
    "torch": "pip install -e '.[harness,torch]'",
}




def ranked_backend(backends: Iterable[str]) -> str:
    """The one backend whose runs a sweep ranks, of those it ran on: TensorFlow where it is among
    them (the references ran on it), else the first of :data:`BACKENDS` there. Classical methods
    run once, on it (their work is NumPy's); runs on other backends never pool with its seeds."""
    present = set(backends)
    if not present:
        return DEFAULT_BACKEND
    return next((name for name in BACKENDS if name in present), sorted(present)[0])


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
    """Whether the backend's package can be imported here (found, not imported: that takes seconds;
    a finder that refuses it counts as not installed)."""
    try:
        return importlib.util.find_spec(backend) is not None
    except (ImportError, ValueError):
        return False


def check_installed(backends: tuple[str, ...]) -> None:
    """Raises :class:`BackendError` naming each backend asked for that is not installed, and the fix."""
    missing = [name for name in backends if not installed(name)]
    if missing:
        fixes = "; ".join(f"{name}: {INSTALL[name]}" for name in missing)
        raise BackendError(
            f"--backend {','.join(backends)}: {', '.join(missing)} is not installed in this environment ({fixes})"
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


def environment(backend: str, *, deterministic: bool) -> dict[str, str]:
    """The variables a worker on ``backend`` needs before its first import of the backend.

    JAX reads XLA's flags when it starts: determinism on a GPU is XLA's deterministic-ops flag
    (a CPU's XLA programs are deterministic already). PyTorch's deterministic cuBLAS needs its
    workspace configured before CUDA starts (its ``use_deterministic_algorithms`` says so).
    """
    if not deterministic:
        return {}
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            flags = f"{flags} --xla_gpu_deterministic_ops=true".strip()
        return {"XLA_FLAGS": flags}
    if backend == "torch":
        return {"CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8")}
    return {}


def probe_backend() -> str | None:
    """The backend this process asks about the machine's GPUs: Keras's own if Keras is loaded,
    else the first installed of :data:`BACKENDS` (``None``: none is)."""
    import sys

    if "keras" in sys.modules:
        return current()
    return next((name for name in BACKENDS if installed(name)), None)


def local_gpus(backend: str | None = None) -> list[tuple[str, tuple[int, int] | None]]:
    """This machine's GPUs as ``(name, compute capability)``, as ``backend`` sees them (empty
    without one; default: :func:`probe_backend`)."""
    backend = probe_backend() if backend is None else backend
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: seconds to import

        out = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            out.append((str(details.get("device_name", gpu.name)), details.get("compute_capability")))
        return out
    if backend == "jax":
        import jax  # lazy: see above

        try:
            gpus = jax.devices("gpu")
        except RuntimeError:  # no GPU platform: JAX raises rather than returning none
            return []
        return [(str(d.device_kind), _capability(getattr(d, "compute_capability", None))) for d in gpus]
    if backend == "torch":
        import torch  # lazy: see above

        if not torch.cuda.is_available():
            return []
        return [
            (torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))  # type: ignore[misc]
            for i in range(torch.cuda.device_count())
        ]
    return []


def _capability(text: str | None) -> tuple[int, int] | None:
    """``"9.0"`` -> ``(9, 0)`` (JAX names a GPU's compute capability as text)."""
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None
