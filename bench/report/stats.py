"""Aggregate stored per-run metrics over seeds: mean, std and a t-distribution 95% CI.

Nothing here recomputes a metric from predictions; it only summarises the values the runner
stored, one per run, across the seeds of a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.report.load import Results

CONFIDENCE = 0.95
CLASS_METRICS = {"iou_pet": "pet", "iou_background": "background", "iou_border": "border"}
# Mean +- std and CI are reported for these; the cost metrics are shown as their mean over seeds.
SPREAD_METRICS = ["miou", "pixel_accuracy", "mean_class_accuracy", *CLASS_METRICS]
# Every metric of docs/results-schema.md: each gets a column even when no run stored it.
SCHEMA_METRICS = [
    *SPREAD_METRICS, "params_total", "params_trainable", "flops_per_image", "latency_p50_ms", "latency_p90_ms",
    "latency_p95_ms", "inference_throughput", "train_throughput", "train_time_s", "wall_time_s", "peak_rss_mb",
    "peak_device_mem_mb",
]


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and 95% CI of one metric over n seeds (NaN where undefined)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def summarize(values: pd.Series | np.ndarray | list[float]) -> Summary:
    """Summarise one metric over seeds; with one value std and CI are NaN (n=1, no CI)."""
    x = np.asarray(pd.Series(values, dtype=float).dropna(), dtype=float)
    n = int(x.size)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def current_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the latest run of each (model, seed); a re-run supersedes an earlier attempt.

    Returns:
        (current, superseded), both sorted by model, seed, run_id.
    """
    order = ["model", "seed"] + (["finished_at"] if "finished_at" in runs.columns else []) + ["run_id"]
    ranked = runs.sort_values(order, kind="stable", na_position="first")
    latest = ranked.duplicated(["model", "seed"], keep="last")
    key = ["model", "seed", "run_id"]
    return (
        ranked[~latest].sort_values(key, kind="stable").reset_index(drop=True),
        ranked[latest].sort_values(key, kind="stable").reset_index(drop=True),
    )


def per_run_metrics(results: Results, runs: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per ok run of ``runs``, one column per stored metric."""
    ok = runs[runs["status"] == "ok"]
    tidy = results.metrics[results.metrics["run_id"].isin(ok["run_id"])]
    wide = tidy.pivot_table(index="run_id", columns="metric", values="value", aggfunc="first")
    wide.columns = [str(c) for c in wide.columns]
    keep = ["run_id", "model", "architecture", "backbone", "seed", "family", "weights"]
    keep = [c for c in keep if c in ok.columns]
    return ok[keep].merge(wide.reset_index(), on="run_id", how="left").sort_values(["model", "seed", "run_id"])


def model_table(results: Results) -> pd.DataFrame:
    """One row per model: seed counts, spread of accuracy metrics, mean of cost metrics, rank.

    Columns: model, architecture, backbone, family, weights, n_runs, n_ok, rank (1-based, NaN
    for a model with no ok run), ``<metric>`` (mean) for every stored metric, and for the
    accuracy metrics ``<metric>_std``, ``<metric>_ci_low``, ``<metric>_ci_high``. Ranked by
    mean mIoU descending, ties broken by model id; models with no ok run come last.
    """
    runs, _ = current_runs(results.runs)
    per_run = per_run_metrics(results, runs)
    metric_names = sorted(set(SCHEMA_METRICS) | {c for c in per_run.columns if c not in set(runs.columns)})
    per_run = per_run.reindex(columns=[*per_run.columns, *[m for m in metric_names if m not in per_run.columns]])
    rows = []
    for model, group in runs.groupby("model", sort=True):
        first = group.iloc[0]
        row = {
            "model": model,
            "architecture": first["architecture"],
            "backbone": first["backbone"],
            "family": first["family"],
            "weights": first.get("weights", np.nan),
            "n_runs": int(len(group)),
            "n_ok": int((group["status"] == "ok").sum()),
        }
        ok = per_run[per_run["model"] == model]
        for metric in metric_names:
            s = summarize(ok[metric]) if len(ok) else summarize([])
            row[metric] = s.mean
            if metric in SPREAD_METRICS:
                row[f"{metric}_n"] = s.n
                row[f"{metric}_std"] = s.std
                row[f"{metric}_ci_low"] = s.ci_low
                row[f"{metric}_ci_high"] = s.ci_high
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table.assign(rank=pd.Series(dtype=float))
    table = table.sort_values(["miou", "model"], ascending=[False, True], kind="stable", na_position="last")
    ranked = table["miou"].notna()
    table["rank"] = np.where(ranked, np.cumsum(ranked), np.nan)
    return table.reset_index(drop=True)


def pareto_front(table: pd.DataFrame, maximize: str, minimize: str) -> pd.Series:
    """Which rows no other row beats on both ``maximize`` (higher better) and ``minimize``.

    A row is dominated when another is at least as good on both and strictly better on one.
    Rows with a missing value are never on the front. This selects among stored means; it does
    not compute a metric.
    """
    if maximize not in table.columns or minimize not in table.columns:
        return pd.Series(False, index=table.index, name="pareto")
    values = table[[maximize, minimize]].to_numpy(dtype=float)
    valid = ~np.isnan(values).any(axis=1)
    front = np.zeros(len(table), dtype=bool)
    for i in np.flatnonzero(valid):
        up, down = values[i]
        others = values[valid]
        dominated = (others[:, 0] >= up) & (others[:, 1] <= down) & ((others[:, 0] > up) | (others[:, 1] < down))
        front[i] = not dominated.any()
    return pd.Series(front, index=table.index, name="pareto")
