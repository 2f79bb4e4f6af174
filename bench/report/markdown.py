"""Assemble leaderboard.md: provenance header, warnings, tables, and the figures with captions."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from bench.report import tables
from bench.report.load import Results, as_bool


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


def _provenance(results: Results, runs: pd.DataFrame) -> list[tuple[str, str]]:
    dates = _values(results, runs, "date")
    date = dates[0] if len(dates) == 1 else (f"{dates[0]} to {dates[-1]}" if dates else "not recorded")
    train, test = _one(results, runs, "dataset_train_size", "?"), _one(results, runs, "dataset_test_size", "?")
    weights = runs.get("weights", pd.Series("", index=runs.index)).fillna("none").astype(str).map(tables.weights_label)
    per_weights = runs.assign(weights=weights).groupby("weights")["model"].nunique().sort_index()
    weights_text = "; ".join(
        f"{w} ({'pretrained' if tables.is_pretrained(w) else 'not pretrained'}): {n} model{'s' * (n != 1)}"
        for w, n in per_weights.items()) or "not recorded"
    config = [c for c in runs.columns if c.startswith("config.")]
    constant = [f"{c.removeprefix('config.')}={runs[c].iloc[0]}" for c in sorted(config)
                if runs[c].astype(str).nunique() == 1]
    varying = [c.removeprefix("config.") for c in sorted(config) if runs[c].astype(str).nunique() > 1]
    versions = ", ".join(f"{name} {_one(results, runs, column)}" for name, column in [
        ("TensorFlow", "tf_version"), ("Keras", "keras_version"), ("Python", "python_version"),
        ("CUDA", "cuda_version")])
    pairs = [
        ("Dataset", _one(results, runs, "dataset")),
        ("Source", _one(results, runs, "dataset_source")),
        ("Location", _one(results, runs, "dataset_location")),
        ("Fingerprint", _one(results, runs, "dataset_fingerprint")),
        ("Size", f"{train} train / {test} test images"),
        ("Synthetic data", "yes" if is_synthetic(results, runs) else "no (real photos)"),
        ("Profile", _one(results, runs, "profile", results.root.name)),
        ("Device", _one(results, runs, "device")),
        ("Versions", versions),
        ("Date", date),
        ("Commit", _one(results, runs, "git_commit")),
        ("Weights", weights_text),
    ]
    if constant:
        pairs.append(("Run config", ", ".join(constant)))
    if varying:
        pairs.append(("Varies between runs", ", ".join(varying)))
    return pairs


def _warnings(results: Results, runs: pd.DataFrame, superseded: pd.DataFrame, table: pd.DataFrame) -> list[str]:
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
    single = table[(table["n_ok"] == 1)]["model"].tolist()
    if single and len(single) == int((table["n_ok"] > 0).sum()):
        out.append("**One successful seed per model**: no spread or confidence interval; differences between "
                   "models may be noise.")
    elif single:
        out.append(f"**One successful seed only** for {', '.join(single)}: no spread or confidence interval.")
    if "concurrent_runs" in runs.columns:
        shared = runs[(runs["status"] == "ok") & (pd.to_numeric(runs["concurrent_runs"], errors="coerce") > 1)]
        if len(shared):
            out.append(f"**{len(shared)} of {len(runs)} runs shared the machine with other runs** (`--jobs`): their "
                       "latency, throughput and times are slower than they would be alone, and not comparable with "
                       "runs measured one at a time.")
    for column, what in [("git_commit", "commits"), ("dataset_fingerprint", "dataset fingerprints"),
                         ("device", "devices")]:
        values = _values(results, runs, column) if column in runs.columns else []
        if len(values) > 1:
            out.append(f"**Runs span several {what}** ({', '.join(values)}): they may not be comparable.")
    if len(superseded):
        out.append(f"{len(superseded)} earlier run(s) of the same model and seed were superseded by a later "
                   "run and are not shown.")
    return out


def _at_a_glance(table: pd.DataFrame, pareto: pd.Series) -> list[str]:
    ok = table.dropna(subset=["miou"])
    if ok.empty:
        return ["No model finished successfully."]
    lines = []
    best = ok.iloc[0]
    lines.append(f"**Most accurate:** {best['model']} (mIoU {tables.fmt_spread(best, 'miou')})")
    if "latency_p50_ms" in ok.columns and ok["latency_p50_ms"].notna().any():
        fast = ok.sort_values(["latency_p50_ms", "model"], kind="stable").iloc[0]
        lines.append(f"**Fastest:** {tables.model_label(fast)} ({fast['latency_p50_ms']:.1f} ms p50, "
                     f"mIoU {fast['miou']:.3f})")
    deep = ok[(ok["family"] != "classical")]
    if "params_total" in deep.columns and deep["params_total"].notna().any():
        small = deep.sort_values(["params_total", "model"], kind="stable").iloc[0]
        lines.append(f"**Smallest trained model:** {small['model']} ({tables.fmt_params(small['params_total'])} M "
                     f"parameters, mIoU {small['miou']:.3f})")
    front = table[pareto].sort_values(["latency_p50_ms", "model"], kind="stable")
    if len(front):
        lines.append("**Pareto front, accuracy vs latency** (nothing else is both more accurate and faster): "
                     + ", ".join(tables.model_label(r) for _, r in front.iterrows()))
    return lines


def _environment_table(environment: dict) -> str:
    pairs = []
    for key in sorted(environment):
        value = environment[key]
        text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
        pairs.append((f"`{key}`", text))
    return tables.key_value_table(pairs)


def build_markdown(results: Results, runs: pd.DataFrame, superseded: pd.DataFrame, table: pd.DataFrame,
                   pareto: pd.Series, figures: list[FigureEntry], classical_section: list[str] | None = None) -> str:
    """The whole of leaderboard.md as text (deterministic for the same stored results).

    ``classical_section``: the "Edge-based vs region-based" lines (bench.report.classical), placed
    after the per-class IoU; absent when no classical run is stored.
    """
    profile = _one(results, runs, "profile", results.root.name)
    n_ok = int((runs["status"] == "ok").sum())
    parts = [f"# segbench leaderboard: `{profile}` profile", ""]
    parts += [f"> ⚠️ {w}\n>" for w in _warnings(results, runs, superseded, table)]
    if parts[-1].endswith(">"):
        parts[-1] = parts[-1][:-2]
        parts.append("")
    parts += [
        f"Generated by `python -m bench report` from the stored results of {len(runs)} runs ({n_ok} ok) of "
        f"{len(table)} models. Nothing here is re-measured: every number is read from `runs.csv` and "
        "`metrics.csv`, and aggregated over seeds.",
        "",
        "## Provenance",
        "",
        tables.key_value_table(_provenance(results, runs)),
        "",
        "## At a glance",
        "",
        *[f"- {line}" for line in _at_a_glance(table, pareto)],
        "",
        "## Leaderboard",
        "",
        "Ranked by mean mIoU over the successful seeds (ties by model id). mIoU is mean ± sample standard "
        "deviation over seeds, with a 95% confidence interval from the t-distribution; with one seed there "
        "is neither (n=1). Cost columns are means over seeds: parameters in millions, FLOPs per image in "
        "GFLOPs, latency at batch 1 after warm-up, inference throughput at a fixed larger batch, training "
        "time spent in `fit`, peak resident memory of the run's process. *(classical)* marks untrained, "
        "parameter-free segmenters.",
        "",
        tables.leaderboard_table(table),
        "",
        "## Per-class IoU",
        "",
        tables.class_iou_table(table),
        "",
        *(classical_section or []),
        "## Failed runs",
        "",
    ]
    failed = runs[runs["status"] != "ok"]
    parts += [tables.failed_runs_table(failed) if len(failed) else "None: every run finished.", ""]
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
