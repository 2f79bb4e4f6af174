"""Markdown tables (tabulate, GitHub flavour) from the per-model summary and the stored runs."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from bench.clock import format_duration
from bench.report.stats import CLASS_METRICS

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


def fmt_ci(row: pd.Series, metric: str) -> str:
    if _missing(row.get(metric, math.nan)):
        return DASH
    low, high = row.get(f"{metric}_ci_low", math.nan), row.get(f"{metric}_ci_high", math.nan)
    if _missing(low) or _missing(high):
        return "n=1, no CI"
    return f"[{low:.3f}, {high:.3f}]"


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


def model_label(row: pd.Series) -> str:
    """The model id, tagged when it is a classical (untrained, parameter-free) segmenter."""
    return f"{row['model']} *(classical)*" if row.get("family") == "classical" else str(row["model"])


def escape_cell(text: object) -> str:
    """One Markdown table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _render(rows: list[list[str]], headers: list[str], align: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True, colalign=align)


def leaderboard_table(table: pd.DataFrame) -> str:
    """One row per model, ranked by mean mIoU; models with no successful run come last."""
    has_device_mem = "peak_device_mem_mb" in table.columns and table["peak_device_mem_mb"].notna().any()
    headers = ["#", "Model", "Weights", "Seeds ok", "mIoU (mean ± std)", "mIoU 95% CI", "Pixel acc.",
               "Params (M)", "FLOPs (G)", "Latency p50 / p95 (ms)", "Throughput (img/s)", "Train time",
               "Peak RAM"]
    align = ["right", "left", "left", "right", "right", "right", "right", "right", "right", "right", "right",
             "right", "right"]
    if has_device_mem:
        headers.append("Peak device mem.")
        align.append("right")
    rows = []
    for _, row in table.iterrows():
        seeds = f"{row['n_ok']} of {row['n_runs']}"
        if row["n_ok"] == 0:
            rows.append([DASH, model_label(row), weights_label(row.get("weights", DASH)), seeds,
                         "failed (see Failed runs)", *[DASH] * (len(headers) - 5)])
            continue
        train = row.get("train_time_s", math.nan)
        cells = [
            str(int(row["rank"])), model_label(row), escape_cell(weights_label(row.get("weights", DASH))), seeds,
            fmt_spread(row, "miou"), fmt_ci(row, "miou"), fmt_spread(row, "pixel_accuracy"),
            fmt_params(row.get("params_total", math.nan)), fmt_gflops(row.get("flops_per_image", math.nan)),
            f"{fmt_number(row.get('latency_p50_ms', math.nan))} / {fmt_number(row.get('latency_p95_ms', math.nan))}",
            fmt_number(row.get("inference_throughput", math.nan)),
            "none (not trained)" if row.get("family") == "classical" and (_missing(train) or train == 0)
            else fmt_duration(train),
            fmt_memory(row.get("peak_rss_mb", math.nan)),
        ]
        if has_device_mem:
            cells.append(fmt_memory(row.get("peak_device_mem_mb", math.nan)))
        rows.append(cells)
    return _render(rows, headers, align)


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
