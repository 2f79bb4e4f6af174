"""Cross-check of the harness's latency: pytest-benchmark times the very callable the harness times.

For a few models at 128 px the harness's batch-1 latency (``bench.measure.timing.measure_latency`` with the
quick profile's bounds) and pytest-benchmark's median over the same ``make_predict_fn`` callable
must agree within 10%. Where a quick sweep is stored (``results/quick`` or ``$SEGBENCH_RESULTS``),
its p50 for the same model is printed beside them (trained weights, another process: shown, not
gated). Run: ``python -m pytest tests/perf/test_inference_perf.py -m perf
--benchmark-json results/benchmark.json`` (``nox -s perf``).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import pandas as pd
import pytest

import segmodels
from bench.config.profiles import PROFILES
from bench.measure.timing import example_batch, make_predict_fn, measure_latency

pytestmark = pytest.mark.perf

IMAGE_SIZE = 128
MODELS = ["unet-mobilenetv2", "deeplabv3-mobilenetv2", "fpn-mobilenetv2", "unet-resnet50"]
TOLERANCE = 0.10


def _stored_p50(model: str) -> float | None:
    root = Path(os.environ.get("SEGBENCH_RESULTS", Path(__file__).resolve().parents[2] / "results" / "quick"))
    path = root / "metrics.csv"
    if not path.is_file():
        return None
    metrics = pd.read_csv(path)
    rows = metrics[(metrics["model"] == model) & (metrics["metric"] == "latency_p50_ms")]
    return float(rows["value"].iloc[-1]) if len(rows) else None


@pytest.mark.parametrize("model_id", MODELS)
def test_batch1_latency_agrees_with_the_harness(benchmark, model_id: str) -> None:
    keras.utils.set_random_seed(0)
    model = segmodels.create_model(*segmodels.parse_model_id(model_id), input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    predict = make_predict_fn(model)
    image = example_batch(1, IMAGE_SIZE)
    harness = measure_latency(predict, image, PROFILES["quick"].timing)
    benchmark.pedantic(predict, args=(image,), rounds=max(30, harness.calls), warmup_rounds=3, iterations=1)
    median_ms = benchmark.stats.stats.median * 1e3
    stored = _stored_p50(model_id)
    benchmark.extra_info.update(
        harness_p50_ms=round(harness.p50_ms, 3), harness_calls=harness.calls,
        stored_sweep_p50_ms=stored,
    )
    print(
        f"\n{model_id}: harness p50 {harness.p50_ms:.2f} ms ({harness.calls} calls), "
        f"pytest-benchmark median {median_ms:.2f} ms"
        + (f", stored quick sweep p50 {stored:.2f} ms" if stored is not None else "")
    )
    assert abs(harness.p50_ms - median_ms) <= TOLERANCE * median_ms
