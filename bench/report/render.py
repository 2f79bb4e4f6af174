"""The report's orchestration: every table, figure and section of the leaderboard, in page order.

``render_report(results_dir)`` reads one profile's ``runs.csv``, ``metrics.csv``, ``history.csv``,
``environment.json`` and per-run ``predictions.npz`` and ``evidence.npz`` (docs/results-schema.md)
and writes ``leaderboard.md`` with its PNG figures beside them. It never recomputes a stored metric;
the intervals, the test against #1 and the curves come from the stored per-image evidence with a
fixed resampling seed, so rendering the same stored results twice gives byte-identical files. It
ranks the runs of the folder's one comparison context on one Keras backend only, and compares costs
on one device (:mod:`bench.report.comparable`); other backends' runs are side by side in a section
of their own (:mod:`bench.report.keras_backends`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from bench.report import comparable, edge_vs_region, figures, keras_backends, training
from bench.report.load import Predictions, Results, ResultsNotFoundError, load_results
from bench.report.markdown import LEADING, Page, build_markdown
from bench.report.sections import FigureEntry
from bench.report.summary import (
    EvidenceSummary,
    current_runs,
    evidence_summary,
    model_table,
    pareto_front,
    per_run_metrics,
)
from bench.store.results import atomic_write_text

__all__ = ["FIGURE_FILES", "LEADERBOARD_MD", "ResultsNotFoundError", "render_report"]

LEADERBOARD_MD = "leaderboard.md"
FIGURE_FILES = {
    "pareto": "accuracy_vs_latency.png",
    "params": "accuracy_vs_params.png",
    "miou": "miou_by_model.png",
    "heatmap": "class_iou_heatmap.png",
    "curves": "training_curves.png",
    "val_curves": "validation_curves.png",
    "gallery": "prediction_gallery.png",
    "classical": "classical_gallery.png",
    "intervals": "miou_intervals.png",
    "reliability": "reliability_diagram.png",
    "mc_curve": "mc_sample_curve.png",
    "mc_gallery": "mc_uncertainty_gallery.png",
}
#: The gallery shows this many deep models (the most accurate) and the best classical segmenter.
GALLERY_MODELS = 8


def _label(model: str, family: str) -> str:
    return f"{model} (classical)" if family == "classical" else model


def _gallery_predictions(results: Results, runs: pd.DataFrame, table: pd.DataFrame,
                         label: Callable[[str, str], str] = _label) -> tuple[dict[str, Predictions], list[str]]:
    """One ok run per model of ``table`` (its lowest seed with stored predictions), in table order,
    keyed by ``label(model, family)``."""
    chosen: dict[str, Predictions] = {}
    without: list[str] = []
    reference = None
    for model in table.dropna(subset=["miou"])["model"]:
        ok = runs[(runs["model"] == model) & (runs["status"] == "ok")].sort_values(["seed", "run_id"])
        found = next((p for p in (results.predictions(r) for r in ok["run_id"]) if p is not None), None)
        if found is None or (reference is not None and list(found.indices) != list(reference.indices)):
            without.append(model)
            continue
        reference = reference or found
        chosen[label(model, table.loc[table["model"] == model, "family"].iloc[0])] = found
    return chosen, without


def _gallery_table(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The models the gallery shows: the :data:`GALLERY_MODELS` most accurate deep models and the best
    classical segmenter (every classical method has its own gallery), in leaderboard order; and the
    caption's words for them."""
    ranked = table.dropna(subset=["miou"])
    deep = ranked[ranked["family"] != "classical"]
    classical = ranked[ranked["family"] == "classical"]
    top = deep.head(GALLERY_MODELS)
    chosen = ranked[ranked["model"].isin(set(top["model"]) | set(classical["model"].head(1)))]
    if len(chosen) == len(ranked):
        return chosen, "every ranked model"
    words = (f"the {len(top)} most accurate of the {len(deep)} deep models" if len(top) < len(deep)
             else "every deep model")
    if len(classical):
        words += f" and the best classical segmenter, {classical['model'].iloc[0]}"
    return chosen, words + (f" (the gallery stops at {GALLERY_MODELS} deep models to stay readable; all classical "
                            "methods are in their own gallery, every run's predictions in its `predictions.npz`)")


def _interval_rows(table: pd.DataFrame, evidence: EvidenceSummary) -> pd.DataFrame:
    ranked = table.dropna(subset=["miou"])
    marks = {} if evidence.test is None else dict(zip(evidence.test["model"], evidence.test["tied"], strict=True))
    rows = []
    for _, row in ranked.iterrows():
        model = row["model"]
        iv = evidence.intervals.loc[model] if model in evidence.intervals.index else None
        kind = iv["interval"] if iv is not None else ""
        rows.append({"label": _label(model, row["family"]), "miou": row["miou"],
                     "low": iv["miou_low"] if kind else math.nan, "high": iv["miou_high"] if kind else math.nan,
                     "tied": (bool(marks[model]) if model in marks else None)})
    return pd.DataFrame(rows, columns=["label", "miou", "low", "high", "tied"])


def _reliability(table: pd.DataFrame, evidence: EvidenceSummary) -> tuple[dict, dict]:
    bins, ece = {}, {}
    for _, row in table.dropna(subset=["miou"]).iterrows():
        if row["family"] == "classical" or len(bins) == LEADING:
            continue
        found = evidence.calibration_bins(row["model"])
        if found is not None:
            bins[row["model"]] = found
            ece[row["model"]] = float(row.get("ece", math.nan))
    return bins, ece


def _monte_carlo(table: pd.DataFrame, evidence: EvidenceSummary) -> tuple[dict, dict]:
    curves, deterministic = {}, {}
    for _, row in table.dropna(subset=["miou"]).iterrows():
        curve = evidence.sample_curve(row["model"])
        if curve is not None:
            curves[row["model"]] = curve
            deterministic[row["model"]] = (float(row["miou"]), float(row.get("ece", math.nan)))
    return curves, deterministic


def _placed(results_dir: Path, key: str, title: str, fig: Figure | None, caption: str,
            missing: str | None = None) -> FigureEntry | None:
    """Saves a figure drawn inside its section, or removes a stale one; None when there is nothing to say."""
    path = results_dir / FIGURE_FILES[key]
    if fig is None:
        path.unlink(missing_ok=True)  # a stale figure from an earlier render would contradict the tables
        return FigureEntry(title, None, missing) if missing else None
    figures.save(fig, path)
    return FigureEntry(title, path.name, caption)


def render_report(results_dir: Path) -> Path:
    """Write ``leaderboard.md`` and its figures into one profile's results directory.

    Args:
        results_dir: ``results/<profile>``, as written by ``python -m bench run --profile <profile>``.

    Returns:
        The path of ``leaderboard.md``.

    Raises:
        ResultsNotFoundError: A stored file is missing; the message names it and the command to run.
    """
    results_dir = Path(results_dir)
    selection = comparable.select(load_results(results_dir))
    # The folder's context only, costs of the main device only; cost runs (never trained or
    # evaluated) are kept out of every ranking and shown in a table of their own.
    results, costed = training.split_cost_runs(selection.results)
    runs, superseded = current_runs(results.runs)
    table = training.mark_still_improving(model_table(results), runs)
    per_run = per_run_metrics(results, runs)
    pareto = pareto_front(table, "miou", "latency_p50_ms")
    evidence = evidence_summary(results, runs, table)
    labels = {i: (f"{m} (classical)" if f == "classical" else m)
              for i, m, f in zip(table.index, table["model"], table["family"], strict=True)}

    ranked = table.dropna(subset=["miou"])["model"].tolist()
    ok_ids = set(runs.loc[runs["status"] == "ok", "run_id"])
    history = results.history[results.history["run_id"].isin(ok_ids)].dropna(subset=["loss", "val_loss"], how="all")
    untrained = [m for m in ranked if m not in set(history["model"])]
    shown, shown_words = _gallery_table(table)
    gallery, no_gallery = _gallery_predictions(results, runs, shown)
    uncertain = [m for m, p in gallery.items() if p.uncertainty is not None]

    single = table["miou_n"].fillna(0).le(1).all() if "miou_n" in table.columns else True
    on_device = (f" Only runs measured on {selection.device} are plotted; costs measured on other devices are in "
                 "their own table." if selection.several_devices else "")
    drawn = [
        ("pareto", "Accuracy vs latency", figures.accuracy_vs_latency(table, pareto) if len(table) else None,
         "Mean mIoU against median latency (batch 1, log axis when latencies span more than 20x); the dashed "
         "staircase and rings mark the Pareto front, the models no other model beats on both." + on_device),
        ("params", "Accuracy vs parameters", figures.accuracy_vs_params(table) if len(table) else None,
         "Mean mIoU against parameter count on a log axis; parameter-free classical segmenters sit in the grey "
         "strip at the left, ticked 0, since a log axis has no zero."),
        ("miou", "mIoU per model", figures.miou_by_model(table, per_run) if len(table) else None,
         "Mean mIoU per model grouped by architecture and coloured by backbone; whiskers are ±1 standard "
         "deviation over seeds" + (" (none here: one seed per model)" if single else "")
         + ", white dots the individual seeds."),
        ("heatmap", "Per-class IoU", figures.class_iou_heatmap(table, labels) if len(table) else None,
         "Mean IoU per class over seeds, models in leaderboard order."),
        ("curves", "Training curves", figures.training_curves(history, ranked),
         "Training and validation loss per epoch as stored by the runner, one panel per model, one line per "
         "seed" + (f"; no history for {', '.join(untrained)} (not trained)." if untrained else ".")),
        ("val_curves", "Validation curves", figures.validation_curves(history, ranked),
         "Validation mIoU per epoch (after precise BN, on the images held out of the training split), one panel "
         "per model, one line per seed; the ring marks each seed's best epoch, whose weights the run was tested "
         "with where early stopping restored them (see Training)."),
        ("gallery", "Prediction gallery", figures.prediction_gallery(gallery),
         "Input, ground truth, then each model's prediction (its lowest successful seed) on the same test images, "
         f"in leaderboard order, for {shown_words}"
         + (f"; below the prediction of {', '.join(uncertain)} (Monte-Carlo dropout), its predictive entropy"
            if uncertain else "")
         + (f"; no stored predictions for {', '.join(no_gallery)}." if no_gallery else ".")),
    ]
    comparison = edge_vs_region.compare(table, edge_vs_region.method_families(results, runs))
    if comparison is not None:
        rows = comparison.table.assign(family="classical")
        families = dict(zip(comparison.table["model"], comparison.table["family"], strict=True))
        methods = dict(zip(comparison.table["model"], comparison.table["method"], strict=True))
        pictures, missing = _gallery_predictions(
            results, runs, rows, label=lambda m, _: f"{methods[m]}\n({families[m]})")
        drawn.append((
            "classical", "Classical segmentations", figures.prediction_gallery(pictures),
            "The same test images segmented by each classical method, edge-based first: input, ground truth, "
            "then each method's stored prediction" + (f"; none stored for {', '.join(missing)}." if missing else "."),
        ))
    else:
        drawn.append(("classical", "Classical segmentations", None, ""))
    entries = []
    classical_figure = None
    for key, title, fig, caption in drawn:
        if key == "val_curves" and fig is None:  # results trained without validation have no such curve
            _placed(results_dir, key, title, fig, caption)
            continue
        if key == "classical":  # drawn inside its own section, only when there are classical runs
            entry = _placed(results_dir, key, title, fig, caption)
            classical_figure = (entry.filename, entry.caption) if entry is not None else None
            continue
        entries.append(_placed(results_dir, key, title, fig, caption, missing="nothing stored to draw it from."))

    # The figures of the evidence, each inside its own section.
    tested = evidence.test is not None
    bins, ece = _reliability(table, evidence)
    curves, deterministic = _monte_carlo(table, evidence)
    mc_models = table.dropna(subset=["mc_miou"]) if "mc_miou" in table.columns else table.iloc[0:0]
    mc_pictures, _ = _gallery_predictions(results, runs, mc_models)
    mc_pictures = {m: p for m, p in mc_pictures.items() if p.uncertainty is not None}
    interval_rows = _interval_rows(table, evidence)
    placed = {
        "intervals": _placed(
            results_dir, "intervals", "mIoU with its interval",
            figures.miou_intervals(interval_rows) if interval_rows["low"].notna().any() else None,
            "Every ranked model's mean mIoU (dot) and its 95% interval (line), best at the top"
            + ("; shaded: the group the paired test cannot tell from #1 (Holm-corrected, 5%)." if tested else
               "; no group is marked: there is no significance test."),
            missing="no model has an interval." if ranked else None),
        "reliability": _placed(
            results_dir, "reliability", "Reliability diagram", figures.reliability_diagram(bins, ece),
            f"The {len(bins)} most accurate deep model{'s' * (len(bins) != 1)} with calibration evidence: for each of "
            "15 equal-width bins of the softmax confidence, the accuracy of its pixels (bars) against the diagonal of "
            "perfect calibration; hatched: the gap to the bin's mean confidence (above the bar: overconfident). "
            "Below, the share of pixels per bin. Bins summed over seeds."),
        "mc_curve": _placed(
            results_dir, "mc_curve", "Monte-Carlo sample curve", figures.mc_sample_curve(curves, deterministic),
            "mIoU and ECE of the averaged softmax after the first 1, 2, 5, 10, ... stochastic passes, up to T "
            "(mean over seeds); dotted, the same model's deterministic pass.",
            missing="no Monte-Carlo evidence stored." if len(mc_models) else None),
        "mc_gallery": _placed(
            results_dir, "mc_gallery", "Uncertainty maps", figures.prediction_gallery(mc_pictures),
            "The gallery's test images for every Monte-Carlo-dropout model: its deterministic prediction, and "
            "below it the predictive entropy of the averaged T passes (dark: certain, bright: uncertain, at most "
            "log 3 nats)."),
    }

    md_path = results_dir / LEADERBOARD_MD
    extra = keras_backends.section(keras_backends.side_by_side(selection, table["model"].tolist()))
    extra += edge_vs_region.section(comparison, classical_figure, evidence) if comparison is not None else []
    extra += training.training_section(results, runs, table)
    extra += training.untrained_costs_section(costed, model_table(costed) if len(costed.runs) else costed.runs)
    page = Page(results=results, runs=runs, superseded=superseded, table=table, pareto=pareto, figures=entries,
                after_costs=extra, selection=selection, evidence=evidence, placed=placed,
                costed=int(costed.runs["model"].nunique()) if len(costed.runs) else 0)
    atomic_write_text(md_path, build_markdown(page))
    return md_path
