"""The local executor: worker processes on this machine, as many at once as memory allows."""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.run_config import RunConfig
from bench.execute.process import POLL_S, WorkerExit, exit_record, run_worker
from bench.plan.estimate import peak_memory_mb
from bench.store.record import finalize
from bench.store.results import ResultsStore


class LocalExecutor:
    """Worker processes on this machine, at most ``jobs`` at once (one by default: runs side by side
    share the cores and distort each other's timings), and never more at once than the memory they
    are expected to peak at (:func:`bench.plan.estimate.peak_memory_mb`) fits in ``memory_mb``.

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

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def run(
        self, runs: Sequence[RunConfig], store: ResultsStore, *, env_defaults: dict[str, Any],
        timeout_s: float | None, echo: Callable[[str], None], on_start: Callable[[RunConfig], None],
    ) -> Iterator[dict[str, Any]]:
        stored = store.records()
        peaks = {cfg.run_id: peak_memory_mb(cfg, stored) for cfg in runs}
        pending = list(runs) if self.jobs == 1 else sorted(runs, key=lambda c: -peaks[c.run_id])
        running: dict[str, _Running] = {}
        finished: queue.Queue[tuple[str, WorkerExit | None, BaseException | None]] = queue.Queue()
        cancel = threading.Event()

        def work(cfg: RunConfig, staging: Path, say: Callable[[str], None] | None) -> None:
            try:
                finished.put((cfg.run_id, run_worker(cfg, staging, timeout_s=timeout_s, echo=say, cancel=cancel), None))
            except BaseException as error:  # any error, handed to the sweep's thread
                finished.put((cfg.run_id, None, error))

        try:
            while pending or running:
                while len(running) < self.jobs:
                    cfg = self._next(pending, running, peaks)
                    if cfg is None:
                        break
                    pending.remove(cfg)
                    # One run at a time shows its worker's output as it comes; beside others it
                    # would interleave with theirs, so it stays in the run's log.txt.
                    say = echo if self.jobs == 1 else None
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
