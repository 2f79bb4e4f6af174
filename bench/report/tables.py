"""Markdown tables (tabulate, GitHub flavour) from the per-model summary and the stored runs.

Why one module of this size: one function per Markdown table, sharing the cell formats, so a
number reads the same in every table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from tabulate import tabulate

from bench.clock import format_duration
from bench.evidence.declarations import METRICS, Column, Metric
from bench.report import statistics as ev
from bench.report.comparable import OtherContext, synthetic
from bench.report.statistics import Coverage
from bench.report.summary import CLASS_METRICS

DASH = "—"
_NOT_PRETRAINED = {"", "none", "null", "random", "scratch", "nan"}


def is_pretrained(weights: object) -> bool:
    """Whether a stored ``weights`` value names pretrained weights (``imagenet``), not none.

    The runner records a failed attempt as ``none (imagenet unavailable: <reason>)``: anything
    that starts with ``none`` is not pretrained (docs/results-schema.md).
    """
    if weights is None or (isinstance(weights, float) and math.isnan(weights)):
        return False
    text = str(weights).strip().lower()
    return not (text in _NOT_PRETRAINED or text.startswith("none"))


def weights_label(weights: object) -> str:
    """A stored ``weights`` value without the fallback's reason, short enough for a table cell:
    ``none (imagenet unavailable: <why>)`` -> ``none (imagenet unavailable)``."""
    if weights is None or (isinstance(weights, float) and math.isnan(weights)):
        return "none"
    text = str(weights).strip()
    if text.startswith("none (") and ":" in text:
        return text.split(":", 1)[0] + ")"
    return text


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value: float, digits: int = 1) -> str:
    return DASH if _missing(value) else f"{value:,.{digits}f}"


def fmt_ratio(value: float) -> str:
    return DASH if _missing(value) else f"{value:.3f}"


def fmt_spread(row: pd.Series, metric: str) -> str:
    """``mean ± std`` over seeds, or ``mean (n=1)`` with a single seed."""
    mean = row.get(metric, math.nan)
    if _missing(mean):
        return DASH
    n = int(row.get(f"{metric}_n", 0) or 0)
    std = row.get(f"{metric}_std", math.nan)
    if n < 2 or _missing(std):
        return f"{mean:.3f} (n=1)"
    return f"{mean:.3f} ± {std:.3f}"


def fmt_mean(row: pd.Series, metric: str) -> str:
    """``mean ± std`` over seeds, or the plain mean with one seed (for tables with a seed column)."""
    text = fmt_spread(row, metric)
    return text.removesuffix(" (n=1)")


def fmt_params(count: float) -> str:
    """Parameters in millions; a classical segmenter's 0 stays a plain 0."""
    if _missing(count):
        return DASH
    if count == 0:
        return "0"
    return f"{count / 1e6:,.2f}" if count < 1e8 else f"{count / 1e6:,.1f}"


def fmt_gflops(flops: float) -> str:
    if _missing(flops):
        return DASH
    return f"{flops / 1e9:,.3f}" if flops < 1e9 else f"{flops / 1e9:,.2f}"


def fmt_duration(seconds: float) -> str:
    return DASH if _missing(seconds) else format_duration(seconds)


def fmt_memory(mb: float) -> str:
    if _missing(mb):
        return DASH
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


#: Beside a model with a seed that reached the epoch cap still improving (bench.report.training).
STILL_IMPROVING_MARK = "†"


def model_label(row: pd.Series) -> str:
    """The model id, tagged when it is a classical (untrained, parameter-free) segmenter, and marked
    when a seed of it reached the epoch cap still improving."""
    if row.get("family") == "classical":
        return f"{row['model']} *(classical)*"
    improving = row.get("still_improving", 0)
    return f"{row['model']} {STILL_IMPROVING_MARK}" if not _missing(improving) and improving else str(row["model"])


def escape_cell(text: object) -> str:
    """One Markdown table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render_rows(rows: list[list[str]], headers: list[str], align: list[str]) -> str:
    """A GitHub-flavoured Markdown table of text cells (escaped by the caller)."""
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True, colalign=align)


_render = render_rows


def fmt_interval(low: float, high: float) -> str:
    return DASH if _missing(low) or _missing(high) else f"[{low:.3f}, {high:.3f}]"


def fmt_miou_interval(row: pd.Series, intervals: pd.DataFrame | None) -> str:
    """Mean mIoU and its 95% interval: ``0.760 [0.731, 0.788]`` (bootstrap over images, and seeds),
    ``0.720 [0.670, 0.770] (t)`` (t-interval over seeds, no per-image evidence), ``0.660 (n=1)``
    (one seed, no evidence: no interval)."""
    mean = row.get("miou", math.nan)
    if _missing(mean):
        return DASH
    model = row["model"]
    n = int(row.get("miou_n", 0) or 0)
    if intervals is not None and model in intervals.index:
        low, high, kind = (intervals.at[model, c] for c in ("miou_low", "miou_high", "interval"))
    else:  # no evidence summary: the kind is still the one statistics.interval_kind names
        low, high = row.get("miou_ci_low", math.nan), row.get("miou_ci_high", math.nan)
        kind = ev.interval_kind(None, n)
    if kind == ev.NO_INTERVAL:
        return f"{mean:.3f} (n={n})" if n <= 1 else f"{mean:.3f}"
    return f"{mean:.3f} {fmt_interval(low, high)}" + (" (t)" if kind == ev.INTERVAL_SEEDS else "")


#: The "Tied with #1" cells.
TIE_BEST, TIE_YES, TIE_NO, TIE_UNTESTED = "#1", "yes", "no", "not tested"


def tie_marks(test: pd.DataFrame | None, ranked: list[str]) -> dict[str, str]:
    """model -> its "Tied with #1" cell, for the ranked models; {} without a test."""
    if test is None:
        return {}
    tied = dict(zip(test["model"], test["tied"], strict=True))
    marks = {m: (TIE_YES if tied[m] else TIE_NO) if m in tied else TIE_UNTESTED for m in ranked}
    marks[str(test["model"].iloc[0])] = TIE_BEST
    return marks


def leaderboard_table(table: pd.DataFrame, intervals: pd.DataFrame | None = None,
                      marks: dict[str, str] | None = None) -> str:
    """The main table: what decides a choice. One row per model, ranked by mean mIoU; models with no
    successful run come last.

    Args:
        table: :func:`bench.report.summary.model_table`.
        intervals: :attr:`bench.report.summary.EvidenceSummary.intervals` (None: t-intervals only).
        marks: :func:`tie_marks`; the "Tied with #1" column is left out when empty (no test).
    """
    headers = ["#", "Model", "mIoU [95% interval]", *(["Tied with #1"] if marks else []), "Boundary IoU",
               "Latency p50 (ms)", "Params (M)"]
    align = ["right", "left", "right", *(["center"] if marks else []), "right", "right", "right"]
    rows = []
    for _, row in table.iterrows():
        if row["n_ok"] == 0:
            rows.append([DASH, model_label(row), "failed (see Failed runs)", *[DASH] * (len(headers) - 3)])
            continue
        rows.append([
            str(int(row["rank"])), model_label(row), fmt_miou_interval(row, intervals),
            *([marks.get(row["model"], TIE_UNTESTED)] if marks else []),
            fmt_ratio(row.get("boundary_iou", math.nan)), fmt_number(row.get("latency_p50_ms", math.nan)),
            fmt_params(row.get("params_total", math.nan)),
        ])
    return _render(rows, headers, align)


def significance_table(test: pd.DataFrame, table: pd.DataFrame) -> str:
    """Every tested model against #1: the mIoU difference on the same images, its 95% interval,
    the p-value and its Holm correction, and whether it is tied with #1; and which noise each
    comparison covers, in a column of its own where they differ."""
    labels = {row["model"]: model_label(row) for _, row in table.iterrows()}
    ranks = {row["model"]: str(int(row["rank"])) for _, row in table.dropna(subset=["rank"]).iterrows()}
    coverages = list(test["coverage"]) if "coverage" in test.columns else [None] * len(test)
    # A column only where the comparisons differ in kind; the section's text says the rest.
    per_row = len({c.covers_seeds for c in coverages[1:] if c is not None}) > 1
    rows = []
    for i, (row, cover) in enumerate(zip(test.itertuples(index=False), coverages, strict=True)):
        first = i == 0
        rows.append([
            ranks.get(row.model, DASH), labels.get(row.model, row.model), f"{row.miou:.3f}",
            DASH if first else f"{row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}]",
            DASH if first else fmt_p(row.p_value), DASH if first else fmt_p(row.p_holm),
            TIE_BEST if first else (TIE_YES if row.tied else TIE_NO),
            *([DASH if first or cover is None else cover.describe()] if per_row else []),
        ])
    headers = ["#", "Model", "mIoU", "Minus #1 [95% interval]", "p", "p (Holm)", "Tied with #1"]
    align = ["right", "left", "right", "right", "right", "right", "center"]
    return _render(rows, headers + ["Noise covered"] * per_row, align + ["left"] * per_row)


def fmt_p(p: float) -> str:
    if _missing(p):
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


#: The columns of "Accuracy in detail", as the metrics declare them (bench.evidence.declarations).
ACCURACY_COLUMNS: tuple[tuple[Metric, Column], ...] = tuple((m, c) for m in METRICS for c in m.columns)


def accuracy_table(table: pd.DataFrame, intervals: pd.DataFrame | None = None) -> str:
    """Every declared metric column (:data:`ACCURACY_COLUMNS`): both aggregations of mIoU, the
    foreground IoU, Dice, Boundary IoU with their intervals, pixel accuracy."""
    ranked = table[table["n_ok"] > 0]
    headers = ["#", "Model", "Seeds ok", *(column.title for _, column in ACCURACY_COLUMNS)]
    rows = []
    for _, row in ranked.iterrows():
        rows.append([str(int(row["rank"])), model_label(row), f"{row['n_ok']} of {row['n_runs']}",
                     *(_metric_cell(row, metric, column, intervals) for metric, column in ACCURACY_COLUMNS)])
    return _render(rows, headers, ["right", "left", *["right"] * (len(headers) - 2)])


def _metric_cell(row: pd.Series, metric: Metric, column: Column, intervals: pd.DataFrame | None) -> str:
    """A declared metric's cell: ``mean ± std`` over seeds, or, for a column with its interval,
    ``estimate [low, high]`` from the per-image evidence (the stored mean where there is none)."""
    if column.per_image:
        return fmt_mean(row, metric.per_image)
    if not column.interval:
        return fmt_mean(row, metric.name)
    model = row["model"]
    if intervals is not None and model in intervals.index and not _missing(intervals.at[model, f"{metric.name}_low"]):
        # The interval's own estimate: the mean over seeds of each seed's pooled value, as stored, and
        # there also for runs stored before the metric had a row (it derives from their evidence).
        estimate, low, high = (intervals.at[model, f"{metric.name}_{part}"] for part in ("estimate", "low", "high"))
        return f"{fmt_ratio(estimate)} {fmt_interval(low, high)}"
    return fmt_ratio(row.get(metric.name, math.nan))


def calibration_table(table: pd.DataFrame) -> str:
    """ECE, NLL and Brier score of every ranked model; a classical segmenter's hard labels have none (—)."""
    ranked = table[table["n_ok"] > 0]
    rows = [[str(int(row["rank"])), model_label(row), fmt_ratio(row.get("ece", math.nan)),
             fmt_ratio(row.get("nll", math.nan)), fmt_ratio(row.get("brier", math.nan))]
            for _, row in ranked.iterrows()]
    return _render(rows, ["#", "Model", "ECE", "NLL (nats/pixel)", "Brier (per pixel)"],
                   ["right", "left", "right", "right", "right"])


def _pair(a: float, b: float) -> str:
    return f"{fmt_ratio(a)} → {fmt_ratio(b)}"


def monte_carlo_table(table: pd.DataFrame, intervals: pd.DataFrame | None, tests: dict) -> str:
    """The Monte-Carlo-dropout models' accuracy and cost: one deterministic pass beside T passes.

    Args:
        table: The models with a stored ``mc_miou`` (rank order).
        intervals: :attr:`bench.report.summary.EvidenceSummary.intervals`.
        tests: Model -> :class:`bench.report.statistics.PairedTest` of MC minus deterministic mIoU.
    """
    headers = ["#", "Model", "T", "mIoU, 1 pass", "mIoU, MC [95% interval]", "MC minus 1 pass [95% interval]",
               "Latency p50, 1 pass / T passes (ms)"]
    rows = []
    for _, row in table.iterrows():
        model = row["model"]
        mc = fmt_ratio(row.get("mc_miou", math.nan))
        if intervals is not None and model in intervals.index and not _missing(intervals.at[model, "mc_miou_low"]):
            mc += f" {fmt_interval(intervals.at[model, 'mc_miou_low'], intervals.at[model, 'mc_miou_high'])}"
        test = tests.get(model)
        samples = row.get("mc_samples", math.nan)
        rows.append([
            str(int(row["rank"])), model_label(row), DASH if _missing(samples) else str(int(samples)),
            fmt_ratio(row["miou"]), mc,
            DASH if test is None else f"{test.difference:+.3f} [{test.low:+.3f}, {test.high:+.3f}]",
            f"{fmt_number(row.get('latency_p50_ms', math.nan))} / {fmt_number(row.get('mc_latency_ms', math.nan))}",
        ])
    return _render(rows, headers, ["right", "left", *["right"] * (len(headers) - 2)])


def monte_carlo_uncertainty_table(table: pd.DataFrame) -> str:
    """The Monte-Carlo-dropout models' calibration, one pass → T passes, and how well their
    predictive entropy finds their wrong pixels."""
    headers = ["#", "Model", "ECE, 1 pass → MC", "NLL, 1 pass → MC", "Brier, 1 pass → MC", "AUROC",
               "PAvPU (pixel-level)"]
    rows = [[str(int(row["rank"])), model_label(row), _pair(row.get("ece", math.nan), row.get("mc_ece", math.nan)),
             _pair(row.get("nll", math.nan), row.get("mc_nll", math.nan)),
             _pair(row.get("brier", math.nan), row.get("mc_brier", math.nan)),
             fmt_ratio(row.get("mc_auroc", math.nan)), fmt_ratio(row.get("mc_pavpu", math.nan))]
            for _, row in table.iterrows()]
    return _render(rows, headers, ["right", "left", *["right"] * (len(headers) - 2)])


def costs_table(table: pd.DataFrame) -> str:
    """Weights, seeds and every cost of each model (means over seeds), in leaderboard order."""
    has_device_mem = "peak_device_mem_mb" in table.columns and table["peak_device_mem_mb"].notna().any()
    headers = ["#", "Model", "Weights", "Seeds ok", "Params (M)", "FLOPs (G)", "Latency p50 / p95 (ms)",
               "Throughput (img/s)", "Train time", "Peak RAM"]
    if has_device_mem:
        headers.append("Peak device mem.")
    rows = []
    for _, row in table.iterrows():
        seeds = f"{row['n_ok']} of {row['n_runs']}"
        weights = escape_cell(weights_label(row.get("weights", DASH)))
        if row["n_ok"] == 0:
            rows.append([DASH, model_label(row), weights, seeds, *[DASH] * (len(headers) - 4)])
            continue
        cells = [
            str(int(row["rank"])), model_label(row), weights, seeds, fmt_params(row.get("params_total", math.nan)),
            fmt_gflops(row.get("flops_per_image", math.nan)),
        ]
        rows.append(cells + _measured_costs(row, has_device_mem))
    return _render(rows, headers, ["right", "left", "left", *["right"] * (len(headers) - 3)])


def _measured_costs(row: pd.Series, has_device_mem: bool) -> list[str]:
    """The device-dependent cost cells of a row: latency, throughput, training time, memory."""
    train = row.get("train_time_s", math.nan)
    cells = [
        f"{fmt_number(row.get('latency_p50_ms', math.nan))} / {fmt_number(row.get('latency_p95_ms', math.nan))}",
        fmt_number(row.get("inference_throughput", math.nan)),
        "none (not trained)" if row.get("family") == "classical" and (_missing(train) or train == 0)
        else fmt_duration(train),
        fmt_memory(row.get("peak_rss_mb", math.nan)),
    ]
    if has_device_mem:
        cells.append(fmt_memory(row.get("peak_device_mem_mb", math.nan)))
    return cells


def class_iou_table(table: pd.DataFrame) -> str:
    """Per-class IoU (mean ± std over seeds) and mean class accuracy, in leaderboard order."""
    ranked = table[table["n_ok"] > 0]
    present = [m for m in CLASS_METRICS if m in ranked.columns]
    headers = ["#", "Model", *[f"IoU {CLASS_METRICS[m]}" for m in present], "Mean class acc."]
    rows = [
        [str(int(row["rank"])), model_label(row), *[fmt_spread(row, m) for m in present],
         fmt_spread(row, "mean_class_accuracy")]
        for _, row in ranked.iterrows()
    ]
    return _render(rows, headers, ["right", "left", *["right"] * (len(headers) - 2)])


def failed_runs_table(failed: pd.DataFrame) -> str:
    """Every failed run with its stored one-line error."""
    rows = [[row["model"], str(row["seed"]), f"`{row['run_id']}`", escape_cell(row["error"] or "(no error stored)")]
            for _, row in failed.iterrows()]
    return _render(rows, ["Model", "Seed", "Run", "Error"], ["left", "right", "left", "left"])


def key_value_table(pairs: list[tuple[str, str]]) -> str:
    return _render([[k, escape_cell(v)] for k, v in pairs], ["Field", "Value"], ["left", "left"])


def other_device_costs_table(costs: pd.DataFrame, order: list[str]) -> str:
    """Cost means per model and device for the runs measured on another device than the leaderboard's.

    Args:
        costs: :attr:`bench.report.comparable.Selection.other_device_costs`.
        order: Model ids in leaderboard order (rows follow it, then the device name).
    """
    has_device_mem = "peak_device_mem_mb" in costs.columns and costs["peak_device_mem_mb"].notna().any()
    headers = ["Model", "Device", "Seeds", "Latency p50 / p95 (ms)", "Throughput (img/s)", "Train time", "Peak RAM"]
    if has_device_mem:
        headers.append("Peak device mem.")
    position = {m: i for i, m in enumerate(order)}
    ordered = costs.assign(_at=costs["model"].map(position).fillna(len(position)))
    rows = []
    for _, row in ordered.sort_values(["_at", "model", "device"], kind="stable").iterrows():
        cells = [model_label(row), escape_cell(row["device"]), str(int(row["n"]))]
        rows.append(cells + _measured_costs(row, has_device_mem))
    return _render(rows, headers, ["left", "left", *["right"] * (len(headers) - 2)])


def other_contexts_table(others: list[OtherContext], synthetic_ranked: bool, shown: int = 6) -> str:
    """One row per comparison context that is not ranked: its runs, models, and what differs.

    Args:
        others: :attr:`bench.report.comparable.Selection.others`.
        synthetic_ranked: Whether the ranked runs are on generated data (to say when the data differ).
        shown: Differing settings shown with their values; the rest are named only.
    """
    rows = []
    for other in others:
        runs = other.runs
        failed = int((runs["status"] != "ok").sum())
        count = f"{len(runs)}" + (f" ({failed} failed)" if failed else "")
        models = ", ".join(sorted(set(runs["model"].astype(str))))
        notes = []
        if synthetic(runs) != synthetic_ranked:
            notes.append("synthetic data there, real photos here" if synthetic(runs)
                         else "real photos there, synthetic data here")
        notes += [f"{key}: {here} here, {there} there" for key, here, there in other.differences[:shown]]
        rest = [key for key, _, _ in other.differences[shown:]]
        if rest:
            notes.append(f"and {len(rest)} more ({', '.join(rest)})")
        label = f"`{other.context_id}`" if other.context_id else "unknown (no readable config)"
        rows.append([label, count, escape_cell(models), escape_cell("; ".join(notes) or "not recorded")])
    return _render(rows, ["Context", "Runs", "Models", "Differs from the ranked context"],
                   ["left", "right", "left", "left"])


def noise_labels(coverages: Iterable[Coverage | None]) -> list[str]:
    """The distinct "noise covered" labels of some claims, in order of first appearance."""
    return list(dict.fromkeys(c.describe() for c in coverages if c is not None))


def noise_summary(coverages: Iterable[Coverage | None]) -> str:
    """Which noise some claims cover, in one phrase ("" without a claim)."""
    present = [c for c in coverages if c is not None]
    labels = noise_labels(present)
    if len(labels) <= 1:
        return "".join(labels)
    if any(c.covers_seeds for c in present) and not all(c.covers_seeds for c in present):
        return "test images and training seeds where every network has several seeds, else test images only"
    if all(c.covers_seeds for c in present):
        return "test images and training seeds"
    if any(c.seeds for c in present):  # deterministic methods beside networks trained once
        return "test images only, one training of each network (classical methods draw no random number)"
    return labels[0]


def noise_note(coverages: Iterable[Coverage | None]) -> str:
    """One sentence saying which noise the claims cover, or "" without a claim."""
    summary = noise_summary(coverages)
    return f"Noise covered: {summary}." if summary else ""


def method_name(coverages: Iterable[Coverage | None]) -> str:
    """The tests' name as the page gives it: a paired bootstrap over the images, a t-test over the
    seeds and images, or both."""
    kinds = {c.covers_seeds for c in coverages if c is not None}
    if kinds == {True}:
        return "paired t-test over seeds and images"
    return "paired bootstrap" if kinds != {True, False} else "paired bootstrap or t-test over seeds"
