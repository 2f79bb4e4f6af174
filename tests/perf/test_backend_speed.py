"""Every architecture on MobileNetV2, on each installed Keras backend, side by side in one run.

Training images/s (``train_on_batch`` at batch 8, 128 px, after warm-up steps: TensorFlow without
XLA, JAX jitted, PyTorch eager, as a run's ``xla=auto`` resolves on a CPU) and the batch-1
inference latency p50 of the harness's own timed callable (:func:`bench.measure.timing.make_predict_fn`).
Each backend runs in its own process (Keras picks its backend once), in alternating rounds, so
that a neighbour's load falls on both sides; a cell is the best of its rounds.
Run: ``python -m pytest tests/perf/test_backend_speed.py -m perf -s`` (the README's Speed section
has the table it printed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tabulate import tabulate

from bench.config.backends import BACKENDS, installed

pytestmark = pytest.mark.perf

ROUNDS = 2
BATCH, SIZE, WARMUP_STEPS, STEPS = 8, 128, 3, 8

SCRIPT = r'''
import json, os, sys, time
import numpy as np, keras, segmodels
from bench.config.profiles import TimingSpec
from bench.measure.timing import example_batch, make_predict_fn, measure_latency
from bench.measure.train import compile_model

batch, size, warmup, steps = (int(a) for a in sys.argv[1:5])
out = {}
rng = np.random.default_rng(0)
x = rng.random((batch, size, size, 3), dtype=np.float32)
y = rng.integers(0, 3, (batch, size, size, 1)).astype(np.uint8)
spec = TimingSpec(warmup_calls=3, min_calls=20, min_seconds=0.0, max_calls=20, max_seconds=60.0)
for name in segmodels.list_models("*-mobilenetv2"):
    keras.utils.set_random_seed(0)
    model = segmodels.create_model(*segmodels.parse_model_id(name), input_shape=(size, size, 3))
    compile_model(model, 1e-3, jit_compile=keras.backend.backend() == "jax")
    for _ in range(warmup):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss[0] if isinstance(loss, (list, tuple)) else loss))  # waits for the device
    train = batch * steps / (time.perf_counter() - t)
    latency = measure_latency(make_predict_fn(model), example_batch(1, size), spec).p50_ms
    out[name] = {"train_images_per_s": train, "latency_p50_ms": latency}
    del model
    keras.backend.clear_session()
print("RESULT " + json.dumps(out))
'''


def _measure(backend: str) -> dict[str, dict[str, float]]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(BATCH), str(SIZE), str(WARMUP_STEPS), str(STEPS)],
        env=env, capture_output=True, text=True, timeout=3600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_every_architecture_on_every_installed_backend() -> None:
    backends = [b for b in BACKENDS if installed(b)]
    rounds: list[dict[str, dict[str, dict[str, float]]]] = []
    for _ in range(ROUNDS):
        rounds.append({})
        for b in backends:
            rounds[-1][b] = _measure(b)
            print(f"\nround {len(rounds)}, {b}: {json.dumps(rounds[-1][b])}", flush=True)  # kept if the run is cut short
    models = sorted(rounds[0][backends[0]])
    rows = []
    for model in models:
        row = [model]
        for b in backends:
            trains = [r[b][model]["train_images_per_s"] for r in rounds]
            latencies = [r[b][model]["latency_p50_ms"] for r in rounds]
            assert min(trains) > 0 and min(latencies) > 0
            row += [f"{max(trains):.1f}", f"{min(latencies):.1f}"]
        rows.append(row)
    headers = ["model", *[f"{b}: {h}" for b in backends for h in ("train img/s", "latency p50 ms")]]
    print(f"\nbatch {BATCH} at {SIZE} px, best of {ROUNDS} alternating rounds; rounds: {json.dumps(rounds)}\n")
    print(tabulate(rows, headers=headers, tablefmt="github"))
