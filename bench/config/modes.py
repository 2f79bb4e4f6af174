"""Speed modes: numeric precision, XLA and op determinism, as recorded choices of a run.

A profile asks for a mode (``precision``, ``xla``, ``deterministic``: :mod:`bench.config.profiles`); the
worker resolves it on the device it runs on (:func:`apply_mode`) and the record stores what ran
(:class:`Mode`): the precision policy, whether Keras really compiled with XLA, whether op
determinism was on, and a note where the mode is not literally what was asked (``auto`` resolved,
or a fallback). ``--fast`` picks the fastest combination for the sweep's device
(:func:`fast_settings`).

Why ``xla=auto`` is off on CPUs: on the 2-core reference machine XLA made U-Net MobileNetV2's
training 3.2x slower through the harness (5.7x in a bare ``model.fit``).
Why it is off under op determinism: Keras 3 compiles nothing
with XLA while TensorFlow's op determinism is on (``model_supports_jit`` in
keras/src/trainers/trainer.py), so ``xla=on`` with determinism is refused before a run starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.config import backends
from bench.config.profiles import PRECISIONS, XLA_SETTINGS  # noqa: F401 (the modes' vocabulary, named where profiles validate it)
from bench.config.run_config import record_context_id

#: What every run stored before these settings existed ran with: float32, no XLA (Keras turned it
#: off under the op determinism every run had), op determinism on.
LEGACY = ("float32", "off", True)

#: Training-time multipliers of the modes, relative to float32 without XLA, on a CPU (measured on
#: the 2-core reference machine through the harness, U-Net MobileNetV2 at 128 px: README "Speed";
#: float16 has no fast kernels on a CPU without AVX512-FP16) and on a GPU (the published figures
#: the README cites, used as priors: nothing here was measured on a GPU).
CPU_TRAIN_TIME = {"xla": 3.2, "mixed_bfloat16": 1.0, "mixed_float16": 3.9}
GPU_TRAIN_TIME = {"xla": 1 / 1.2, "mixed_bfloat16": 1 / 2.1, "mixed_float16": 1 / 2.1}


#: A mode's (or a backend's) mIoU may differ from the baseline's (same model, seed, schedule) by at
#: most this much: the GPU check's parity test, and the report's Keras-backends table. On
#: the 2-core CPU, U-Net MobileNetV2 on the real sample after 20 steps: mixed_bfloat16 - float32
#: = +0.0004 (seed 0) and -0.0076 (seed 1), against 0.009 between the two float32 seeds; every
#: other mode within 0.015 of float32 (README "Speed"). 0.03 leaves room for a short, noisy
#: schedule while catching a broken mode (half-precision logits in the loss cost far more).
PARITY_TOLERANCE = 0.03


@dataclass(frozen=True)
class Mode:
    """The mode a run really ran in (the record's ``precision``, ``xla``, ``deterministic``).

    Attributes:
        precision: The Keras dtype policy of the model (``float32``, ``mixed_float16``,
            ``mixed_bfloat16``).
        xla: Whether training (and inference) was compiled with XLA.
        deterministic: Whether determinism was on (TensorFlow's op determinism, PyTorch's
            deterministic algorithms, XLA's deterministic ops on JAX).
        note: Why the mode is what it is where that is not literally what was asked (``auto``
            resolved, a fallback); empty otherwise.
    """

    precision: str
    xla: bool
    deterministic: bool
    note: str = ""

    def fields(self) -> dict[str, Any]:
        """The record's (and runs.csv's) ``precision, xla, deterministic, mode_note``."""
        return {
            "precision": self.precision, "xla": "on" if self.xla else "off",
            "deterministic": self.deterministic, "mode_note": self.note,
        }

    def with_xla(self, compiled: bool, why: str) -> Mode:
        """This mode with XLA as Keras really compiled (``why`` is said when it differs)."""
        if compiled == self.xla:
            return self
        return Mode(self.precision, compiled, self.deterministic, "; ".join(filter(None, [self.note, why])))


def resolve_xla(
    setting: str, *, deterministic: bool, accelerator: bool, eager: bool, replicas: int = 1,
    backend: str = backends.DEFAULT_BACKEND,
) -> tuple[bool, str]:
    """Whether a run compiles (with XLA; on PyTorch, through Keras's ``jit_compile``), and why
    where that is not literally ``setting``.

    TensorFlow: ``auto`` is on for a single GPU without op determinism, off otherwise: on CPUs
    (3.2x slower training measured here), under op determinism (Keras disables XLA then), under a
    multi-device strategy (as Keras's own ``auto``), and when functions run eagerly. JAX compiles
    every step with XLA (``off`` is refused before a sweep: :func:`backend_refusal`), an eager profile
    included. PyTorch runs eagerly unless ``on``.
    """
    if backend == "jax":
        # An eager profile too: op by op, JAX's first training step took longer than its jitted
        # compile and run (74 s for U-Net MobileNetV2 at 64 px on the 2-core CPU).
        return True, "" if setting == "on" else "xla auto -> on: JAX compiles every step with XLA"
    if backend == "torch":
        if setting == "on":
            return True, "PyTorch compiles through Keras's jit_compile (torch.compile)"
        return False, "" if setting == "off" else "xla auto -> off: PyTorch runs eagerly (--xla on compiles)"
    if setting == "on":
        return True, ""
    if setting == "off":
        return False, ""
    if eager:
        return False, "xla auto -> off: functions run eagerly"
    if not accelerator:
        return False, "xla auto -> off: CPU (XLA trained 3.2x slower on the 2-core reference machine)"
    if deterministic:
        return False, "xla auto -> off: op determinism is on (Keras compiles nothing with XLA then)"
    if replicas > 1:
        return False, "xla auto -> off: several devices (tf.distribute), as Keras's own auto"
    return True, "xla auto -> on: GPU"


def backend_refusal(profile: Any, backend: str, replicas: int = 1) -> str | None:
    """Why ``backend`` cannot run ``profile``'s speed mode as asked (one line with the way out),
    or ``None`` where it can."""
    if backend == "jax" and profile.xla == "off":
        return (
            "--xla off cannot apply on --backend jax: JAX compiles every step with XLA and has no other mode; "
            "use --xla auto (or on), or --backend tensorflow or torch for an uncompiled run"
        )
    if backend != "tensorflow" and replicas > 1:
        return (
            f"--gpus-per-run {replicas} cannot apply on --backend {backend}: several devices per run are "
            "TensorFlow's MirroredStrategy in this harness; use --backend tensorflow, or one device per run"
        )
    return None


def apply_mode(
    profile: Any, *, classical: bool = False, replicas: int = 1, backend: str = backends.DEFAULT_BACKEND
) -> Mode:
    """Sets this process's determinism and Keras dtype policy for ``profile``; the mode planned.

    Call before the model is built (the dtype policy is read when layers are made). Determinism is
    TensorFlow's op determinism, PyTorch's deterministic algorithms, or on JAX XLA's
    deterministic-ops flag, which the worker's environment set before JAX started
    (:func:`bench.config.backends.environment`). A classical segmenter computes in NumPy: float32
    and no XLA whatever the profile says (its note says so).
    """
    import keras

    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the TensorFlow backend only
        from tensorflow.python.framework import config as tf_config

        if profile.deterministic:
            tf.config.experimental.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()
    elif backend == "torch":
        import torch  # lazy: the PyTorch backend only

        # warn_only: a CUDA op without a deterministic kernel (bilinear upsampling's backward)
        # warns instead of failing the run; the README says PyTorch's determinism is best effort.
        torch.use_deterministic_algorithms(profile.deterministic, warn_only=True)
    if classical:
        keras.mixed_precision.set_global_policy("float32")
        asked = profile.precision != "float32" or profile.xla == "on"
        return Mode("float32", False, profile.deterministic, "classical: NumPy, float32, no XLA" if asked else "")
    keras.mixed_precision.set_global_policy(profile.precision)
    xla, note = resolve_xla(
        profile.xla, deterministic=profile.deterministic, accelerator=bool(local_gpus(backend)),
        eager=profile.run_eagerly, replicas=replicas, backend=backend,
    )
    return Mode(profile.precision, xla, profile.deterministic, note)


# === --fast ===


@dataclass(frozen=True)
class FastChoice:
    """What ``--fast`` picks on a device, and why (printed before the sweep)."""

    precision: str
    xla: str
    deterministic: bool
    reason: str

    def settings(self) -> dict[str, Any]:
        return {"precision": self.precision, "xla": self.xla, "deterministic": self.deterministic}


def fast_settings(gpus: Iterable[tuple[str, tuple[int, int] | None]]) -> FastChoice:
    """The fastest mode for a machine with ``gpus`` (``(name, compute capability)``; none: a CPU).

    GPU: XLA on (so op determinism off: Keras needs it off for XLA), and mixed precision where the
    GPU has tensor cores for it: bfloat16 from compute capability 8.0 (Ampere: no loss scaling
    needed), float16 (with loss scaling) on 7.x, float32 below. CPU: float32 without XLA, as
    measured here (bfloat16 gained nothing in training, float16 was 3.9x and XLA 3.2x slower),
    determinism kept on because it cost nothing measurable (README "Speed").
    """
    gpus = list(gpus)
    if not gpus:
        return FastChoice("float32", "off", True, "CPU: float32 without XLA trained fastest here (bfloat16 the same, float16 3.9x and XLA 3.2x slower); op determinism cost nothing measurable")
    name, capability = gpus[0]
    major = capability[0] if capability else 0
    if major >= 8:
        precision = "mixed_bfloat16"
    elif major == 7:
        precision = "mixed_float16"
    else:
        precision = "float32"
    cc = f"compute capability {capability[0]}.{capability[1]}" if capability else "unknown compute capability"
    return FastChoice(precision, "on", False, f"GPU {name} ({cc}): {precision}, XLA on, op determinism off (Keras needs it off for XLA)")


def local_gpus(backend: str | None = None) -> list[tuple[str, tuple[int, int] | None]]:
    """This machine's GPUs as ``(name, compute capability)`` (empty without one), as ``backend`` sees them."""
    return backends.local_gpus(backend)


# === What the report should know ===


def record_mode(record: dict[str, Any]) -> tuple[str, str, bool]:
    """``(precision, xla, deterministic)`` a stored run ran with (records from before these
    settings existed: :data:`LEGACY`)."""
    if "precision" not in record:
        return LEGACY
    return str(record["precision"]), str(record["xla"]), bool(record["deterministic"])


def mixed_modes_warning(records: Iterable[dict[str, Any]]) -> str | None:
    """A warning when successful runs of one comparison context ran in different effective modes
    (e.g. ``xla=auto`` on a CPU and on a GPU, or a Keras fallback), else ``None``."""

    by_context: dict[str, dict[tuple[str, str, bool], list[str]]] = {}
    for r in records:
        if r.get("status") == "ok":
            by_context.setdefault(record_context_id(r), {}).setdefault(record_mode(r), []).append(r["run_id"])
    lines = []
    for cid, modes in sorted(by_context.items()):
        if len(modes) > 1:
            parts = "; ".join(
                f"precision {p}, XLA {x}, deterministic {'on' if d else 'off'}: {len(ids)} run(s)"
                for (p, x, d), ids in sorted(modes.items(), key=lambda kv: -len(kv[1]))
            )
            lines.append(f"context {cid or '?'}: {parts}")
    if not lines:
        return None
    return (
        "!! Runs compared here ran in different effective speed modes (their costs are not like for like, and "
        "quality may differ slightly): " + " | ".join(lines)
    )


def describe_profile_mode(profile: Any, accelerator: bool, backend: str = backends.DEFAULT_BACKEND) -> str:
    """One line for the sweep's start: the mode asked for and what ``xla=auto`` becomes here."""
    _, why = resolve_xla(
        profile.xla, deterministic=profile.deterministic, accelerator=accelerator, eager=profile.run_eagerly,
        backend=backend,
    )
    xla = why.removeprefix("xla ") if why else profile.xla
    return f"precision {profile.precision}, XLA {xla}, op determinism {'on' if profile.deterministic else 'off'}"
