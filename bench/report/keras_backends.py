"""The same models on several Keras backends, side by side: the "Keras backends" section.

A sweep with ``--backend tensorflow,jax`` stores each model once per backend (same model, seed and
profile, another run id). Two backends' runs are two measurements of one model, never two of its
seeds: the leaderboard ranks one backend (:func:`bench.config.backends.ranked_backend`), and this
section shows each backend's means over its own seeds beside the others', per model. The speed
columns mark the fastest backend; mIoU is shown, not ranked: the same model, seed and schedule
should reach it on every backend within the parity tolerance
(:data:`bench.config.modes.PARITY_TOLERANCE`, the GPU check's), and a cell further than that from
the ranked backend's is flagged: a gap is a backend's numerics to look into, not a better backend. Everything here is a stored metric averaged over seeds
(:func:`bench.report.summary.model_table`); nothing is re-measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.config.modes import PARITY_TOLERANCE
from bench.report import tables
from bench.report.comparable import Selection, restrict
from bench.report.sections import anchor
from bench.report.summary import model_table
from bench.report.training import split_cost_runs

SECTION = "Keras backends"
#: The columns shown for each backend: (metric, header, higher is faster; None: not a speed, never marked).
COLUMNS: tuple[tuple[str, str, bool | None], ...] = (
    ("train_throughput", "train img/s", True),
    ("latency_p50_ms", "latency p50 (ms)", False),
    ("inference_throughput", "inference img/s", True),
    ("miou", "mIoU", None),
)


@dataclass(frozen=True)
class SideBySide:
    """Each backend's per-model summary.

    Attributes:
        ranked: The backend the leaderboard ranks.
        tables: Backend -> :func:`bench.report.summary.model_table` of its runs (index: model), in
            :attr:`bench.report.comparable.Selection.backends` order.
        models: Every model, in leaderboard order, then the models the ranked backend has no run of.
    """

    ranked: str
    tables: dict[str, pd.DataFrame]
    models: list[str]

    @property
    def backends(self) -> list[str]:
        return list(self.tables)

    def value(self, model: str, backend: str, metric: str) -> float:
        """The backend's mean over its successful seeds of ``metric`` for ``model`` (NaN: none)."""
        table = self.tables[backend]
        if model not in table.index or metric not in table.columns:
            return math.nan
        return float(table.at[model, metric])

    def seeds(self, model: str, backend: str) -> int | None:
        """The backend's successful seeds of ``model``; None where it has no run of it."""
        table = self.tables[backend]
        return int(table.at[model, "n_ok"]) if model in table.index else None

    def outside_parity(self, model: str, backend: str, metric: str) -> bool:
        """Whether ``backend``'s mean is further than :data:`PARITY_TOLERANCE` from the ranked backend's."""
        mine, ranked = self.value(model, backend, metric), self.value(model, self.ranked, metric)
        return not (math.isnan(mine) or math.isnan(ranked)) and abs(mine - ranked) > PARITY_TOLERANCE

    def fastest(self, model: str, metric: str, higher: bool) -> set[str]:
        """The backends with the best mean of a speed metric for ``model``; none where fewer than
        two backends measured it (nothing to compare)."""
        values = {b: v for b in self.backends if not math.isnan(v := self.value(model, b, metric))}
        if len(values) < 2:
            return set()
        best = max(values.values()) if higher else min(values.values())
        return {b for b, v in values.items() if v == best}


def side_by_side(selection: Selection, order: list[str]) -> SideBySide | None:
    """Every backend's summary of the selection's context, or None with one backend.

    Args:
        selection: :func:`bench.report.comparable.select`'s (its :attr:`every_backend` runs).
        order: The ranked models in leaderboard order (the rows come first in it).
    """
    if not selection.several_backends or selection.every_backend is None or selection.backend_of is None:
        return None
    # The networks only costed have their own table; here, as in the ranking, the evaluated runs.
    evaluated, _ = split_cost_runs(selection.every_backend)
    per_backend = {}
    for backend in selection.backends:
        runs = evaluated.runs[evaluated.runs["run_id"].map(selection.backend_of) == backend]
        per_backend[backend] = model_table(restrict(evaluated, runs.reset_index(drop=True))).set_index("model")
    rest = sorted({m for t in per_backend.values() for m in t.index} - set(order))
    return SideBySide(selection.backend, per_backend, [*order, *rest])


def _cell(side: SideBySide, model: str, backend: str, metric: str, higher: bool | None) -> str:
    value = side.value(model, backend, metric)
    if math.isnan(value):
        return tables.DASH
    if higher is None:  # quality: shown, never ranked; flagged beyond the parity tolerance
        return tables.fmt_ratio(value) + (" ⚠" if side.outside_parity(model, backend, metric) else "")
    text = tables.fmt_number(value)
    return f"**{text}**" if backend in side.fastest(model, metric, higher) else text


def _seeds(side: SideBySide, model: str) -> str:
    return " / ".join(tables.DASH if (n := side.seeds(model, b)) is None else str(n) for b in side.backends)


def table(side: SideBySide) -> str:
    """One row per model: the seeds each backend averages, then for each backend its training and
    inference images/s, batch-1 latency and mIoU; the fastest backend's speed cells in bold."""
    labels = {}
    for t in side.tables.values():
        for model, row in t.iterrows():
            labels.setdefault(model, tables.model_label(pd.Series({**row.to_dict(), "model": model})))
    headers = ["Model", f"Seeds ok ({' / '.join(side.backends)})",
               *[f"{backend}: {header}" for backend in side.backends for _, header, _ in COLUMNS]]
    rows = [[labels.get(model, model), _seeds(side, model),
             *[_cell(side, model, backend, metric, higher) for backend in side.backends
               for metric, _, higher in COLUMNS]]
            for model in side.models]
    return tables.render_rows(rows, headers, ["left", "center", *["right"] * (len(headers) - 2)])


def backend_note(selection: Selection) -> str:
    """The leaderboard caption's words on the backend it ranks, where the folder holds several."""
    runs = selection.every_backend.runs if selection.every_backend is not None else selection.results.runs
    others = [b for b in selection.backends if b != selection.backend]
    n_other = int(runs["run_id"].map(selection.backend_of).isin(others).sum()) if selection.backend_of is not None else 0
    return (f" **Ranked on the {selection.backend} backend** (Keras): the folder also holds {n_other} "
            f"run{'s' * (n_other != 1)} on {', '.join(others)}, which are not pooled with these seeds and are "
            f"compared under [{SECTION}](#{anchor(SECTION)}).")


def section(side: SideBySide | None) -> list[str]:
    """The section's Markdown lines; [] with one backend."""
    if side is None:
        return []
    return [
        f"## {SECTION}",
        "",
        (f"The same models on {len(side.backends)} Keras backends ({', '.join(side.backends)}): each cell is the "
         "mean over that backend's successful seeds (how many: second column), never pooled with another "
         f"backend's; the leaderboard above ranks the {side.ranked} runs only. Training images/s in `fit`, latency "
         "p50 at batch 1 after warm-up, inference images/s at the fixed larger batch; costs of the leaderboard's device only. "
         "**Bold**: the fastest backend of the model in that column (highest images/s, lowest latency), a measured "
         "mean, not a tested ranking. mIoU is shown, not ranked: the same model, seed and schedule should reach it on "
         f"every backend within the parity tolerance ({PARITY_TOLERANCE}, the GPU check's), so the table shows it "
         f"to check that: ⚠ marks a mean further than that from the {side.ranked} one, a backend's numerics to "
         "look into (or seeds too few to say), not a better backend."
         f" {tables.DASH}: no run on that backend, or the metric not stored (a classical method runs once, on the "
         "ranked backend: its work is NumPy's)."),
        "",
        table(side),
        "",
    ]
