"""The leaderboard report: Markdown tables and seaborn figures rendered from stored results only.

``render_report(results_dir)`` reads one profile's ``runs.csv``, ``metrics.csv``, ``history.csv``,
``environment.json`` and per-run ``predictions.npz`` (docs/results-schema.md) and writes
``leaderboard.md`` with its PNG figures beside them. It never recomputes a metric, and rendering
the same stored results twice gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.report import classical, figures
from bench.report.load import Predictions, Results, ResultsNotFoundError, load_results
from bench.report.markdown import FigureEntry, build_markdown
from bench.report.stats import current_runs, model_table, pareto_front, per_run_metrics
from bench.store import atomic_write_text

__all__ = ["FIGURE_FILES", "LEADERBOARD_MD", "ResultsNotFoundError", "render_report"]

LEADERBOARD_MD = "leaderboard.md"
FIGURE_FILES = {
    "pareto": "accuracy_vs_latency.png",
    "params": "accuracy_vs_params.png",
    "miou": "miou_by_model.png",
    "heatmap": "class_iou_heatmap.png",
    "curves": "training_curves.png",
    "gallery": "prediction_gallery.png",
    "classical": "classical_gallery.png",
}


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
    results = load_results(results_dir)
    runs, superseded = current_runs(results.runs)
    table = model_table(results)
    per_run = per_run_metrics(results, runs)
    pareto = pareto_front(table, "miou", "latency_p50_ms")
    labels = {i: (f"{m} (classical)" if f == "classical" else m)
              for i, m, f in zip(table.index, table["model"], table["family"], strict=True)}

    ranked = table.dropna(subset=["miou"])["model"].tolist()
    ok_ids = set(runs.loc[runs["status"] == "ok", "run_id"])
    history = results.history[results.history["run_id"].isin(ok_ids)].dropna(subset=["loss", "val_loss"], how="all")
    untrained = [m for m in ranked if m not in set(history["model"])]
    gallery, no_gallery = _gallery_predictions(results, runs, table)

    single = table["miou_n"].fillna(0).le(1).all() if "miou_n" in table.columns else True
    drawn = [
        ("pareto", "Accuracy vs latency", figures.accuracy_vs_latency(table, pareto) if len(table) else None,
         "Mean mIoU against median latency (batch 1, log axis when latencies span more than 20x); the dashed "
         "staircase and rings mark the Pareto front, the models no other model beats on both."),
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
        ("gallery", "Prediction gallery", figures.prediction_gallery(gallery),
         "The same test images for every model: input, ground truth, then each model's prediction "
         "(its lowest successful seed), models in leaderboard order"
         + (f"; no stored predictions for {', '.join(no_gallery)}." if no_gallery else ".")),
    ]
    comparison = classical.compare(table, classical.method_families(results, runs))
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
        if key == "classical":  # drawn inside its own section, only when there are classical runs
            path = results_dir / FIGURE_FILES[key]
            if fig is None:
                path.unlink(missing_ok=True)
            else:
                figures.save(fig, path)
                classical_figure = (path.name, caption)
            continue
        path = results_dir / FIGURE_FILES[key]
        if fig is None:
            path.unlink(missing_ok=True)  # a stale figure from an earlier render would contradict the tables
            entries.append(FigureEntry(title, None, "nothing stored to draw it from."))
            continue
        figures.save(fig, path)
        entries.append(FigureEntry(title, path.name, caption))

    md_path = results_dir / LEADERBOARD_MD
    extra = classical.section(comparison, classical_figure) if comparison is not None else []
    text = build_markdown(results, runs, superseded, table, pareto, entries, extra)
    atomic_write_text(md_path, text)
    return md_path
