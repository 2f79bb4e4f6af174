"""How the ranked networks were trained, and the networks that were only costed.

Two things a reader must know before trusting a rank. First, whether each network trained to its
plateau: the "Training" section lists, per model, the epochs run of the cap, the best epoch (whose
weights were restored) and why each seed stopped; a model with a seed that reached the epoch cap
still improving is marked in the leaderboard (:data:`STILL_IMPROVING_MARK`), since more epochs
could have moved it. Second, which networks were never trained: a *cost run* (``cost_only`` in
runs.csv) is built and timed only, so it is kept out of every ranking, figure and test and shown in
a table of its own that makes no accuracy claim.

Everything here is read from runs.csv (``cost_only``, ``stop_reason``, ``config.*``) and the
metrics the runner stored (``epochs_run``, ``best_epoch``, ``val_miou``).
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from bench.config.profiles import PROFILES
from bench.report import tables
from bench.report.load import Results, as_bool
from bench.store.record import STOP_ALL_EPOCHS as ALL_EPOCHS
from bench.store.record import STOP_CAP_STILL_IMPROVING as CAP_STILL_IMPROVING
from bench.store.record import STOP_PLATEAU as PLATEAU

STILL_IMPROVING_MARK = tables.STILL_IMPROVING_MARK
TRAINING = "Training"
UNTRAINED_COSTS = "Costs of the networks not trained"


def split_cost_runs(results: Results) -> tuple[Results, Results]:
    """``(evaluated, costed)``: the runs that were evaluated (trained networks and classical
    segmenters) and the cost runs, each with its own metrics and history."""
    runs = results.runs
    costed = as_bool(runs["cost_only"]) if "cost_only" in runs.columns else pd.Series(False, index=runs.index)

    def part(keep: pd.Series) -> Results:
        ids = set(runs.loc[keep, "run_id"])
        return dataclasses.replace(
            results,
            runs=runs[keep].reset_index(drop=True),
            metrics=results.metrics[results.metrics["run_id"].isin(ids)].reset_index(drop=True),
            history=results.history[results.history["run_id"].isin(ids)].reset_index(drop=True),
        )

    return part(~costed), part(costed)


def still_improving_counts(runs: pd.DataFrame) -> dict[str, int]:
    """Model -> how many of its ok runs reached the epoch cap still improving."""
    if "stop_reason" not in runs.columns:
        return {}
    ok = runs[(runs["status"] == "ok") & (runs["stop_reason"] == CAP_STILL_IMPROVING)]
    return {str(model): int(n) for model, n in ok.groupby("model").size().items()}


def mark_still_improving(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``still_improving`` column (runs that hit the cap still improving, per model)."""
    counts = still_improving_counts(runs)
    return table.assign(still_improving=[counts.get(m, 0) for m in table["model"]])


def _config(runs: pd.DataFrame, key: str) -> list[str]:
    column = f"config.profile.{key}"
    if column not in runs.columns:
        return []
    values = runs[column].dropna().astype(str)
    return sorted({v for v in values if v and v.lower() != "nan"})


def _reasons(group: pd.DataFrame) -> str:
    names = {PLATEAU: "plateau", CAP_STILL_IMPROVING: f"cap before a plateau {STILL_IMPROVING_MARK}",
             ALL_EPOCHS: "every epoch (no early stopping)"}
    counts = group["stop_reason"].fillna("").astype(str).value_counts()
    parts = [f"{names.get(reason, reason)} ×{n}" for reason, n in sorted(counts.items()) if reason]
    return ", ".join(parts) if parts else tables.DASH


def _span(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return tables.DASH
    low, high = int(v.min()), int(v.max())
    return str(low) if low == high else f"{low}–{high}"


def training_section(results: Results, runs: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The "Training" section: the validation protocol and, per trained model, how its seeds
    stopped; empty when no ranked run was trained with validation (older results)."""
    if "stop_reason" not in runs.columns:
        return []
    trained = runs[(runs["status"] == "ok") & runs["stop_reason"].fillna("").astype(str).ne("")]
    if trained.empty:
        return []
    metrics = results.metrics[results.metrics["run_id"].isin(trained["run_id"])]
    wide = metrics.pivot_table(index="run_id", columns="metric", values="value", aggfunc="first")
    wide = wide[[c for c in wide.columns if c not in trained.columns]]
    per_run = trained.set_index("run_id").join(wide, how="left")
    val_images, val_seed = _config(trained, "val_images"), _config(trained, "val_seed")
    patience, cap = _config(trained, "patience"), _config(trained, "epochs")
    precise_bn = _config(trained, "precise_bn_batches")
    lines = [f"## {TRAINING}", ""]
    protocol = []
    if val_images and val_images != ["0"]:
        protocol.append(
            f"Every network was validated after each epoch on {' / '.join(val_images)} images held out of the "
            f"training split (chosen by seed {' / '.join(val_seed) or '0'}, the same images for every model and "
            "seed; no test image is used for any choice)."
        )
        if precise_bn and "0" not in precise_bn:
            protocol.append(
                f"Before each validation the BatchNorm statistics were recomputed from {' / '.join(precise_bn)} "
                "training batches (precise BN), so the validation mIoU measures the model the test measures."
            )
        else:
            protocol.append("BatchNorm statistics were not recomputed before validation (precise BN off for some "
                            "or all runs): their moving averages may lag what training learned.")
    if patience and patience != ["0"]:
        protocol.append(
            f"Training stopped once the validation mIoU had not improved for {' / '.join(patience)} "
            f"epoch{'s' * (patience != ['1'])}, at most {' / '.join(cap)} epoch{'s' * (cap != ['1'])}, and the best "
            "epoch's weights were restored. A model marked "
            f"{STILL_IMPROVING_MARK} in the leaderboard has a seed that reached the cap before a plateau (its "
            "validation mIoU had improved within its last patience epochs): more epochs might have moved it."
        )
    lines += [" ".join(protocol) if protocol else "No early stopping: every epoch of the schedule was trained.", ""]
    order = [m for m in table["model"] if m in set(per_run["model"])]
    rows = []
    for model in order:
        group = per_run[per_run["model"] == model]
        best_val = pd.to_numeric(group.get("val_miou", pd.Series(dtype=float)), errors="coerce")
        rows.append([
            tables.model_label(table.loc[table["model"] == model].iloc[0]), str(len(group)),
            _span(group.get("epochs_run", pd.Series(dtype=float))), _span(group.get("best_epoch", pd.Series(dtype=float))),
            tables.fmt_ratio(float(best_val.mean()) if best_val.notna().any() else math.nan), _reasons(group),
        ])
    lines += [tables.render_rows(rows, ["Model", "Seeds", "Epochs run", "Best epoch", "Best val. mIoU (mean)",
                                        "Stopped on"], ["left", "right", "right", "right", "right", "left"]), ""]
    lines += ["The validation curves (mIoU per epoch, every seed) are in "
              "[Figures](#figures), beside the training curves." + _companion_sentence(trained), ""]
    return lines


def _companion_sentence(runs: pd.DataFrame) -> str:
    """Where the costs of the pairs this profile does not train are: its companion profile's folder."""
    names = sorted({str(p) for p in runs.get("profile", pd.Series(dtype=str)).dropna()})
    companions = sorted({PROFILES[n].companion for n in names if n in PROFILES and PROFILES[n].companion})
    if len(companions) != 1:
        return ""
    other = companions[0]
    return (f" The pairs this profile does not train are costed by its companion profile `{other}` "
            f"(`python -m bench run --profile {other}`, which `nox -s bench` runs after this one), on a page of "
            f"its own: `{other}/leaderboard.md` beside this folder.")


def untrained_costs_section(costed: Results, table: pd.DataFrame) -> list[str]:
    """The cost runs' table: what each untrained network costs, with no accuracy column at all."""
    if table.empty:
        return []
    headers = ["Model", "Params (M)", "FLOPs (G)", "Latency p50 / p95 (ms)", "Throughput (img/s)", "Peak RAM"]
    rows = []
    for _, row in table.sort_values("model", kind="stable").iterrows():
        if row["n_ok"] == 0:
            rows.append([tables.model_label(row), *[tables.DASH] * (len(headers) - 1)])
            continue
        rows.append([
            tables.model_label(row), tables.fmt_params(row.get("params_total", math.nan)),
            tables.fmt_gflops(row.get("flops_per_image", math.nan)),
            f"{tables.fmt_number(row.get('latency_p50_ms', math.nan))} / "
            f"{tables.fmt_number(row.get('latency_p95_ms', math.nan))}",
            tables.fmt_number(row.get("inference_throughput", math.nan)), tables.fmt_memory(row.get("peak_rss_mb", math.nan)),
        ])
    return [
        f"## {UNTRAINED_COSTS}", "",
        f"{len(table)} network{'s' * (len(table) != 1)} of the sweep {'were' if len(table) != 1 else 'was'} built "
        "and timed on the same device and settings as the ranked runs, but never trained or evaluated (not in the "
        "profile's `--trained-models`): this table says what each costs and nothing about how well it segments. "
        "Latency at batch 1 after warm-up, throughput at the profile's larger batch, peak resident memory of the "
        "run's process (no training in it).", "",
        tables.render_rows(rows, headers, ["left", *["right"] * (len(headers) - 1)]), "",
    ]
