"""Which stored runs the report may compare: one comparison context, and for costs one device.

A results folder may hold runs of several comparison contexts (folders of older harnesses, or
folders merged by hand) and runs measured on several devices. The report ranks only the runs of
the folder's context (:meth:`bench.config.run_config.RunConfig.context`): the one ``context.json`` names, or,
in a folder without it, the context of the most recent run. Runs of other contexts never reach
the leaderboard, the figures or the "superseded" logic; they are summarised apart.

Within that context quality compares across devices but speed does not: the cost metrics
(:func:`is_cost_metric`) of a run count only when it ran on the main device, the one with the most
ranked successful runs. The others' costs are summarised per model and device, apart.

A sweep on several Keras backends (``--backend tensorflow,jax``) stores each model once per
backend, in one context; two backends' runs are two measurements, never two seeds of one. The
report ranks the runs of one backend (:func:`bench.config.backends.ranked_backend`) and shows the others beside it
(:mod:`bench.report.keras_backends`).

Everything here selects among stored rows; nothing is recomputed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.config.backends import BACKENDS, DEFAULT_BACKEND, ranked_backend
from bench.config.profiles import PROFILES
from bench.config.run_config import RunConfig, record_context_id
from bench.report.load import Results, as_bool
from bench.report.summary import current_runs
from bench.store.results import CONTEXT_JSON

#: Cost metrics that are not ``latency_*`` or ``*_time_s``: they depend on the device that measured them.
_COST_METRICS = frozenset({"inference_throughput", "train_throughput", "peak_rss_mb", "peak_device_mem_mb",
                           "mc_latency_ms", "inference_trace_s", "inference_first_call_s", "train_first_step_s",
                           "inference_max_batch"})
#: The label of a run whose record names no device.
NO_DEVICE = "device not recorded"
#: The context of a run whose config could not be read (no record, no ``context_id`` column).
UNKNOWN_CONTEXT = ""
#: The flattened config keys that make up a comparison context, derived from a sample RunConfig so
#: that this list cannot drift from :meth:`RunConfig.context`.
_CONTEXT_KEYS = frozenset(RunConfig("a", "b", 0, PROFILES["quick"], "synthetic", "-").context())


def is_cost_metric(metric: str) -> bool:
    """Whether a stored metric measures the device rather than the model (latency, throughput,
    times, memory). Quality, parameters and FLOPs are device-independent."""
    return (
        metric.startswith(("latency_", "inference_throughput", "peak_")) or metric.endswith("_time_s")
        or metric in _COST_METRICS
    )


@dataclass(frozen=True)
class OtherContext:
    """Runs of a context other than the ranked one.

    Attributes:
        context_id: Its short hash (empty where the runs' configs could not be read).
        runs: Its rows of runs.csv.
        differences: ``(setting, value in the ranked context, value in this one)``, sorted by setting.
    """

    context_id: str
    runs: pd.DataFrame
    differences: list[tuple[str, str, str]]


@dataclass(frozen=True)
class Selection:
    """What the report ranks, and what it shows apart.

    Attributes:
        results: The stored results less the runs of other contexts, and less the cost metrics of
            runs measured on another device than :attr:`device`: everything downstream reads this.
        context_id: The ranked context.
        context_source: ``context.json`` or ``most recent run``.
        others: The other contexts, most runs first.
        device: The device the cost metrics are compared on (None without a successful run).
        devices: Device label per run id of the context (``device`` plus `` x N`` for N replicas).
        other_device_costs: One row per model and other device: model, family, device, n (ok runs)
            and the mean over those runs of every cost metric stored; empty with one device.
        backend: The Keras backend whose runs :attr:`results` holds (:func:`bench.config.backends.ranked_backend`).
        backends: Every backend the context's runs computed on, in :data:`bench.config.backends.BACKENDS`
            order.
        backend_of: The backend of every run of the context (index: run_id, :func:`run_backends`).
        every_backend: The context's runs on every backend, with :attr:`results`'s cost filter
            (costs of the main device only); None where :attr:`results` already holds them all.
    """

    results: Results
    context_id: str
    context_source: str
    others: list[OtherContext]
    device: str | None
    devices: pd.Series
    other_device_costs: pd.DataFrame
    backend: str = DEFAULT_BACKEND
    backends: tuple[str, ...] = (DEFAULT_BACKEND,)
    backend_of: pd.Series | None = None
    every_backend: Results | None = None

    @property
    def several_devices(self) -> bool:
        return len(self.other_device_costs) > 0

    @property
    def several_backends(self) -> bool:
        return len(self.backends) > 1


def run_contexts(results: Results) -> pd.Series:
    """The context id of every run (index: run_id): the ``context_id`` column of runs.csv, or where
    it is absent or empty (runs.csv of an older harness), computed from the run's record."""
    runs = results.runs
    stored = runs["context_id"] if "context_id" in runs.columns else pd.Series(pd.NA, index=runs.index)
    out = {}
    for run_id, value in zip(runs["run_id"], stored, strict=True):
        text = "" if pd.isna(value) else str(value).strip()
        if not text:
            text = record_context_id(results.record(run_id) or {})
        out[run_id] = text
    return pd.Series(out, name="context_id", dtype=object)


def folder_context(results: Results, contexts: pd.Series) -> tuple[str, str, dict[str, Any] | None]:
    """``(context_id, where it came from, the context's settings or None)`` of the folder:
    context.json's, else the context of the run that finished last (ties: the larger run id)."""
    stored = results.context or {}
    if stored.get("context_id"):
        settings = stored.get("context")
        return str(stored["context_id"]), CONTEXT_JSON, settings if isinstance(settings, dict) else None
    runs = results.runs
    if runs.empty:
        return UNKNOWN_CONTEXT, "most recent run", None
    order = (["finished_at"] if "finished_at" in runs.columns else []) + ["run_id"]
    latest = runs.sort_values(order, kind="stable", na_position="first").iloc[-1]
    return str(contexts[latest["run_id"]]), "most recent run", None


def _settings(results: Results, runs: pd.DataFrame) -> dict[str, Any]:
    """The context settings of ``runs`` (one context): from the first record with a readable
    config, else from runs.csv's ``config.*`` columns of its first run."""
    for run_id in runs["run_id"]:
        record = results.record(run_id) or {}
        try:
            return RunConfig.from_dict(record["config"]).context()
        except (KeyError, TypeError, ValueError):
            continue
    if runs.empty:
        return {}
    first = runs.iloc[0]
    return {c.removeprefix("config."): first[c] for c in runs.columns
            if c.removeprefix("config.") in _CONTEXT_KEYS and c.startswith("config.") and not _missing(first[c])}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    """A setting as one short, comparable string: 2.0 and 2 read the same; fingerprints shortened."""
    if _missing(value):
        return "-"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return text[:12] + "…" if len(text) > 20 else text


def differences(ranked: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(setting, ranked value, other value)`` for every context setting that differs."""
    keys = sorted(k for k in set(ranked) | set(other) if _text(ranked.get(k)) != _text(other.get(k)))
    return [(k, _text(ranked.get(k)), _text(other.get(k))) for k in keys]


def run_backends(runs: pd.DataFrame) -> pd.Series:
    """The Keras backend of every run (index: run_id): its ``config.backend`` column (the backend
    its config asked for, part of its identity), else its ``keras_backend`` column (the one Keras
    reported), else TensorFlow, on which every run stored before the backend was a choice ran."""
    columns = [runs[c] for c in ("config.backend", "keras_backend") if c in runs.columns]
    names = []
    for values in zip(*columns, strict=True) if columns else [()] * len(runs):
        given = [str(v).strip().lower() for v in values if not _missing(v) and str(v).strip()]
        names.append(given[0] if given else DEFAULT_BACKEND)
    return pd.Series(names, index=runs["run_id"].to_numpy(), name="backend", dtype=object)


def _backends_present(backend_of: pd.Series) -> tuple[str, ...]:
    present = set(backend_of)
    return (*[b for b in BACKENDS if b in present], *sorted(present - set(BACKENDS)))


def device_labels(runs: pd.DataFrame, environment: dict[str, Any]) -> pd.Series:
    """The device of each run (index: run_id): its ``device`` column, `` x N`` appended when it
    trained on N > 1 replicas (``config.replicas``). Without the column, environment.json's device."""
    if "device" in runs.columns:
        names = runs["device"]
    else:
        names = pd.Series(environment.get("device"), index=runs.index)
    replicas = pd.to_numeric(runs.get("config.replicas", pd.Series(1, index=runs.index)), errors="coerce").fillna(1)
    labels = []
    for name, n in zip(names, replicas, strict=True):
        text = "" if _missing(name) else " ".join(str(name).split())
        text = text if text and text.lower() != "nan" else NO_DEVICE
        labels.append(f"{text} x {int(n)}" if n > 1 else text)
    return pd.Series(labels, index=runs["run_id"].to_numpy(), name="device", dtype=object)


def main_device(devices: pd.Series, environment: dict[str, Any]) -> str | None:
    """The device with the most runs in ``devices``; ties: environment.json's device, then alphabetical."""
    if devices.empty:
        return None
    counts = devices.value_counts()
    tied = sorted(counts[counts == counts.max()].index)
    env_device = " ".join(str(environment.get("device") or "").split())
    return env_device if env_device in tied else tied[0]


def _other_device_costs(results: Results, ok: pd.DataFrame, devices: pd.Series, device: str) -> pd.DataFrame:
    elsewhere = ok[ok["run_id"].map(devices) != device]
    columns = ["model", "family", "device", "n"]
    if elsewhere.empty:
        return pd.DataFrame(columns=columns)
    metrics = results.metrics
    tidy = metrics[metrics["run_id"].isin(elsewhere["run_id"]) & metrics["metric"].map(is_cost_metric).astype(bool)]
    wide = tidy.pivot_table(index="run_id", columns="metric", values="value", aggfunc="first")
    wide.columns = [str(c) for c in wide.columns]
    per_run = elsewhere[["run_id", "model", "family"]].assign(device=elsewhere["run_id"].map(devices))
    per_run = per_run.merge(wide.reset_index(), on="run_id", how="left")
    grouped = per_run.groupby(["model", "family", "device"], sort=True)
    frame = grouped[sorted(wide.columns)].mean()
    frame.insert(0, "n", grouped.size())
    return frame.reset_index()


def select(results: Results) -> Selection:
    """The runs the report ranks (the folder's context, on one backend) and the devices their costs
    compare on."""
    contexts = run_contexts(results)
    context_id, source, ranked_settings = folder_context(results, contexts)
    in_context = results.runs["run_id"].map(contexts) == context_id
    context_runs = results.runs[in_context].reset_index(drop=True)
    if ranked_settings is None:
        ranked_settings = _settings(results, context_runs)
    others = []
    foreign = results.runs[~in_context]
    for other_id, group in foreign.groupby(foreign["run_id"].map(contexts), sort=True):
        group = group.reset_index(drop=True)
        others.append(OtherContext(str(other_id), group, differences(ranked_settings, _settings(results, group))))
    others.sort(key=lambda o: (-len(o.runs), o.context_id))

    # One backend's runs are ranked: another backend's run of the same model and seed is no re-run
    # (it must not supersede) and no extra seed (it must not pool).
    backend_of = run_backends(context_runs)
    backends = _backends_present(backend_of)
    backend = ranked_backend(backends)
    ranked_runs = context_runs[context_runs["run_id"].map(backend_of) == backend].reset_index(drop=True)

    current, _ = current_runs(ranked_runs)
    ok = current[current["status"] == "ok"]
    devices = device_labels(context_runs, results.environment)
    device = main_device(devices[ok["run_id"]], results.environment)
    costs = _other_device_costs(results, ok, devices, device) if device is not None else pd.DataFrame()
    elsewhere = set(devices.index[devices != device]) if device is not None else set()
    kept = restrict(results, ranked_runs, elsewhere)
    every = restrict(results, context_runs, elsewhere) if len(backends) > 1 else None
    return Selection(kept, context_id, source, others, device, devices, costs, backend, backends, backend_of, every)


def restrict(results: Results, runs: pd.DataFrame, elsewhere: Collection[str] = ()) -> Results:
    """``results`` with the rows of ``runs`` only (their metrics and history), less the cost metrics
    of the run ids measured ``elsewhere`` (on another device than the main one)."""
    ids = set(runs["run_id"])
    metrics = results.metrics[results.metrics["run_id"].isin(ids)]
    metrics = metrics[~(metrics["run_id"].isin(elsewhere) & metrics["metric"].map(is_cost_metric).astype(bool))]
    return dataclasses.replace(
        results, runs=runs, metrics=metrics.reset_index(drop=True),
        history=results.history[results.history["run_id"].isin(ids)].reset_index(drop=True),
    )


def synthetic(runs: pd.DataFrame) -> bool:
    """Whether any of ``runs`` was measured on generated data."""
    return "synthetic" in runs.columns and bool(as_bool(runs["synthetic"]).any())
