"""The leaderboard report, built from a small stored-results fixture (tests/report_fixture.py)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from report_fixture import (
    CLASSICAL_FAMILY,
    EXPECTED_CLASSICAL,
    EXPECTED_FAILED,
    EXPECTED_PARETO,
    EXPECTED_RANKING,
    EXPECTED_UNET_MOBILENET,
    write_results,
)

from bench.report import FIGURE_FILES, ResultsNotFoundError, render_report
from bench.report.load import load_results
from bench.report.stats import model_table, pareto_front, summarize


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results_dir = write_results(tmp_path_factory.mktemp("results"))
    md_path = render_report(results_dir)
    return results_dir, md_path.read_text(encoding="utf-8")


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    return model_table(load_results(write_results(tmp_path)))


def _leaderboard_rows(markdown: str) -> list[list[str]]:
    section = markdown.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_ranking_by_mean_miou_failed_model_last(table: pd.DataFrame) -> None:
    assert table["model"].tolist() == [*EXPECTED_RANKING, "segnet-vgg16"]
    assert table["rank"].iloc[:-1].tolist() == list(range(1, len(EXPECTED_RANKING) + 1))
    assert math.isnan(table["rank"].iloc[-1])


def test_leaderboard_markdown_order_and_seed_counts(rendered: tuple[Path, str]) -> None:
    rows = _leaderboard_rows(rendered[1])
    models = [row[1].replace(" *(classical)*", "") for row in rows]
    assert models == [*EXPECTED_RANKING, "segnet-vgg16"]
    by_model = dict(zip(models, rows, strict=True))
    assert by_model["unet-resnet50"][3] == "2 of 3"
    assert by_model["segnet-vgg16"][0] == "—" and "failed" in by_model["segnet-vgg16"][4]


def test_statistics_over_seeds(table: pd.DataFrame) -> None:
    row = table.set_index("model").loc["unet-mobilenetv2"]
    assert row["miou"] == pytest.approx(EXPECTED_UNET_MOBILENET["mean"])
    assert row["miou_std"] == pytest.approx(EXPECTED_UNET_MOBILENET["std"])
    assert row["miou_ci_low"] == pytest.approx(EXPECTED_UNET_MOBILENET["ci_low"], abs=1e-6)
    assert row["miou_ci_high"] == pytest.approx(EXPECTED_UNET_MOBILENET["ci_high"], abs=1e-6)
    # The failed seed of unet-resnet50 is excluded: mean of 0.75 and 0.77.
    assert table.set_index("model").loc["unet-resnet50", "miou"] == pytest.approx(0.76)


def test_summarize_edge_cases() -> None:
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)
    one = summarize([0.5])
    assert (one.n, one.mean) == (1, 0.5) and math.isnan(one.std) and math.isnan(one.ci_low)
    two = summarize([0.4, 0.6])
    # t(0.975, 1) = 12.7062; std = 0.141421; half-width = 12.7062 * 0.141421 / sqrt(2) = 1.27062
    assert two.ci_high - two.mean == pytest.approx(1.270620, abs=1e-5)


def test_statistics_rendered(rendered: tuple[Path, str]) -> None:
    markdown = rendered[1]
    assert "0.720 ± 0.020" in markdown
    assert "[0.670, 0.770]" in markdown
    by_model = {row[1]: row for row in _leaderboard_rows(markdown)}
    assert by_model["fcn8s-vgg16"][4] == "0.660 (n=1)"
    assert by_model["fcn8s-vgg16"][5] == "n=1, no CI"


def test_pareto_front(table: pd.DataFrame, rendered: tuple[Path, str]) -> None:
    front = table.loc[pareto_front(table, "miou", "latency_p50_ms"), "model"]
    assert set(front) == EXPECTED_PARETO
    glance = rendered[1].split("**Pareto front", 1)[1].splitlines()[0]
    assert all(model in glance for model in EXPECTED_PARETO) and "fcn8s-vgg16" not in glance


def test_failed_runs_listed_with_errors(rendered: tuple[Path, str]) -> None:
    section = rendered[1].split("## Failed runs", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|")][2:]
    assert {(row[0], int(row[1])) for row in rows} == EXPECTED_FAILED
    assert "NaN loss at epoch 2 step 3" in section
    assert "killed by signal 9 (out of memory?)" in section
    assert "2 of 14 runs failed" in rendered[1]


def test_classical_row_renders_sensibly(rendered: tuple[Path, str]) -> None:
    row = next(r for r in _leaderboard_rows(rendered[1]) if r[1].startswith("classical-sobel"))
    assert row[1] == "classical-sobel *(classical)*"
    assert row[7] == "0"  # parameters
    assert row[8] == "—"  # FLOPs: not counted, not zero
    assert row[11] == "none (not trained)"
    assert "no history for classical-slic, classical-canny, classical-sobel, classical-otsu (not trained)" in rendered[1]


def _classical_section(markdown: str) -> str:
    return markdown.split("## Edge-based vs region-based", 1)[1].split("\n## ", 1)[0]


def test_edge_vs_region_section_table(rendered: tuple[Path, str]) -> None:
    section = _classical_section(rendered[1])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    assert rows[0] == ["Model", "Method", "Family", "mIoU", "IoU pet", "IoU background", "IoU border",
                       "Latency p50 (ms)"]
    body = rows[2:]
    # Edge-based first, each family by mIoU; values as stored (iou_pet = miou + 0.1 in the fixture).
    assert [r[0] for r in body] == ["classical-canny", "classical-sobel", "classical-slic", "classical-otsu"]
    assert all(r[2] == CLASSICAL_FAMILY[r[0]] for r in body)
    assert body[0][1:] == ["canny", "edge", "0.450", "0.550", "0.600", "0.200", "8.0"]
    assert "unet" not in "".join(r[0] for r in body)


def test_edge_vs_region_section_numbers(rendered: tuple[Path, str]) -> None:
    section = _classical_section(rendered[1])
    e = EXPECTED_CLASSICAL
    assert (f"**Edge-based** (classical-canny, classical-sobel): mean mIoU {e['edge_mean']:.3f} over 2 methods; "
            f"best {e['best_edge']} (0.450).") in section
    assert (f"**Region-based** (classical-slic, classical-otsu): mean mIoU {e['region_mean']:.3f} over 2 methods; "
            f"best {e['best_region']} (0.500).") in section
    assert "**Region minus edge:** -0.025 mIoU on average, +0.050 best against best: edge-based methods segment better on average" in section
    assert (f"{e['best_deep']} (mIoU 0.760) is {e['gap']:.3f} mIoU above {e['best_region']} (0.500)") in section


def test_edge_vs_region_section_figure(rendered: tuple[Path, str]) -> None:
    results_dir, markdown = rendered
    section = _classical_section(markdown)
    assert re.search(r"!\[[^\]]+\]\(classical_gallery\.png\)\n\n\*[^*\n]+\*", section)
    assert (results_dir / "classical_gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "classical_gallery.png" not in markdown.split("## Figures", 1)[1]


def test_no_classical_runs_no_section_and_no_stale_figure(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path)
    render_report(results_dir)
    assert (results_dir / "classical_gallery.png").is_file()
    for name in ["runs.csv", "metrics.csv"]:
        frame = pd.read_csv(results_dir / name)
        frame[~frame["model"].str.startswith("classical-")].to_csv(results_dir / name, index=False)
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    assert "Edge-based vs region-based" not in markdown
    assert not (results_dir / "classical_gallery.png").exists()


def test_every_figure_written_and_embedded(rendered: tuple[Path, str]) -> None:
    results_dir, markdown = rendered
    for filename in FIGURE_FILES.values():
        path = results_dir / filename
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", filename
        assert re.search(rf"!\[[^\]]+\]\({re.escape(filename)}\)\n\n\*[^*\n]+\*", markdown), filename


def test_provenance_header_and_synthetic_warning(rendered: tuple[Path, str]) -> None:
    header = rendered[1].split("## At a glance", 1)[0]
    assert "**Synthetic data.**" in header
    for expected in ["oxford_iiit_pet", "synthetic (generated shapes)", "64 train / 16 test images", "smoke",
                     "CPU (2 cores)", "TensorFlow 2.19.0", "Keras 3.10.0", "2025-11-24", "0123456789abcdef",
                     "imagenet (pretrained)", "epochs=2"]:
        assert expected in header, expected


def test_no_synthetic_warning_for_real_data(tmp_path: Path) -> None:
    markdown = render_report(write_results(tmp_path, synthetic=False)).read_text(encoding="utf-8")
    assert "Synthetic data.**" not in markdown
    assert "no (real photos)" in markdown


def test_runs_that_shared_the_machine_are_flagged(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path)
    assert "shared the machine" not in render_report(results_dir).read_text(encoding="utf-8")
    runs = pd.read_csv(results_dir / "runs.csv")
    runs["concurrent_runs"] = [2] + [1] * (len(runs) - 1)
    runs.to_csv(results_dir / "runs.csv", index=False)
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    assert f"**1 of {len(runs)} runs shared the machine with other runs** (`--jobs`)" in markdown


def test_rendering_twice_gives_identical_files(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path)
    names = ["leaderboard.md", *FIGURE_FILES.values()]
    render_report(results_dir)
    first = {name: (results_dir / name).read_bytes() for name in names}
    render_report(results_dir)
    assert {name: (results_dir / name).read_bytes() for name in names} == first


def test_missing_file_names_it_and_the_command(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path, profile="quick")
    (results_dir / "metrics.csv").unlink()
    with pytest.raises(ResultsNotFoundError, match=r"metrics\.csv.*python -m bench run --profile quick"):
        render_report(results_dir)


def test_missing_history_drops_the_curves_and_a_stale_figure(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path)
    render_report(results_dir)
    columns = pd.read_csv(results_dir / "history.csv").columns
    pd.DataFrame(columns=columns).to_csv(results_dir / "history.csv", index=False)
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    assert not (results_dir / FIGURE_FILES["curves"]).exists()
    assert "### Training curves\n\nNot drawn" in markdown


def test_error_with_pipe_and_newline_stays_in_its_cell(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path)
    runs = pd.read_csv(results_dir / "runs.csv")
    runs.loc[runs["status"] == "failed", "error"] = "ValueError: a | b\nsecond line"
    runs.to_csv(results_dir / "runs.csv", index=False)
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    assert "ValueError: a \\| b second line" in markdown


def test_a_fallback_to_random_initialisation_is_never_called_pretrained() -> None:
    from bench.report.tables import is_pretrained, weights_label

    fallback = "none (imagenet unavailable: ImageNet weights for backbone 'resnet50' are not cached at /x.h5)"
    assert not is_pretrained(fallback) and not is_pretrained("none") and is_pretrained("imagenet")
    assert weights_label(fallback) == "none (imagenet unavailable)"
    assert weights_label("imagenet") == "imagenet"
