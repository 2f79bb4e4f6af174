"""The leaderboard's sections below the main table, one function each in reading order:
significance, accuracy in detail, calibration, Monte-Carlo dropout, other devices' costs and the
runs of other contexts. Each returns its Markdown lines; :mod:`bench.report.markdown` places them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from bench.evidence.declarations import METRICS
from bench.report import statistics as ev
from bench.report import tables
from bench.report.comparable import Selection
from bench.report.conditions import stored_values
from bench.report.load import Results
from bench.report.summary import NO_EVIDENCE, EvidenceSummary

NOT_RANKED = "Not ranked: runs of another comparison context"
OTHER_DEVICES = "Costs measured on other devices"
SIGNIFICANCE = "Significance: which models are tied with #1"
COSTS = "Costs"


@dataclass(frozen=True)
class FigureEntry:
    """A figure written beside leaderboard.md, or the reason it could not be drawn."""

    title: str
    filename: str | None
    caption: str


def anchor(title: str) -> str:
    """The GitHub anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return "".join(c for c in title.lower() if c.isalnum() or c in " -").replace(" ", "-")


def figure_lines(entry: FigureEntry | None) -> list[str]:
    """A figure drawn inside its section, or the line saying why it was not drawn."""
    if entry is None:
        return []
    if not entry.filename:
        return [f"*{entry.title} not drawn: {entry.caption}*", ""]
    return [f"![{entry.title}]({entry.filename})", "", f"*{entry.caption}*", ""]


def significance(table: pd.DataFrame, evidence: EvidenceSummary | None, figure: FigureEntry | None) -> list[str]:
    out = [f"## {SIGNIFICANCE}", ""]
    test = evidence.test if evidence is not None else None
    if test is None:
        why = evidence.no_test if evidence is not None and evidence.no_test else NO_EVIDENCE
        intervals = evidence is not None and evidence.intervals["interval"].ne("").any()
        overlap = "where their intervals overlap" if intervals else "between close models"
        out += [(f"No significance test: {why}. No model is called tied with #1 or better than another; {overlap}, "
                 "the order may be noise."), ""]
    else:
        n_images = evidence.n_images
        tied = evidence.tied
        coverages = list(test["coverage"].iloc[1:])
        out += [
            (f"Each model is compared with #1 on the same {n_images} test images: {_test_method(coverages, len(test))}, "
            f"two-sided, with Holm's correction over the {len(test) - 1} comparison{'s' * (len(test) != 2)}. A model "
            "is tied with #1 when its corrected p-value is above 0.05: on these images "
            f"{'and seeds ' if any(c.covers_seeds for c in coverages) else ''}it cannot be told apart from #1. "
            f"{_noise_sentence(coverages)} "
            f"**Tied with #1 ({len(tied)} model{'s' * (len(tied) != 1)}):** {', '.join(tied)}."),
            "",
        ]
        if evidence.untested:
            out += [f"Not tested, for want of per-image evidence: {', '.join(evidence.untested)}.", ""]
        out += [tables.significance_table(test, table), ""]
    if evidence is not None and evidence.problems:
        out += ["Evidence that could not be used:", "", *[f"- {tables.escape_cell(p)}" for p in evidence.problems], ""]
    return out + figure_lines(figure)


def _test_method(coverages: list[ev.Coverage], n_models: int) -> str:
    """How the comparisons against #1 were made, as the significance section states it."""
    resamples = ev.resamples_for_tests(n_models - 1)
    boot = (f"a paired bootstrap of the difference in pooled mIoU ({resamples:,} resamples, enough that the "
            f"smallest corrected p-value the test can give is at most {ev.ALPHA / ev.P_RESOLUTION:g}; seed "
            f"{ev.RESAMPLING_SEED})")
    seeds = ("a paired t-test of the difference in mean pooled mIoU over seeds, its standard error the image "
             f"bootstrap's ({resamples:,} resamples, seed {ev.RESAMPLING_SEED}, one image draw for every seed) plus "
             "each network's seed-to-seed variance, with Welch-Satterthwaite degrees of freedom")
    kinds = {c.covers_seeds for c in coverages}
    if kinds == {True}:
        return seeds
    if kinds == {False}:
        return boot
    return f"where every network has several seeds {seeds}; elsewhere {boot}"


def _noise_sentence(coverages: list[ev.Coverage]) -> str:
    """Which noise the comparisons cover, and what that leaves out."""
    note = tables.noise_note(coverages)
    if any(not c.covers_seeds and c.seeds and max(c.seeds) == 1 for c in coverages):
        note += (" With one seed a network, its training noise is not measured: another training could "
                 "reorder close models.")
    return note


def accuracy(results: Results, runs: pd.DataFrame, table: pd.DataFrame, evidence: EvidenceSummary | None) -> list[str]:
    widths = sorted({int(w) for w in table.get("boundary_width_px", pd.Series(dtype=float)).dropna()})
    size = stored_values(results, runs, "config.profile.image_size")
    band = (f"a band of {', '.join(map(str, widths))} px" if widths else "a band")
    band += f" at {size[0]}×{size[0]} px" if len(size) == 1 and widths else ""
    # What each column shows, as its metric declares it (bench.evidence.declarations).
    about = " ".join(m.about.format(band=band) for m in METRICS if m.about)
    text = f"{about} Values are mean ± std over seeds (n=1: one seed)."
    missing = evidence.missing if evidence is not None else table.dropna(subset=["miou"])["model"].tolist()
    if missing:
        # The columns read from the evidence: per-image means and the rows evidence_metrics writes.
        needs = [c.header for m, c in tables.ACCURACY_COLUMNS if c.per_image or m.pooled_row]
        named = ", ".join(needs[:-1]) + f" and {needs[-1]}" if len(needs) > 1 else "".join(needs)
        text += (f" {len(missing)} model{'s' * (len(missing) != 1)} show — for {named}: their runs were measured "
                 "before `evidence.npz` existed, and these need its per-image counts.")
    intervals = evidence.intervals if evidence is not None else None
    return ["## Accuracy in detail", "", text, "", tables.accuracy_table(table, intervals), ""]


def calibration(table: pd.DataFrame, figure: FigureEntry | None) -> list[str]:
    out = ["## Calibration", ""]
    if "ece" not in table.columns or table["ece"].dropna().empty:
        return out + [f"Not measured: {NO_EVIDENCE}.", ""]
    out += [
        ("How far the deep models' softmax confidence can be trusted, pixel by pixel over the test split: **ECE**, "
        "expected calibration error with 15 equal-width confidence bins (Guo et al., ICML 2017), "
        "**NLL**, the mean negative log-likelihood of the true class in nats, and **Brier**, the multi-class Brier "
        "score per pixel; lower is better for all three. Means over seeds. Classical segmenters give hard labels, "
        "with no probability to calibrate: — (not 0)."),
        "",
        tables.calibration_table(table),
        "",
    ]
    return out + figure_lines(figure)


def monte_carlo(table: pd.DataFrame, evidence: EvidenceSummary | None, curve: FigureEntry | None,
                 gallery: FigureEntry | None) -> list[str]:
    mc = table.dropna(subset=["mc_miou"]) if "mc_miou" in table.columns else table.iloc[0:0]
    if mc.empty:
        return []
    return [
        "## Monte-Carlo dropout",
        "",
        ("Models with dropout evaluated as Bayesian (Kendall et al., BMVC 2017): dropout left on at test time and the "
        "softmax of T stochastic passes averaged, beside the usual deterministic pass (dropout off). First the "
        "mIoU of both, the Monte-Carlo one with its interval, their difference on the same test images, paired by "
        "seed (a seed's two passes share its weights), and the latency (batch 1, p50) of one pass and of the T "
        "passes; then the calibration of both, and how well the predictive entropy of the T passes finds the wrong "
        "pixels: **AUROC**, the chance that a wrong pixel is more uncertain than a right one, and **PAvPU "
        "(pixel-level)**, Mukhoti & Gal's (2018) patch accuracy vs patch uncertainty on 1×1 patches (the paper "
        "scores patches of several pixels): the share of pixels that are accurate and certain or inaccurate and "
        "uncertain, uncertain meaning an entropy above half of log 3."
        + _mc_noise(evidence.mc_vs_deterministic.values() if evidence is not None else [])),
        "",
        tables.monte_carlo_table(mc, evidence.intervals if evidence is not None else None,
                                 evidence.mc_vs_deterministic if evidence is not None else {}),
        "",
        tables.monte_carlo_uncertainty_table(mc),
        "",
        *figure_lines(curve),
        *figure_lines(gallery),
    ]


def _mc_noise(tests: Iterable[ev.PairedTest]) -> str:
    note = tables.noise_note(t.coverage for t in tests)
    return f" The difference's {note[0].lower()}{note[1:]}" if note else ""


def device_note(selection: Selection) -> str:
    ok = selection.results.runs
    ok = ok[ok["status"] == "ok"]
    n = int((ok["run_id"].map(selection.devices) == selection.device).sum())
    return (f" **Latency, throughput, times and memory were measured on {tables.escape_cell(selection.device)}** "
            f"({n} of {len(ok)} successful runs): a model whose runs ran on another device shows — for them (its "
            f"quality still ranks), and those costs are under [{OTHER_DEVICES}](#{anchor(OTHER_DEVICES)}). "
            "Parameters and FLOPs do not depend on the device.")


def other_devices(selection: Selection, table: pd.DataFrame) -> list[str]:
    return [
        f"## {OTHER_DEVICES}",
        "",
        ("Runs measured on another device than the leaderboard's compare in quality (ranked above) but not in "
         "speed, so their costs are shown here, per model and device (means over its successful seeds there), "
         "and left out of the leaderboard, the Pareto front and the accuracy-vs-latency figure."),
        "",
        tables.other_device_costs_table(selection.other_device_costs, table["model"].tolist()),
        "",
    ]


def not_ranked(selection: Selection, synthetic_ranked: bool) -> list[str]:
    source = ("named in `context.json`" if selection.context_source == "context.json"
              else "of its most recent run (the folder has no `context.json`)")
    ranked = f"`{selection.context_id}`" if selection.context_id else "unknown (no readable config)"
    return [
        f"## {NOT_RANKED}",
        "",
        ("A comparison context is the dataset, the harness version and every setting that can change a measured "
         "number; runs of different contexts are never ranked together. This page ranks the folder's context, "
         f"{ranked}, {source}. These runs are left out of every table, figure and statistic above."),
        "",
        tables.other_contexts_table(selection.others, synthetic_ranked),
        "",
    ]
