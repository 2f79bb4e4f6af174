"""One worker process, supervised: started, watched, stopped, and its ending turned into a record.

:func:`run_worker` starts ``python -m bench.execute.worker`` for one run and waits for it, copying
everything the worker prints (stdout and stderr: Keras's progress, warnings, tracebacks) into the
run's ``log.txt``, watching its memory and its time limit. :func:`exit_record` then reads the
record the worker wrote, or writes the failed record of a worker that died without one. Both
executors run every run through these two functions.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bench.clock import utc_now
from bench.config import backends
from bench.config.run_config import RunConfig
from bench.execute.executor import SweepInterrupted
from bench.store.record import failed_record, metric_row, read_record
from bench.store.results import atomic_write_text

POLL_S = 0.25
LOG = "log.txt"


@dataclass(frozen=True)
class WorkerExit:
    """How a worker process ended, seen from the process that started it."""

    returncode: int
    peak_rss_mb: float
    stderr_tail: list[str]  # the last lines it printed (stdout and stderr)
    started_at: str
    wall_time_s: float
    timeout_s: float | None = None  # set when the run was stopped for exceeding it


# TensorFlow's start-up chatter (absl info/warning lines, the CUDA probe on a CPU machine): kept in
# the run's log.txt, never echoed.
_NOISE = re.compile(
    r"^([IW]\d{4} \d|E\d{4} .*(cuInit|cuda|oneDNN)|WARNING: All log messages before absl::InitializeLog)"
)


class _Relay(threading.Thread):
    """Copies a child's output to its log (and to ``echo``) and keeps its last lines for the record."""

    def __init__(self, stream: TextIO, log: Path, echo: Callable[[str], None] | None) -> None:
        super().__init__(daemon=True)
        self.stream, self.log_path, self.echo = stream, log, echo
        self.tail: collections.deque[str] = collections.deque(maxlen=40)

    def run(self) -> None:
        log = self._open()
        for line in self.stream:  # drained to the end whatever the log does: a full pipe would block the worker
            if log is not None:
                log = self._write(log, line)
            self.tail.append(line.rstrip("\n"))
            if self.echo is not None and not _NOISE.match(line):
                self.echo(line.rstrip("\n"))
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()

    def _open(self) -> TextIO | None:
        try:
            return open(self.log_path, "a", encoding="utf-8", errors="replace")  # closed in run()
        except OSError as error:
            self._lost(error)
            return None

    def _write(self, log: TextIO, line: str) -> TextIO | None:
        """Writes one line to the log; the log is given up (said once) when the disk is full."""
        try:
            log.write(line)
            log.flush()
            return log
        except OSError as error:
            with contextlib.suppress(OSError):
                log.close()
            self._lost(error)
            return None

    def _lost(self, error: OSError) -> None:
        message = f"warning: {self.log_path} cannot be written ({error.strerror or error}); the run goes on unlogged"
        self.tail.append(message)
        if self.echo is not None:
            self.echo(message)


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
    roots = [Path(__file__).resolve().parents[2]]
    if spec is not None and spec.origin:
        roots.append(Path(spec.origin).resolve().parents[1])
    return list(dict.fromkeys(str(r) for r in roots))


def run_worker(
    cfg: RunConfig, staging: Path, *, timeout_s: float | None, echo: Callable[[str], None] | None,
    cancel: threading.Event | None = None,
) -> WorkerExit:
    """Runs ``python -m bench.execute.worker`` for ``cfg``, its files in ``staging``, and waits for it.

    The worker lives in its own session (Ctrl-C reaches the sweep only, which decides what becomes
    of the run) and dies with the calling process (``SEGBENCH_PARENT_PID``). All it prints goes to
    ``staging/log.txt``; ``echo``, where given, also receives each line but TensorFlow's chatter.

    Raises:
        SweepInterrupted: ``cancel`` was set; the worker was stopped.
        BaseException: whatever else interrupts the wait (Ctrl-C), after the worker was stopped.
    """
    config_path = staging / "config.json"
    atomic_write_text(config_path, cfg.to_json())
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"  # the log gets each line when it is printed, not at exit
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*_package_roots(), env.get("PYTHONPATH", "")]))
    env["SEGBENCH_PARENT_PID"] = str(os.getpid())
    # Keras reads its backend once, at its first import: the worker's environment is the only
    # place to choose it, and the run's config the only source (never the sweep's own variable).
    env["KERAS_BACKEND"] = cfg.backend
    env.update(backends.environment(cfg.backend, deterministic=cfg.profile.deterministic))
    started = utc_now()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.execute.worker", str(config_path), str(staging)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", start_new_session=True,
    )
    relay = _Relay(proc.stdout, staging / LOG, echo)  # type: ignore[arg-type]
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


def exit_record(cfg: RunConfig, staging: Path, exit: WorkerExit) -> dict[str, Any]:
    """The worker's own record from ``staging``, or a failed one saying how the worker ended."""
    record = read_record(staging)
    if record is not None and record.get("run_id") != cfg.run_id:
        # The worker derived another id from the same config: the harness's code changed while
        # the sweep ran. The run is stored under the id the sweep planned, and says so.
        record.setdefault("notes", []).append(f"the worker computed run id {record.get('run_id')}; stored as planned")
        record["run_id"] = cfg.run_id
    if record is not None and exit.timeout_s is None:
        if record["status"] == "ok" and exit.peak_rss_mb and not any(m["metric"] == "peak_rss_mb" for m in record["metrics"]):
            record["metrics"].append(metric_row("peak_rss_mb", exit.peak_rss_mb, "MB"))
        return record
    if exit.timeout_s is not None:
        error = f"timed out after {exit.timeout_s:.0f} s (--run-timeout)"
    elif exit.returncode < 0:
        error = _signal_reason(exit.returncode, exit.peak_rss_mb)
    else:
        last = next((line for line in reversed(exit.stderr_tail) if line.strip()), "")
        error = f"worker exited with code {exit.returncode} without a record: {last}"[:300]
    return failed_record(cfg, error, started_at=exit.started_at, peak_rss_mb=exit.peak_rss_mb)


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
