"""Helpers of the bench tests: tiny test architectures, loaded into worker processes as a plugin.

The workers are separate processes, so the test architectures reach them the way a user's own
model would: a module on ``PYTHONPATH`` named in ``$SEGMODELS_PLUGINS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PLUGIN_SOURCE = '''
"""Tiny architectures for the harness tests (they ignore the backbone's features)."""
import os
import signal

import keras

from segmodels import register_architecture


def _head(encoder, num_classes, scale=1.0):
    inputs = encoder.new_input()
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(num_classes, 1)(x)
    if scale != 1.0:
        x = keras.layers.Rescaling(scale)(x)
    return keras.Model(inputs, x)


@register_architecture("tinytest")
def tiny(encoder, num_classes, **kwargs):
    return _head(encoder, num_classes)


@register_architecture("tinynan")
def tiny_nan(encoder, num_classes, **kwargs):
    return _head(encoder, num_classes, scale=float("inf"))


@register_architecture("tinyraise")
def tiny_raise(encoder, num_classes, **kwargs):
    raise RuntimeError("this architecture always fails to build")


@register_architecture("tinykill")
def tiny_kill(encoder, num_classes, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


@register_architecture("tinywait")
def tiny_wait(encoder, num_classes, **kwargs):
    import time
    time.sleep(float(os.environ.get("TINYWAIT_SECONDS", "20")))
    return _head(encoder, num_classes)
'''

PLUGIN_MODULE = "segbench_test_tiny_models"


def plugin_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose processes (sweep and workers) know the tiny architectures."""
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), str(REPO), env.get("PYTHONPATH", "")]))
    env["SEGMODELS_PLUGINS"] = PLUGIN_MODULE
    env["SEGMODELS_OFFLINE"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONHASHSEED"] = "0"
    env.update(extra)
    return env


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def bench_cli(tmp_path: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m bench <args>`` in a subprocess that knows the tiny architectures; output captured."""
    return subprocess.run(
        bench_cmd(*args), env=plugin_env(tmp_path, **env), capture_output=True, text=True, timeout=timeout
    )
