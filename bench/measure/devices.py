"""The devices a run trains on: how many, which, the multi-device strategy over them, and their
peak memory, on the run's Keras backend."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import sys
from typing import Any

from bench.config.backends import DEFAULT_BACKEND, local_gpus

#: Splits this machine's CPU into N logical devices, so that ``--gpus-per-run N`` can be tried
#: (and tested) without GPUs: the MirroredStrategy code path runs, with no speed-up.
VIRTUAL_DEVICES_ENV = "SEGBENCH_VIRTUAL_DEVICES"


def virtual_devices() -> int:
    """``$SEGBENCH_VIRTUAL_DEVICES`` as a number (0 where unset)."""
    return int(os.environ.get(VIRTUAL_DEVICES_ENV, "0") or 0)


def split_cpu(devices: int) -> None:
    """Makes ``devices`` logical CPUs out of the first physical one (before TensorFlow starts)."""
    if devices <= 1:
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


class SingleDevice:
    """A backend's one default device (the GPU where there is one), as a strategy whose scope
    changes nothing: JAX and PyTorch place a run on it without one."""

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def replica_strategy(replicas: int, backend: str = DEFAULT_BACKEND) -> Any:
    """The distribution strategy of a run on ``replicas`` devices.

    One device: TensorFlow's default strategy (the GPU where there is one, else the CPU). More: a
    ``MirroredStrategy`` over the first ``replicas`` GPUs this process sees (under Ray, the ones
    it was given), or over the logical CPUs of ``$SEGBENCH_VIRTUAL_DEVICES`` on a machine
    without GPUs.

    On JAX and PyTorch one device (:class:`SingleDevice`): several are refused before a sweep
    (:func:`bench.config.modes.backend_refusal`).

    Raises:
        RuntimeError: fewer devices than ``replicas``.
    """
    if backend != "tensorflow":
        return SingleDevice()
    import tensorflow as tf  # lazy: the TensorFlow backend only

    if replicas <= 1:
        return tf.distribute.get_strategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < replicas:
        raise RuntimeError(
            f"--gpus-per-run {replicas} needs {replicas} GPUs, and {socket.gethostname()} shows this run "
            f"{len(gpus)}: run with fewer GPUs per run, on a machine (or Ray cluster) with more, or set "
            f"{VIRTUAL_DEVICES_ENV}={replicas} to try the multi-device path on CPUs"
        )
    return tf.distribute.MirroredStrategy(devices[:replicas])


def local_device_shortage(replicas: int) -> str | None:
    """Why this machine cannot give a run ``replicas`` devices, or ``None`` when it can.

    Counted in the sweep's process the way :func:`replica_strategy` picks them in the worker's
    (physical GPUs, else the virtual CPU split, which only a fresh process can make).
    """
    gpus = len(local_gpus())
    available = gpus or virtual_devices()
    if available >= replicas:
        return None
    return (
        f"--gpus-per-run {replicas} needs {replicas} GPUs and this machine has {gpus}. Use fewer, run on a Ray "
        f"cluster with bigger nodes (--executor ray), or set {VIRTUAL_DEVICES_ENV}={replicas} to try the "
        "multi-device path on CPUs."
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports ``ru_maxrss`` in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# === Peak device memory ===


def device_peak_mb(backend: str) -> float | None:
    """The first GPU's peak allocated memory in MiB since the last :func:`reset_device_peak`
    (JAX: since the process started), as the backend's allocator counts it; ``None`` without one."""
    if not local_gpus(backend):
        return None
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the backend's own

        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    if backend == "jax":
        import jax  # lazy: the backend's own

        stats = jax.devices("gpu")[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20  # unknown, not 0
    import torch  # lazy: the backend's own

    return torch.cuda.max_memory_allocated(0) / 2**20


def reset_device_peak(backend: str) -> bool:
    """Restarts the peak count so that the next phase's is its own; ``False`` where the backend
    cannot (JAX keeps one peak per process: a later peak then includes the earlier phases)."""
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: the backend's own

        tf.config.experimental.reset_memory_stats("GPU:0")
        return True
    if backend == "torch":
        import torch  # lazy: the backend's own

        torch.cuda.reset_peak_memory_stats(0)
        return True
    return False
