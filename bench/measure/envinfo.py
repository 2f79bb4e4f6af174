"""The machine, versions and code a number was measured with (the environment columns)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.clock import utc_now

REPO = Path(__file__).resolve().parents[1]


def git_commit(repo: Path = REPO) -> str:
    """``HEAD``'s hash, with ``+dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil is a dependency
        return 0


def accelerators() -> list[str]:
    """Names of the visible GPUs (empty on a CPU-only machine)."""
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(str(details.get("device_name", gpu.name)))
    return names


def _compute_capability() -> str:
    """The first GPU's compute capability, e.g. ``8.0``."""
    import tensorflow as tf

    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    capability = details.get("compute_capability")
    return f"{capability[0]}.{capability[1]}" if capability else ""


def collect() -> dict[str, Any]:
    """The environment columns that do not depend on the dataset.

    Returns:
        ``device, tf_version, keras_version, cuda_version, python_version, git_commit, date``,
        ``gpu_name, cudnn_version, tf32`` (empty without a GPU: TensorFloat-32 is a GPU setting;
        ``tf32`` is whether float32 matmuls and convolutions may use it, TensorFlow's default on
        Ampere and later), plus ``cpu``, ``cpu_count``, ``accelerators`` and
        ``gpu_compute_capability`` for environment.json.
    """
    import keras
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    gpus = accelerators()
    cpu = cpu_name()
    return {
        "device": gpus[0] if gpus else f"CPU: {cpu}",
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "cuda_version": str(build.get("cuda_version", "")) if gpus else "",
        "gpu_name": gpus[0] if gpus else "",
        "cudnn_version": str(build.get("cudnn_version", "")) if gpus else "",
        "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()) if gpus else "",
        "gpu_compute_capability": _compute_capability() if gpus else "",
        "python_version": platform.python_version(),
        "git_commit": git_commit(),
        "date": utc_now(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(_memory_bytes() / 2**30, 1),
        "accelerators": gpus,
    }


def dataset_columns(provenance: dict[str, Any]) -> dict[str, Any]:
    """The ``dataset_*`` environment columns from a ``bench.data.Provenance.as_dict()``."""
    return {
        "dataset_source": provenance.get("source", ""),
        "dataset_location": provenance.get("location", ""),
        "dataset_fingerprint": provenance.get("fingerprint", ""),
        "dataset_train_size": provenance.get("train_size", ""),
        "dataset_test_size": provenance.get("test_size", ""),
        "synthetic": bool(provenance.get("synthetic", False)),
    }


