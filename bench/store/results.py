"""Stored results: one record per finished run, and the tidy CSVs rebuilt from all of them.

The layout and columns are the contract of docs/results-schema.md. A results folder belongs to
the harness when it holds ``context.json`` (written when the harness makes the folder): the
comparison context of its runs (:meth:`bench.config.run_config.RunConfig.context`), one per folder. The
harness writes only into folders it owns, and only files it names. Rules that keep the store
consistent whenever the sweep is killed or a write fails:

1. A run's files are written into a staging folder (``runs/_tmp-<run_id>-<pid>``) and renamed into
   ``runs/<run_id>`` in one ``os.rename``; ``runs/<run_id>/record.json`` therefore exists only
   beside the complete set of that run's files. Staging folders left by a kill are removed by the
   next sweep and their runs are redone.
2. runs.csv, metrics.csv and history.csv are never appended to: each is rebuilt from every stored
   record, written to a temporary file and renamed over the old one. A kill leaves the previous
   complete file or the new complete file, never a partial or duplicated row.
3. Storing a run and rebuilding the CSVs is one step (:meth:`ResultsStore.commit_run`): when a
   write fails (disk full), the run is taken back out and the old files stay, so records and CSVs
   always agree; :class:`StoreWriteError` says what could not be written, where, and the space.
4. A record that cannot be read is reported once, by path, and moved aside to ``damaged/``
   (kept, never deleted); its run is then redone like any missing run.

Why one module of this size: ``ResultsStore`` is one folder's invariants (ownership, the atomic
commit with its CSV rebuild and roll-back, damaged records set aside); split, each half would
have to re-check what the other guarantees.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench.clock import utc_now
from bench.config.run_config import RunConfig, context_id, record_context_id

RECORD = "record.json"
RUN_HISTORY = "history.csv"
PREDICTIONS = "predictions.npz"
EVIDENCE = "evidence.npz"  # per-image evidence (bench.evidence.ops): what every interval is computed from
RUNS_CSV = "runs.csv"
METRICS_CSV = "metrics.csv"
HISTORY_CSV = "history.csv"
ENVIRONMENT_JSON = "environment.json"
CONTEXT_JSON = "context.json"
DAMAGED_DIR = "damaged"
TMP_PREFIX = "_tmp"

RUN_KEY = ["run_id", "model", "architecture", "backbone", "seed"]
RUN_COLUMNS = [
    *RUN_KEY, "profile", "dataset", "status", "error", "weights", "family",
    "executor", "host", "concurrent_runs", "wall_time_s", "started_at", "finished_at", "context_id",
    # The speed mode the run really ran in, which may differ from the one asked for
    # (bench.config.modes.Mode; empty in rows stored before speed modes)
    "precision", "xla", "deterministic", "mode_note",
    # A network built and timed only (never trained or evaluated), and why training ended.
    "cost_only", "stop_reason",
]
#: The environment columns of docs/results-schema.md, in order.
ENV_COLUMNS = [
    "device", "tf_version", "keras_version", "cuda_version", "python_version", "git_commit", "date",
    "dataset_source", "dataset_location", "dataset_fingerprint", "dataset_train_size",
    "dataset_test_size", "synthetic",
    # What a GPU figure depends on, to tell two GPU runs apart (empty on CPU-only machines)
    "gpu_name", "cudnn_version", "tf32",
    # The Keras backend the run computed on and the backends' versions (empty in rows stored before
    # the backend was a choice: those ran on TensorFlow, tf_version says which)
    "keras_backend", "jax_version", "jaxlib_version", "torch_version",
]
METRIC_COLUMNS = [*RUN_KEY, "profile", "dataset", "metric", "value", "unit"]
HISTORY_COLUMNS = [*RUN_KEY, "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_miou"]


class SweepLockedError(RuntimeError):
    """Another sweep is writing to the same results directory."""


class StoreWriteError(OSError):
    """A file of the store could not be written (disk full, read-only, ...); nothing stored was lost."""


class FolderNotOwnedError(RuntimeError):
    """``--out`` names a folder the harness did not make, or one it must not write into."""


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename; on a failed write the
    temporary file is removed and ``path`` is left as it was."""
    tmp = path.with_name(f"{TMP_PREFIX}-{path.name}-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_json_safe(data), indent=1, sort_keys=True) + "\n")


def _json_safe(value: Any) -> Any:
    """NaN and infinity become null: strict JSON readers reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_failure(path: Path, error: OSError, needed_bytes: int) -> StoreWriteError:
    """A :class:`StoreWriteError` saying what could not be written, where, and the space it needed."""
    try:
        # The nearest folder that still exists is on the same disk: a failed commit removes the
        # staging folder before this is asked.
        existing = next(p for p in path.parents if p.exists())
        free = shutil.disk_usage(existing).free
        space = f"; it needed about {_size(needed_bytes)} and {_size(free)} is free there"
    except OSError:
        space = f"; it needed about {_size(needed_bytes)}"
    reason = "the disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else (error.strerror or str(error))
    return StoreWriteError(
        error.errno, f"could not write {path}: {reason}{space}. Everything stored before is intact; "
        "free some space (or fix the folder) and run the same command again to resume"
    )


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ...: what is set aside twice in one second is kept twice
    (a rename onto a file would replace it)."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _tree_bytes(folder: Path) -> int:
    """The bytes of the files below ``folder`` (0 where it is gone)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _size(n: float) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def _say(message: str) -> None:
    print(message, file=sys.stderr)


class ResultsStore:
    """One results folder: ``runs/<run_id>/`` per run, the CSVs, ``context.json``.

    Args:
        root: The folder; created on first write.
        say: Where a damaged record is reported (once, when it is moved aside).
    """

    def __init__(self, root: Path, say: Callable[[str], None] = _say) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.say = say
        self._ignored: set[str] = set()

    # --- ownership and context ----------------------------------------------------------------

    def context(self) -> dict[str, Any] | None:
        """What ``context.json`` says (``context``, ``context_id``, ``reference``), or ``None``.

        A damaged one is rebuilt from the stored runs (see :meth:`_rebuild_context`).

        Raises:
            FolderNotOwnedError: it is damaged and the stored runs cannot say what it said.
        """
        path = self.root / CONTEXT_JSON
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            return self._rebuild_context(f"unreadable ({error})", "")
        try:
            data = json.loads(text)
        except ValueError as error:
            return self._rebuild_context(f"not valid JSON ({error})", text)
        if isinstance(data, dict) and not isinstance(data.get("context_id"), str):
            return self._rebuild_context("it names no context_id", text)
        return data if isinstance(data, dict) else None

    def _rebuild_context(self, why: str, text: str) -> dict[str, Any]:
        """A damaged ``context.json`` moved to ``damaged/`` and written again from the stored runs,
        which all carry the context they ran in; it stays a reference folder if the damaged text
        still says it was one.

        Raises:
            FolderNotOwnedError: no stored run, or runs of several contexts: nothing says which it was.
        """
        path = self.root / CONTEXT_JSON
        configs = {}
        for record in self.records():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                cfg = RunConfig.from_dict(record["config"])
                configs[cfg.context_id] = cfg
        if len(configs) != 1:
            found = "no stored run" if not configs else f"runs of {len(configs)} comparison contexts"
            raise FolderNotOwnedError(
                f"{path} is damaged ({why}) and {self.runs_dir} holds {found}, so it cannot be rebuilt: "
                "restore it from a copy, or delete it"
            )
        (cfg,) = configs.values()
        data = {
            "segbench": "results folder", "context_id": cfg.context_id, "context": cfg.context(),
            "reference": bool(re.search(r'"reference":\s*true', text)), "created_at": utc_now(),
            "rebuilt_from": "the stored runs",
        }
        try:
            target = self.set_aside_file(path)
            atomic_write_json(path, data)
            done = f"moved to {target} and rebuilt from the stored runs"
        except OSError as error:
            done = f"could not be rebuilt ({error.strerror or error}); this command reads the stored runs' context"
        self.say(f"warning: damaged {path}: {why}; {done}.")
        return data

    def foreign_files(self) -> list[str]:
        """What is in the folder that the harness did not make: the reason it is not ours."""
        if not self.root.is_dir():
            return []
        names = sorted(p.name for p in self.root.iterdir())
        if self.context() is not None:
            return []
        if self.runs_dir.is_dir() and any(_is_record(p) for p in self.runs_dir.glob(f"*/{RECORD}")):
            return []  # made by a harness that wrote no context.json yet: adopted by claim()
        return names

    def claim(self, context: dict[str, Any], context_id: str) -> None:
        """Makes the folder the harness's, for runs of ``context``, or says why it cannot.

        A new or empty folder gets ``context.json``; a folder of an older harness (records, no
        context.json) is adopted. Nothing is written when the folder is not the harness's, is the
        committed reference, or holds runs of another context.

        Raises:
            FolderNotOwnedError: with the reason and what to do instead.
        """
        self.check_layout()
        outer = enclosing_results(self.root)
        if outer is not None:
            what = "the committed reference results, which sweeps never change" if outer[1] else "another results folder"
            raise FolderNotOwnedError(
                f"--out {self.root} is inside {outer[0]}, {what}; a results folder holds its own runs only. Pass a "
                f"folder outside it, e.g. --out {outer[0].parent / f'{outer[0].name}-{self.root.name}'}"
            )
        foreign = self.foreign_files()
        if foreign:
            shown = ", ".join(foreign[:6]) + (f" and {len(foreign) - 6} more" if len(foreign) > 6 else "")
            raise FolderNotOwnedError(
                f"--out {self.root} is not empty and was not made by segbench (no {CONTEXT_JSON}); it holds {shown}. "
                "segbench never writes into a folder it does not own: pass a new or empty folder with --out"
            )
        mine = self.context()
        if mine is not None and mine.get("reference"):
            raise FolderNotOwnedError(
                f"{self.root} holds the committed reference results, which sweeps never change. Your results go to "
                "results/local/<profile> (the default when --out is not given), or pass another --out"
            )
        if mine is not None and mine.get("context_id") != context_id:
            raise FolderNotOwnedError(context_mismatch(self.root, mine.get("context", {}), context))
        if mine is None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                atomic_write_json(
                    self.root / CONTEXT_JSON,
                    {"segbench": "results folder", "context_id": context_id, "context": context,
                     "reference": False, "created_at": utc_now()},
                )
            except OSError as error:
                raise FolderNotOwnedError(f"--out {self.root} cannot be written: {error.strerror or error}") from None

    # --- runs ---------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def load_record(self, run_id: str) -> dict[str, Any] | None:
        """The stored record of ``run_id``; ``None`` where there is none (or a damaged one, moved aside)."""
        record = self._read(self.run_dir(run_id) / RECORD)
        return record if record is not None and record["run_id"] == run_id else None

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, sorted by run id; damaged ones are reported and moved aside.

        A run is a folder of ``runs/`` named after the run id of the record it holds; anything
        else there (a user's backup copy of a run, a stray file) is said once and never counted,
        so it can neither double a run's rows nor be taken for one.

        Raises:
            FolderNotOwnedError: ``runs`` is not a folder.
        """
        self.check_layout()
        if not self.runs_dir.is_dir():
            return []
        out = []
        for entry in sorted(self.runs_dir.iterdir()):
            if entry.name.startswith(TMP_PREFIX):
                continue
            path = entry / RECORD
            if not path.is_file():
                self._ignore(entry, f"no {RECORD} in it" if entry.is_dir() else "a file")
                continue
            record = self._read(path)
            if record is None:
                continue
            if record["run_id"] != entry.name:
                self._ignore(entry, f"it holds the record of run {record['run_id']}: a copy?")
                continue
            out.append(record)
        return out

    def check_layout(self) -> None:
        """Fails when the folder's ``runs`` is not a folder: its runs cannot be read, and the
        CSVs beside it describe runs that are no longer there.

        Raises:
            FolderNotOwnedError: naming the file and what to do.
        """
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            raise FolderNotOwnedError(
                f"{self.runs_dir} is a file, not the folder of stored runs; move it out of {self.root} (or restore "
                "the runs/ folder), or pass another --out. Nothing was changed"
            )

    def records_by_identity(self) -> dict[str, dict[str, Any]]:
        """Every stored record by the hash of its identity under the current rules
        (:meth:`bench.config.run_config.RunConfig.identity`); of several with one identity, the latest."""
        return dict(self.records_by_identity_all())

    def records_by_identity_all(self) -> list[tuple[str, dict[str, Any]]]:
        """``(identity hash, record)`` of every stored record a current RunConfig can read, oldest first."""
        out = []
        for record in sorted(self.records(), key=lambda r: (str(r.get("finished_at") or ""), r["run_id"])):
            try:
                out.append((RunConfig.from_dict(record["config"]).config_hash, record))
            except (KeyError, TypeError, ValueError):
                continue  # not a run of a config this harness can read: never "already done"
        return out

    def _same_run(self, record: dict[str, Any]) -> list[str]:
        """The run ids stored for the run of ``record``: its own, and older ids of the same identity."""
        ids = [record["run_id"]]
        try:
            identity = RunConfig.from_dict(record["config"]).config_hash
        except (KeyError, TypeError, ValueError):
            return ids
        for key, stored in self.records_by_identity_all():
            if key == identity and stored["run_id"] not in ids:
                ids.append(stored["run_id"])
        return ids

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            return self._set_aside(path, f"unreadable ({error})")
        try:
            record = json.loads(text)
        except ValueError as error:
            return self._set_aside(path, f"not valid JSON ({error})")
        if not _is_record(record):
            return self._set_aside(path, "not a segbench record (no run_id, model, status and config)")
        problem = record_problem(record)
        if problem:
            return self._set_aside(path, f"not a record this harness can read ({problem})")
        return record

    def _set_aside(self, path: Path, why: str, what: str = "record") -> None:
        """Moves the run folder holding the damaged ``path`` to ``damaged/`` and says so, once."""
        folder = path.parent
        target = _unused(self.root / DAMAGED_DIR / f"{folder.name}-{utc_now().replace(':', '')}")
        try:
            target.parent.mkdir(exist_ok=True)
            os.rename(folder, target)
            where = f"moved to {target}; its run will be redone"
        except OSError as error:
            where = f"could not move it aside ({error.strerror or error}); it is skipped"
        self.say(f"warning: damaged {what} {path}: {why}; {where}.")
        return

    def set_aside_file(self, path: Path) -> Path:
        """Moves a damaged file of the folder (not of a run) to ``damaged/``, kept; returns where.

        Raises:
            OSError: it could not be moved.
        """
        target = _unused(self.root / DAMAGED_DIR / f"{path.name}-{utc_now().replace(':', '')}")
        target.parent.mkdir(exist_ok=True)
        os.rename(path, target)
        return target

    def _ignore(self, entry: Path, why: str) -> None:
        """Says once per store that ``entry`` in ``runs/`` is not a run and is left alone."""
        if entry.name not in self._ignored:
            self._ignored.add(entry.name)
            self.say(f"warning: {entry} is not a run ({why}): ignored; move it out of {self.runs_dir}.")

    def set_aside_damaged_files(self) -> int:
        """Sets aside every stored run whose predictions or evidence cannot be read, so that the
        report never trips on it and the next sweep redoes the run. Returns how many.

        The CSVs still list those runs until :meth:`consolidate` (or the report's rebuild) runs.
        """
        count = 0
        for record in self.records():
            folder = self.run_dir(record["run_id"])
            for name in (PREDICTIONS, EVIDENCE):
                problem = npz_problem(folder / name)
                if problem:
                    self._set_aside(folder / name, problem, what="file")
                    count += 1
                    break
        return count

    def staging_dir(self, run_id: str) -> Path:
        """A fresh folder to write a run's files into before :meth:`commit_run`."""
        path = self.runs_dir / f"{TMP_PREFIX}-{run_id}-{os.getpid()}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def commit_run(self, staging: Path, record: dict[str, Any]) -> Path:
        """Stores ``record`` and its files from ``staging`` as ``runs/<run_id>`` and rebuilds the CSVs.

        A run stored before (``--force``, ``--retry-failed``, or the same run under an older id:
        same identity) is replaced: it is renamed aside first and removed only once the CSVs agree with the new run,
        so a kill leaves the old or the new run, never a mixture, and a failed write (disk full)
        leaves the store exactly as it was.

        Raises:
            StoreWriteError: what could not be written; the staging folder is removed.
        """
        target = self.run_dir(record["run_id"])
        text = json.dumps(_json_safe(record), indent=1, sort_keys=True) + "\n"
        try:
            atomic_write_text(staging / RECORD, text)
        except OSError as error:
            needed = _tree_bytes(staging) + len(text.encode())  # the run is stored whole or not at all
            shutil.rmtree(staging, ignore_errors=True)
            raise write_failure(staging / RECORD, error, needed) from None
        old = [self.run_dir(r) for r in self._same_run(record) if self.run_dir(r).exists()]
        trash = [self.runs_dir / f"{TMP_PREFIX}-old-{p.name}-{os.getpid()}" for p in old]
        for path, aside in zip(old, trash, strict=True):
            os.rename(path, aside)
        os.rename(staging, target)
        try:
            self.consolidate()
        except StoreWriteError:
            os.rename(target, staging)  # take the new run back out: records and CSVs keep agreeing
            for path, aside in zip(old, trash, strict=True):
                os.rename(aside, path)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        for aside in trash:
            shutil.rmtree(aside, ignore_errors=True)
        return target

    def clean_temporary(self) -> int:
        """Removes what a killed sweep or report left: staging folders and ``_tmp-*`` files of the
        store's own naming, in ``runs/`` and in the folder itself. Returns how many."""
        stale = [
            p for folder in (self.root, self.runs_dir) if folder.is_dir()
            for p in folder.iterdir() if p.name.startswith(f"{TMP_PREFIX}-")
        ]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return len(stale)

    # --- the tidy tables -----------------------------------------------------------------------

    def consolidate(self) -> None:
        """Rebuilds runs.csv, metrics.csv and history.csv from every stored record.

        All three are written to temporary files first and renamed only when all three were
        written, so a failed write leaves the three old files, which agree with each other.

        Raises:
            StoreWriteError: a file could not be written; the old CSVs are untouched.
        """
        frames = tables(self.records())
        texts = {name: frame.to_csv(index=False) for frame, name in zip(frames, (RUNS_CSV, METRICS_CSV, HISTORY_CSV), strict=True)}
        written: list[tuple[Path, Path]] = []
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for name, text in texts.items():
                final = self.root / name
                tmp = final.with_name(f"{TMP_PREFIX}-{name}-{os.getpid()}")
                written.append((tmp, final))
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as error:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            failed = written[-1][1] if written else self.root
            raise write_failure(failed, error, sum(len(t.encode()) for t in texts.values())) from None
        for tmp, final in written:
            os.replace(tmp, final)

    def tables_problem(self) -> str | None:
        """Why the CSVs cannot be trusted (missing, unreadable, or not what the records say), or ``None``."""
        records = self.records()
        ids = {r["run_id"] for r in records}
        ok = {r["run_id"] for r in records if r.get("status") == "ok" and r.get("metrics")}
        for name, required, expected in (
            (RUNS_CSV, [*RUN_KEY, "status"], ids), (METRICS_CSV, ["run_id", "metric", "value"], ok),
            (HISTORY_CSV, HISTORY_COLUMNS, None),
        ):
            path = self.root / name
            if not path.is_file():
                return f"{path} is missing"
            try:
                frame = pd.read_csv(path, dtype={"run_id": str})
            except pd.errors.EmptyDataError:
                return f"{path} is empty"
            except (ValueError, OSError, UnicodeDecodeError) as error:
                return f"{path} is unreadable ({type(error).__name__})"
            if any(c not in frame.columns for c in required):
                return f"{path} lacks the columns of docs/results-schema.md"
            if expected is not None and set(frame["run_id"].dropna()) != expected:
                return f"{path} does not list the runs stored in {self.runs_dir}"
        return None

    def write_environment(self, environment: dict[str, Any]) -> None:
        text = json.dumps(_json_safe(environment), indent=1, sort_keys=True) + "\n"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.root / ENVIRONMENT_JSON, text)
        except OSError as error:
            raise write_failure(self.root / ENVIRONMENT_JSON, error, len(text.encode())) from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds an exclusive lock on the directory for the duration of a sweep.

        POSIX only (``fcntl.flock``), as is the sweep that takes it: its workers run in process
        groups and are stopped by signal. fcntl is imported here, not at the top, so that the
        report, which reads the store, imports on Windows too.
        """
        import fcntl

        path = self.root / ".lock"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the with-block below
        except OSError as error:
            raise write_failure(path, error, 64) from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise SweepLockedError(
                    f"Another sweep ({holder}) is writing to {self.root}; wait for it or use --out."
                ) from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}")
            f.flush()
            try:
                yield
            finally:
                f.seek(0)
                f.truncate()
                fcntl.flock(f, fcntl.LOCK_UN)


def _is_record(record: Any) -> bool:
    if isinstance(record, Path):
        try:
            record = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
    return isinstance(record, dict) and all(k in record for k in ("run_id", "model", "status", "config"))


def enclosing_results(root: Path) -> tuple[Path, bool] | None:
    """The results folder of the harness that ``root`` lies inside, and whether it is the committed
    reference; ``None`` where there is none."""
    for folder in Path(os.path.abspath(root)).parents:
        try:
            data = json.loads((folder / CONTEXT_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("segbench") == "results folder":
            return folder, bool(data.get("reference"))
    return None


def record_problem(record: dict[str, Any]) -> str | None:
    """What keeps a parsed record from being read by the store (a key it reads missing or of the
    wrong type), or ``None``: such a record is damaged as surely as a truncated one."""
    missing = [k for k in (*RUN_KEY, "status", "config") if k not in record]
    if record.get("status") == "ok":
        missing += [k for k in ("profile", "dataset") if k not in record]
    if missing:
        return f"no {', '.join(missing)}"
    types: dict[str, type | tuple[type, ...]] = {
        "run_id": str, "model": str, "seed": int, "config": dict, "env": dict, "config_flat": dict,
        "metrics": list, "history": list,
    }
    for key, kind in types.items():
        if key in record and (not isinstance(record[key], kind) or isinstance(record[key], bool)):
            return f"its {key} is {type(record[key]).__name__}"
    rows = [*record.get("metrics", []), *record.get("history", [])]
    if not all(isinstance(row, dict) for row in rows):
        return "a metrics or history row is not an object"
    if any(k not in m for m in record.get("metrics", []) for k in ("metric", "value", "unit")):
        return "a metrics row lacks metric, value or unit"
    return None


def npz_problem(path: Path) -> str | None:
    """Why a stored ``.npz`` (an archive of arrays) cannot be read, or ``None`` (also where it is absent)."""
    if not path.exists():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        return f"not a readable .npz ({error})"
    return f"{bad} in it fails its checksum" if bad else None


def context_mismatch(root: Path, stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """Why a sweep of context ``wanted`` may not write into ``root`` (whose runs are of ``stored``),
    naming the settings that differ and the ``--out`` to use instead."""

    keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    shown = "; ".join(f"{k}: {stored.get(k, '-')} there, {wanted.get(k, '-')} now" for k in keys[:4])
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    suggestion = root.parent / f"{root.name}-{context_id(wanted)}"
    return (
        f"{root} holds runs of another comparison context ({shown}{more}), and runs of different contexts are "
        f"never ranked together. Write this sweep to its own folder: --out {suggestion}"
    )


def tables(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """runs, metrics and history frames (docs/results-schema.md) of a list of records."""
    run_rows, metric_rows, history_rows = [], [], []
    config_columns: set[str] = set()
    for record in sorted(records, key=lambda r: (r["model"], r["seed"], r["run_id"])):
        key = {k: record[k] for k in RUN_KEY}
        env = {c: record.get("env", {}).get(c, "") for c in ENV_COLUMNS}
        config = {f"config.{k}": v for k, v in record.get("config_flat", {}).items()}
        config_columns.update(config)
        row = {c: record.get(c, "") for c in RUN_COLUMNS}
        row["context_id"] = record_context_id(record)
        run_rows.append({**row, **env, **config})
        if record.get("status") == "ok":
            for m in record.get("metrics", []):
                metric_rows.append({
                    **key, "profile": record["profile"], "dataset": record["dataset"],
                    "metric": m["metric"], "value": m["value"], "unit": m["unit"], **env,
                })
        for h in record.get("history", []):
            history_rows.append({**key, **{c: h.get(c) for c in HISTORY_COLUMNS[len(RUN_KEY):]}})
    runs = pd.DataFrame(run_rows, columns=[*RUN_COLUMNS, *ENV_COLUMNS, *sorted(config_columns)])
    metrics = pd.DataFrame(metric_rows, columns=[*METRIC_COLUMNS, *ENV_COLUMNS])
    history = pd.DataFrame(history_rows, columns=HISTORY_COLUMNS)
    return runs, metrics, history
