"""The machine, versions and code a number was measured with (the environment columns)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
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
    """Names of the visible GPUs (empty on a CPU-only machine), as the run's backend sees them."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return _backend_gpu()["names"]
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(str(details.get("device_name", gpu.name)))
    return names


def _compute_capability() -> str:
    """The first GPU's compute capability as TensorFlow sees it, e.g. ``8.0``."""
    import tensorflow as tf

    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    capability = details.get("compute_capability")
    return f"{capability[0]}.{capability[1]}" if capability else ""


def _backend_gpu() -> dict[str, Any]:
    """What the run's backend says of its GPUs: names, CUDA and cuDNN versions, compute
    capability and TF32 (empty values without a GPU). Only the run's backend is imported: on a
    GPU, importing TensorFlow beside JAX would take device memory the run needs."""
    import keras

    backend = keras.backend.backend()
    none = {"names": [], "cuda": "", "cudnn": "", "capability": "", "tf32": ""}
    if backend == "tensorflow":
        import tensorflow as tf

        names = accelerators()
        if not names:
            return none
        build = tf.sysconfig.get_build_info()
        return {
            "names": names, "cuda": str(build.get("cuda_version", "")), "cudnn": str(build.get("cudnn_version", "")),
            "capability": _compute_capability(),
            "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        }
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if not gpus:
            return none

        def version(name: str) -> str:
            """The CUDA or cuDNN version JAX loaded, from a private module: a JAX without it, or
            without that query, says nothing rather than failing the run."""
            try:
                from jax._src.lib import cuda_versions

                return str(getattr(cuda_versions, name)())
            except Exception:  # any error, as the docstring says
                return ""

        return {
            "names": [d.device_kind for d in gpus], "cuda": version("cuda_runtime_get_version"),
            "cudnn": version("cudnn_get_version"), "capability": str(getattr(gpus[0], "compute_capability", "")),
            "tf32": jax.config.jax_default_matmul_precision in (None, "tensorfloat32", "default"),
        }
    import torch

    if not torch.cuda.is_available():
        return none
    major, minor = torch.cuda.get_device_capability(0)
    return {
        "names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cuda": str(torch.version.cuda or ""), "cudnn": str(torch.backends.cudnn.version() or ""),
        "capability": f"{major}.{minor}", "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }


def backend_versions() -> dict[str, str]:
    """The run's Keras backend and the version of each backend package installed (read from the
    package metadata: nothing is imported)."""
    import keras

    def installed_version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return ""

    return {
        "keras_backend": keras.backend.backend(),
        "tf_version": installed_version("tensorflow") or installed_version("tensorflow-cpu"),
        "jax_version": installed_version("jax"),
        "jaxlib_version": installed_version("jaxlib"),
        "torch_version": installed_version("torch"),
    }


def collect() -> dict[str, Any]:
    """The environment columns that do not depend on the dataset.

    Returns:
        ``device, tf_version, keras_version, cuda_version, python_version, git_commit, date``,
        ``gpu_name, cudnn_version, tf32`` (empty without a GPU: TensorFloat-32 is a GPU setting;
        ``tf32`` is whether float32 matmuls and convolutions may use it), ``keras_backend`` and
        the backend packages' versions, plus ``cpu``, ``cpu_count``, ``accelerators`` and
        ``gpu_compute_capability`` for environment.json. CUDA and cuDNN are the run's backend's.
    """
    import keras

    gpu = _backend_gpu()
    gpus = gpu["names"]
    cpu = cpu_name()
    return {
        "device": gpus[0] if gpus else f"CPU: {cpu}",
        **backend_versions(),
        "keras_version": keras.__version__,
        "cuda_version": gpu["cuda"],
        "gpu_name": gpus[0] if gpus else "",
        "cudnn_version": gpu["cudnn"],
        "tf32": gpu["tf32"],
        "gpu_compute_capability": gpu["capability"],
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


