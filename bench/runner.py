"""The sweep: plan the matrix, skip what is stored, run the rest one process each, store.

The parent process only orchestrates and stores: each run is a ``python -m bench.worker`` child
(TensorFlow never gives memory back, and an out-of-memory kill must not end the sweep). Runs go
one at a time: two heavy models side by side would exceed the machine's memory and distort each
other's timings. Every finished run, success or failure, is stored the moment it ends
(:mod:`bench.store`); re-running the same command skips it. Ctrl-C (or SIGTERM) abandons the run
in flight, keeps everything finished and exits with 130.
"""

from __future__ import annotations

import collections
import datetime as dt
import fnmatch
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.config import Profile, RunConfig
from bench.estimate import Estimate, estimate_run, format_duration
from bench.store import ResultsStore, atomic_write_text

EXIT_INTERRUPTED = 130
POLL_S = 0.25


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM during a sweep."""


# === Planning ===


@dataclass(frozen=True)
class DataChoice:
    """The resolved data source of a sweep and its provenance (``bench.data.Provenance``)."""

    spec: str
    provenance: dict[str, Any]
    requested: str = "auto"

    @property
    def synthetic(self) -> bool:
        return bool(self.provenance.get("synthetic"))

    def describe(self) -> str:
        p = self.provenance
        if not self.synthetic:
            kind = "real Oxford-IIIT Pet photos"
        elif self.requested == "synthetic":
            kind = "synthetic images (as asked)"
        else:
            kind = "SYNTHETIC images (no real photos found)"
        where = f" from {p.get('location')}" if p.get("location") else ""
        return f"{kind}{where}: {p.get('train_size')} train / {p.get('test_size')} test, via {p.get('source')}"


def resolve_data(requested: str, image_size: int) -> DataChoice:
    """Turns ``auto`` (or any source) into the concrete source the workers will load."""
    from bench.data import load_pets

    splits = load_pets(requested, image_size=image_size, seed=0)
    provenance = splits.provenance.as_dict()
    source = str(provenance.get("source", requested))
    if source in ("tfds", "synthetic"):
        spec = source
    elif source.startswith("dir") and provenance.get("location"):
        spec = f"dir:{provenance['location']}"
    else:
        spec = requested
    return DataChoice(spec, provenance, requested)


def split_globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()] or ["*"]


def all_models() -> list[tuple[str, str]]:
    """The matrix: every deep (architecture, backbone) pair, then every classical method as
    (``classical``, method)."""
    import segmodels
    from segmodels.classical import list_classical_models

    deep = [(a, b) for a in segmodels.list_architectures() for b in segmodels.list_backbones()]
    return deep + [segmodels.parse_model_id(m) for m in list_classical_models()]


def select_models(arch_globs: str, backbone_globs: str) -> list[tuple[str, str]]:
    """The (architecture, backbone) pairs of :func:`all_models` matching the comma-separated globs.

    An ``--arch`` glob matches the architecture name or the whole model id, so ``classical``,
    ``classical-*`` and ``unet-mobilenetv2`` all select; a ``--backbone`` glob matches the backbone,
    which for a classical model is its method (``canny``).
    """
    archs, backbones = split_globs(arch_globs), split_globs(backbone_globs)
    return [
        (a, b) for a, b in all_models()
        if any(fnmatch.fnmatch(a, g) or fnmatch.fnmatch(f"{a}-{b}", g) for g in archs)
        and any(fnmatch.fnmatch(b, g) for g in backbones)
    ]


# Profile fields only training reads. A classical run takes them from the named profile, so that
# overriding them (--epochs, --weights, --seeds ...) does not change its run id: it would redo an
# identical run. Its evaluation, timing and data settings stay those of the sweep.
_TRAINING_ONLY = (
    "batch_size", "epochs", "steps_per_epoch", "val_subsplits", "weights", "freeze_encoder", "learning_rate",
    "augment", "shuffle_buffer", "precise_bn_batches",
)
CLASSICAL_SEED = 0  # the methods draw no random numbers: one run per sweep, whatever the seeds


def classical_profile(profile: Profile) -> Profile:
    """``profile`` with its training-only fields reset to the named profile's and seeds ``(0,)``."""
    import dataclasses

    from bench.config import PROFILES

    named = PROFILES.get(profile.name)
    fields = {f: getattr(named, f) for f in _TRAINING_ONLY if named is not None and hasattr(named, f)}
    return dataclasses.replace(profile, **fields, seeds=(CLASSICAL_SEED,))


def plan(profile: Profile, pairs: Sequence[tuple[str, str]], data: DataChoice) -> list[RunConfig]:
    """The runs of ``pairs``, in a stable order: classical methods first (one run each, seed 0),
    then one run per deep pair and seed, cheap backbones first."""
    from segmodels.classical import ARCHITECTURE as CLASSICAL

    fingerprint = str(data.provenance.get("fingerprint", ""))
    pairs = sorted(pairs, key=lambda ab: (ab[0] != CLASSICAL, _natural(ab[1]), ab[0]))

    def config(a: str, b: str, seed: int, p: Profile) -> RunConfig:
        return RunConfig(architecture=a, backbone=b, seed=seed, profile=p, data=data.spec, dataset_fingerprint=fingerprint)

    classical = classical_profile(profile)
    return [config(a, b, CLASSICAL_SEED, classical) for a, b in pairs if a == CLASSICAL] + [
        config(a, b, s, profile) for s in profile.seeds for a, b in pairs if a != CLASSICAL
    ]


def _natural(name: str) -> tuple[Any, ...]:
    """``resnet50 < resnet101 < resnet152``, MobileNet first: roughly cheapest first."""
    parts = re.split(r"(\d+)", name)
    return (not name.startswith("mobilenet"), *[(int(p) if p.isdigit() else p) for p in parts])


@dataclass
class Status:
    """What the store says of each planned run."""

    done: list[RunConfig] = field(default_factory=list)
    failed: list[RunConfig] = field(default_factory=list)
    todo: list[RunConfig] = field(default_factory=list)


def status(runs: Sequence[RunConfig], store: ResultsStore, *, force: bool = False, retry_failed: bool = False) -> Status:
    out = Status()
    for cfg in runs:
        record = None if force else store.load_record(cfg.run_id)
        if record is None:
            out.todo.append(cfg)
        elif record.get("status") == "ok":
            out.done.append(cfg)
        elif retry_failed:
            out.todo.append(cfg)
        else:
            out.failed.append(cfg)
    return out


# A classical run never measured here: process start, imports and data (~4 s measured at 64 px),
# then about 20 ms per image at 128 px for each of evaluation, latency and throughput calls.
CLASSICAL_FIXED_S = 5.0
CLASSICAL_S_PER_IMAGE_128 = 0.02


def _classical_cost(cfg: RunConfig, test_size: int) -> float:
    p = cfg.profile
    images = min(test_size, p.max_test_examples or test_size) + p.gallery_size
    images += (1 + p.timing.throughput_calls) * p.timing.throughput_batch + p.timing.warmup_calls
    per_image = CLASSICAL_S_PER_IMAGE_128 * (p.image_size / 128) ** 2
    latency = min(p.timing.max_seconds, max(p.timing.min_seconds, p.timing.min_calls * per_image))
    return CLASSICAL_FIXED_S + images * per_image + latency


def estimates(runs: Sequence[RunConfig], store: ResultsStore, data: DataChoice) -> dict[str, Estimate]:
    from segmodels.classical import ARCHITECTURE as CLASSICAL

    records = store.records()
    train_size = int(data.provenance.get("train_size") or 0)
    test_size = int(data.provenance.get("test_size") or 0)
    out = {}
    for cfg in runs:
        est = estimate_run(cfg, records, train_size, test_size)
        if cfg.architecture == CLASSICAL and est.source == "model":  # the cost model knows training only
            est = Estimate(_classical_cost(cfg, test_size), "model")
        out[cfg.run_id] = est
    return out


def describe_estimate(todo: Sequence[RunConfig], est: dict[str, Estimate]) -> str:
    total = sum(est[c.run_id].seconds for c in todo)
    measured = sum(1 for c in todo if est[c.run_id].source == "measured")
    basis = (
        f"{measured} from stored wall times of the same runs, {len(todo) - measured} from the cost model"
        if measured else "cost model; no stored run of these models yet"
    )
    return f"~{format_duration(total)} ({basis})"


# === Running one run ===


@dataclass(frozen=True)
class Outcome:
    """How a worker ended, seen from the parent."""

    record: dict[str, Any]
    stderr_tail: list[str]


# TensorFlow's start-up chatter (absl info/warning lines, the CUDA probe on a CPU machine): kept in
# the run's log.txt, not echoed.
_NOISE = re.compile(
    r"^([IW]\d{4} \d|E\d{4} .*(cuInit|cuda)|WARNING: All log messages before absl::InitializeLog)"
)


class _Relay(threading.Thread):
    """Copies a child's stderr to ours (and to a log) and keeps its last lines for the record."""

    def __init__(self, stream: TextIO, log: Path, echo: Any) -> None:
        super().__init__(daemon=True)
        self.stream, self.log_path, self.echo = stream, log, echo
        self.tail: collections.deque[str] = collections.deque(maxlen=40)

    def run(self) -> None:
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as log:
            for line in self.stream:
                log.write(line)
                self.tail.append(line.rstrip("\n"))
                if not _NOISE.match(line):
                    self.echo(line.rstrip("\n"))


def _rss_mb(proc: Any) -> float:
    import psutil

    try:
        p = psutil.Process(proc.pid)
        return (p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))) / 2**20
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def _signal_reason(returncode: int, peak_mb: float) -> str:
    sig = -returncode
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    reason = f"killed by signal {sig} ({name})"
    if sig == signal.SIGKILL:
        reason += f" - out of memory? peak RSS seen {peak_mb:.0f} MB"
    return reason


def run_one(
    cfg: RunConfig, store: ResultsStore, *, env_defaults: dict[str, Any], timeout_s: float | None, echo: Any
) -> dict[str, Any]:
    """Runs ``cfg`` in a worker process and stores its record; returns the record.

    Raises:
        SweepInterrupted: Ctrl-C or SIGTERM; the child is stopped and nothing is stored.
    """
    staging = store.staging_dir(cfg.run_id)
    config_path = staging / "config.json"
    atomic_write_text(config_path, cfg.to_json())
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["SEGBENCH_PARENT_PID"] = str(os.getpid())
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.worker", str(config_path), str(staging)],
        env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
        # Its own session: Ctrl-C reaches the parent only, which decides what becomes of the run.
        start_new_session=True,
    )
    relay = _Relay(proc.stderr, staging / "log.txt", echo)  # type: ignore[arg-type]
    relay.start()
    peak = 0.0
    timed_out = False
    try:
        while True:
            try:
                proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                peak = max(peak, _rss_mb(proc))
                if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                    timed_out = True
                    _stop(proc)
                    break
    except BaseException:
        _stop(proc)
        relay.join(timeout=5)
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    relay.join(timeout=10)
    wall = time.perf_counter() - t0
    record = _read_record(staging)
    if record is None or timed_out:
        from bench.worker import base_record

        record = base_record(cfg)
        record["started_at"] = started
        if timed_out:
            record["error"] = f"timed out after {timeout_s:.0f} s (--run-timeout)"
        elif proc.returncode < 0:
            record["error"] = _signal_reason(proc.returncode, peak)
        else:
            last = next((line for line in reversed(relay.tail) if line.strip()), "")
            record["error"] = f"worker exited with code {proc.returncode} without a record: {last}"[:300]
        record["metrics"] = [{"metric": "peak_rss_mb", "value": peak, "unit": "MB"}] if peak else []
    record["env"] = {**env_defaults, **record.get("env", {})}
    record["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record["wall_time_s"] = wall
    if record["status"] == "ok":
        record["metrics"] = [m for m in record["metrics"] if m["metric"] != "wall_time_s"]
        record["metrics"].append({"metric": "wall_time_s", "value": wall, "unit": "s"})
        if not any(m["metric"] == "peak_rss_mb" for m in record["metrics"]) and peak:
            record["metrics"].append({"metric": "peak_rss_mb", "value": peak, "unit": "MB"})
    store.commit_run(staging, record)
    return record


def _read_record(staging: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads((staging / "record.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after a grace period, to the worker's whole process group."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


# === The sweep ===


@dataclass(frozen=True)
class SweepResult:
    stored: list[dict[str, Any]]
    interrupted: bool


def sweep(
    runs: Sequence[RunConfig],
    store: ResultsStore,
    *,
    environment: dict[str, Any],
    est: dict[str, Estimate],
    timeout_s: float | None = None,
    out: TextIO = sys.stderr,
) -> SweepResult:
    """Runs ``runs`` one after the other, storing each; stops cleanly on Ctrl-C or SIGTERM."""
    from tqdm import tqdm

    env_defaults = {k: environment.get(k, "") for k in environment if not isinstance(environment.get(k), (dict, list))}
    stored: list[dict[str, Any]] = []
    remaining = sum(est[c.run_id].seconds for c in runs)
    spent_actual = spent_estimated = 0.0
    bar = tqdm(total=len(runs), unit="run", file=out, dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}{postfix}]")

    def echo(line: str) -> None:
        bar.write(line, file=out)

    # Installed explicitly: a sweep started in the background by a non-interactive shell inherits
    # SIGINT ignored, and Python then never raises KeyboardInterrupt.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for cfg in runs:
            # ETA: the estimates of what is left, scaled by how the estimates fared so far.
            ratio = spent_actual / spent_estimated if spent_estimated else 1.0
            bar.set_postfix_str(f", ETA {format_duration(remaining * ratio)}, now {cfg.model} seed {cfg.seed}")
            try:
                record = run_one(cfg, store, env_defaults=env_defaults, timeout_s=timeout_s, echo=echo)
            except KeyboardInterrupt:
                raise SweepInterrupted from None
            stored.append(record)
            store.consolidate()
            remaining -= est[cfg.run_id].seconds
            spent_estimated += est[cfg.run_id].seconds
            spent_actual += float(record.get("wall_time_s") or 0.0)
            verdict = "ok" if record["status"] == "ok" else f"FAILED: {record['error']}"
            bar.write(f"[{len(stored)}/{len(runs)}] {cfg.model} seed {cfg.seed}: {verdict} ({format_duration(record['wall_time_s'])})", file=out)
            bar.update(1)
    except SweepInterrupted:
        bar.close()
        return SweepResult(stored, interrupted=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bar.close()
    return SweepResult(stored, interrupted=False)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise SweepInterrupted


def render_report(results_dir: Path, out: TextIO = sys.stderr) -> Path | None:
    """Renders the report when ``bench.report`` is there; a failure is said, never fatal."""
    try:
        from bench.report import render_report as render
    except ImportError as error:
        print(f"Report not rendered: bench.report is not available ({error}).", file=out)
        return None
    try:
        path = render(results_dir)
    except Exception as error:  # noqa: BLE001 - the sweep's results are stored whatever the report does
        print(
            f"Report FAILED ({type(error).__name__}: {error}); the results are stored in {results_dir}. "
            f"Retry with: python -m bench report --out {results_dir}",
            file=out,
        )
        return None
    print(f"Report: {path}", file=out)
    return Path(path)
