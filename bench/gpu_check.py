"""The accelerator check: ``nox -s gpu`` (or ``python -m bench.gpu_check``).

On a machine with a GPU it runs a short matrix through the real command line, every model in
every precision (``float32``, ``mixed_float16``, ``mixed_bfloat16``) with XLA off (op determinism
on, the default) and on (determinism off, which XLA needs), on the Keras backend asked for
(``--backend jax`` on a machine with JAX and no TensorFlow: :data:`MATRICES` says each backend's
modes), each mode into its own results folder
(a mode is part of the comparison context). It then prints images/s per model and mode, the
parity table (each mode's mIoU against float32 without XLA, same model and seed), and exits 1 on
any error: a failed run, a run that did not run in the mode asked for (Keras fell back from XLA),
or a mIoU outside :data:`PARITY_TOLERANCE`. Without a GPU it says so and exits 3, unless
``--allow-cpu`` (the same path, testable on a CPU with tiny settings).

Usage::

    python -m bench.gpu_check [--backend jax] [--models unet-mobilenetv2,...] [--out DIR] [--allow-cpu] [-- bench run args]

Arguments after ``--`` go to every ``python -m bench run`` (later ones win: ``-- --epochs 3``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.config.backends import BACKENDS, BackendError, check_installed, default_backends
from bench.config.modes import PARITY_TOLERANCE, fast_settings, local_gpus

#: (precision, xla, deterministic) of each cell on TensorFlow; the first is the parity baseline.
MATRIX: list[tuple[str, str, bool]] = [
    ("float32", "off", True),
    ("float32", "on", False),
    ("mixed_float16", "off", True),
    ("mixed_float16", "on", False),
    ("mixed_bfloat16", "off", True),
    ("mixed_bfloat16", "on", False),
]

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

#: Each backend's cells, as ``(precision, xla asked, deterministic)``: JAX always compiles with
#: XLA (``auto`` becomes on, with or without determinism, which is XLA's own flag there); PyTorch
#: runs eagerly, and compiled (torch.compile) where XLA is asked for.
MATRICES: dict[str, list[tuple[str, str, bool]]] = {
    "tensorflow": MATRIX,
    "jax": [("float32", "auto", True), ("float32", "auto", False),
            ("mixed_float16", "auto", True), ("mixed_bfloat16", "auto", True)],
    "torch": [("float32", "off", True), ("float32", "on", False),
              ("mixed_float16", "off", True), ("mixed_bfloat16", "off", True)],
}


def ran_as(cell: tuple[str, str, bool], backend: str) -> tuple[str, str, bool]:
    """The mode a cell's runs must report having run in (``auto`` resolves on a GPU)."""
    precision, xla, deterministic = cell
    if xla == "auto":
        xla = "on" if backend == "jax" else "off"
    return precision, xla, deterministic


#: Two cheap models with different decoders (upsampling path vs atrous pyramid).
DEFAULT_MODELS = "unet-mobilenetv2,deeplabv3-mobilenetv2"

#: The short schedule: real settings of the quick profile (traced, 128 px), synthetic data (a GPU
#: machine may have no copy of the dataset and no network), no ImageNet download.
DEFAULT_RUN_ARGS = [
    "--profile", "quick", "--data", "synthetic", "--weights", "none", "--epochs", "2", "--steps-per-epoch", "10",
    "--batch-size", "16", "--seeds", "0",
]


#: The largest-batch search stops here in the check (bench.measure.timing.MAX_BATCH_ENV), to fit its time.
CHECK_MAX_BATCH = "1024"

#: What brings each backend's CUDA build (Linux).
CUDA_INSTALL = {
    "tensorflow": "pip install 'tensorflow[and-cuda]'",
    "jax": "pip install 'jax[cuda12]'",
    "torch": "pip install torch (its default Linux wheel is CUDA's)",
}

EXIT_FAILED = 1
EXIT_NO_GPU = 3


def label(precision: str, xla: str, deterministic: bool) -> str:
    return f"{precision}, XLA {xla}{', deterministic' if deterministic else ''}"


def folder(precision: str, xla: str, deterministic: bool) -> str:
    return f"{precision}-xla_{xla}-{'det' if deterministic else 'nondet'}"


def _metric(record: dict[str, Any], name: str) -> float | None:
    for m in record.get("metrics", []):
        if m["metric"] == name:
            return float(m["value"])
    return None


def run_cell(
    out: Path, models: str, cell: tuple[str, str, bool], run_args: Sequence[str], env: dict[str, str]
) -> tuple[int, float, str]:
    """One ``python -m bench run`` of every model in one mode; (exit code, seconds, log tail)."""
    precision, xla, deterministic = cell
    command = [
        sys.executable, "-m", "bench", "run", "--arch", models, "--out", str(out / folder(*cell)), "--no-report",
        "--precision", precision, "--xla", xla, "--deterministic" if deterministic else "--no-deterministic",
        *run_args,
    ]
    t = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    log = out / f"{folder(*cell)}.log"
    log.write_text(f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return done.returncode, time.perf_counter() - t, done.stderr[-2000:]


def collect(
    out: Path, models: Sequence[str], backend: str = "tensorflow"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the speed table (one per model and mode), and the errors found."""
    rows, errors = [], []
    for cell in MATRICES[backend]:
        records = {
            r["model"]: r for r in (json.loads(p.read_text()) for p in (out / folder(*cell)).glob("runs/*/record.json"))
        }
        for model in models:
            r = records.get(model)
            if r is None:
                errors.append(f"{model}, {label(*cell)}: no record (the sweep did not run it)")
                continue
            if r["status"] != "ok":
                errors.append(f"{model}, {label(*cell)}: FAILED: {r.get('error')}")
                continue
            ran = (r.get("precision"), r.get("xla"), r.get("deterministic"))
            if ran != ran_as(cell, backend):
                errors.append(f"{model}, {label(*cell)}: ran as {ran} ({r.get('mode_note') or 'no note'})")
            rows.append({
                "model": model, "mode": label(*cell), "cell": cell,
                "train img/s": _metric(r, "train_throughput"),
                "first step s": _metric(r, "train_first_step_s"),
                "infer img/s b1": _metric(r, "inference_throughput_b1"),
                "b8": _metric(r, "inference_throughput_b8"),
                "b32": _metric(r, "inference_throughput_b32"),
                "max batch": _metric(r, "inference_max_batch"),
                "img/s at max": _metric(r, "inference_throughput_max_batch"),
                "p50 ms": _metric(r, "latency_p50_ms"),
                "p99 ms": _metric(r, "latency_p99_ms"),
                "train MB": _metric(r, "peak_train_device_mem_mb"),
                "infer MB": _metric(r, "peak_inference_device_mem_mb"),
                "peak MB": _metric(r, "peak_device_mem_mb"),
                "miou": _metric(r, "miou"),
                "env": r.get("env", {}),
            })
    return rows, errors


def parity(
    rows: list[dict[str, Any]], tolerance: float = PARITY_TOLERANCE, backend: str = "tensorflow"
) -> tuple[list[list[Any]], list[str]]:
    """Each mode's mIoU against the baseline mode's (same model): table rows and errors."""
    table, errors = [], []
    baseline = {r["model"]: r["miou"] for r in rows if r["cell"] == MATRICES[backend][0]}
    for r in rows:
        base = baseline.get(r["model"])
        if base is None or r["miou"] is None:
            continue
        delta = r["miou"] - base
        ok = abs(delta) <= tolerance
        table.append([r["model"], r["mode"], f"{r['miou']:.4f}", f"{base:.4f}", f"{delta:+.4f}", "ok" if ok else "OUT"])
        if not ok:
            errors.append(f"{r['model']}, {r['mode']}: mIoU {r['miou']:.4f} vs float32 {base:.4f} (|diff| > {tolerance})")
    return table, errors


def _backend_version(env: dict[str, Any], backend: str) -> str:
    key = {"tensorflow": "tf_version", "jax": "jax_version", "torch": "torch_version"}[backend]
    return f"{backend} {env.get(key) or '?'}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    run_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"model ids, comma-separated (default: {DEFAULT_MODELS})")
    parser.add_argument("--out", type=Path, help="results root (default: a new temporary folder, kept)")
    parser.add_argument("--allow-cpu", action="store_true", help="run on a machine without a GPU (to test the check)")
    parser.add_argument(
        "--backend", default=None, choices=BACKENDS,
        help="the Keras backend every run computes on (default: $KERAS_BACKEND, else tensorflow)",
    )
    args = parser.parse_args(own)
    backend = args.backend or default_backends()[0]

    from tabulate import tabulate

    try:
        check_installed((backend,))
    except BackendError as error:
        print(f"GPU CHECK NOT RUN: {error}", file=sys.stderr)
        return EXIT_FAILED
    gpus = local_gpus(backend)
    if not gpus and not args.allow_cpu:
        print(
            f"GPU CHECK NOT RUN: {backend} sees no GPU on this machine (is its CUDA build installed, e.g. "
            f"{CUDA_INSTALL[backend]}?). Pass --allow-cpu to run the same matrix on the CPU.", file=sys.stderr,
        )
        return EXIT_NO_GPU
    matrix = MATRICES[backend]
    out = args.out or Path(tempfile.mkdtemp(prefix="segbench-gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    env = dict(os.environ)
    env.setdefault("SEGBENCH_MAX_BATCH", CHECK_MAX_BATCH)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    device = f"GPU {gpus[0][0]} (compute capability {gpus[0][1]})" if gpus else "CPU only (--allow-cpu)"
    print(f"GPU check on {device}, Keras backend {backend}; results in {out}", file=sys.stderr)
    print(f"--fast here would pick: {fast_settings(gpus).reason}", file=sys.stderr)

    failures = []
    for cell in matrix:
        rc, seconds, tail = run_cell(
            out, ",".join(models), cell, [*DEFAULT_RUN_ARGS, "--backend", backend, *run_args], env
        )
        print(f"  {label(*cell):40s} exit {rc} in {seconds:.0f} s", file=sys.stderr, flush=True)
        if rc != 0:
            failures.append(f"{label(*cell)}: python -m bench run exited {rc}: ...{tail[-600:]}")

    rows, errors = collect(out, models, backend)
    errors = failures + errors
    if rows:
        env0 = rows[0]["env"]
        print(
            f"\nEnvironment: {env0.get('device')}; Keras {env0.get('keras_version')} on {backend} "
            f"({_backend_version(env0, backend)}), CUDA "
            f"{env0.get('cuda_version') or '-'}, cuDNN {env0.get('cudnn_version') or '-'}, TF32 {env0.get('tf32', '') or '-'}"
        )
        columns = ["model", "mode", "train img/s", "first step s", "infer img/s b1", "b8", "b32", "max batch",
                   "img/s at max", "p50 ms", "p99 ms", "train MB", "infer MB", "peak MB"]
        print("\nImages/s per model and mode\n")
        print(tabulate([[_fmt(r[c]) for c in columns] for r in rows], headers=columns, tablefmt="github"))
    table, parity_errors = parity(rows, backend=backend)
    errors += parity_errors
    print(f"\nParity: mIoU of each mode against {label(*matrix[0])}, same model and seed (tolerance {PARITY_TOLERANCE})\n")
    print(tabulate(table, headers=["model", "mode", "miou", "float32 miou", "diff", ""], tablefmt="github"))
    summary = {"device": device, "backend": backend, "out": str(out), "errors": errors,
               "rows": [{k: v for k, v in r.items() if k not in ("env", "cell")} for r in rows], "parity": table}
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    if errors:
        print(f"\n!! GPU CHECK FAILED ({len(errors)} problem(s)); logs in {out}:", file=sys.stderr)
        for e in errors:
            print(f"!!   {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"\nGPU check passed: {len(rows)} runs in {len(matrix)} modes on {backend}, parity within {PARITY_TOLERANCE}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
