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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

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


def plan(profile: Profile, pairs: Sequence[tuple[str, str]], data: DataChoice, *, replicas: int = 1) -> list[RunConfig]:
    """The runs of ``pairs``, in a stable order: classical methods first (one run each, seed 0, on
    one device: they run NumPy), then one run per deep pair and seed, cheap backbones first, each
    on ``replicas`` devices."""
    from segmodels.classical import ARCHITECTURE as CLASSICAL

    fingerprint = str(data.provenance.get("fingerprint", ""))
    pairs = sorted(pairs, key=lambda ab: (ab[0] != CLASSICAL, _natural(ab[1]), ab[0]))

    def config(a: str, b: str, seed: int, p: Profile, replicas: int = 1) -> RunConfig:
        return RunConfig(
            architecture=a, backbone=b, seed=seed, profile=p, data=data.spec, dataset_fingerprint=fingerprint,
            replicas=replicas,
        )

    classical = classical_profile(profile)
    return [config(a, b, CLASSICAL_SEED, classical) for a, b in pairs if a == CLASSICAL] + [
        config(a, b, s, profile, replicas) for s in profile.seeds for a, b in pairs if a != CLASSICAL
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


def describe_estimate(todo: Sequence[RunConfig], est: dict[str, Estimate], slots: int = 1) -> str:
    """The expected time of ``todo`` and what the figure rests on; with ``slots`` runs at a time,
    the run time spread over them (an optimistic bound: memory may keep some runs apart)."""
    total = sum(est[c.run_id].seconds for c in todo)
    measured = sum(1 for c in todo if est[c.run_id].source == "measured")
    basis = (
        f"{measured} from stored wall times of the same runs, {len(todo) - measured} from the cost model"
        if measured else "cost model; no stored run of these models yet"
    )
    if slots > 1 and len(todo) > 1:
        return f"~{format_duration(total / min(slots, len(todo)))} with {slots} runs at a time, ~{format_duration(total)} of run time ({basis})"
    return f"~{format_duration(total)} ({basis})"


# === Running one run ===


@dataclass(frozen=True)
class WorkerExit:
    """How a worker process ended, seen from the process that started it."""

    returncode: int
    peak_rss_mb: float
    stderr_tail: list[str]
    started_at: str
    wall_time_s: float
    timeout_s: float | None = None  # set when the run was stopped for exceeding it


# TensorFlow's start-up chatter (absl info/warning lines, the CUDA probe on a CPU machine): kept in
# the run's log.txt, not echoed.
_NOISE = re.compile(
    r"^([IW]\d{4} \d|E\d{4} .*(cuInit|cuda|oneDNN)|WARNING: All log messages before absl::InitializeLog)"
)


class _Relay(threading.Thread):
    """Copies a child's stderr to a log (and to ``echo``) and keeps its last lines for the record."""

    def __init__(self, stream: TextIO, log: Path, echo: Callable[[str], None] | None) -> None:
        super().__init__(daemon=True)
        self.stream, self.log_path, self.echo = stream, log, echo
        self.tail: collections.deque[str] = collections.deque(maxlen=40)

    def run(self) -> None:
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as log:
            for line in self.stream:
                log.write(line)
                self.tail.append(line.rstrip("\n"))
                if self.echo is not None and not _NOISE.match(line):
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


def _package_roots() -> list[str]:
    """The folders holding ``bench/`` and ``segmodels/`` (one in a checkout): a worker finds them
    there even where they are not installed, as on a Ray node that received them as
    ``py_modules``, each unpacked in its own folder."""
    import importlib.util

    spec = importlib.util.find_spec("segmodels")
    roots = [Path(__file__).resolve().parents[1]]
    if spec is not None and spec.origin:
        roots.append(Path(spec.origin).resolve().parents[1])
    return list(dict.fromkeys(str(r) for r in roots))


def run_worker(
    cfg: RunConfig, staging: Path, *, timeout_s: float | None, echo: Callable[[str], None] | None,
    cancel: threading.Event | None = None,
) -> WorkerExit:
    """Runs ``python -m bench.worker`` for ``cfg``, its files in ``staging``, and waits for it.

    The worker lives in its own session (Ctrl-C reaches the sweep only, which decides what becomes
    of the run) and dies with the calling process (``SEGBENCH_PARENT_PID``).

    Raises:
        SweepInterrupted: ``cancel`` was set; the worker was stopped.
        BaseException: whatever else interrupts the wait (Ctrl-C), after the worker was stopped.
    """
    config_path = staging / "config.json"
    atomic_write_text(config_path, cfg.to_json())
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*_package_roots(), env.get("PYTHONPATH", "")]))
    env["SEGBENCH_PARENT_PID"] = str(os.getpid())
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.worker", str(config_path), str(staging)],
        env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
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
                if cancel is not None and cancel.is_set():
                    raise SweepInterrupted from None
                peak = max(peak, _rss_mb(proc))
                if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                    timed_out = True
                    _stop(proc)
                    break
    except BaseException:
        _stop(proc)
        relay.join(timeout=5)
        raise
    relay.join(timeout=10)
    return WorkerExit(
        proc.returncode, peak, list(relay.tail), started, time.perf_counter() - t0, timeout_s if timed_out else None
    )


def failed_record(cfg: RunConfig, error: str, *, started_at: str | None = None, peak_rss_mb: float = 0.0) -> dict[str, Any]:
    """The record of a run that ended without writing its own: its identity and why."""
    from bench.worker import base_record

    record = base_record(cfg)
    if started_at:
        record["started_at"] = started_at
    record["error"] = error
    record["metrics"] = [{"metric": "peak_rss_mb", "value": peak_rss_mb, "unit": "MB"}] if peak_rss_mb else []
    return record


def exit_record(cfg: RunConfig, staging: Path, exit: WorkerExit) -> dict[str, Any]:
    """The worker's own record from ``staging``, or a failed one saying how the worker ended."""
    record = _read_record(staging)
    if record is not None and exit.timeout_s is None:
        if record["status"] == "ok" and exit.peak_rss_mb and not any(m["metric"] == "peak_rss_mb" for m in record["metrics"]):
            record["metrics"].append({"metric": "peak_rss_mb", "value": exit.peak_rss_mb, "unit": "MB"})
        return record
    if exit.timeout_s is not None:
        error = f"timed out after {exit.timeout_s:.0f} s (--run-timeout)"
    elif exit.returncode < 0:
        error = _signal_reason(exit.returncode, exit.peak_rss_mb)
    else:
        last = next((line for line in reversed(exit.stderr_tail) if line.strip()), "")
        error = f"worker exited with code {exit.returncode} without a record: {last}"[:300]
    return failed_record(cfg, error, started_at=exit.started_at, peak_rss_mb=exit.peak_rss_mb)


def finalize(
    record: dict[str, Any], *, env_defaults: dict[str, Any], wall_time_s: float | None, executor: str
) -> dict[str, Any]:
    """Stamps what only the sweep knows: the sweep's environment under the worker's, the executor,
    the end time and the worker's wall time (of an ``ok`` run also as the ``wall_time_s`` metric;
    ``None`` where no worker reported one)."""
    record["env"] = {**env_defaults, **record.get("env", {})}
    record["executor"] = executor
    record["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record["wall_time_s"] = wall_time_s
    if record["status"] == "ok":
        record["metrics"] = [m for m in record["metrics"] if m["metric"] != "wall_time_s"]
        record["metrics"].append({"metric": "wall_time_s", "value": wall_time_s, "unit": "s"})
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


# === Executors: where the runs execute ===


class Executor(Protocol):
    """Runs a sweep's runs somewhere and stores each one the moment it ends.

    ``run`` yields every stored record as its run ends (in the order they end), storing each
    before yielding it; on an interruption it stops its runs, stores nothing partial, and lets the
    exception through.
    """

    name: str

    @property
    def slots(self) -> int:
        """How many runs execute at once (for the ETA)."""

    def describe(self) -> str:
        """One line for the sweep's header."""

    def run(
        self, runs: Sequence[RunConfig], store: ResultsStore, *, env_defaults: dict[str, Any],
        timeout_s: float | None, echo: Callable[[str], None], on_start: Callable[[RunConfig], None],
    ) -> Iterator[dict[str, Any]]: ...


class LocalExecutor:
    """Worker processes on this machine, at most ``jobs`` at once (one by default: runs side by side
    share the cores and distort each other's timings), and never more at once than the memory they
    are expected to peak at (:func:`bench.estimate.peak_memory_mb`) fits in ``memory_mb``.

    One job runs the plan in its order. Several start the runs expected to peak highest first and
    fill in beside them with whatever fits: the big runs (the FCNs on ResNets, ~15 GB) cannot run
    beside each other, and left to the end they would run alone, one after the other.

    Each run's record says how many runs shared the machine with it (``concurrent_runs``).
    """

    name = "local"

    def __init__(self, jobs: int = 1, memory_mb: float | None = None) -> None:
        self.jobs = jobs
        self.memory_mb = memory_mb if memory_mb is not None else _available_memory_mb() * MEMORY_SHARE

    @property
    def slots(self) -> int:
        return self.jobs

    def describe(self) -> str:
        if self.jobs == 1:
            return "local, one run at a time, each in its own process"
        return (
            f"local, up to {self.jobs} runs at a time, each in its own process, as long as their expected peak "
            f"memory fits in {self.memory_mb / 1024:.0f} GB; runs side by side slow each other down"
        )

    def run(
        self, runs: Sequence[RunConfig], store: ResultsStore, *, env_defaults: dict[str, Any],
        timeout_s: float | None, echo: Callable[[str], None], on_start: Callable[[RunConfig], None],
    ) -> Iterator[dict[str, Any]]:
        import queue
        import shutil

        from bench.estimate import peak_memory_mb

        stored = store.records()
        peaks = {cfg.run_id: peak_memory_mb(cfg, stored) for cfg in runs}
        pending = list(runs) if self.jobs == 1 else sorted(runs, key=lambda c: -peaks[c.run_id])
        running: dict[str, _Running] = {}
        finished: queue.Queue[tuple[str, WorkerExit | None, BaseException | None]] = queue.Queue()
        cancel = threading.Event()

        def work(cfg: RunConfig, staging: Path, say: Callable[[str], None]) -> None:
            try:
                finished.put((cfg.run_id, run_worker(cfg, staging, timeout_s=timeout_s, echo=say, cancel=cancel), None))
            except BaseException as error:  # noqa: BLE001 - handed to the sweep's thread
                finished.put((cfg.run_id, None, error))

        try:
            while pending or running:
                while len(running) < self.jobs:
                    cfg = self._next(pending, running, peaks)
                    if cfg is None:
                        break
                    pending.remove(cfg)
                    say = echo if self.jobs == 1 else (lambda line, m=cfg.model: echo(f"{m}: {line}"))
                    staging = store.staging_dir(cfg.run_id)
                    thread = threading.Thread(target=work, args=(cfg, staging, say), name=cfg.run_id, daemon=True)
                    running[cfg.run_id] = _Running(cfg, staging, thread)
                    for other in running.values():
                        other.concurrent = max(other.concurrent, len(running))
                    on_start(cfg)
                    thread.start()
                try:
                    run_id, exit, error = finished.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                done = running.pop(run_id)
                if error is not None or exit is None:
                    shutil.rmtree(done.staging, ignore_errors=True)
                    raise error or RuntimeError(f"{run_id}: the worker thread ended without an exit status")
                record = exit_record(done.cfg, done.staging, exit)
                record["concurrent_runs"] = done.concurrent
                record = finalize(record, env_defaults=env_defaults, wall_time_s=exit.wall_time_s, executor=self.name)
                store.commit_run(done.staging, record)
                yield record
        finally:
            cancel.set()  # interrupted: stop what runs, store nothing of it
            for left in running.values():
                left.thread.join(timeout=30)
                shutil.rmtree(left.staging, ignore_errors=True)

    def _next(self, pending: list[RunConfig], running: dict[str, _Running], peaks: dict[str, float]) -> RunConfig | None:
        """The first pending run whose expected peak fits beside the running ones; with nothing
        running, the first pending run whatever its size."""
        if not running:
            return pending[0] if pending else None
        in_use = sum(peaks[r] for r in running)
        return next((c for c in pending if in_use + peaks[c.run_id] <= self.memory_mb), None)


#: Share of the memory available when a sweep starts that its concurrent runs may plan to use (the
#: estimates carry their own margin).
MEMORY_SHARE = 0.95


def _available_memory_mb() -> float:
    import psutil

    return psutil.virtual_memory().available / 2**20


@dataclass
class _Running:
    """A run in flight on the local executor."""

    cfg: RunConfig
    staging: Path
    thread: threading.Thread
    concurrent: int = 1  # the most runs in flight at once while this one ran, itself included


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
    executor: Executor | None = None,
) -> SweepResult:
    """Runs ``runs`` on ``executor`` (local by default), storing each as it ends; stops cleanly on
    Ctrl-C or SIGTERM."""
    from tqdm import tqdm

    executor = executor or LocalExecutor()
    env_defaults = {k: environment.get(k, "") for k in environment if not isinstance(environment.get(k), (dict, list))}
    stored: list[dict[str, Any]] = []
    remaining = sum(est[c.run_id].seconds for c in runs)
    spent_actual = spent_estimated = 0.0
    bar = tqdm(total=len(runs), unit="run", file=out, dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}{postfix}]")

    def echo(line: str) -> None:
        bar.write(line, file=out)

    def eta() -> str:
        # The estimates of what is left, scaled by how the estimates fared so far, spread over
        # the runs that execute at once.
        ratio = spent_actual / spent_estimated if spent_estimated else 1.0
        return f", ETA {format_duration(remaining * ratio / max(1, executor.slots))}"

    def on_start(cfg: RunConfig) -> None:
        bar.set_postfix_str(f"{eta()}, now {cfg.model} seed {cfg.seed}")

    by_id = {cfg.run_id: cfg for cfg in runs}
    # Installed explicitly: a sweep started in the background by a non-interactive shell inherits
    # SIGINT ignored, and Python then never raises KeyboardInterrupt.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    records = executor.run(runs, store, env_defaults=env_defaults, timeout_s=timeout_s, echo=echo, on_start=on_start)
    try:
        for record in records:
            cfg = by_id[record["run_id"]]
            stored.append(record)
            store.consolidate()
            remaining -= est[cfg.run_id].seconds
            spent_estimated += est[cfg.run_id].seconds
            spent_actual += float(record.get("wall_time_s") or 0.0)
            verdict = "ok" if record["status"] == "ok" else f"FAILED: {record['error']}"
            took = format_duration(record["wall_time_s"]) if record.get("wall_time_s") is not None else "time unknown"
            where = f" on {record['host']}" if executor.name != "local" and record.get("host") else ""
            bar.write(f"[{len(stored)}/{len(runs)}] {cfg.model} seed {cfg.seed}: {verdict} ({took}{where})", file=out)
            bar.update(1)
            bar.set_postfix_str(eta())
    except (SweepInterrupted, KeyboardInterrupt):
        return SweepResult(stored, interrupted=True)
    finally:
        # Closing the executor's generator stops whatever it still has in flight, whichever side
        # of its `yield` the interruption hit; the handlers come back only after that.
        records.close()
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
