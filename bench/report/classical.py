"""The "Edge-based vs region-based" section: the chapter's assignment, answered from stored results.

Each classical run's family (``edge`` or ``region``) is read from its record.json, where the
runner stored it (``classical_family``); every number is a stored metric or a mean of stored
metrics over methods. Nothing is recomputed from predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from bench.report import tables
from bench.report.load import Results
from bench.report.stats import CLASS_METRICS

FAMILIES = ("edge", "region")
FAMILY_NAMES = {"edge": "Edge-based", "region": "Region-based"}
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FamilySummary:
    """One family's methods (models in table order), their mean mIoU and the best of them."""

    family: str
    models: list[str]
    mean_miou: float
    best_model: str | None
    best_miou: float


@dataclass(frozen=True)
class ClassicalComparison:
    """What the section shows.

    Attributes:
        table: One row per classical model with an mIoU: model, method, family, miou, the
            ``iou_*`` columns and latency_p50_ms; edge-based first, then by mIoU descending.
        families: Edge and region summaries (a family without runs has no models, NaN numbers).
        best_deep: The best deep model and its mean mIoU, or None without a successful deep run.
    """

    table: pd.DataFrame
    families: dict[str, FamilySummary]
    best_deep: tuple[str, float] | None

    @property
    def best_classical(self) -> tuple[str, float]:
        best = self.table.sort_values(["miou", "model"], ascending=[False, True], kind="stable").iloc[0]
        return str(best["model"]), float(best["miou"])


def method_families(results: Results, runs: pd.DataFrame) -> dict[str, str]:
    """model -> ``edge`` / ``region`` for the classical models, from their runs' stored records."""
    out: dict[str, str] = {}
    classical = runs[(runs["family"] == "classical") & (runs["status"] == "ok")].sort_values(["model", "seed", "run_id"])
    for model, run_id in zip(classical["model"], classical["run_id"], strict=True):
        if model in out:
            continue
        record = results.record(run_id) or {}
        out[model] = str(record.get("classical_family") or UNKNOWN)
    return out


def compare(table: pd.DataFrame, families: dict[str, str]) -> ClassicalComparison | None:
    """The comparison, or None when no classical model has a stored mIoU.

    Args:
        table: The per-model summary (``bench.report.stats.model_table``), leaderboard order.
        families: :func:`method_families`.
    """
    ok = table.dropna(subset=["miou"])
    classical = ok[ok["family"] == "classical"].copy()
    if classical.empty:
        return None
    classical["method"] = classical["backbone"].astype(str)
    classical["family_of_method"] = classical["model"].map(families).fillna(UNKNOWN)
    order = {f: i for i, f in enumerate(FAMILIES)}
    classical["_order"] = classical["family_of_method"].map(order).fillna(len(order))
    classical = classical.sort_values(["_order", "miou", "model"], ascending=[True, False, True], kind="stable")
    summaries = {}
    for family in FAMILIES:
        group = classical[classical["family_of_method"] == family]
        if group.empty:
            summaries[family] = FamilySummary(family, [], math.nan, None, math.nan)
            continue
        best = group.iloc[0]
        summaries[family] = FamilySummary(family, group["model"].tolist(), float(group["miou"].mean()),
                                          str(best["model"]), float(best["miou"]))
    deep = ok[ok["family"] != "classical"].sort_values(["miou", "model"], ascending=[False, True], kind="stable")
    best_deep = (str(deep.iloc[0]["model"]), float(deep.iloc[0]["miou"])) if len(deep) else None
    columns = ["model", "method", "family_of_method", "miou", *[m for m in CLASS_METRICS if m in classical.columns],
               "latency_p50_ms"]
    frame = classical.reindex(columns=columns).rename(columns={"family_of_method": "family"}).reset_index(drop=True)
    return ClassicalComparison(frame, summaries, best_deep)


def _table(cmp: ClassicalComparison) -> str:
    present = [m for m in CLASS_METRICS if m in cmp.table.columns]
    headers = ["Model", "Method", "Family", "mIoU", *[f"IoU {CLASS_METRICS[m]}" for m in present],
               "Latency p50 (ms)"]
    rows = [
        [row["model"], row["method"], row["family"], tables.fmt_ratio(row["miou"]),
         *[tables.fmt_ratio(row[m]) for m in present], tables.fmt_number(row["latency_p50_ms"])]
        for _, row in cmp.table.iterrows()
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                           colalign=["left", "left", "left", *["right"] * (len(headers) - 3)])


def _family_line(summary: FamilySummary) -> str:
    name = FAMILY_NAMES[summary.family]
    if not summary.models:
        return f"**{name}:** no successful run stored."
    methods = ", ".join(summary.models)
    return (f"**{name}** ({methods}): mean mIoU {summary.mean_miou:.3f} over {len(summary.models)} "
            f"method{'s' * (len(summary.models) != 1)}; best {summary.best_model} ({summary.best_miou:.3f}).")


def section(cmp: ClassicalComparison, figure: tuple[str, str] | None) -> list[str]:
    """The section's Markdown lines.

    Args:
        cmp: :func:`compare`'s result.
        figure: ``(filename, caption)`` of the classical gallery, or None when it was not drawn.
    """
    edge, region = cmp.families["edge"], cmp.families["region"]
    lines = [_family_line(edge), _family_line(region)]
    if edge.models and region.models:
        diff = region.mean_miou - edge.mean_miou
        winner = "Region-based" if diff > 0 else "Edge-based"
        lines.append(
            f"**Region minus edge:** {diff:+.3f} mIoU on average, {region.best_miou - edge.best_miou:+.3f} "
            f"best against best" + ("." if diff == 0 else f": {winner.lower()} methods segment better on average here.")
        )
    best_model, best_miou = cmp.best_classical
    if cmp.best_deep is None:
        lines.append("**Best deep model:** none finished, so there is nothing to set the classical floor against.")
    else:
        deep_model, deep_miou = cmp.best_deep
        gap = deep_miou - best_miou
        where = "above" if gap >= 0 else "below"
        lines.append(f"**Best deep model vs best classical:** {deep_model} (mIoU {deep_miou:.3f}) is "
                     f"{abs(gap):.3f} mIoU {where} {best_model} ({best_miou:.3f}).")
    out = [
        "## Edge-based vs region-based",
        "",
        "The chapter's assignment: classical segmenters (`segmodels.classical`), untrained and parameter-free, "
        "on the same test images, metrics and timing as the networks. Edge-based methods close and fill the "
        "outlines an edge detector finds; region-based ones group pixels into regions. All share one "
        "foreground rule and one border band, so only the evidence differs. mIoU and latency are the stored "
        "values (mean over seeds); the family means are means over methods.",
        "",
        _table(cmp),
        "",
        *[f"- {line}" for line in lines],
        "",
    ]
    if figure is not None:
        filename, caption = figure
        out += [f"![Classical segmentations]({filename})", "", f"*{caption}*", ""]
    else:
        out += ["Classical segmentations not drawn: no stored predictions of the classical runs.", ""]
    return out
