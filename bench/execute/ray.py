"""The sweep on Ray (``--executor ray``): every run a Ray task, stored by the driver.

Ray decides where runs go and how many at once. Each task asks for the resources of one run: GPUs
where the cluster has them (``--gpus-per-run``, one by default), CPUs otherwise
(``--cpus-per-run``), and always the host memory the run is expected to peak at
(:func:`bench.plan.estimate.peak_memory_mb`), so that two 15 GB FCNs never share a 24 GB node. A task
runs the very ``python -m bench.execute.worker`` process the local executor runs, in a temporary folder on
its node, and returns that folder's files; the driver writes them into the results directory and
stores the run as the local executor does. Resume, the CSVs, the report and the failure rows are
therefore the same whichever executor ran a sweep, and the nodes share no filesystem for results.

A Ray worker that dies (killed, out of memory, node lost) is retried by Ray up to
``--max-retries`` times; after the last attempt the run is stored as failed with the reason and
the sweep goes on. A worker *process* that dies inside a live task is recorded exactly as locally
("killed by signal 9 ...").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench
import segmodels
from bench.config.run_config import RunConfig
from bench.execute.process import WorkerExit, exit_record, run_worker
from bench.plan.estimate import peak_memory_mb
from bench.store.record import failed_record, finalize, one_line
from bench.store.results import ResultsStore

INSTALL_HINT = "pip install 'segbench[bench,ray]' (in a checkout: pip install -e '.[bench,ray]')"
WAIT_S = 1.0  # ray.wait's timeout: Ctrl-C is handled between waits

#: Environment variables a run depends on, handed to the tasks of a cluster joined by address
#: (a local cluster's workers inherit them anyway).
FORWARDED_ENV = (
    "SEGMODELS_PLUGINS", "SEGMODELS_OFFLINE", "SEGBENCH_PETS_DIR", "SEGBENCH_CACHE", "KERAS_HOME",
    "TFDS_DATA_DIR", "TF_CPP_MIN_LOG_LEVEL", "PYTHONHASHSEED", "SEGBENCH_VIRTUAL_DEVICES",
)


class RayExecutorError(RuntimeError):
    """Ray is missing, unreachable, or cannot give a run what it asks for."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise RayExecutorError(f"--executor ray needs Ray, which is not installed ({error}). Install it: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """How a sweep uses Ray.

    Attributes:
        address: A running cluster (``ray start --head`` printed it; ``auto`` finds a local one);
            ``None`` starts a private local cluster for the sweep (or joins ``$RAY_ADDRESS``).
        gpus_per_run: GPUs per run where the cluster has GPUs (above 1: MirroredStrategy).
        cpus_per_run: CPUs per run (on a CPU-only cluster, this decides how many runs share a node).
        max_retries: Times Ray restarts a run whose worker died before it is stored as failed.
    """

    address: str | None = None
    gpus_per_run: int = 1
    cpus_per_run: float = 1.0
    max_retries: int = 1


@dataclass(frozen=True)
class _Capacity:
    """What the cluster's largest node offers (a run never spans nodes) and the cluster's totals."""

    node_gpus: float
    node_cpus: float
    node_memory: float
    total_gpus: float
    total_cpus: float
    nodes: int


class RayExecutor:
    """Runs a sweep's runs as Ray tasks. Use as a context manager: connecting checks the cluster."""

    name = "ray"

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self._ray: Any = None
        self._capacity: _Capacity | None = None

    # --- connecting ---------------------------------------------------------------------------

    def __enter__(self) -> RayExecutor:
        ray = import_ray()
        options: dict[str, Any] = {
            "include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
            "ignore_reinit_error": True,
        }
        if self.settings.address:
            options["address"] = self.settings.address
            options["runtime_env"] = _runtime_env()
        elif not self._address:
            # A private cluster for this sweep, even where `ray start` left one running on this
            # machine (which ray.init would otherwise join): --ray-address joins one on purpose.
            options["address"] = "local"
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise RayExecutorError(
                f"could not connect to the Ray cluster at {self._address or 'a local cluster'}: {one_line(error)}. Start one with "
                "`ray start --head` and pass the address it prints, or leave out --ray-address for a local cluster"
            ) from None
        self._ray = ray
        try:
            self._capacity = _capacity(ray)
            self._check_resources()
        except BaseException:
            self.__exit__()  # `with` calls __exit__ only after a successful __enter__
            raise
        return self

    @property
    def _address(self) -> str | None:
        """The cluster joined: --ray-address, else $RAY_ADDRESS; None for a private local one."""
        return self.settings.address or os.environ.get("RAY_ADDRESS") or None

    def __exit__(self, *exc: Any) -> None:
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()

    def _check_resources(self) -> None:
        cap, s = self._capacity, self.settings
        assert cap is not None
        if cap.node_gpus and s.gpus_per_run > cap.node_gpus:
            raise RayExecutorError(
                f"--gpus-per-run {s.gpus_per_run}: the largest node of the Ray cluster has {cap.node_gpus:g} GPUs "
                "(a run never spans nodes)"
            )
        if not cap.node_gpus and s.gpus_per_run > 1:
            raise RayExecutorError(
                f"--gpus-per-run {s.gpus_per_run} needs GPUs, and the Ray cluster has none "
                f"({cap.nodes} node(s), {cap.total_cpus:g} CPUs)"
            )
        if s.cpus_per_run > cap.node_cpus:
            raise RayExecutorError(
                f"--cpus-per-run {s.cpus_per_run:g}: the largest node of the Ray cluster has {cap.node_cpus:g} CPUs"
            )

    # --- what a run asks for ------------------------------------------------------------------

    def task_options(self, cfg: RunConfig, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Ray resources of ``cfg``'s task: GPUs where there are any, CPUs, and its peak memory
        (capped at the largest node's, so that a big run waits for a free node, never forever)."""
        cap = self._capacity
        assert cap is not None
        memory = min(peak_memory_mb(cfg, records) * 2**20, cap.node_memory) if cap.node_memory else None
        options: dict[str, Any] = {
            "num_cpus": self.settings.cpus_per_run,
            "num_gpus": self.settings.gpus_per_run if cap.node_gpus else 0,
            "max_retries": self.settings.max_retries,
            "retry_exceptions": False,  # a Python error inside the task is a bug, not bad luck
            "name": f"segbench:{cfg.run_id}",
        }
        if memory:
            options["memory"] = int(memory)
        return options

    @property
    def slots(self) -> int:
        cap = self._capacity
        if cap is None:
            return 1
        if cap.total_gpus:
            return max(1, int(cap.total_gpus // max(1, self.settings.gpus_per_run)))
        return max(1, int(cap.total_cpus // self.settings.cpus_per_run))

    def describe(self) -> str:
        cap, s = self._capacity, self.settings
        where = f"Ray cluster at {self._address}" if self._address else "a local Ray cluster for this sweep"
        if cap is None:
            return where
        per_run = f"{s.gpus_per_run} GPU(s) per run" if cap.node_gpus else f"{s.cpus_per_run:g} CPU(s) per run"
        text = (
            f"{where}: {cap.nodes} node(s), {cap.total_cpus:g} CPUs, {cap.total_gpus:g} GPUs; {per_run}, "
            f"up to {self.slots} at once (fewer where memory is short); a lost worker is retried {s.max_retries} time(s)"
        )
        if not cap.node_gpus and self.slots > 1:
            text += ". Runs sharing a node's CPUs slow each other: compare their timings with care"
        return text

    # --- running ------------------------------------------------------------------------------

    def run(
        self, runs: Sequence[RunConfig], store: ResultsStore, *, env_defaults: dict[str, Any],
        timeout_s: float | None, echo: Callable[[str], None], on_start: Callable[[RunConfig], None],
    ) -> Iterator[dict[str, Any]]:
        ray = self._ray
        if ray is None:
            raise RuntimeError("RayExecutor.run outside its `with` block")
        records = store.records()
        task = ray.remote(execute_remote)
        pending: dict[Any, tuple[RunConfig, dict[str, Any], float]] = {}
        for cfg in runs:
            options = self.task_options(cfg, records)
            pending[task.options(**options).remote(cfg.to_json(), timeout_s)] = (cfg, options, time.perf_counter())
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
                for ref in done:
                    cfg, options, submitted = pending.pop(ref)
                    yield self._store(ref, cfg, store, env_defaults, options, time.perf_counter() - submitted)
        finally:
            for ref in pending:  # interrupted: nothing in flight is stored
                ray.cancel(ref, force=True)

    def _store(
        self, ref: Any, cfg: RunConfig, store: ResultsStore, env_defaults: dict[str, Any], options: dict[str, Any],
        since_submitted_s: float,
    ) -> dict[str, Any]:
        """Stores the run of the finished task ``ref``: its worker's record, or why Ray lost it."""
        ray = self._ray
        staging = store.staging_dir(cfg.run_id)
        try:
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as error:
                if isinstance(error, ray.exceptions.RayTaskError):  # the task's own code raised
                    reason = f"Ray task failed: {one_line(getattr(error, 'cause', None) or error)}"
                else:  # its worker or node died, on every attempt
                    reason = f"Ray task lost after {self.settings.max_retries + 1} attempt(s): {one_line(error)}"
                record = failed_record(cfg, reason)
                record["host"] = ""
                wall = None
            else:
                for name, data in result["files"].items():
                    (staging / name).write_bytes(data)
                exit = WorkerExit(**result["exit"])
                record = exit_record(cfg, staging, exit)
                record["host"] = result["host"]
                wall = exit.wall_time_s
            record = finalize(record, env_defaults=env_defaults, wall_time_s=wall, executor=self.name)
            record["ray"] = {"task_options": options, "since_submitted_s": since_submitted_s}
            store.commit_run(staging, record)
        except BaseException:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise
        return record


def execute_remote(config_json: str, timeout_s: float | None) -> dict[str, Any]:
    """The Ray task: one run's worker process on this node, its files returned to the driver."""
    cfg = RunConfig.from_json(config_json)
    with tempfile.TemporaryDirectory(prefix=f"segbench-{cfg.run_id}-") as tmp:
        staging = Path(tmp)
        exit = run_worker(cfg, staging, timeout_s=timeout_s, echo=None)
        files = {p.name: p.read_bytes() for p in staging.iterdir() if p.is_file()}
    return {"files": files, "exit": dataclasses.asdict(exit), "host": socket.gethostname()}


def _capacity(ray: Any) -> _Capacity:
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not nodes:
        raise RayExecutorError("the Ray cluster has no live node")
    total = ray.cluster_resources()
    return _Capacity(
        node_gpus=max(n.get("GPU", 0.0) for n in nodes),
        node_cpus=max(n.get("CPU", 0.0) for n in nodes),
        node_memory=max(n.get("memory", 0.0) for n in nodes),
        total_gpus=total.get("GPU", 0.0),
        total_cpus=total.get("CPU", 0.0),
        nodes=len(nodes),
    )


def _runtime_env() -> dict[str, Any]:
    """What a joined cluster's nodes need to run this checkout: its two packages and the
    environment variables runs depend on. The dataset must be reachable from every node (tfds
    prepared there, the same ``dir:`` path, or synthetic): the worker's fingerprint check says so
    when it is not."""
    modules = [str(Path(m.__file__).parent) for m in (bench, segmodels)]
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    return {"py_modules": modules, "env_vars": env}
