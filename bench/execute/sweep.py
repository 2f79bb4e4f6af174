"""The sweep loop: runs go to an executor, each stored record is reported, Ctrl-C stops cleanly.

The sweep process only orchestrates and stores: each run is its own worker process
(:mod:`bench.execute.executor`), started one or several at a time by the executor, and every finished
run, success or failure, is stored the moment it ends (:mod:`bench.store.results`); re-running the same
command skips it. Ctrl-C (or SIGTERM) abandons the runs in flight, keeps everything finished and
exits with 130.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from bench.clock import format_duration
from bench.config.run_config import RunConfig
from bench.execute.executor import Executor, SweepInterrupted
from bench.execute.local import LocalExecutor
from bench.plan.estimate import Estimate
from bench.store.results import ResultsStore, StoreWriteError


@dataclass(frozen=True)
class SweepResult:
    """What a sweep stored, and why it stopped early if it did.

    Attributes:
        stored: The records stored, in the order their runs ended.
        interrupted: Ctrl-C or SIGTERM stopped it.
        write_error: The store could not be written (disk full): the sweep stopped there; the run
            that could not be stored is not in ``stored``, and the store is as it was before it.
    """

    stored: list[dict[str, Any]]
    interrupted: bool
    write_error: StoreWriteError | None = None


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
    """Runs ``runs`` on ``executor`` (local by default), storing each as it ends (the store
    rebuilds its CSVs with each); stops cleanly on Ctrl-C or SIGTERM, and at the first run that
    cannot be stored."""
    from tqdm import tqdm

    if executor is None:
        executor = LocalExecutor()
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
    except StoreWriteError as error:
        return SweepResult(stored, interrupted=False, write_error=error)
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
