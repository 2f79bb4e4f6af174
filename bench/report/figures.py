"""Seaborn figures of the leaderboard, drawn from the per-model summary and stored records only.

Every function returns a matplotlib ``Figure`` (built without pyplot, so no global backend or
state is touched) or ``None`` when there is nothing to draw; ``save`` writes it byte-for-byte
reproducibly (fixed size and dpi, no software/date metadata).

Why one module of this size: one function per figure, all sharing one style, size and save
step, so that every figure of the report looks alike and re-renders byte-identically.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

from bench.report.load import Predictions
from bench.report.summary import CLASS_METRICS
from segmodels.trimap import CLASS_NAMES

DPI = 110
STYLE = "whitegrid"
# Class indices of the stored masks, in the order of the iou_* metrics: 0 pet, 1 background, 2 border.
MASK_CLASSES = list(CLASS_NAMES)
MASK_COLORS = ["#e69f00", "#3b4cc0", "#d4d4d4"]
GALLERY_MAX_IMAGES = 4
#: Predictive entropy of three classes lies in [0, log 3] nats: the uncertainty maps' colour scale.
MAX_ENTROPY = math.log(len(MASK_CLASSES))


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write a PNG that is identical byte for byte when the inputs are."""
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def backbone_palette(backbones: list[str]) -> dict[str, tuple]:
    """One colour per backbone, the same in every figure."""
    names = sorted(set(backbones))
    return dict(zip(names, sns.color_palette("colorblind", len(names)), strict=True))


def _markers(architectures: list[str]) -> dict[str, str]:
    shapes = ["o", "s", "D", "^", "v", "P", "X", "*", "<", ">", "h", "p"]
    return {a: shapes[i % len(shapes)] for i, a in enumerate(sorted(set(architectures)))}


def _place_labels(ax, xs: np.ndarray, ys: np.ndarray, labels: list[str], fontsize: float = 8) -> None:
    """Label points just above-right; a label that would overlap an earlier one moves to the nearest
    free slot above or below, with a leader line. Deterministic: points are visited in a fixed order."""
    ax.figure.canvas.draw()  # fixes the transforms after layout
    points = ax.transData.transform(np.column_stack([xs, ys]))
    height = fontsize * DPI / 72 * 1.2
    # Every other slot above and below the natural place, nearest first.
    shifts = sorted((k * height * 0.5 * sign for k in range(60) for sign in (1, -1)), key=lambda d: (abs(d), d))
    placed: list[tuple[float, float, float, float]] = []
    for i in np.lexsort((labels, points[:, 0], -points[:, 1])):
        x0, y0 = points[i, 0] + 6, points[i, 1] + 3
        width = len(labels[i]) * fontsize * DPI / 72 * 0.6

        def free(y: float, x0: float = x0, width: float = width) -> bool:
            return not any(x0 < bx1 and x0 + width > bx0 and y < by1 and y + height > by0
                           for bx0, by0, bx1, by1 in placed)

        y = next((y0 + d for d in shifts if free(y0 + d)), y0)
        placed.append((x0, y, x0 + width, y + height))
        ax.annotate(labels[i], (xs[i], ys[i]), xytext=(6 * 72 / DPI, (y - points[i, 1]) * 72 / DPI),
                    textcoords="offset points", fontsize=fontsize, va="bottom", ha="left",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if abs(y - y0) > 1 else None)


def _scatter_size(n_points: int) -> tuple[float, float]:
    """Room for the labels: 9 x 5.5 in for a few models, up to 13 x 9 in for many."""
    return min(13.0, 9.0 + 0.15 * max(0, n_points - 8)), min(9.0, 5.5 + 0.2 * max(0, n_points - 8))


def _scatter(ax, table: pd.DataFrame, x: str, palette: dict, markers: dict) -> None:
    """Colour by backbone (the same colours in every figure), marker by architecture."""
    sns.scatterplot(data=table, x=x, y="miou", hue="backbone", style="architecture", palette=palette,
                    markers=markers, hue_order=sorted(set(table["backbone"])),
                    style_order=sorted(set(table["architecture"])), s=70, ax=ax,
                    edgecolor="black", linewidth=0.5, legend="brief")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def accuracy_vs_latency(table: pd.DataFrame, pareto: pd.Series) -> Figure | None:
    """Mean mIoU against mean latency p50, the Pareto front stepped and ringed, points labelled."""
    data = table.assign(pareto=pareto).dropna(subset=["miou", "latency_p50_ms"])
    if data.empty:
        return None
    palette, markers = backbone_palette(table["backbone"]), _markers(table["architecture"])
    with sns.axes_style(STYLE):
        fig = _figure(*_scatter_size(len(data)))
        ax = fig.add_subplot()
        front = data[data["pareto"]].sort_values("latency_p50_ms")
        ax.step(front["latency_p50_ms"], front["miou"], where="post", color="0.35", lw=1.2, ls="--", zorder=1,
                label="Pareto front")
        ax.scatter(front["latency_p50_ms"], front["miou"], s=260, facecolors="none", edgecolors="0.35", lw=1.2,
                   zorder=1)
        _scatter(ax, data, "latency_p50_ms", palette, markers)
        lat = data["latency_p50_ms"]
        if lat.min() > 0 and lat.max() / lat.min() > 20:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency p50, batch 1 (ms)  ← faster")
        ax.set_ylabel("mIoU (mean over seeds)  ↑ better")
        ax.set_title("Accuracy vs latency (dashed: Pareto front)")
        _pad_limits(ax, data["latency_p50_ms"], data["miou"], log=ax.get_xscale() == "log")
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        _place_labels(ax, data["latency_p50_ms"].to_numpy(), data["miou"].to_numpy(), data["model"].tolist())
    return fig


def _pad_limits(ax, xs: pd.Series, ys: pd.Series, log: bool) -> None:
    """Room on the right for labels and a little above and below the points."""
    lo, hi = float(ys.min()), float(ys.max())
    pad = max((hi - lo) * 0.12, 0.02)
    ax.set_ylim(lo - pad, hi + pad)
    if log:
        ax.set_xlim(float(xs.min()) / 1.6, float(xs.max()) * 4.0)
    else:
        span = float(xs.max() - xs.min()) or max(float(xs.max()), 1.0)
        ax.set_xlim(float(xs.min()) - span * 0.06, float(xs.max()) + span * 0.35)


def accuracy_vs_params(table: pd.DataFrame) -> Figure | None:
    """Mean mIoU against parameters on a log axis; 0-parameter (classical) models sit in a grey strip
    at a floor one decade below the smallest model, ticked "0", because log(0) has no place."""
    data = table.dropna(subset=["miou", "params_total"]).copy()
    if data.empty:
        return None
    positive = data.loc[data["params_total"] > 0, "params_total"]
    floor = 10 ** (math.floor(math.log10(positive.min())) - 1) if len(positive) else 1.0
    zero = data["params_total"] <= 0
    data["x"] = np.where(zero, floor, data["params_total"])
    palette, markers = backbone_palette(table["backbone"]), _markers(table["architecture"])
    with sns.axes_style(STYLE):
        fig = _figure(*_scatter_size(len(data)))
        ax = fig.add_subplot()
        ax.set_xscale("log")
        if zero.any():
            ax.axvspan(floor / 2.2, floor * 2.2, color="0.9", zorder=0)
            ax.axvline(floor * 2.2, color="0.6", lw=0.8, ls=":")
        _scatter(ax, data, "x", palette, markers)
        hi = float(data["x"].max())
        ax.set_xlim(floor / 2.2 if zero.any() else float(data["x"].min()) / 2, hi * 6)
        if zero.any():
            ticks = [t for t in 10.0 ** np.arange(math.ceil(math.log10(floor * 3)), math.log10(hi * 6) + 1)
                     if floor * 2.2 < t <= hi * 6]
            ax.set_xticks([floor, *ticks], ["0\n(classical)", *[_count_label(t) for t in ticks]])
            ax.minorticks_off()
        else:
            ax.xaxis.set_major_formatter(lambda v, _: _count_label(v))
        _pad_limits(ax, data["x"], data["miou"], log=True)
        ax.set_xlim(floor / 2.2 if zero.any() else float(data["x"].min()) / 1.6, hi * 6)
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel("mIoU (mean over seeds)  ↑ better")
        ax.set_title("Accuracy vs model size")
        _place_labels(ax, data["x"].to_numpy(), data["miou"].to_numpy(), data["model"].tolist())
    return fig


def _count_label(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def miou_by_model(table: pd.DataFrame, per_run: pd.DataFrame) -> Figure | None:
    """Bars of mean mIoU grouped by architecture, coloured by backbone, ±1 std bars, seeds as dots."""
    data = table.dropna(subset=["miou"])
    if data.empty:
        return None
    palette = backbone_palette(table["backbone"])
    # Architectures in order of their best model's rank, backbones alphabetical within a group.
    arch_order = list(dict.fromkeys(data.sort_values("rank")["architecture"]))
    widest = int(data.groupby("architecture").size().max())
    width = 0.8 / widest
    with sns.axes_style(STYLE):
        fig = _figure(min(16.0, max(6.0, 0.42 * len(data) + 0.5 * len(arch_order) + 2.5)), 5.0)
        ax = fig.add_subplot()
        for gi, arch in enumerate(arch_order):
            group = data[data["architecture"] == arch].sort_values("backbone")
            offsets = (np.arange(len(group)) - (len(group) - 1) / 2) * width
            for off, (_, row) in zip(offsets, group.iterrows(), strict=True):
                x = gi + off
                ax.bar(x, row["miou"], width=width * 0.92, color=palette[row["backbone"]], edgecolor="black",
                       linewidth=0.5, zorder=2)
                std = row.get("miou_std", math.nan)
                if not pd.isna(std):
                    ax.errorbar(x, row["miou"], yerr=std, color="black", capsize=4, lw=1.2, zorder=3)
                seeds = per_run.loc[per_run["model"] == row["model"], "miou"].dropna().to_numpy()
                jitter = np.linspace(-width * 0.18, width * 0.18, len(seeds)) if len(seeds) > 1 else np.zeros(1)
                ax.scatter(x + jitter[: len(seeds)], seeds, s=14, color="white", edgecolor="black", lw=0.7,
                           zorder=4)
                ax.text(x, 0.01, row["backbone"], rotation=90, ha="center", va="bottom", fontsize=8, zorder=5,
                        color="black")
        ax.set_xticks(range(len(arch_order)), arch_order, rotation=30 if len(arch_order) > 8 else 0,
                      ha="right" if len(arch_order) > 8 else "center")
        ax.set_xlim(-0.6, len(arch_order) - 0.4)
        ax.set_ylim(0, min(1.0, float(data["miou"].max() + data.get("miou_std", pd.Series([0])).fillna(0).max())
                           + 0.08))
        ax.set_xlabel("architecture")
        ax.set_ylabel("mIoU")
        ax.set_title("mIoU per model\nbar: mean · whiskers: ±1 std over seeds · dots: individual seeds", fontsize=10)
        handles = [Patch(facecolor=palette[b], edgecolor="black", label=b) for b in sorted(set(data["backbone"]))]
        ax.legend(handles=handles, title="backbone", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  frameon=False)
    return fig


def class_iou_heatmap(table: pd.DataFrame, labels: list[str]) -> Figure | None:
    """Model x class heatmap of mean IoU, models in leaderboard order."""
    present = [m for m in CLASS_METRICS if m in table.columns]
    data = table.dropna(subset=["miou"])
    if data.empty or not present:
        return None
    grid = data[present].rename(columns=CLASS_METRICS)
    grid.index = [labels[i] for i in data.index]
    with sns.axes_style("white"):
        fig = _figure(2.2 + 1.3 * len(present) + 0.06 * max(len(s) for s in grid.index), 1.4 + 0.42 * len(grid))
        ax = fig.add_subplot()
        sns.heatmap(grid, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", linewidths=0.5, ax=ax,
                    cbar_kws={"label": "IoU (mean over seeds)"}, annot_kws={"fontsize": 9})
        ax.set_xlabel("class")
        ax.set_ylabel("")
        ax.set_title("Per-class IoU")
        ax.tick_params(axis="y", rotation=0)
    return fig


def training_curves(history: pd.DataFrame, order: list[str], columns: int = 4) -> Figure | None:
    """Small multiples: training and validation loss per epoch, one panel per model, a line per seed."""
    models = [m for m in order if m in set(history["model"])]
    if not models:
        return None
    long = history[history["model"].isin(models)].melt(
        id_vars=["model", "seed", "epoch"], value_vars=["loss", "val_loss"], var_name="split", value_name="value"
    ).dropna(subset=["value"])
    long["split"] = long["split"].map({"loss": "training", "val_loss": "validation"})
    colors = {"training": sns.color_palette("colorblind")[0], "validation": sns.color_palette("colorblind")[3]}
    ncols = min(columns, len(models))
    nrows = math.ceil(len(models) / ncols)
    with sns.axes_style(STYLE):
        fig = _figure(3.2 * ncols + 0.4, 2.6 * nrows + 0.7)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
        for ax, model in zip(axes, models, strict=False):
            panel = long[long["model"] == model]
            sns.lineplot(data=panel, x="epoch", y="value", hue="split", style="split", units="seed",
                         estimator=None, palette=colors, hue_order=["training", "validation"],
                         style_order=["training", "validation"], marker="o", markersize=4, ax=ax, legend=False,
                         sort=True)
            ax.set_title(model, fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss")
            epochs = sorted(panel["epoch"].dropna().unique())
            if len(epochs) <= 12:
                ax.set_xticks(epochs)
        for ax in axes[len(models):]:
            ax.set_visible(False)
        handles = [Line2D([], [], color=colors["training"], marker="o", label="training loss"),
                   Line2D([], [], color=colors["validation"], ls="--", marker="o", label="validation loss")]
        fig.legend(handles=handles, loc="outside upper center", ncols=2, frameon=False)
    return fig


def validation_curves(history: pd.DataFrame, order: list[str], columns: int = 4) -> Figure | None:
    """Small multiples: validation mIoU per epoch, one panel per model, a line per seed, each seed's
    best epoch ringed (the weights early stopping restored)."""
    if "val_miou" not in history.columns:
        return None
    scored = history.dropna(subset=["val_miou"])
    models = [m for m in order if m in set(scored["model"])]
    if not models:
        return None
    palette = sns.color_palette("colorblind")
    ncols = min(columns, len(models))
    nrows = math.ceil(len(models) / ncols)
    with sns.axes_style(STYLE):
        # At least two panels wide, so the legend above has room for the seeds and the ring.
        fig = _figure(3.2 * max(ncols, 2) + 0.4, 2.6 * nrows + 0.9)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)).ravel()
        for ax, model in zip(axes, models, strict=False):
            panel = scored[scored["model"] == model]
            for i, (seed, run) in enumerate(panel.groupby("seed", sort=True)):
                run = run.sort_values("epoch")
                color = palette[i % len(palette)]
                ax.plot(run["epoch"], run["val_miou"], color=color, marker="o", markersize=3, lw=1.2,
                        label=f"seed {seed}")
                best = run.loc[run["val_miou"].idxmax()]
                ax.scatter([best["epoch"]], [best["val_miou"]], s=70, facecolors="none", edgecolors=color, lw=1.5,
                           zorder=3)
            ax.set_title(model, fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation mIoU")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in axes[len(models):]:
            ax.set_visible(False)
        seeds = sorted(scored["seed"].unique())
        handles = [Line2D([], [], color=palette[i % len(palette)], marker="o", label=f"seed {s}")
                   for i, s in enumerate(seeds)]
        handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="none", markersize=9, ls="none",
                              label="best epoch"))
        fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 5), frameon=False)
    return fig

def miou_intervals(data: pd.DataFrame) -> Figure | None:
    """mIoU of every ranked model with its 95% interval, best at the top; the group tied with #1 shaded.

    Args:
        data: One row per model in rank order: ``label``, ``miou``, ``low``, ``high`` (NaN: no
            interval) and ``tied`` (True, False, or None where no test covers the model).
    """
    data = data.dropna(subset=["miou"]).reset_index(drop=True)
    if data.empty:
        return None
    colors = {True: "#d55e00", False: "#0072b2", None: "0.55"}
    names = {True: "tied with #1 (not distinguishable at 5%, Holm)", False: "behind #1 (p < 0.05, Holm)",
             None: "not tested"}
    states = [None if t is None or pd.isna(t) else bool(t) for t in data["tied"]]
    tested = any(s is not None for s in states)
    with sns.axes_style(STYLE):
        fig = _figure(9.0, 1.3 + 0.25 * len(data))
        ax = fig.add_subplot()
        y = np.arange(len(data))
        for (i, row), state in zip(data.iterrows(), states, strict=True):
            if state is True:
                ax.axhspan(i - 0.5, i + 0.5, color="#d55e00", alpha=0.10, lw=0, zorder=0)
            color = colors[state] if tested else "0.2"
            if not (pd.isna(row["low"]) or pd.isna(row["high"])):
                ax.plot([row["low"], row["high"]], [i, i], color=color, lw=1.6, solid_capstyle="butt", zorder=2)
            ax.scatter(row["miou"], i, s=28, color=color, edgecolor="black", lw=0.5, zorder=3)
        ax.axvline(data["miou"].iloc[0], color="0.4", ls=":", lw=1, zorder=1)
        ax.set_yticks(y, [f"{i + 1}. {label}" for i, label in enumerate(data["label"])], fontsize=8)
        ax.set_ylim(len(data) - 0.5, -0.5)
        ax.set_xlabel("mIoU (pooled over the test images; mean over seeds)  → better")
        ax.set_title("mIoU with its 95% interval" + (" (shaded: the group tied with #1)" if tested else ""),
                     fontsize=10)
        if tested:
            present = [s for s in (True, False, None) if s in states]
            handles = [Line2D([], [], color=colors[s], marker="o", markeredgecolor="black", lw=1.6, label=names[s])
                       for s in present]
            ax.legend(handles=handles, loc="lower right", fontsize=8,
                      frameon=True)
    return fig


def reliability_diagram(bins: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                        ece: dict[str, float]) -> Figure | None:
    """One reliability diagram per model (Guo et al. 2017): accuracy of each confidence bin against
    its mean confidence, the gap to the diagonal hatched, the share of pixels per bin below.

    Args:
        bins: Label -> ``(count, confidence sum, correct count)`` per equal-width bin.
        ece: Label -> the model's stored ECE, for the panel title.
    """
    if not bins:
        return None
    k = len(bins)
    with sns.axes_style(STYLE):
        fig = _figure(0.6 + 3.0 * k, 4.2)
        axes = fig.subplots(2, k, squeeze=False, sharex=True, height_ratios=[3, 1])
        for c, (label, (count, confidence, correct)) in enumerate(bins.items()):
            count = np.asarray(count, dtype=np.float64)
            n_bins = count.size
            edges = np.linspace(0, 1, n_bins + 1)
            centers = (edges[:-1] + edges[1:]) / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                accuracy = np.where(count > 0, np.asarray(correct) / count, np.nan)
                mean_conf = np.where(count > 0, np.asarray(confidence) / count, np.nan)
            ax = axes[0, c]
            used = count > 0
            ax.bar(centers[used], accuracy[used], width=1 / n_bins, color="#0072b2", edgecolor="black", lw=0.4,
                   label="accuracy", zorder=2)
            ax.bar(centers[used], (mean_conf - accuracy)[used], bottom=accuracy[used], width=1 / n_bins,
                   color="none", edgecolor="#d55e00", hatch="///", lw=0.4, label="gap to confidence", zorder=3)
            ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1, zorder=4)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_title(f"{label}\nECE {ece.get(label, math.nan):.3f}", fontsize=9)
            ax.set_ylabel("accuracy" if c == 0 else "")
            share = count / count.sum() if count.sum() else count
            axes[1, c].bar(centers, share, width=1 / n_bins, color="0.6", edgecolor="black", lw=0.3)
            axes[1, c].set_xlabel("confidence (max softmax)")
            axes[1, c].set_ylabel("pixels" if c == 0 else "")
            axes[1, c].yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        axes[0, 0].legend(loc="upper left", fontsize=8, frameon=False)
    return fig


def mc_sample_curve(curves: dict[str, pd.DataFrame], deterministic: dict[str, tuple[float, float]]) -> Figure | None:
    """Monte-Carlo dropout: mIoU and ECE after the first t stochastic passes, one line per model;
    the dotted line of the same colour is the model's deterministic (one pass, dropout off) value.

    Args:
        curves: Label -> ``samples``, ``miou``, ``ece`` (:meth:`EvidenceSummary.sample_curve`).
        deterministic: Label -> ``(miou, ece)`` of the deterministic pass.
    """
    if not curves:
        return None
    palette = dict(zip(curves, sns.color_palette("colorblind", len(curves)), strict=True))
    ticks = sorted({int(t) for c in curves.values() for t in c["samples"]})
    with sns.axes_style(STYLE):
        fig = _figure(10.0, 4.0)
        axes = fig.subplots(1, 2)
        for ax, metric, title in ((axes[0], "miou", "mIoU  ↑ better"), (axes[1], "ece", "ECE  ↓ better")):
            for label, curve in curves.items():
                ax.plot(curve["samples"], curve[metric], marker="o", ms=4, color=palette[label], label=label)
                value = deterministic.get(label, (math.nan, math.nan))[0 if metric == "miou" else 1]
                if not pd.isna(value):
                    ax.axhline(value, color=palette[label], ls=":", lw=1.2)
            ax.set_xscale("log")
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("stochastic passes averaged (T)")
            ax.set_ylabel(title)
        handles = [Line2D([], [], color=palette[m], marker="o", label=m) for m in curves]
        handles.append(Line2D([], [], color="0.3", ls=":", label="deterministic (one pass, dropout off)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), frameon=False, fontsize=8)
    return fig


def prediction_gallery(predictions: dict[str, Predictions]) -> Figure | None:
    """Input, ground truth and each model's prediction for the same test images (rows: models);
    below the prediction of a Monte-Carlo-dropout run, its predictive uncertainty (entropy)."""
    if not predictions:
        return None
    first = next(iter(predictions.values()))
    n = min(GALLERY_MAX_IMAGES, len(first.images))
    rows: list[tuple[str, str, Predictions | None]] = [("input", "input", None), ("ground truth", "truth", None)]
    for name, pred in predictions.items():
        rows.append((name, "prediction", pred))
        if pred.uncertainty is not None:
            rows.append((f"{name}\nuncertainty", "uncertainty", pred))
    cmap = ListedColormap(MASK_COLORS)
    tile = 1.7
    with_bar = any(k == "uncertainty" for _, k, _ in rows)
    fig = _figure(1.6 + tile * n, 0.6 + tile * len(rows) + (0.6 if with_bar else 0))
    axes = fig.subplots(len(rows), n, squeeze=False)
    shown = None
    for r, (name, kind, pred) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("0.7")
                spine.set_linewidth(0.5)
            if kind == "input":
                ax.imshow(first.images[c], interpolation="nearest")
                ax.set_title(f"test #{int(first.indices[c])}", fontsize=9)
            elif kind == "truth":
                ax.imshow(first.masks[c], cmap=cmap, vmin=0, vmax=len(MASK_CLASSES) - 1, interpolation="nearest")
            elif kind == "prediction" and c < len(pred.predictions):
                ax.imshow(pred.predictions[c], cmap=cmap, vmin=0, vmax=len(MASK_CLASSES) - 1,
                          interpolation="nearest")
            elif kind == "uncertainty" and c < len(pred.uncertainty):
                shown = ax.imshow(pred.uncertainty[c], cmap="magma", vmin=0.0, vmax=MAX_ENTROPY,
                                  interpolation="nearest")
            if c == 0:
                label = name.replace("-", "-\n", 1) if len(name.split("\n")[0]) > 14 else name
                ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    handles = [Patch(facecolor=color, edgecolor="black", label=name) for name, color in zip(MASK_CLASSES, MASK_COLORS,
                                                                                             strict=True)]
    fig.legend(handles=handles, loc="outside upper center", ncols=len(MASK_CLASSES), frameon=False, fontsize=9)
    if shown is not None:  # below every column, so the uncertainty tiles keep the others' size and place
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), location="bottom", shrink=0.6, aspect=40, pad=0.01)
        bar.set_label("uncertainty: predictive entropy of the Monte-Carlo mean (nats; log 3 = uniform)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig
