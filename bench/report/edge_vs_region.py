"""The "Edge-based vs region-based" section: the chapter's assignment, answered from stored results.

Each classical run's family (``edge`` or ``region``) is read from its record.json, where the
runner stored it (``classical_family``); every number is a stored metric or a mean of stored
metrics over methods. Nothing is recomputed from predictions. Each claim that one side is better
(family against family, best against best, best deep model against best classical) is a paired
test on the per-image evidence (:func:`bench.report.statistics.contrast`: the classical methods are
deterministic, the network's seeds enter where it has several), Holm-corrected over the section's
comparisons, and says which noise it covers; without evidence the section gives the differences
and says they are untested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.report import statistics as ev
from bench.report import tables
from bench.report.load import Results
from bench.report.summary import CLASS_METRICS, EvidenceSummary

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
        table: The per-model summary (``bench.report.summary.model_table``), leaderboard order.
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
    """One comparison the section states: ``a`` minus ``b`` in mIoU and, with evidence, its test.

    ``text`` leads the line; ``better`` and ``worse`` are what it concludes when the test
    separates the sides with ``a`` ahead or behind.
    """

    a: list[str]
    b: list[str]
    difference: float
    text: str
    better: str
    worse: str
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
        diff = region.mean_miou - edge.mean_miou
        out.append(Claim(region.models, edge.models, diff, f"**Region minus edge, on average:** {diff:+.3f} mIoU",
                         "region-based methods segment better here", "edge-based methods segment better here"))
        a, b, diff = str(region.best_model), str(edge.best_model), region.best_miou - edge.best_miou
        out.append(Claim([a], [b], diff, f"**Best region minus best edge:** {a} minus {b}, {diff:+.3f} mIoU",
                         f"{a} is ahead", f"{b} is ahead"))
    if cmp.best_deep is not None:
        (deep_model, deep_miou), (best_model, best_miou) = cmp.best_deep, cmp.best_classical
        diff = deep_miou - best_miou
        out.append(Claim([deep_model], [best_model], diff,
                         f"**Best deep model vs best classical:** {deep_model} (mIoU {deep_miou:.3f}) is "
                         f"{abs(diff):.3f} mIoU {'above' if diff >= 0 else 'below'} {best_model} ({best_miou:.3f})",
                         "the network is ahead on these images", "the classical method is ahead on these images"))
    models = sorted({m for c in out for m in (*c.a, *c.b)})
    confusions = _confusions(evidence, models)
    if confusions is None:
        return out
    # The classical methods draw no random number: no seed variance. The deep model's is estimated.
    fixed = set(cmp.table["model"])
    by_model = {m: ev.ModelRuns(c, m in fixed) for m, c in zip(models, confusions, strict=True)}
    resamples = ev.resamples_for_tests(len(out))
    tests = [ev.paired_group_test([by_model[m] for m in c.a], [by_model[m] for m in c.b], n_resamples=resamples)
             for c in out]
    p_holm = ev.holm([t.p_value for t in tests])
    return [replace(c, test=t, p_holm=float(p)) for c, t, p in zip(out, tests, p_holm, strict=True)]


def _line(claim: Claim) -> str:
    """The claim's text and what its test lets the section say."""
    if claim.test is None:
        return f"{claim.text}; no per-image evidence, so untested: the difference may be noise."
    p = tables.fmt_p(claim.p_holm)
    shown = (f"{claim.text} [95% interval {claim.test.low:+.3f}, {claim.test.high:+.3f}], "
             f"p {p if p.startswith('<') else '= ' + p} (Holm; noise covered: {claim.test.coverage.describe()})")
    if claim.p_holm > ev.ALPHA:
        return f"{shown}: the evidence cannot tell them apart."
    return f"{shown}: {claim.better if claim.difference > 0 else claim.worse}."


def _method_note(made: list[Claim], evidence: EvidenceSummary | None) -> str:
    tested = [c for c in made if c.test is not None]
    if not tested:
        return ""
    seeds = any(c.test.coverage.covers_seeds for c in tested)
    how = (f"a paired bootstrap over the same {evidence.n_images} test images "
           f"({ev.resamples_for_tests(len(tested)):,} resamples, seed {ev.RESAMPLING_SEED}) of the difference in mean "
           "pooled mIoU")
    if seeds:
        how += (" (a t-test where the network's seeds enter: its standard error adds their variance to the "
                "bootstrap's, Welch-Satterthwaite degrees of freedom)")
    return (f" Intervals and p-values: {how}, Holm-corrected over the {len(tested)} "
            f"comparison{'s' * (len(tested) != 1)} below; a side is called better only when the corrected p-value "
            "is at most 0.05.")


def section(cmp: ClassicalComparison, figure: tuple[str, str] | None,
            evidence: EvidenceSummary | None = None) -> list[str]:
    """The section's Markdown lines.

    Args:
        cmp: :func:`compare`'s result.
        figure: ``(filename, caption)`` of the classical gallery, or None when it was not drawn.
        evidence: The per-image evidence summary, for the tests behind each claim; None: untested.
    """
    made = claims(cmp, evidence)
    lines = [_family_line(cmp.families["edge"]), _family_line(cmp.families["region"]), *map(_line, made)]
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
