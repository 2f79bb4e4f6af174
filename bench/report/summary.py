"""Aggregate stored per-run metrics over seeds, and the per-image evidence behind a ranking.

Nothing here recomputes a metric from predictions. :func:`model_table` summarises the values the
runner stored, one per run, across the seeds of a model (mean, std, a t-distribution 95% CI);
:func:`evidence_summary` reads the runs' stored per-image evidence (``evidence.npz``) and hands it
to :mod:`bench.report.statistics` for the intervals and the test against the top model.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.evidence.declarations import METRICS, Metric
from bench.report import statistics as ev
from bench.report.load import Results

CONFIDENCE = 0.95
CLASS_METRICS = {"iou_pet": "pet", "iou_background": "background", "iou_border": "border"}
# Mean +- std and CI are reported for these (every row of a declared metric among them); the cost
# metrics are shown as their mean over seeds.
SPREAD_METRICS = [*(row for m in METRICS for row in m.rows), "mean_class_accuracy", *CLASS_METRICS]
#: The other metric rows of the per-image evidence: deep models have the calibration
#: ones, Monte-Carlo-dropout runs the ``mc_*`` ones; a run measured before evidence existed has none.
EVIDENCE_METRICS = ["ece", "nll", "brier", "mc_ece", "mc_nll", "mc_brier", "mc_auroc", "mc_pavpu",
                    "mc_latency_ms", "mc_samples", "boundary_width_px"]
#: The declared metrics the report gives an interval, from the per-image evidence.
INTERVAL_METRICS = tuple(m for m in METRICS if m.interval)
# Every metric of docs/results-schema.md: each gets a column even when no run stored it.
SCHEMA_METRICS = [
    *SPREAD_METRICS, "params_total", "params_trainable", "flops_per_image", "latency_p50_ms", "latency_p90_ms",
    "latency_p95_ms", "inference_throughput", "train_throughput", "train_time_s", "wall_time_s", "peak_rss_mb",
    "peak_device_mem_mb", *EVIDENCE_METRICS,
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

    ``runs`` are of one comparison context (:func:`bench.report.comparable.select`): a run of
    another dataset or setting is no re-run and must never supersede one.

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

    ``results`` are the comparable ones (:attr:`bench.report.comparable.Selection.results`): one
    context, and cost metrics of one device only.
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
    if table.empty:  # no run of the ranked context (yet): the columns still exist, for the renderers
        columns = ["model", "architecture", "backbone", "family", "weights", "n_runs", "n_ok", *metric_names,
                   *[f"{m}_{s}" for m in SPREAD_METRICS for s in ("n", "std", "ci_low", "ci_high")]]
        return pd.DataFrame(columns=columns).assign(rank=pd.Series(dtype=float))
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


# === The per-image evidence behind the ranking ===

#: Why a model has no interval, or the ranking no test, when the runs stored no evidence.
NO_EVIDENCE = "no per-image evidence stored (runs measured before `evidence.npz` existed)"


@dataclass(frozen=True)
class EvidenceSummary:
    """What the stored per-image evidence says about the ranked models.

    Attributes:
        runs: Model -> the evidence of each of its successful runs (lowest seed first), for the
            models whose every successful run stored a readable ``evidence.npz``.
        missing: Ranked models without it (some or all of their runs stored none), in rank order.
        intervals: One row per ranked model (index: model): for every declared metric with an
            interval (:data:`INTERVAL_METRICS`), ``<name>_estimate``, ``<name>_low`` and
            ``<name>_high`` from the evidence (NaN without it; for ``miou``, without evidence, the
            t-interval over seeds and no estimate); ``interval``, the kind of the mIoU's
            (:func:`bench.report.statistics.interval_kind`: ``seeds``, over the seeds and images, or
            ``bootstrap``, over the images only; ``t`` over seeds without evidence; ``""`` none),
            and ``coverage`` (the mIoU evidence interval's :class:`bench.report.statistics.Coverage`,
            else None). Every declared interval is made as the mIoU's.
        test: :func:`bench.report.statistics.tied_with_best` over the tested models (best first), or
            None when no test could be made (``no_test`` says why).
        untested: Ranked models left out of the test (no evidence), rank order.
        no_test: Why there is no test, or None.
        mc_vs_deterministic: Model -> the test of its Monte-Carlo mIoU minus its deterministic
            mIoU on the same images, paired by seed (MC models with evidence).
        problems: One line per evidence file that could not be used (unreadable, other images).
    """

    runs: dict[str, list[dict[str, np.ndarray]]]
    missing: list[str]
    intervals: pd.DataFrame
    test: pd.DataFrame | None
    untested: list[str]
    no_test: str | None
    mc_vs_deterministic: dict[str, ev.PairedTest] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        """Test images per run with evidence (a test needs the same ones in every run); 0 without."""
        first = next(iter(self.runs.values()), None)
        return int(np.asarray(first[0]["image_index"]).size) if first else 0

    @property
    def tied(self) -> list[str]:
        """The models not distinguishable from #1 (#1 first), or [] without a test."""
        return [] if self.test is None else self.test.loc[self.test["tied"], "model"].tolist()

    def calibration_bins(self, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(count, confidence sum, correct count)`` per confidence bin, summed over the model's
        seeds, or None for a model without calibration evidence (a classical segmenter)."""
        runs = self.runs.get(model, [])
        if not runs or any("calibration_count" not in r for r in runs):
            return None
        return tuple(np.sum([np.asarray(r[f"calibration_{k}"], dtype=np.float64) for r in runs], axis=0)
                     for k in ("count", "confidence", "correct"))

    def sample_curve(self, model: str) -> pd.DataFrame | None:
        """The Monte-Carlo sample curve (``samples``, ``miou``, ``ece``), the mean over seeds at the
        sample counts all seeds recorded, or None for a model without Monte-Carlo evidence."""
        runs = self.runs.get(model, [])
        if not runs or any("mc_curve_samples" not in r for r in runs):
            return None
        curves = [ev.sample_curve(r) for r in runs]
        common = sorted(set.intersection(*(set(c["samples"]) for c in curves)))
        stacked = pd.concat([c[c["samples"].isin(common)] for c in curves])
        return stacked.groupby("samples", sort=True)[["miou", "ece"]].mean().reset_index()


def _interval(runs: list[dict[str, np.ndarray]], metric: Metric, deterministic: bool) -> ev.Interval | None:
    """The model's interval of a declared metric (over its images, and its seeds where
    :func:`bench.report.statistics.coverage` says so); None where the statistic is undefined."""
    stacked = ev.ModelRuns(ev.stack_seeds(runs, metric.items)[0], deterministic)
    with warnings.catch_warnings():  # all-NaN replicates (no pet anywhere): an undefined interval, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        iv = ev.interval(stacked, metric.statistic, metric.item_ndim)
    return iv if math.isfinite(iv.low) and math.isfinite(iv.high) else None


def _interval_columns() -> list[str]:
    return [f"{m.name}_{part}" for m in INTERVAL_METRICS for part in ("estimate", "low", "high")]


def evidence_summary(results: Results, runs: pd.DataFrame, table: pd.DataFrame) -> EvidenceSummary:
    """Reads the evidence of the ranked models' successful runs and computes every interval and the
    test against the top model (deterministic: fixed resampling seed, :mod:`bench.report.statistics`).

    Args:
        results: The comparable results (one context).
        runs: Their current runs (:func:`current_runs`).
        table: :func:`model_table` of them, rank order.
    """
    ranked = table.dropna(subset=["miou"])
    ok = runs[runs["status"] == "ok"].sort_values(["seed", "run_id"], kind="stable")
    problems: list[str] = []

    def read(run_id: str) -> dict[str, np.ndarray] | None:
        try:
            return results.evidence(run_id)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            problems.append(f"`{run_id}`: evidence.npz unreadable ({' '.join(str(exc).split())})")
            return None

    loaded: dict[str, list[dict[str, np.ndarray]]] = {}
    missing = []
    for model in ranked["model"]:
        arrays = [read(run_id) for run_id in ok.loc[ok["model"] == model, "run_id"]]
        if arrays and all(a is not None for a in arrays):
            loaded[model] = arrays
        else:  # one seed without evidence: the model's interval and test would leave that seed out
            missing.append(model)

    deterministic = set(ranked.loc[ranked["family"] == "classical", "model"])
    rows, mc_tests = {}, {}
    for _, row in ranked.iterrows():
        model = row["model"]
        fixed = model in deterministic
        out: dict[str, object] = {**dict.fromkeys(_interval_columns(), math.nan), "interval": ev.NO_INTERVAL,
                                  "coverage": None}
        found: dict[str, ev.Interval | None] = {}
        if model in loaded:
            try:
                found = {m.name: _interval(loaded[model], m, fixed) for m in INTERVAL_METRICS
                         if all(m.reads(r) for r in loaded[model])}
                if all("mc_confusion" in r for r in loaded[model]):
                    # Seed s of both passes is one set of weights: paired by seed, not resampled apart.
                    mc_tests[model] = ev.paired_test(ev.stack_seeds(loaded[model], "mc_confusion")[0],
                                                     ev.stack_seeds(loaded[model], "confusion")[0], paired_seeds=True)
            except ValueError as exc:  # its seeds saw different images: no interval of the model
                problems.append(f"{model}: {exc}")
                del loaded[model]
                missing.append(model)
                found = {}
            for name, iv in found.items():
                if iv is not None:
                    out.update({f"{name}_estimate": iv.estimate, f"{name}_low": iv.low, f"{name}_high": iv.high})
        # The ranking's mIoU: without evidence, the t-interval over seeds, where interval_kind says so.
        cover = found["miou"].coverage if found.get("miou") is not None else None
        out.update(interval=ev.interval_kind(cover, int(row.get("miou_n", 0) or 0)), coverage=cover)
        if out["interval"] == ev.INTERVAL_SEEDS:
            out.update(miou_low=row["miou_ci_low"], miou_high=row["miou_ci_high"])
        rows[model] = out
    intervals = pd.DataFrame.from_dict(rows, orient="index") if rows else pd.DataFrame(
        columns=[*_interval_columns(), "interval", "coverage"])
    order = {m: i for i, m in enumerate(ranked["model"])}
    missing = sorted(set(missing), key=order.get)

    test, no_test, untested = None, None, []
    if ranked.empty:
        no_test = "no model finished successfully"
    elif not loaded:
        no_test = NO_EVIDENCE
    elif ranked["model"].iloc[0] not in loaded:
        no_test = f"the top model, {ranked['model'].iloc[0]}, has no usable per-image evidence"
    else:
        untested = [m for m in ranked["model"] if m not in loaded]
        try:
            test = ev.tied_with_best({m: loaded[m] for m in ranked["model"] if m in loaded},
                                     deterministic=deterministic)
        except ValueError as exc:  # the models saw different test images: no paired comparison
            no_test = " ".join(str(exc).split())
            untested = []
    return EvidenceSummary(loaded, missing, intervals, test, untested, no_test, mc_tests, problems)
