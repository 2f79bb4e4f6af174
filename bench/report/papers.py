"""The papers of the ranked architectures: a short table beside the provenance.

A citation is the model library's metadata, not a measurement: the ``paper=`` an architecture was
registered with (:func:`segmodels.registry.register_architecture`), read when the page is rendered,
as the registry has it then. The runner stores none and the ranking needs none, so an architecture
the library does not know where the report runs (a plugin that is not loaded there) is listed
without a citation rather than failing the page.
"""

from __future__ import annotations

import pandas as pd

from bench.report import tables
from segmodels.registry import CLASSICAL_ARCHITECTURE, UnknownNameError, get_architecture

TITLE = "Architectures and their papers"


def registered_paper(architecture: str) -> str:
    """The citation ``architecture`` was registered with; ``""`` where it gave none or the model
    library does not know it here."""
    try:
        return get_architecture(architecture).paper
    except UnknownNameError:
        return ""


def papers_section(table: pd.DataFrame) -> list[str]:
    """The lines of the table: each architecture of a ranked network, in the order of its best
    rank, with its paper; none when no network is ranked. Classical methods are left out: they
    register a description, not a paper.

    Args:
        table: The ranked models (:func:`bench.report.summary.model_table`).
    """
    ranked = table[table["rank"].notna()].sort_values("rank", kind="stable")
    architectures = list(dict.fromkeys(a for a in ranked["architecture"].astype(str) if a != CLASSICAL_ARCHITECTURE))
    if not architectures:
        return []
    papers = {a: registered_paper(a) for a in architectures}
    rows = [[f"`{a}`", tables.escape_cell(papers[a] or tables.DASH)] for a in architectures]
    uncited = [a for a in architectures if not papers[a]]
    note = (f" {tables.DASH}: no citation, the architecture registered none or is not known to the model library "
            "where this page was rendered (a plugin not loaded here)." if uncited else "")
    return [
        f"### {TITLE}",
        "",
        "The paper each ranked architecture cites: the `paper=` of its registration in the model library, read when "
        "this page was rendered (library metadata, not a stored result)." + note,
        "",
        tables.render_rows(rows, ["Architecture", "Paper"], ["left", "left"]),
        "",
    ]
