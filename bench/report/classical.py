"""The "Edge-based vs region-based" section: the chapter's assignment, answered from stored results.

Each classical run's family (``edge`` or ``region``) is read from its record.json, where the
runner stored it (``classical_family``); every number is a stored metric or a mean of stored
metrics over methods. Nothing is recomputed from predictions. Each claim that one side is better
(family against family, best against best, best deep model against best classical) is a paired
bootstrap test on the per-image evidence, Holm-corrected over the section's comparisons; without
evidence the section gives the differences and says they are untested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.report import evidence as ev
from bench.report import tables
from bench.report.load import Results
from bench.report.stats import CLASS_METRICS, EvidenceSummary

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
    classical = runs[(runs["family"] == "classical") & (runs["status"] == "ok")]
    classical = classical.sort_values(["model", "seed", "run_id"])
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


@dataclass(frozen=True)
class Claim:
    """One comparison the section states: ``a`` minus ``b`` in mIoU and, with evidence, its test."""

    label: str
    a: list[str]
    b: list[str]
    difference: float
    test: ev.PairedTest | None = None
    p_holm: float = math.nan


def _confusions(evidence: EvidenceSummary | None, models: list[str]) -> list[np.ndarray] | None:
    """Each model's ``(S, N, C, C)`` per-image counts on one shared set of images, or None."""
    if evidence is None or any(m not in evidence.runs for m in models):
        return None
    try:
        stacked = [ev.stack_seeds(evidence.runs[m]) for m in models]
    except ValueError:
        return None
    if any(not np.array_equal(index, stacked[0][1]) for _, index in stacked):
        return None
    return [confusion for confusion, _ in stacked]


def claims(cmp: ClassicalComparison, evidence: EvidenceSummary | None) -> list[Claim]:
    """The section's comparisons, tested on the per-image evidence where every model involved has
    it on the same images, Holm-corrected over the tests made."""
    edge, region = cmp.families["edge"], cmp.families["region"]
    out = []
    if edge.models and region.models:
        out.append(Claim("Region minus edge, on average", region.models, edge.models,
                         region.mean_miou - edge.mean_miou))
        out.append(Claim("Best region minus best edge", [str(region.best_model)], [str(edge.best_model)],
                         region.best_miou - edge.best_miou))
    if cmp.best_deep is not None:
        best_model, best_miou = cmp.best_classical
        out.append(Claim("Best deep model minus best classical", [cmp.best_deep[0]], [best_model],
                         cmp.best_deep[1] - best_miou))
    models = sorted({m for c in out for m in (*c.a, *c.b)})
    confusions = _confusions(evidence, models)
    if confusions is None:
        return out
    by_model = dict(zip(models, confusions, strict=True))
    resamples = ev.resamples_for_tests(len(out))
    tested = [(c, ev.paired_group_test([by_model[m] for m in c.a], [by_model[m] for m in c.b],
                                       n_resamples=resamples)) for c in out]
    p_holm = ev.holm([t.p_value for _, t in tested])
    return [Claim(c.label, c.a, c.b, c.difference, t, float(p)) for (c, t), p in zip(tested, p_holm, strict=True)]


def _verdict(claim: Claim, better: str, worse: str) -> str:
    """What the test lets the section say, from ``; ...`` or `` [interval] ...`` on; ``better`` and
    ``worse`` name the outcome as ``a`` is ahead or behind."""
    if claim.test is None:
        return "; no per-image evidence, so untested: the difference may be noise."
    p = tables.fmt_p(claim.p_holm)
    shown = (f" [95% interval {claim.test.low:+.3f}, {claim.test.high:+.3f}], "
             f"p {p if p.startswith('<') else '= ' + p} (Holm)")
    if claim.p_holm > ev.ALPHA:
        return f"{shown}: the test images cannot tell them apart."
    return f"{shown}: {better if claim.difference > 0 else worse}."


def _claim_lines(cmp: ClassicalComparison, made: list[Claim]) -> list[str]:
    lines = []
    for claim in made:
        if claim.label.startswith("Region minus edge"):
            lines.append(f"**{claim.label}:** {claim.difference:+.3f} mIoU"
                         + _verdict(claim, "region-based methods segment better here",
                                    "edge-based methods segment better here"))
        elif claim.label.startswith("Best region"):
            lines.append(f"**{claim.label}:** {claim.a[0]} minus {claim.b[0]}, {claim.difference:+.3f} mIoU"
                         + _verdict(claim, f"{claim.a[0]} is ahead", f"{claim.b[0]} is ahead"))
        else:
            deep_model, deep_miou = cmp.best_deep
            best_model, best_miou = cmp.best_classical
            where = "above" if claim.difference >= 0 else "below"
            lines.append(f"**Best deep model vs best classical:** {deep_model} (mIoU {deep_miou:.3f}) is "
                         f"{abs(claim.difference):.3f} mIoU {where} {best_model} ({best_miou:.3f})"
                         + _verdict(claim, "the network is ahead on these images",
                                    "the classical method is ahead on these images"))
    return lines


def _method_note(made: list[Claim], evidence: EvidenceSummary | None) -> str:
    tested = [c for c in made if c.test is not None]
    if not tested:
        return ""
    n_images = next(iter(evidence.runs.values()))[0]["image_index"].size
    return (f" Intervals and p-values: a paired bootstrap over the same {n_images} test images "
            f"({ev.resamples_for_tests(len(tested)):,} resamples, seed {ev.RESAMPLING_SEED}; seeds resampled too) of "
            "the difference in "
            f"mean pooled mIoU, Holm-corrected over the {len(tested)} comparison{'s' * (len(tested) != 1)} below; a "
            "side is called better only when the corrected p-value is at most 0.05.")


def section(cmp: ClassicalComparison, figure: tuple[str, str] | None,
            evidence: EvidenceSummary | None = None) -> list[str]:
    """The section's Markdown lines.

    Args:
        cmp: :func:`compare`'s result.
        figure: ``(filename, caption)`` of the classical gallery, or None when it was not drawn.
        evidence: The per-image evidence summary, for the tests behind each claim; None: untested.
    """
    made = claims(cmp, evidence)
    lines = [_family_line(cmp.families["edge"]), _family_line(cmp.families["region"]), *_claim_lines(cmp, made)]
    if cmp.best_deep is None:
        lines.append("**Best deep model:** none finished, so there is nothing to set the classical floor against.")
    out = [
        "## Edge-based vs region-based",
        "",
        "The chapter's assignment: classical segmenters (`segmodels.classical`), untrained and parameter-free, "
        "on the same test images, metrics and timing as the networks. Edge-based methods close and fill the "
        "outlines an edge detector finds; region-based ones group pixels into regions. All share one "
        "foreground rule and one border band, so only the evidence differs. mIoU and latency are the stored "
        "values (mean over seeds); the family means are means over methods." + _method_note(made, evidence),
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
