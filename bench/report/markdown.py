"""Assemble leaderboard.md: the warnings and "At a glance" that open it, the main table with its
caption, then the sections (:mod:`bench.report.sections`), the provenance
(:mod:`bench.report.conditions`) and the figures with their captions.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from bench.config.modes import LEGACY
from bench.report import statistics as ev
from bench.report import tables
from bench.report.comparable import Selection
from bench.report.conditions import environment_table, is_synthetic, shared_and_varying, stored_value, stored_values
from bench.report.keras_backends import backend_note
from bench.report.load import Results, as_bool
from bench.report.papers import papers_section
from bench.report.sections import (
    COSTS,
    NOT_RANKED,
    OTHER_DEVICES,
    SIGNIFICANCE,
    FigureEntry,
    accuracy,
    anchor,
    calibration,
    device_note,
    monte_carlo,
    not_ranked,
    other_devices,
    significance,
)
from bench.report.summary import NO_EVIDENCE, EvidenceSummary
from bench.report.training import UNTRAINED_COSTS

#: The leading deep models: the reliability diagram's and the "lowest ECE" line's.
LEADING = 4


def _warnings(results: Results, runs: pd.DataFrame, superseded: pd.DataFrame, table: pd.DataFrame,
              selection: Selection | None = None, evidence: EvidenceSummary | None = None) -> list[str]:
    out = []
    if is_synthetic(results, runs):
        out.append("**Synthetic data.** These results come from generated images, not real photos: they "
                   "check that the harness works and say nothing about how well any model segments pets.")
    fallback = runs.get("weights", pd.Series("", index=runs.index)).fillna("").astype(str)
    fallback = fallback[fallback.str.startswith("none (imagenet unavailable")]
    if len(fallback):
        reason = fallback.iloc[0].split(":", 1)[-1].rstrip(")").strip()
        n = runs.loc[fallback.index, "model"].nunique()
        out.append(f"**No pretrained weights for {n} model{'s' * (n != 1)}**: ImageNet "
                   "weights were asked for but could not be had, so those encoders were trained from random "
                   f"initialisation (e.g. {tables.escape_cell(reason)}).")
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        out.append(f"**{len(failed)} of {len(runs)} runs failed**; they are listed under "
                   "[Failed runs](#failed-runs) with their errors, and excluded from every statistic.")
    # One seed has an interval when its per-image evidence was stored (a bootstrap over the images).
    with_evidence = set(evidence.runs) if evidence is not None else set()
    single = [m for m in table[(table["n_ok"] == 1)]["model"] if m not in with_evidence]
    if single and len(single) == int((table["n_ok"] > 0).sum()):
        out.append("**One successful seed per model and no per-image evidence**: no interval and no significance "
                   "test; differences between models may be noise.")
    elif single:
        out.append(f"**One successful seed and no per-image evidence** for {', '.join(single)}: no interval.")
    if "concurrent_runs" in runs.columns:
        shared = runs[(runs["status"] == "ok") & (pd.to_numeric(runs["concurrent_runs"], errors="coerce") > 1)]
        if len(shared):
            out.append(f"**{len(shared)} of {len(runs)} runs shared the machine with other runs** (`--jobs`): their "
                       "latency, throughput and times are slower than they would be alone, and not comparable with "
                       "runs measured one at a time.")
    modes = _effective_modes(runs)
    if len(modes) > 1:
        parts = "; ".join(f"{mode}: {n} run{'s' * (n != 1)}" for mode, n in modes.most_common())
        out.append(f"**Runs ran in different effective speed modes** ({parts}): their costs are not like for like, "
                   "and their quality may differ slightly (e.g. `--xla auto` resolved differently on two devices).")
    # Several dataset fingerprints or devices need no warning: other contexts are not ranked, and
    # costs compare on one device (bench.report.comparable).
    commits = stored_values(results, runs, "git_commit") if "git_commit" in runs.columns else []
    if len(commits) > 1:
        out.append(f"**Runs span several commits** ({', '.join(commits)}): they may not be comparable.")
    if selection is not None and selection.others:
        n = sum(len(o.runs) for o in selection.others)
        out.append(f"**{n} run{'s' * (n != 1)} of another comparison context {'are' if n != 1 else 'is'} not "
                   "ranked** (another dataset, harness version or measuring setting); see "
                   f"[{NOT_RANKED}](#{anchor(NOT_RANKED)}).")
    if len(superseded):
        out.append(f"{len(superseded)} earlier run(s) of the same model and seed were superseded by a later "
                   "run and are not shown.")
    return out


def _effective_modes(runs: pd.DataFrame) -> Counter[str]:
    """How many ok runs ran in each effective (precision, XLA, determinism) mode, as stored in
    runs.csv (rows from before these columns existed ran in :data:`bench.config.modes.LEGACY`)."""

    ok = runs[runs["status"] == "ok"]
    counts: Counter[str] = Counter()
    for _, row in ok.iterrows():
        precision, xla, deterministic = LEGACY
        if pd.notna(row.get("precision", math.nan)) and str(row.get("precision")):
            precision, xla = str(row["precision"]), str(row.get("xla", xla))
            deterministic = as_bool(pd.Series([row.get("deterministic")])).iloc[0]
        counts[f"{precision}, XLA {xla}, deterministic {'on' if deterministic else 'off'}"] += 1
    return counts


def _at_a_glance(table: pd.DataFrame, pareto: pd.Series, device: str | None = None,
                 evidence: EvidenceSummary | None = None) -> list[str]:
    """``device``: named beside the latency claims where the runs span several devices. A single most
    accurate model is named only when the test against #1 separates it from every other model."""
    ok = table.dropna(subset=["miou"])
    if ok.empty:
        return ["No model finished successfully."]
    intervals = evidence.intervals if evidence is not None else None
    lines = []
    best = ok.iloc[0]
    score = tables.fmt_miou_interval(best, intervals)
    test = evidence.test if evidence is not None else None
    if test is None:
        why = evidence.no_test if evidence is not None and evidence.no_test else NO_EVIDENCE
        lines.append(f"**Highest mIoU:** {tables.model_label(best)}, {score}. The ranking has no significance test: "
                     f"{why}. Models with close mIoU may swap places on other test images or seeds.")
    else:
        tied = evidence.tied
        untested = evidence.untested
        coverages = list(test["coverage"].iloc[1:]) if "coverage" in test.columns else []
        how = f"{tables.method_name(coverages)}, Holm-corrected, 5%"
        covered = tables.noise_summary(coverages)
        how += f"; {covered}" if covered else ""
        if len(tied) > 1:
            named = ", ".join(f"{m} ({tables.fmt_ratio(float(ok.loc[ok['model'] == m, 'miou'].iloc[0]))})"
                              for m in tied)
            lines.append(f"**Most accurate: no single model.** The evidence cannot tell #1 from {len(tied) - 1} "
                         f"other{'s' * (len(tied) > 2)} ({how}): the tied group is "
                         f"{named}. See [{SIGNIFICANCE}](#{anchor(SIGNIFICANCE)}).")
        elif untested:
            lines.append(f"**Highest mIoU:** {tables.model_label(best)} ({score}), ahead of every tested model "
                         f"({how}); {len(untested)} model{'s' * (len(untested) != 1)} without "
                         f"per-image evidence could not be tested ({', '.join(untested)}).")
        elif len(ok) == 1:
            lines.append(f"**Most accurate:** {tables.model_label(best)} ({score}), the only ranked model.")
        else:
            lines.append(f"**Most accurate:** {tables.model_label(best)} ({score}): ahead of every other model on "
                         f"the same test images ({how}).")
    if "latency_p50_ms" in ok.columns and ok["latency_p50_ms"].notna().any():
        fast = ok.sort_values(["latency_p50_ms", "model"], kind="stable").iloc[0]
        where = f" (on {device})" if device else ""
        # Measured values, not a tested ranking: stated as the lowest, not "the fastest".
        lines.append(f"**Lowest latency{where}:** {tables.model_label(fast)} ({fast['latency_p50_ms']:.1f} ms p50 at "
                     f"batch 1, mIoU {fast['miou']:.3f})")
    deep = ok[(ok["family"] != "classical")]
    if "params_total" in deep.columns and deep["params_total"].notna().any():
        small = deep.sort_values(["params_total", "model"], kind="stable").iloc[0]
        lines.append(f"**Smallest trained model:** {small['model']} ({tables.fmt_params(small['params_total'])} M "
                     f"parameters, mIoU {small['miou']:.3f})")
    leading = deep.dropna(subset=["ece"]).head(LEADING)  # a useless model can be calibrated: among the leaders
    if len(leading) > 1:
        calibrated = leading.sort_values(["ece", "model"], kind="stable").iloc[0]
        lines.append(f"**Lowest ECE of the {len(leading)} most accurate deep models:** {calibrated['model']} "
                     f"(ECE {calibrated['ece']:.3f}, a point estimate without interval; mIoU {calibrated['miou']:.3f})")
    front = table[pareto].sort_values(["latency_p50_ms", "model"], kind="stable")
    if len(front):
        lines.append("**Pareto front, accuracy vs latency** (nothing else is both more accurate and faster): "
                     + ", ".join(tables.model_label(r) for _, r in front.iterrows()))
    return lines


@dataclass(frozen=True)
class Page:
    """What leaderboard.md is made of, as :func:`bench.report.render.render_report` gathers it.

    Attributes:
        results: The ranked context's results (cost runs split off).
        runs: Their current runs; ``superseded``: the earlier attempts they replace.
        table: :func:`bench.report.summary.model_table`, rank order; ``pareto``: its accuracy vs
            latency front (:func:`bench.report.summary.pareto_front`).
        figures: The figures of the "Figures" section, in order.
        after_costs: The sections placed after "Costs": the "Keras backends" side by side (absent
            with one backend, bench.report.keras_backends), the "Edge-based vs region-based" lines
            (bench.report.edge_vs_region, absent when no classical run is stored), training, and the
            networks only costed (bench.report.training).
        selection: What was left out of the ranking (bench.report.comparable): runs of other
            contexts, costs of other devices.
        evidence: What the per-image evidence says (:func:`bench.report.summary.evidence_summary`).
        placed: The figures drawn inside their sections (``intervals``, ``reliability``,
            ``mc_curve``, ``mc_gallery``), by key (None: nothing to say there).
        costed: How many networks were only built and timed (their costs are after "Costs"):
            "At a glance" says its claims leave them out.
    """

    results: Results
    runs: pd.DataFrame
    superseded: pd.DataFrame
    table: pd.DataFrame
    pareto: pd.Series
    figures: list[FigureEntry]
    after_costs: list[str] = field(default_factory=list)
    selection: Selection | None = None
    evidence: EvidenceSummary | None = None
    placed: dict[str, FigureEntry | None] = field(default_factory=dict)
    costed: int = 0


def build_markdown(page: Page) -> str:
    """The whole of leaderboard.md as text (deterministic for the same stored results)."""
    results, runs, superseded, table, pareto = page.results, page.runs, page.superseded, page.table, page.pareto
    figures, selection, evidence = page.figures, page.selection, page.evidence
    several = selection is not None and selection.several_devices
    device = selection.device if several else None
    placed = page.placed
    intervals = evidence.intervals if evidence is not None else None
    profile = stored_value(results, runs, "profile", results.root.name)
    n_ok = int((runs["status"] == "ok").sum())
    shared, varying = shared_and_varying(results, runs)
    parts = [f"# segbench leaderboard: `{profile}` profile", ""]
    parts += [f"> ⚠️ {w}\n>" for w in _warnings(results, runs, superseded, table, selection, evidence)]
    if parts[-1].endswith(">"):
        parts[-1] = parts[-1][:-2]
        parts.append("")
    parts += [
        f"Generated by `python -m bench report` from the stored results of {len(runs)} run{'s' * (len(runs) != 1)} "
        f"({n_ok} ok) of {len(table)} model{'s' * (len(table) != 1)}. Nothing here is re-measured: every number is "
        "read from `runs.csv`, `metrics.csv` and each run's `evidence.npz` where it stored one, and aggregated over "
        "seeds.",
        "",
        "## Provenance",
        "",
        "What every ranked run shares; the full config of each run is in `runs.csv` (`config.*` columns).",
        "",
        tables.key_value_table(shared),
        "",
    ]
    if varying:
        parts += ["What varies between the ranked runs (runs per value):", "",
                  tables.render_rows([[tables.escape_cell(k), tables.escape_cell(v)] for k, v in varying],
                                     ["Field", "Values"], ["left", "left"]), ""]
    parts += papers_section(table)
    parts += [
        "## At a glance",
        "",
        *[f"- {line}" for line in _at_a_glance(table, pareto, device, evidence)],
        *([f"- **Not in these claims:** the {page.costed} network{'s' * (page.costed != 1)} of this sweep that "
           f"{'were' if page.costed != 1 else 'was'} only built and timed, never trained or evaluated: their costs are under "
           f"[{UNTRAINED_COSTS}](#{anchor(UNTRAINED_COSTS)}), with no accuracy claim."] if page.costed else []),
        "",
        "## Leaderboard",
        "",
        _leaderboard_caption(table, evidence) + (device_note(selection) if several else "")
        + (backend_note(selection) if selection is not None and selection.several_backends else ""),
        "",
        tables.leaderboard_table(table, intervals, tables.tie_marks(
            evidence.test if evidence is not None else None, table.dropna(subset=["miou"])["model"].tolist())),
        "",
        *([f"{tables.STILL_IMPROVING_MARK} A seed of this model reached the epoch cap before its validation plateau "
           "([Training](#training)).", ""]
          if "still_improving" in table.columns and table["still_improving"].fillna(0).gt(0).any() else []),
        *(other_devices(selection, table) if several else []),
        *significance(table, evidence, placed.get("intervals")),
        *accuracy(results, runs, table, evidence),
        "## Per-class IoU",
        "",
        tables.class_iou_table(table),
        "",
        *calibration(table, placed.get("reliability")),
        *monte_carlo(table, evidence, placed.get("mc_curve"), placed.get("mc_gallery")),
        f"## {COSTS}",
        "",
        "Means over the successful seeds: parameters in millions, FLOPs per image in GFLOPs, latency at batch 1 "
        "after warm-up, inference throughput at a fixed larger batch, training time spent in `fit`, peak "
        "resident memory of the run's process." + (" Costs of runs measured on another device are not here (see "
                                                   f"[{OTHER_DEVICES}](#{anchor(OTHER_DEVICES)}))." if several else ""),
        "",
        tables.costs_table(table),
        "",
        *page.after_costs,
        "## Failed runs",
        "",
    ]
    failed = runs[runs["status"] != "ok"]
    parts += [tables.failed_runs_table(failed) if len(failed) else "None: every run finished.", ""]
    if selection is not None and selection.others:
        parts += not_ranked(selection, is_synthetic(results, runs))
    parts += ["## Figures", ""]
    for fig in figures:
        parts += [f"### {fig.title}", ""]
        if fig.filename:
            parts += [f"![{fig.title}]({fig.filename})", "", f"*{fig.caption}*", ""]
        else:
            parts += [f"Not drawn: {fig.caption}", ""]
    parts += ["## Machine and environment", "", "As stored in `environment.json` by the latest sweep.", "",
              "<details><summary>environment.json</summary>", "", environment_table(results.environment), "",
              "</details>", ""]
    return "\n".join(parts)


def _interval_kinds(table: pd.DataFrame, evidence: EvidenceSummary | None) -> tuple[list[str], list[str], list[str]]:
    """Ranked models by the interval they have: ``(from the evidence, t over seeds, none)``."""
    ranked = table.dropna(subset=["miou"])
    if evidence is not None:
        kinds = dict(evidence.intervals["interval"])
    else:  # no evidence summary: the kinds statistics.interval_kind names without evidence
        kinds = {m: ev.interval_kind(None, int(n or 0)) for m, n in zip(ranked["model"], ranked["miou_n"], strict=True)}
    boot = [m for m in ranked["model"] if kinds.get(m) in (ev.INTERVAL_IMAGES, ev.INTERVAL_SEEDS_AND_IMAGES)]
    t = [m for m in ranked["model"] if kinds.get(m) == ev.INTERVAL_SEEDS]
    none = [m for m in ranked["model"] if m not in boot and m not in t]
    return boot, t, none


def _evidence_intervals(evidence: EvidenceSummary, models: list[str], every: bool) -> str:
    """How the intervals from the per-image evidence were made, and which noise each kind covers."""
    coverage = evidence.intervals["coverage"]
    seeds = [m for m in models if coverage[m].covers_seeds]
    images = [m for m in models if not coverage[m].covers_seeds]
    scope = ", for every model" if every else ""
    text = []
    if seeds:
        text.append(f"**mIoU [95% interval]** of a model with several seeds{scope if not images else ''}: the mean "
                    "over seeds ± Student's t (Welch-Satterthwaite degrees of freedom) times a standard error that "
                    f"adds the seeds' variance to an image bootstrap's ({ev.N_RESAMPLES:,} resamples, fixed "
                    f"resampling seed {ev.RESAMPLING_SEED}); noise covered: {coverage[seeds[0]].describe()}.")
    if images:
        lead = "Of a model with one seed" if seeds else "**mIoU [95% interval]**"
        text.append(f"{lead}: a percentile bootstrap over the test images ({ev.N_RESAMPLES:,} resamples, fixed "
                    f"resampling seed {ev.RESAMPLING_SEED}){scope if not seeds else ''}; noise covered: "
                    f"{tables.noise_summary(coverage[m] for m in images)}.")
    return " ".join(text)


def _leaderboard_caption(table: pd.DataFrame, evidence: EvidenceSummary | None) -> str:
    boot, t, none = _interval_kinds(table, evidence)
    text = ["Ranked by mean mIoU (pooled over the test images) over the successful seeds, ties by model id."]
    if boot:
        text.append(_evidence_intervals(evidence, boot, every=not t and not none))
    if t:
        text.append("*(t)*: no per-image evidence stored, so the interval is the t-distribution's over the seeds.")
    if none:
        what = ("No model has an interval" if not boot and not t
                else f"{len(none)} model{'s' * (len(none) != 1)} ha{'ve' if len(none) != 1 else 's'} no interval")
        text.append(f"{what}: one seed (n=1), and {NO_EVIDENCE}.")
    if evidence is not None and evidence.test is not None:
        text.append("**Tied with #1**: *yes* where a paired test on the same test images cannot tell the model from "
                    f"#1 at 5% after Holm's correction ([{SIGNIFICANCE}](#{anchor(SIGNIFICANCE)})).")
    boundary = "" if evidence is not None and not evidence.missing else " (— without per-image evidence)"
    text.append(f"**Boundary IoU** of the pet{boundary} ([Accuracy in detail](#accuracy-in-detail)); latency p50 "
                "at batch 1 after warm-up; parameters in millions. Weights, seeds and the other costs are under "
                f"[{COSTS}](#{anchor(COSTS)}); calibration under [Calibration](#calibration). *(classical)* marks "
                "untrained, parameter-free segmenters.")
    return " ".join(text)
