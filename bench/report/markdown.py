"""Assemble leaderboard.md: provenance header, warnings, tables, and the figures with captions.

Why one module of this size: the leaderboard's sections in reading order, one function each,
sharing the anchors and captions that link them; the next growth should move sections into
modules of their own.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from bench.report import evidence as ev
from bench.report import tables
from bench.report.comparable import Selection
from bench.report.load import Results, as_bool
from bench.report.stats import NO_EVIDENCE, EvidenceSummary

NOT_RANKED = "Not ranked: runs of another comparison context"
OTHER_DEVICES = "Costs measured on other devices"
SIGNIFICANCE = "Significance: which models are tied with #1"
COSTS = "Costs"
#: The leading deep models: the reliability diagram's and the "best calibrated" line's.
LEADING = 4


@dataclass(frozen=True)
class FigureEntry:
    """A figure written beside leaderboard.md, or the reason it could not be drawn."""

    title: str
    filename: str | None
    caption: str


def _values(results: Results, runs: pd.DataFrame, column: str) -> list[str]:
    """Distinct stored values of an environment column (runs.csv first, environment.json second)."""
    if column in runs.columns:
        values = runs[column].dropna().astype(str).str.strip()
        values = sorted(v for v in set(values) if v and v.lower() != "nan")
        if values:
            return values
    value = results.environment.get(column)
    return [str(value)] if value not in (None, "") else []


def _one(results: Results, runs: pd.DataFrame, column: str, missing: str = "not recorded") -> str:
    values = _values(results, runs, column)
    return ", ".join(values) if values else missing


def is_synthetic(results: Results, runs: pd.DataFrame) -> bool:
    if "synthetic" in runs.columns and len(runs):
        return bool(as_bool(runs["synthetic"]).any())
    return str(results.environment.get("synthetic", "")).strip().lower() in {"true", "1", "yes"}


#: Longest text of a provenance cell: the full config stays in runs.csv.
CELL_MAX = 120
#: Settings shown elsewhere in the provenance (or the sweep's, not the run's): left out of the groups.
_SHOWN_ELSEWHERE = {"data", "dataset_fingerprint", "profile.description", "profile.name", "profile.seeds",
                    "profile.data", "profile.jobs"}
_TRAINING = {"epochs", "steps_per_epoch", "batch_size", "learning_rate", "augment", "freeze_encoder", "weights",
             "shuffle_buffer", "val_subsplits", "precise_bn_batches", "run_eagerly"}


def _clip(text: str, limit: int = CELL_MAX) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _setting(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _distinct(results: Results, runs: pd.DataFrame, column: str) -> pd.Series:
    """Runs per distinct stored value of a column (most first, then by value); environment.json's
    value for every run where runs.csv lacks the column."""
    if column in runs.columns:
        values = runs[column].map(lambda v: "" if pd.isna(v) else _setting(v).strip())
        values = values[(values != "") & (values.str.lower() != "nan")]
        if len(values):
            counts = values.value_counts()
            return counts.iloc[sorted(range(len(counts)), key=lambda i: (-counts.iloc[i], counts.index[i]))]
    value = results.environment.get(column)
    return pd.Series({str(value): len(runs)}, dtype=int) if value not in (None, "") else pd.Series(dtype=int)


def _counted(counts: pd.Series, unit: str = "") -> str:
    """``a (4), b (2), … and 3 more``, at most :data:`CELL_MAX` characters."""
    parts = [f"{value} ({n}{unit})" for value, n in counts.items()]
    text = f"{len(parts)} values: "
    for i, part in enumerate(parts):
        rest = f", … and {len(parts) - i} more"
        if len(text) + len(part) + 2 + (len(rest) if i < len(parts) - 1 else 0) > CELL_MAX:
            return text.rstrip(", ") + rest
        text += part + (", " if i < len(parts) - 1 else "")
    return text


def _setting_group(key: str) -> str:
    if key.startswith("profile.timing."):
        return "Timing"
    if key.startswith("profile."):
        return "Training" if key.removeprefix("profile.") in _TRAINING else "Evaluation"
    return "Run"


def _packed(label: str, items: list[str]) -> list[tuple[str, str]]:
    """``label: a, b, c`` as rows of at most :data:`CELL_MAX` characters (``label (cont.)`` after)."""
    rows, line = [], ""
    for item in items:
        item = _clip(item, CELL_MAX)
        if line and len(line) + 2 + len(item) > CELL_MAX:
            rows.append(line)
            line = ""
        line = f"{line}, {item}" if line else item
    if line:
        rows.append(line)
    return [(label if i == 0 else f"{label} (cont.)", text) for i, text in enumerate(rows)]


def _provenance(results: Results, runs: pd.DataFrame) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(shared, varying)``: what every ranked run has in common, as short rows, and only what
    differs between them, with the number of runs of each value. No cell is over 120 characters."""
    shared, varying = [], []

    def one_or_many(label: str, column: str, missing: str = "not recorded") -> str | None:
        counts = _distinct(results, runs, column)
        if len(counts) > 1:
            varying.append((label, _counted(counts)))
            return None
        return counts.index[0] if len(counts) else missing

    dates = _values(results, runs, "date")
    date = dates[0] if len(dates) == 1 else (f"{dates[0]} to {dates[-1]}" if dates else "not recorded")
    dataset = one_or_many("Dataset", "dataset")
    train, test = one_or_many("Train images", "dataset_train_size", "?"), one_or_many("Test images",
                                                                                     "dataset_test_size", "?")
    photos = "synthetic data (generated)" if is_synthetic(results, runs) else "real photos"
    if dataset is not None:
        sizes = f", {train} train / {test} test images" if train is not None and test is not None else ""
        shared.append(("Dataset", f"{dataset}{sizes}, {photos}"))
    source, location = one_or_many("Source", "dataset_source"), one_or_many("Location", "dataset_location", "")
    if source is not None:
        shared.append(("Source", _clip(f"{source}: {location}" if location else source)))
    fingerprint = one_or_many("Fingerprint", "dataset_fingerprint")
    if fingerprint is not None:
        shared.append(("Fingerprint", fingerprint))
    profile = one_or_many("Profile", "profile") or ""
    description = one_or_many("Profile description", "config.profile.description", "")
    if profile:
        shared.append(("Profile", _clip(f"{profile} ({description})" if description else profile)))
    device = one_or_many("Device", "device")
    if device is not None:
        shared.append(("Device", device))
    versions = [f"{name} {v}" for name, column in [("TensorFlow", "tf_version"), ("Keras", "keras_version"),
                                                    ("Python", "python_version"), ("CUDA", "cuda_version")]
                if (v := one_or_many(name, column)) is not None]
    if versions:
        shared.append(("Versions", ", ".join(versions)))
    shared.append(("Date", date))
    commit = one_or_many("Commit", "git_commit")
    if commit is not None:
        shared.append(("Commit", commit))

    weights = runs.get("weights", pd.Series("", index=runs.index)).fillna("none").astype(str).map(tables.weights_label)
    per_weights = runs.assign(weights=weights).groupby("weights")["model"].nunique().sort_index()
    weights_text = _clip("; ".join(
        f"{w} ({'pretrained' if tables.is_pretrained(w) else 'not pretrained'}): {n} model{'s' * (n != 1)}"
        for w, n in per_weights.items()) or "not recorded")
    (varying if len(per_weights) > 1 else shared).append(("Weights", weights_text))

    groups: dict[str, list[str]] = {}
    for column in sorted(c for c in runs.columns if c.startswith("config.")):
        key = column.removeprefix("config.")
        counts = _distinct(results, runs, column)
        if len(counts) > 1:
            if key not in {"profile.description"}:
                varying.append((key, _counted(counts)))
        elif len(counts) == 1 and key not in _SHOWN_ELSEWHERE:
            name = key.removeprefix("profile.timing.").removeprefix("profile.")
            groups.setdefault(_setting_group(key), []).append(f"{name}={counts.index[0]}")
    for label in ("Training", "Evaluation", "Timing", "Run"):
        shared += _packed(f"{label} settings", groups.get(label, []))
    return shared, varying


def anchor(title: str) -> str:
    """The GitHub anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return "".join(c for c in title.lower() if c.isalnum() or c in " -").replace(" ", "-")


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
        out.append(f"**No pretrained weights for {runs.loc[fallback.index, 'model'].nunique()} models**: ImageNet "
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
    commits = _values(results, runs, "git_commit") if "git_commit" in runs.columns else []
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
    runs.csv (rows from before these columns existed ran in :data:`bench.modes.LEGACY`)."""
    from bench.modes import LEGACY

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
        if len(tied) > 1:
            named = ", ".join(f"{m} ({tables.fmt_ratio(float(ok.loc[ok['model'] == m, 'miou'].iloc[0]))})"
                              for m in tied)
            lines.append(f"**Most accurate: no single model.** The test images cannot tell #1 from {len(tied) - 1} "
                         f"other{'s' * (len(tied) > 2)} (paired bootstrap, Holm-corrected, 5%): the tied group is "
                         f"{named}. See [{SIGNIFICANCE}](#{anchor(SIGNIFICANCE)}).")
        elif untested:
            lines.append(f"**Highest mIoU:** {tables.model_label(best)} ({score}), ahead of every tested model at 5% "
                         f"(paired bootstrap, Holm); {len(untested)} model{'s' * (len(untested) != 1)} without "
                         f"per-image evidence could not be tested ({', '.join(untested)}).")
        elif len(ok) == 1:
            lines.append(f"**Most accurate:** {tables.model_label(best)} ({score}), the only ranked model.")
        else:
            lines.append(f"**Most accurate:** {tables.model_label(best)} ({score}): ahead of every other model on "
                         "the same test images (paired bootstrap, Holm-corrected, 5%).")
    if "latency_p50_ms" in ok.columns and ok["latency_p50_ms"].notna().any():
        fast = ok.sort_values(["latency_p50_ms", "model"], kind="stable").iloc[0]
        where = f" (on {device})" if device else ""
        lines.append(f"**Fastest{where}:** {tables.model_label(fast)} ({fast['latency_p50_ms']:.1f} ms p50, "
                     f"mIoU {fast['miou']:.3f})")
    deep = ok[(ok["family"] != "classical")]
    if "params_total" in deep.columns and deep["params_total"].notna().any():
        small = deep.sort_values(["params_total", "model"], kind="stable").iloc[0]
        lines.append(f"**Smallest trained model:** {small['model']} ({tables.fmt_params(small['params_total'])} M "
                     f"parameters, mIoU {small['miou']:.3f})")
    leading = deep.dropna(subset=["ece"]).head(LEADING)  # a useless model can be calibrated: among the leaders
    if len(leading) > 1:
        calibrated = leading.sort_values(["ece", "model"], kind="stable").iloc[0]
        lines.append(f"**Best calibrated of the {len(leading)} most accurate deep models:** {calibrated['model']} "
                     f"(ECE {calibrated['ece']:.3f}, mIoU {calibrated['miou']:.3f})")
    front = table[pareto].sort_values(["latency_p50_ms", "model"], kind="stable")
    if len(front):
        lines.append("**Pareto front, accuracy vs latency** (nothing else is both more accurate and faster): "
                     + ", ".join(tables.model_label(r) for _, r in front.iterrows()))
    return lines


def _flat(value: object, key: str = "") -> list[tuple[str, str]]:
    """Nested dicts as dotted keys, lists as comma-separated text: one short row per stored value."""
    if isinstance(value, dict):
        return [pair for k in sorted(value) for pair in _flat(value[k], f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [(key, ", ".join(str(v) for v in value) or "(none)")]
        return [pair for i, v in enumerate(value) for pair in _flat(v, f"{key}.{i}")]
    return [(key, str(value))]


def _environment_table(environment: dict) -> str:
    return tables.key_value_table([(f"`{key}`", _clip(text)) for key, text in _flat(environment)])


def build_markdown(results: Results, runs: pd.DataFrame, superseded: pd.DataFrame, table: pd.DataFrame,
                   pareto: pd.Series, figures: list[FigureEntry], classical_section: list[str] | None = None,
                   selection: Selection | None = None, evidence: EvidenceSummary | None = None,
                   placed: dict[str, FigureEntry] | None = None) -> str:
    """The whole of leaderboard.md as text (deterministic for the same stored results).

    ``classical_section``: the "Edge-based vs region-based" lines (bench.report.classical), placed
    after the per-class IoU; absent when no classical run is stored. ``selection``: what was left
    out of the ranking (bench.report.comparable): runs of other contexts, costs of other devices.
    ``evidence``: what the per-image evidence says (:func:`bench.report.stats.evidence_summary`);
    ``placed``: the figures drawn inside their sections (``intervals``, ``reliability``,
    ``mc_curve``, ``mc_gallery``), by key.
    """
    several = selection is not None and selection.several_devices
    device = selection.device if several else None
    placed = placed or {}
    intervals = evidence.intervals if evidence is not None else None
    profile = _one(results, runs, "profile", results.root.name)
    n_ok = int((runs["status"] == "ok").sum())
    shared, varying = _provenance(results, runs)
    parts = [f"# segbench leaderboard: `{profile}` profile", ""]
    parts += [f"> ⚠️ {w}\n>" for w in _warnings(results, runs, superseded, table, selection, evidence)]
    if parts[-1].endswith(">"):
        parts[-1] = parts[-1][:-2]
        parts.append("")
    parts += [
        f"Generated by `python -m bench report` from the stored results of {len(runs)} runs ({n_ok} ok) of "
        f"{len(table)} models. Nothing here is re-measured: every number is read from `runs.csv`, `metrics.csv` "
        "and each run's `evidence.npz` where it stored one, and aggregated over seeds.",
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
    parts += [
        "## At a glance",
        "",
        *[f"- {line}" for line in _at_a_glance(table, pareto, device, evidence)],
        "",
        "## Leaderboard",
        "",
        _leaderboard_caption(table, evidence) + (_device_note(selection) if several else ""),
        "",
        tables.leaderboard_table(table, intervals, tables.tie_marks(
            evidence.test if evidence is not None else None, table.dropna(subset=["miou"])["model"].tolist())),
        "",
        *(_other_devices(selection, table) if several else []),
        *_significance(table, evidence, placed.get("intervals")),
        *_accuracy(results, runs, table, evidence),
        "## Per-class IoU",
        "",
        tables.class_iou_table(table),
        "",
        *_calibration(table, placed.get("reliability")),
        *_monte_carlo(table, evidence, placed.get("mc_curve"), placed.get("mc_gallery")),
        f"## {COSTS}",
        "",
        "Means over the successful seeds: parameters in millions, FLOPs per image in GFLOPs, latency at batch 1 "
        "after warm-up, inference throughput at a fixed larger batch, training time spent in `fit`, peak "
        "resident memory of the run's process." + (" Costs of runs measured on another device are not here (see "
                                                   f"[{OTHER_DEVICES}](#{anchor(OTHER_DEVICES)}))." if several else ""),
        "",
        tables.costs_table(table),
        "",
        *(classical_section or []),
        "## Failed runs",
        "",
    ]
    failed = runs[runs["status"] != "ok"]
    parts += [tables.failed_runs_table(failed) if len(failed) else "None: every run finished.", ""]
    if selection is not None and selection.others:
        parts += _not_ranked(selection, is_synthetic(results, runs))
    parts += ["## Figures", ""]
    for fig in figures:
        parts += [f"### {fig.title}", ""]
        if fig.filename:
            parts += [f"![{fig.title}]({fig.filename})", "", f"*{fig.caption}*", ""]
        else:
            parts += [f"Not drawn: {fig.caption}", ""]
    parts += ["## Machine and environment", "", "As stored in `environment.json` by the latest sweep.", "",
              "<details><summary>environment.json</summary>", "", _environment_table(results.environment), "",
              "</details>", ""]
    return "\n".join(parts)


def _figure_lines(entry: FigureEntry | None) -> list[str]:
    if entry is None:
        return []
    if not entry.filename:
        return [f"*{entry.title} not drawn: {entry.caption}*", ""]
    return [f"![{entry.title}]({entry.filename})", "", f"*{entry.caption}*", ""]


def _interval_kinds(table: pd.DataFrame, evidence: EvidenceSummary | None) -> tuple[list[str], list[str], list[str]]:
    """Ranked models by the interval they have: ``(bootstrap, t, none)``."""
    ranked = table.dropna(subset=["miou"])
    kinds = dict(evidence.intervals["interval"]) if evidence is not None else {}
    boot = [m for m in ranked["model"] if kinds.get(m) == "bootstrap"]
    t = [m for m in ranked["model"] if kinds.get(m) == "t" or (
        evidence is None and not pd.isna(ranked.loc[ranked["model"] == m, "miou_ci_low"].iloc[0]))]
    none = [m for m in ranked["model"] if m not in boot and m not in t]
    return boot, t, none


def _leaderboard_caption(table: pd.DataFrame, evidence: EvidenceSummary | None) -> str:
    boot, t, none = _interval_kinds(table, evidence)
    text = ["Ranked by mean mIoU (pooled over the test images) over the successful seeds, ties by model id."]
    if boot:
        text.append(f"**mIoU [95% interval]**: a percentile bootstrap over the test images ({ev.N_RESAMPLES:,} "
                    f"resamples, fixed resampling seed {ev.RESAMPLING_SEED}; over seeds first, then images, where a "
                    "model has several seeds)" + (", for every model." if not t and not none else "."))
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


def _significance(table: pd.DataFrame, evidence: EvidenceSummary | None, figure: FigureEntry | None) -> list[str]:
    out = [f"## {SIGNIFICANCE}", ""]
    test = evidence.test if evidence is not None else None
    if test is None:
        why = evidence.no_test if evidence is not None and evidence.no_test else NO_EVIDENCE
        intervals = evidence is not None and evidence.intervals["interval"].ne("").any()
        overlap = "where their intervals overlap" if intervals else "between close models"
        out += [(f"No significance test: {why}. No model is called tied with #1 or better than another; {overlap}, "
                 "the order may be noise."), ""]
    else:
        n_images = len(next(iter(evidence.runs.values()))[0]["image_index"])
        tied = evidence.tied
        out += [
            (f"Each model is compared with #1 on the same {n_images} test images: a paired bootstrap of the "
            f"difference in pooled mIoU ({ev.N_RESAMPLES:,} resamples, seed {ev.RESAMPLING_SEED}; a model's seeds "
            "are resampled too), two-sided, with Holm's correction over the "
            f"{len(test) - 1} comparison{'s' * (len(test) != 2)}. A model is tied with #1 when its corrected "
            "p-value is above 0.05: on these images it cannot be told apart from #1. "
            f"**Tied with #1 ({len(tied)} model{'s' * (len(tied) != 1)}):** {', '.join(tied)}."),
            "",
        ]
        if evidence.untested:
            out += [f"Not tested, for want of per-image evidence: {', '.join(evidence.untested)}.", ""]
        out += [tables.significance_table(test, table), ""]
    if evidence is not None and evidence.problems:
        out += ["Evidence that could not be used:", "", *[f"- {tables.escape_cell(p)}" for p in evidence.problems], ""]
    return out + _figure_lines(figure)


def _accuracy(results: Results, runs: pd.DataFrame, table: pd.DataFrame, evidence: EvidenceSummary | None) -> list[str]:
    widths = sorted({int(w) for w in table.get("boundary_width_px", pd.Series(dtype=float)).dropna()})
    size = _values(results, runs, "config.profile.image_size")
    band = (f"a band of {', '.join(map(str, widths))} px" if widths else "a band")
    band += f" at {size[0]}×{size[0]} px" if len(size) == 1 and widths else ""
    text = (
        "Two aggregations of the same confusion counts. **mIoU pooled** (the leaderboard's): one confusion matrix "
        "summed over every test image, then the IoU of each class and their mean, as PASCAL VOC, Cityscapes and "
        "MMSegmentation report it; large pets weigh more. **mIoU per image**: each image's own mIoU (a class absent "
        "from an image's truth and prediction left out), then the mean over images, as segmentation_models_pytorch's "
        "image-wise reduction; every image weighs the same. **Foreground IoU**: the dataset's own measure, pet vs "
        "background IoU with the trimap's border pixels ignored (Parkhi et al., CVPR 2012). **Boundary IoU** (Cheng "
        f"et al., CVPR 2021) of the pet: IoU of the pixels within {band} (2% of the image diagonal) of the true and "
        "the predicted pet contours, summed over images; its interval is a bootstrap over the images. Values are "
        "mean ± std over seeds (n=1: one seed)."
    )
    missing = evidence.missing if evidence is not None else table.dropna(subset=["miou"])["model"].tolist()
    if missing:
        text += (f" {len(missing)} model{'s' * (len(missing) != 1)} show — for mIoU per image, foreground IoU and "
                 "Boundary IoU: their runs were measured before `evidence.npz` existed, and these need its "
                 "per-image counts.")
    intervals = evidence.intervals if evidence is not None else None
    return ["## Accuracy in detail", "", text, "", tables.accuracy_table(table, intervals), ""]


def _calibration(table: pd.DataFrame, figure: FigureEntry | None) -> list[str]:
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
    return out + _figure_lines(figure)


def _monte_carlo(table: pd.DataFrame, evidence: EvidenceSummary | None, curve: FigureEntry | None,
                 gallery: FigureEntry | None) -> list[str]:
    mc = table.dropna(subset=["mc_miou"]) if "mc_miou" in table.columns else table.iloc[0:0]
    if mc.empty:
        return []
    return [
        "## Monte-Carlo dropout",
        "",
        ("Models with dropout evaluated as Bayesian (Kendall et al., BMVC 2017): dropout left on at test time and the "
        "softmax of T stochastic passes averaged, beside the usual deterministic pass (dropout off). First the "
        "mIoU of both, the Monte-Carlo one with its bootstrap interval, their paired difference on the same test "
        "images, and the latency (batch 1, p50) of one pass and of the T passes; then the calibration of both, and "
        "how well the predictive entropy of the T passes finds the wrong pixels: **AUROC**, the chance that a wrong "
        "pixel is more uncertain than a right one, and **PAvPU** (Mukhoti & Gal 2018), the share of pixels that are "
        "accurate and certain or inaccurate and uncertain, uncertain meaning an entropy above half of log 3."),
        "",
        tables.monte_carlo_table(mc, evidence.intervals if evidence is not None else None,
                                 evidence.mc_vs_deterministic if evidence is not None else {}),
        "",
        tables.monte_carlo_uncertainty_table(mc),
        "",
        *_figure_lines(curve),
        *_figure_lines(gallery),
    ]


def _device_note(selection: Selection) -> str:
    ok = selection.results.runs
    ok = ok[ok["status"] == "ok"]
    n = int((ok["run_id"].map(selection.devices) == selection.device).sum())
    return (f" **Latency, throughput, times and memory were measured on {tables.escape_cell(selection.device)}** "
            f"({n} of {len(ok)} successful runs): a model whose runs ran on another device shows — for them (its "
            f"quality still ranks), and those costs are under [{OTHER_DEVICES}](#{anchor(OTHER_DEVICES)}). "
            "Parameters and FLOPs do not depend on the device.")


def _other_devices(selection: Selection, table: pd.DataFrame) -> list[str]:
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


def _not_ranked(selection: Selection, synthetic_ranked: bool) -> list[str]:
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
