"""The leaderboard's provenance: what every ranked run shares, what varies between them, and the
machine's environment, each as short rows (no cell over :data:`CELL_MAX` characters; the full
config of each run stays in runs.csv)."""

from __future__ import annotations

import pandas as pd

from bench.report import tables
from bench.report.comparable import synthetic
from bench.report.load import Results


def stored_values(results: Results, runs: pd.DataFrame, column: str) -> list[str]:
    """Distinct stored values of an environment column (runs.csv first, environment.json second)."""
    if column in runs.columns:
        values = runs[column].dropna().astype(str).str.strip()
        values = sorted(v for v in set(values) if v and v.lower() != "nan")
        if values:
            return values
    value = results.environment.get(column)
    return [str(value)] if value not in (None, "") else []


def stored_value(results: Results, runs: pd.DataFrame, column: str, missing: str = "not recorded") -> str:
    """The stored values of a column as one text, ``missing`` where none is stored."""
    values = stored_values(results, runs, column)
    return ", ".join(values) if values else missing


def is_synthetic(results: Results, runs: pd.DataFrame) -> bool:
    """Whether the runs were measured on generated data (environment.json's word where runs.csv
    has no column for it)."""
    if "synthetic" in runs.columns and len(runs):
        return synthetic(runs)
    return str(results.environment.get("synthetic", "")).strip().lower() in {"true", "1", "yes"}


#: Longest text of a provenance cell: the full config stays in runs.csv.
CELL_MAX = 120
#: Settings shown elsewhere in the provenance (or the sweep's, not the run's): left out of the groups.
_SHOWN_ELSEWHERE = {"data", "dataset_fingerprint", "profile.description", "profile.name", "profile.seeds",
                    "profile.data", "profile.jobs", "profile.models", "profile.companion"}
_TRAINING = {"epochs", "steps_per_epoch", "batch_size", "learning_rate", "augment", "freeze_encoder", "weights",
             "shuffle_buffer", "val_subsplits", "precise_bn_batches", "run_eagerly", "val_images", "val_seed",
             "patience", "trained_models"}


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
        room = CELL_MAX - len(text) - 2 - (len(rest) if i < len(parts) - 1 else 0)
        if len(part) > room:
            if i == 0:  # even the first value does not fit: show as much of it as does
                more = f", … and {len(parts) - 1} more" if len(parts) > 1 else ""
                return text + _clip(part, max(CELL_MAX - len(text) - len(more), 8)) + more
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


def shared_and_varying(results: Results, runs: pd.DataFrame) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(shared, varying)``: what every ranked run has in common, as short rows, and only what
    differs between them, with the number of runs of each value. No cell is over 120 characters."""
    shared, varying = [], []

    def one_or_many(label: str, column: str, missing: str = "not recorded") -> str | None:
        counts = _distinct(results, runs, column)
        if len(counts) > 1:
            varying.append((label, _counted(counts)))
            return None
        return counts.index[0] if len(counts) else missing

    dates = stored_values(results, runs, "date")
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
            # The sweep's words and matrix, not a setting of the runs (their own rows say so).
            if key not in {"profile.description", "profile.models", "profile.companion"}:
                varying.append((key, _counted(counts)))
        elif len(counts) == 1 and key not in _SHOWN_ELSEWHERE:
            name = key.removeprefix("profile.timing.").removeprefix("profile.")
            groups.setdefault(_setting_group(key), []).append(f"{name}={counts.index[0]}")
    for label in ("Training", "Evaluation", "Timing", "Run"):
        shared += _packed(f"{label} settings", groups.get(label, []))
    return shared, varying


def _flat(value: object, key: str = "") -> list[tuple[str, str]]:
    """Nested dicts as dotted keys, lists as comma-separated text: one short row per stored value."""
    if isinstance(value, dict):
        return [pair for k in sorted(value) for pair in _flat(value[k], f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [(key, ", ".join(str(v) for v in value) or "(none)")]
        return [pair for i, v in enumerate(value) for pair in _flat(v, f"{key}.{i}")]
    return [(key, str(value))]


def environment_table(environment: dict) -> str:
    return tables.key_value_table([(f"`{key}`", _clip(text)) for key, text in _flat(environment)])
