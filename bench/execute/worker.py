"""One run in its own process: ``python -m bench.execute.worker <config.json> <staging_dir>``.

The sweep starts one worker per run (:mod:`bench.execute.process`), because TensorFlow does
not give memory back and a crash or an out-of-memory kill must not end the sweep. The worker
trains and measures (:func:`bench.measure.run.measure_run`), writes ``history.csv``,
``predictions.npz`` and ``record.json`` into the staging folder, and exits; the sweep then stores
the folder atomically. A Python exception becomes a failed record written by the worker itself; a
signal (out of memory) is recorded by the process that started the worker.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from bench.clock import utc_now
from bench.config.run_config import RunConfig
from bench.measure.devices import peak_rss_mb
from bench.store.record import metric_row, new_record, one_line, write_history
from bench.store.results import RECORD, atomic_write_json

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CRASH = 3  # the parent died: nobody is left to store a record
EXIT_NOT_WRITTEN = 74  # EX_IOERR: the run's files could not be written (disk full)


def _watch_parent() -> None:
    """Exits when the sweep that started this worker dies: on Linux through PR_SET_PDEATHSIG, which
    this process sets on itself, elsewhere (and as a second line) by polling the parent's pid."""
    parent = int(os.environ.get("SEGBENCH_PARENT_PID", os.getppid()))
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        # PR_SET_PDEATHSIG = 1: the kernel kills us the moment the parent dies (where libc has prctl)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(EXIT_CRASH)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(EXIT_CRASH)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.execute.worker <config.json> <staging_dir>", file=sys.stderr)
        return EXIT_USAGE
    cfg = RunConfig.from_json(Path(args[0]).read_text(encoding="utf-8"))
    staging = Path(args[1])
    _watch_parent()
    start = time.perf_counter()
    record = new_record(cfg)
    try:
        # Imported inside the try: a measuring stack that cannot load (TensorFlow, a broken
        # plugin) becomes this run's failed record instead of a worker that died before writing one.
        from bench.measure.run import measure_run

        measure_run(cfg, staging, record)
    except Exception as error:  # any error: failures are data
        record["status"] = "failed"
        record["error"] = str(error) if type(error).__name__ == "NaNLossError" else one_line(error)
        record["traceback"] = traceback.format_exc()
        traceback.print_exc()
        record["metrics"] = [metric_row("peak_rss_mb", peak_rss_mb(), "MB")]
    record["finished_at"] = utc_now()
    record["worker_time_s"] = time.perf_counter() - start
    try:
        write_history(staging, record)
        atomic_write_json(staging / RECORD, record)
    except OSError as error:  # disk full: one line for the sweep, which stores the run as it can
        print(f"could not write the run's files into {staging}: {error.strerror or error}", file=sys.stderr)
        return EXIT_NOT_WRITTEN
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
