"""The papers of the ranked architectures (bench/report/papers.py), beside the provenance."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report import render_report
from bench.report.papers import TITLE, papers_section
from segmodels import registry
from tests.support.report_fixture import write_results


def _rows(lines: list[str] | str) -> list[list[str]]:
    text = "\n".join(lines) if isinstance(lines, list) else lines
    section = text.split(f"### {TITLE}", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    return render_report(write_results(tmp_path_factory.mktemp("papers"))).read_text(encoding="utf-8")


def test_each_ranked_architecture_is_cited_once_in_leaderboard_order(page: str) -> None:
    # The fixture ranks unet-resnet50, unet-mobilenetv2, bayesian_segnet-vgg16, fcn8s-vgg16 and
    # deeplabv3-resnet50 before the classical methods; segnet-vgg16 failed, so it is not ranked.
    expected = ["unet", "bayesian_segnet", "fcn8s", "deeplabv3"]
    assert _rows(page) == [[f"`{a}`", registry.get_architecture(a).paper] for a in expected]
    assert all(paper.startswith(("Ronneberger", "Kendall", "Long", "Chen")) for _, paper in _rows(page))
    assert "no citation" not in page  # every one of them is known here


def test_the_papers_sit_at_the_end_of_the_provenance(page: str) -> None:
    provenance = page.split("## Provenance", 1)[1].split("\n## ", 1)[0]
    assert f"### {TITLE}" in provenance
    assert provenance.index("What varies between the ranked runs") < provenance.index(f"### {TITLE}")


def test_an_architecture_the_library_does_not_know_is_listed_without_a_citation() -> None:
    table = pd.DataFrame({
        "model": ["no_such_plugin_net-mobilenetv2", "classical-slic", "unet-mobilenetv2", "fcn8s-mobilenetv2"],
        "architecture": ["no_such_plugin_net", "classical", "unet", "fcn8s"],
        "rank": [1.0, 2.0, 3.0, float("nan")],
    })
    lines = papers_section(table)
    assert _rows(lines) == [["`no_such_plugin_net`", "—"], ["`unet`", registry.get_architecture("unet").paper]]
    assert "—: no citation, the architecture registered none or is not known to the model library" in "\n".join(lines)


def test_no_ranked_network_no_section() -> None:
    only_classical = pd.DataFrame({"model": ["classical-slic"], "architecture": ["classical"], "rank": [1.0]})
    assert papers_section(only_classical) == []
    unranked = pd.DataFrame({"model": ["unet-mobilenetv2"], "architecture": ["unet"], "rank": [float("nan")]})
    assert papers_section(unranked) == []


def test_an_architecture_registered_without_a_paper_is_listed_without_one() -> None:
    registry.register_architecture("uncited_test")(lambda encoder, num_classes: None)
    try:
        table = pd.DataFrame({"model": ["uncited_test-mobilenetv2"], "architecture": ["uncited_test"], "rank": [1.0]})
        assert _rows(papers_section(table)) == [["`uncited_test`", "—"]]
    finally:
        registry._unregister(["uncited_test"])
