"""The devices a run trains on: how many, which, and the multi-device strategy over them."""

from __future__ import annotations

import os
import resource
import socket
import sys
from typing import Any

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


def replica_strategy(replicas: int) -> Any:
    """The distribution strategy of a run on ``replicas`` devices.

    One device: TensorFlow's default strategy (the GPU where there is one, else the CPU). More: a
    ``MirroredStrategy`` over the first ``replicas`` GPUs this process sees (under Ray, the ones
    it was given), or over the logical CPUs of ``$SEGBENCH_VIRTUAL_DEVICES`` on a machine
    without GPUs.

    Raises:
        RuntimeError: fewer devices than ``replicas``.
    """
    import tensorflow as tf

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
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
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
