"""The leaderboard report, built from a small stored-results fixture (tests/support/report_fixture.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.config.profiles import PROFILES
from bench.evidence.declarations import METRICS, Metric
from bench.evidence.npz import save_evidence
from bench.report import (
    FIGURE_FILES,
    ResultsNotFoundError,
    comparable,
    figures,
    render_report,
)
from bench.report import statistics as ev
from bench.report.load import load_results
from bench.report.summary import NO_EVIDENCE, current_runs, evidence_summary, model_table, pareto_front, summarize
from tests.support.report_fixture import (
    CLASSICAL_FAMILY,
    EXPECTED_CLASSICAL,
    EXPECTED_FAILED,
    EXPECTED_PARETO,
    EXPECTED_RANKING,
    EXPECTED_UNET_MOBILENET,
    MC_MODELS,
    N_EVIDENCE_IMAGES,
    add_run,
    run_config,
    set_device,
    synthetic_evidence,
    write_context_json,
    write_results,
)

#: The figures drawn only from per-image evidence (calibration, Monte-Carlo dropout).
EVIDENCE_FIGURES = {"reliability", "mc_curve", "mc_gallery"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results_dir = write_results(tmp_path_factory.mktemp("results"))
    md_path = render_report(results_dir)
    return results_dir, md_path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rendered_evidence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, bytes]]:
    """The fixture with per-image evidence, rendered once; with the bytes of every file it wrote."""
    results_dir = write_results(tmp_path_factory.mktemp("evidence"), evidence=True)
    md_path = render_report(results_dir)
    written = {p.name: p.read_bytes() for p in results_dir.iterdir() if p.suffix in {".md", ".png"}}
    return results_dir, md_path.read_text(encoding="utf-8"), written


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    return model_table(load_results(write_results(tmp_path)))


def _leaderboard_rows(markdown: str) -> list[list[str]]:
    section = markdown.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _table(markdown: str, title: str, index: int = 0) -> dict[str, dict[str, str]]:
    """The ``index``-th table of a section: model (without the classical tag) -> {header: cell}."""
    section = _section(markdown, title)
    blocks, block = [], []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip("|").split("|")])
        elif block:
            blocks.append(block)
            block = []
    header, *body = blocks[index]
    return {row[1].replace(" *(classical)*", ""): dict(zip(header, row, strict=True)) for row in body[1:]}


def test_ranking_by_mean_miou_failed_model_last(table: pd.DataFrame) -> None:
    assert table["model"].tolist() == [*EXPECTED_RANKING, "segnet-vgg16"]
    assert table["rank"].iloc[:-1].tolist() == list(range(1, len(EXPECTED_RANKING) + 1))
    assert math.isnan(table["rank"].iloc[-1])


def test_leaderboard_markdown_order_and_seed_counts(rendered: tuple[Path, str]) -> None:
    rows = _leaderboard_rows(rendered[1])
    models = [row[1].replace(" *(classical)*", "") for row in rows]
    assert models == [*EXPECTED_RANKING, "segnet-vgg16"]
    main = _table(rendered[1], "Leaderboard")
    assert list(main["unet-resnet50"]) == ["#", "Model", "mIoU [95% interval]", "Boundary IoU", "Latency p50 (ms)",
                                           "Params (M)"]  # no test, no "Tied with #1" column
    assert main["segnet-vgg16"]["#"] == "—" and "failed" in main["segnet-vgg16"]["mIoU [95% interval]"]
    assert _table(rendered[1], "Costs")["unet-resnet50"]["Seeds ok"] == "2 of 3"


def test_statistics_over_seeds(table: pd.DataFrame) -> None:
    row = table.set_index("model").loc["unet-mobilenetv2"]
    assert row["miou"] == pytest.approx(EXPECTED_UNET_MOBILENET["mean"])
    assert row["miou_std"] == pytest.approx(EXPECTED_UNET_MOBILENET["std"])
    assert row["miou_ci_low"] == pytest.approx(EXPECTED_UNET_MOBILENET["ci_low"], abs=1e-6)
    assert row["miou_ci_high"] == pytest.approx(EXPECTED_UNET_MOBILENET["ci_high"], abs=1e-6)
    # The failed seed of unet-resnet50 is excluded: mean of 0.795 and 0.805.
    assert table.set_index("model").loc["unet-resnet50", "miou"] == pytest.approx(0.80)


def test_summarize_edge_cases() -> None:
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)
    one = summarize([0.5])
    assert (one.n, one.mean) == (1, 0.5) and math.isnan(one.std) and math.isnan(one.ci_low)
    two = summarize([0.4, 0.6])
    # t(0.975, 1) = 12.7062; std = 0.141421; half-width = 12.7062 * 0.141421 / sqrt(2) = 1.27062
    assert two.ci_high - two.mean == pytest.approx(1.270620, abs=1e-5)


def test_statistics_rendered(rendered: tuple[Path, str]) -> None:
    markdown = rendered[1]
    assert _table(markdown, "Accuracy in detail")["unet-mobilenetv2"]["mIoU pooled"] == "0.720 ± 0.020"
    main = _table(markdown, "Leaderboard")
    # Without per-image evidence: the t-interval over seeds, marked (t); one seed has none.
    assert main["unet-mobilenetv2"]["mIoU [95% interval]"] == "0.720 [0.670, 0.770] (t)"
    assert re.fullmatch(r"0\.\d{3} \(n=1\)", main["fcn8s-vgg16"]["mIoU [95% interval]"])  # its metric, no interval


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
    assert "2 of 15 runs failed" in rendered[1]


def test_classical_row_renders_sensibly(rendered: tuple[Path, str]) -> None:
    row = next(r for r in _leaderboard_rows(rendered[1]) if r[1].startswith("classical-sobel"))
    assert row[1] == "classical-sobel *(classical)*"
    costs = _table(rendered[1], "Costs")["classical-sobel"]
    assert costs["Params (M)"] == "0"
    assert costs["FLOPs (G)"] == "—"  # not counted, not zero
    assert costs["Train time"] == "none (not trained)"
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
    # No per-image evidence in this fixture: the differences are given, and called untested.
    untested = "; no per-image evidence, so untested: the difference may be noise."
    assert f"**Region minus edge, on average:** -0.025 mIoU{untested}" in section
    assert f"**Best region minus best edge:** classical-slic minus classical-canny, +0.050 mIoU{untested}" in section
    assert (f"{e['best_deep']} (mIoU {e['best_deep_miou']:.3f}) is {e['gap']:.3f} mIoU above {e['best_region']} "
            f"(0.500){untested}") in section
    assert "segment better" not in section and "is ahead" not in section


def test_edge_vs_region_claims_are_tested_on_the_evidence(rendered_evidence: tuple[Path, str, dict]) -> None:
    """The fixture plants edge-based methods ahead on average, slic ahead of canny and the best
    network far ahead: each claim comes with its paired interval and Holm p-value."""
    section = _classical_section(rendered_evidence[1])
    assert f"a paired bootstrap over the same {N_EVIDENCE_IMAGES} test images" in section
    assert "Holm-corrected over the 3 comparisons below" in section
    interval = r"\[95% interval ([-+]\d\.\d{3}), ([-+]\d\.\d{3})\], p (?:= \d\.\d{3}|< 0\.001) \(Holm; noise covered: .*?\)"
    for label, verdict, sign in [
        (r"Region minus edge, on average:\*\* -\d\.\d{3} mIoU ", "edge-based methods segment better here", -1),
        (r"Best region minus best edge:\*\* classical-slic minus classical-canny, \+\d\.\d{3} mIoU ",
         "classical-slic is ahead", 1),
        (r"Best deep model vs best classical:\*\* unet-resnet50 \(mIoU \d\.\d{3}\) is \d\.\d{3} mIoU above "
         r"classical-slic \(\d\.\d{3}\) ", "the network is ahead on these images", 1),
    ]:
        match = re.search(label + interval + ": " + re.escape(verdict), section)
        assert match, (label, section)
        low, high = float(match[1]), float(match[2])
        assert low < high and (low > 0 if sign > 0 else high < 0)


def test_edge_vs_region_says_untold_apart_for_equal_families() -> None:
    """Two families of the same quality on the same images: no side is called better."""
    from types import SimpleNamespace

    from bench.report import edge_vs_region

    rng = np.random.default_rng(5)
    q = rng.dirichlet([40, 3, 2, 2, 50, 3, 2, 3, 5], size=32)  # the images, shared by every method
    runs = {m: [{"confusion": rng.multinomial(400, q).reshape(32, 3, 3), "image_index": np.arange(32)}]
            for m in ("classical-canny", "classical-slic", "unet-mobilenetv2")}
    table = pd.DataFrame({
        "model": list(runs), "family": ["classical", "classical", "deep"], "backbone": ["canny", "slic", "mobilenetv2"],
        "miou": [ev.pooled_miou(r[0]["confusion"]) for r in runs.values()], "latency_p50_ms": [1.0, 2.0, 3.0]})
    cmp = edge_vs_region.compare(table, {"classical-canny": "edge", "classical-slic": "region"})
    made = edge_vs_region.claims(cmp, SimpleNamespace(runs=runs))
    leads = [c.text.split(":**")[0] for c in made]
    assert leads == ["**Region minus edge, on average", "**Best region minus best edge",
                     "**Best deep model vs best classical"]
    assert all(c.test is not None and c.p_holm > 0.05 for c in made)
    summary = SimpleNamespace(runs=runs, n_images=32)  # the EvidenceSummary fields the section reads
    lines = [line for line in edge_vs_region.section(cmp, None, summary) if line.startswith("- **")]
    assert sum("the evidence cannot tell them apart." in line for line in lines) == 3
    assert not any("better" in line or "ahead" in line for line in lines)


def test_edge_vs_region_section_figure(rendered: tuple[Path, str]) -> None:
    results_dir, markdown = rendered
    section = _classical_section(markdown)
    assert re.search(r"!\[[^\]]+\]\(classical_gallery\.png\)\n\n\*[^*\n]+\*", section)
    assert (results_dir / "classical_gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "classical_gallery.png" not in markdown.split("## Figures", 1)[1]


def test_one_run_of_one_model_is_counted_in_the_singular(tmp_path: Path) -> None:
    """A new user's first sweep (one model, no ImageNet weights) once read "1 runs ... of 1 models"."""
    results_dir = write_results(tmp_path)
    for name in ["runs.csv", "metrics.csv"]:
        frame = pd.read_csv(results_dir / name)
        frame = frame[(frame["model"] == "unet-mobilenetv2") & (frame["seed"] == 0)]
        if name == "runs.csv":
            frame = frame.assign(weights="none (imagenet unavailable: host down)")
        frame.to_csv(results_dir / name, index=False)
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    assert "from the stored results of 1 run (1 ok) of 1 model." in markdown
    assert "**No pretrained weights for 1 model**: ImageNet weights" in markdown


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


def test_every_figure_written_and_embedded(rendered: tuple[Path, str],
                                           rendered_evidence: tuple[Path, str, dict]) -> None:
    for (results_dir, markdown), keys in [(rendered, set(FIGURE_FILES) - EVIDENCE_FIGURES),
                                          (rendered_evidence[:2], set(FIGURE_FILES))]:
        for key in keys:
            path = results_dir / FIGURE_FILES[key]
            assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", key
            assert re.search(rf"!\[[^\]]+\]\({re.escape(path.name)}\)\n\n\*[^*\n]+\*", markdown), key
    for key in EVIDENCE_FIGURES:  # nothing to draw them from: no file, no stale one
        assert not (rendered[0] / FIGURE_FILES[key]).exists(), key


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
    assert "16 test images, real photos" in markdown


def test_runs_that_shared_the_machine_are_flagged(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path)
    assert "shared the machine" not in render_report(results_dir).read_text(encoding="utf-8")
    runs = pd.read_csv(results_dir / "runs.csv")
    runs["concurrent_runs"] = [2] + [1] * (len(runs) - 1)
    runs.to_csv(results_dir / "runs.csv", index=False)
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    assert f"**1 of {len(runs)} runs shared the machine with other runs** (`--jobs`)" in markdown


def _written(results_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in results_dir.iterdir() if p.suffix in {".md", ".png"}}


def test_rendering_twice_gives_identical_files(tmp_path: Path, rendered_evidence: tuple[Path, str, dict]) -> None:
    results_dir = write_results(tmp_path)
    render_report(results_dir)
    first = _written(results_dir)
    render_report(results_dir)
    assert _written(results_dir) == first
    # With evidence: the bootstrap intervals, the tests and every figure, byte for byte.
    results_dir, _, first = rendered_evidence
    assert {"leaderboard.md", *FIGURE_FILES.values()} <= set(first)
    render_report(results_dir)
    assert _written(results_dir) == first


def test_missing_file_names_it_and_the_command(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path, profile="quick")
    (results_dir / "metrics.csv").unlink()
    with pytest.raises(ResultsNotFoundError, match=r"metrics\.csv not found.*python -m bench run --out \S*quick"):
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


# === Comparison contexts and devices ===

def _section(markdown: str, title: str) -> str:
    """The body of the section whose heading is exactly ``## title``."""
    return markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _rows(section: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|")][2:]


def test_runs_of_another_context_are_not_ranked_and_never_supersede(tmp_path: Path) -> None:
    # The failure: a synthetic-data run of unet-mobilenetv2, stored later in a folder of real
    # runs, "superseded" the real seed 0 and was ranked in its place.
    results_dir = write_results(tmp_path, synthetic=False)
    write_context_json(results_dir, run_config("unet-mobilenetv2", 0))
    synthetic = run_config("unet-mobilenetv2", 0, fingerprint="5ynthe71c", epochs=PROFILES["smoke"].epochs + 2)
    foreign = add_run(results_dir, "unet-mobilenetv2", 0, 0.99, synthetic, synthetic=True,
                      finished_at="2025-11-24T12:00:00+00:00", latency=1.0)
    markdown = render_report(results_dir).read_text(encoding="utf-8")

    assert _table(markdown, "Costs")["unet-mobilenetv2"]["Seeds ok"] == "3 of 3"
    detail = _table(markdown, "Accuracy in detail")
    assert detail["unet-mobilenetv2"]["mIoU pooled"] == "0.720 ± 0.020"  # the real seeds, all three
    assert "superseded" not in markdown
    assert "**Synthetic data.**" not in markdown  # the ranked runs are real photos
    assert foreign not in markdown.split("## Not ranked", 1)[0]
    assert "1 run of another comparison context is not ranked" in markdown
    section = _section(markdown, "Not ranked: runs of another comparison context")
    assert "named in `context.json`" in section
    [row] = _rows(section)
    assert row[:3] == [f"`{synthetic.context_id}`", "1", "unet-mobilenetv2"]
    assert "synthetic data there, real photos here" in row[3]
    assert "dataset_fingerprint: f00dfeed here, 5ynthe71c there" in row[3]
    smoke_epochs = PROFILES["smoke"].epochs
    assert f"profile.epochs: {smoke_epochs} here, {smoke_epochs + 2} there" in row[3]


def test_a_folder_without_context_json_ranks_its_most_recent_runs_context(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path)
    older = run_config("fcn8s-vgg16", 0, image_size=96)
    add_run(results_dir, "fcn8s-vgg16", 0, 0.99, older, finished_at="2025-11-24T09:00:00+00:00")
    selection = comparable.select(load_results(results_dir))
    assert selection.context_source == "most recent run"
    assert selection.context_id == run_config("fcn8s-vgg16", 0).context_id
    assert [o.context_id for o in selection.others] == [older.context_id]
    assert ("profile.image_size", "64", "96") in selection.others[0].differences
    assert model_table(selection.results).set_index("model").loc["fcn8s-vgg16", "miou"] == pytest.approx(0.66)

    # runs.csv of an older harness has no context_id column: the contexts come from the records.
    runs = pd.read_csv(results_dir / "runs.csv").drop(columns=["context_id"])
    runs.to_csv(results_dir / "runs.csv", index=False)
    again = comparable.select(load_results(results_dir))
    assert (again.context_id, [o.context_id for o in again.others]) == (selection.context_id, [older.context_id])

    # The newest run decides: once the other context's run is the latest, it is the ranked one.
    newer = run_config("fcn8s-vgg16", 1, image_size=96)
    add_run(results_dir, "fcn8s-vgg16", 1, 0.5, newer, finished_at="2025-11-24T13:00:00+00:00")
    latest = comparable.select(load_results(results_dir))
    assert latest.context_id == older.context_id
    assert set(latest.results.runs["model"]) == {"fcn8s-vgg16"}


def _two_devices(tmp_path: Path) -> Path:
    results_dir = write_results(tmp_path)
    set_device(results_dir, ["fcn8s-vgg16"], "NVIDIA H200")
    set_device(results_dir, ["deeplabv3-resnet50"], "NVIDIA H200", replicas=2)
    return results_dir


def test_costs_compare_on_one_device_and_other_devices_are_listed_apart(tmp_path: Path) -> None:
    markdown = render_report(_two_devices(tmp_path)).read_text(encoding="utf-8")
    rows = _leaderboard_rows(markdown)
    assert [row[1].replace(" *(classical)*", "") for row in rows] == [*EXPECTED_RANKING, "segnet-vgg16"]
    main, costs = _table(markdown, "Leaderboard"), _table(markdown, "Costs")
    for model in ["fcn8s-vgg16", "deeplabv3-resnet50"]:  # quality ranks; costs measured elsewhere do not
        assert main[model]["mIoU [95% interval]"] != "—" and main[model]["Params (M)"] != "—"
        assert main[model]["Latency p50 (ms)"] == "—"
        cells = [costs[model][c] for c in ["Latency p50 / p95 (ms)", "Throughput (img/s)", "Train time", "Peak RAM"]]
        assert cells == ["— / —", "—", "—", "—"], model
    assert costs["unet-mobilenetv2"]["Latency p50 / p95 (ms)"] == "21.0 / 27.0"
    leaderboard = _section(markdown, "Leaderboard")
    assert "measured on CPU (2 cores)** (10 of 13 successful runs)" in leaderboard
    assert "Runs span several devices" not in markdown
    assert "**Lowest latency (on CPU (2 cores)):** classical-otsu" in markdown

    others = _rows(_section(markdown, "Costs measured on other devices"))
    assert [row[:4] for row in others] == [["fcn8s-vgg16", "NVIDIA H200", "1", "120.0 / 156.0"],
                                           ["deeplabv3-resnet50", "NVIDIA H200 x 2", "2", "80.5 / 104.5"]]


def test_the_latency_figure_gets_the_main_devices_runs_only(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = []
    draw = figures.accuracy_vs_latency
    monkeypatch.setattr(figures, "accuracy_vs_latency",
                        lambda table, pareto: drawn.append(table) or draw(table, pareto))
    markdown = render_report(_two_devices(tmp_path)).read_text(encoding="utf-8")
    [table] = drawn
    plotted = set(table.dropna(subset=["miou", "latency_p50_ms"])["model"])
    assert plotted == set(EXPECTED_RANKING) - {"fcn8s-vgg16", "deeplabv3-resnet50"}
    assert "Only runs measured on CPU (2 cores) are plotted" in markdown


def test_one_device_one_context_adds_nothing(rendered: tuple[Path, str]) -> None:
    markdown = rendered[1]
    for absent in ["Costs measured on other devices", "Not ranked", "comparison context", "Lowest latency (on",
                   "## Keras backends", "Ranked on the"]:
        assert absent not in markdown, absent


def test_main_device_most_runs_then_environment_then_alphabetical() -> None:
    devices = pd.Series(["GPU B", "GPU A", "GPU B", "GPU A", "CPU"])
    assert comparable.main_device(devices, {"device": "GPU B"}) == "GPU B"
    assert comparable.main_device(devices, {"device": "CPU"}) == "GPU A"
    assert comparable.main_device(devices.iloc[:3], {}) == "GPU B"
    assert comparable.main_device(pd.Series([], dtype=object), {}) is None


# === The evidence behind the ranking ===

def _glance(markdown: str) -> str:
    return _section(markdown, "At a glance")


def test_main_table_has_the_interval_the_tied_mark_and_boundary_iou(rendered_evidence: tuple[Path, str, dict]) -> None:
    main = _table(rendered_evidence[1], "Leaderboard")
    assert list(main) == [*EXPECTED_RANKING, "segnet-vgg16"]
    assert list(main["unet-resnet50"]) == ["#", "Model", "mIoU [95% interval]", "Tied with #1", "Boundary IoU",
                                           "Latency p50 (ms)", "Params (M)"]
    for model in EXPECTED_RANKING:  # a bootstrap interval for every model, one seed or several
        cell = main[model]["mIoU [95% interval]"]
        match = re.fullmatch(r"(0\.\d{3}) \[(0\.\d{3}), (0\.\d{3})\]", cell)
        assert match, cell
        estimate, low, high = map(float, match.groups())
        assert low < estimate < high
        assert re.fullmatch(r"0\.\d{3}", main[model]["Boundary IoU"]), model
    assert [main[m]["Tied with #1"] for m in EXPECTED_RANKING] == ["#1", *["no"] * (len(EXPECTED_RANKING) - 1)]
    assert "no interval" not in _section(rendered_evidence[1], "Leaderboard")


def test_a_clear_winner_is_named_alone(rendered_evidence: tuple[Path, str, dict]) -> None:
    glance = _glance(rendered_evidence[1])
    assert "**Most accurate:** unet-resnet50 (" in glance and "ahead of every other model" in glance
    assert "no single model" not in glance
    # Untested point values are stated as the lowest measured, not as a ranking ("fastest", "best").
    assert re.search(r"\*\*Lowest ECE of the 4 most accurate deep models:\*\* [\w-]+ \(ECE 0\.\d{3}, a point "
                     r"estimate without interval; mIoU 0\.\d{3}\)", glance)
    assert "**Lowest latency:** classical-otsu *(classical)* (3.0 ms p50 at batch 1, mIoU 0." in glance
    assert "Fastest" not in glance and "Best calibrated" not in glance
    significance = _section(rendered_evidence[1], "Significance: which models are tied with #1")
    assert "**Tied with #1 (1 model):** unet-resnet50." in significance
    rows = _table(rendered_evidence[1], "Significance: which models are tied with #1")
    assert re.fullmatch(r"-0\.\d{3} \[-0\.\d{3}, -0\.\d{3}\]", rows["unet-mobilenetv2"]["Minus #1 [95% interval]"])
    assert float(rows["unet-mobilenetv2"]["p (Holm)"]) < 0.05


def test_a_null_difference_is_a_tied_group_named_as_a_group(tmp_path: Path) -> None:
    # unet-mobilenetv2 planted at the same quality as unet-resnet50 (0.795 and 0.805): neither the images nor
    # the seeds can tell them apart.
    results_dir = write_results(tmp_path, evidence=True, outcomes={"unet-mobilenetv2": {0: 0.80, 1: 0.80, 2: 0.80}})
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    glance = _glance(markdown)
    assert "**Most accurate: no single model.**" in glance and "**Most accurate:**" not in glance
    tied = re.search(r"the tied group is (.*?)\. See", glance).group(1)
    assert "unet-resnet50" in tied and "unet-mobilenetv2" in tied and "fcn8s-vgg16" not in tied
    main = _table(markdown, "Leaderboard")
    assert sorted(main[m]["Tied with #1"] for m in ["unet-resnet50", "unet-mobilenetv2"]) == ["#1", "yes"]
    assert main["fcn8s-vgg16"]["Tied with #1"] == "no"
    assert "**Tied with #1 (2 models):**" in _section(markdown, "Significance: which models are tied with #1")


def test_classical_models_have_no_calibration_shown_as_a_dash(rendered_evidence: tuple[Path, str, dict]) -> None:
    calibration = _table(rendered_evidence[1], "Calibration")
    for model, row in calibration.items():
        cells = [row["ECE"], row["NLL (nats/pixel)"], row["Brier (per pixel)"]]
        if model.startswith("classical-"):
            assert cells == ["—", "—", "—"], model
        else:
            assert all(re.fullmatch(r"\d\.\d{3}", c) and float(c) > 0 for c in cells), model
    assert "![Reliability diagram](reliability_diagram.png)" in _section(rendered_evidence[1], "Calibration")


def test_both_aggregations_and_the_foreground_iou_are_shown(rendered_evidence: tuple[Path, str, dict]) -> None:
    detail = _table(rendered_evidence[1], "Accuracy in detail")
    row = detail["fcn8s-vgg16"]
    for column in ["mIoU pooled", "mIoU per image", "Foreground IoU"]:
        assert re.fullmatch(r"0\.\d{3}", row[column]), column
    assert row["mIoU pooled"] != row["mIoU per image"]
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", row["Boundary IoU [95% interval]"])
    assert "a band of 2 px at 64×64 px" not in rendered_evidence[1]  # the fixture's config has no profile.image_size
    assert "a band of 2 px" in _section(rendered_evidence[1], "Accuracy in detail")


def test_the_monte_carlo_section_appears_only_with_monte_carlo_results(
        rendered: tuple[Path, str], rendered_evidence: tuple[Path, str, dict]) -> None:
    markdown = rendered_evidence[1]
    section = _section(markdown, "Monte-Carlo dropout")
    [model] = MC_MODELS
    first = _table(markdown, "Monte-Carlo dropout")[model]
    assert first["T"] == "10"
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", first["mIoU, MC [95% interval]"])
    assert re.fullmatch(r"\+0\.\d{3} \[[+-]0\.\d{3}, \+0\.\d{3}\]", first["MC minus 1 pass [95% interval]"])
    assert first["Latency p50, 1 pass / T passes (ms)"] == "100.0 / 1,000.0"
    second = _table(markdown, "Monte-Carlo dropout", index=1)[model]
    assert re.fullmatch(r"0\.\d{3} → 0\.\d{3}", second["ECE, 1 pass → MC"])
    assert re.fullmatch(r"0\.\d{3}", second["AUROC"]) and re.fullmatch(r"0\.\d{3}", second["PAvPU (pixel-level)"])
    assert "![Monte-Carlo sample curve](mc_sample_curve.png)" in section
    assert "![Uncertainty maps](mc_uncertainty_gallery.png)" in section
    assert f"below the prediction of {model} (Monte-Carlo dropout), its predictive entropy" in markdown
    # Without Monte-Carlo results: no section, no figure.
    assert "## Monte-Carlo dropout" not in rendered[1]
    assert not (rendered[0] / FIGURE_FILES["mc_curve"]).exists()


@pytest.fixture(scope="module")
def evidence_frames(rendered_evidence: tuple[Path, str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model table and the evidence intervals of the rendered fixture, as render_report makes them."""
    results = comparable.select(load_results(rendered_evidence[0])).results
    runs, _ = current_runs(results.runs)
    table = model_table(results)
    return table.set_index("model"), evidence_summary(results, runs, table).intervals


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_every_declared_metric_has_its_rows_its_columns_and_its_interval(
        metric: Metric, rendered_evidence: tuple[Path, str, dict],
        evidence_frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    results_dir, markdown, _ = rendered_evidence
    assert set(metric.rows) <= set(pd.read_csv(results_dir / "metrics.csv")["metric"])
    detail = _table(markdown, "Accuracy in detail")
    for column in metric.columns:
        for model in EXPECTED_RANKING:
            cell = detail[model][column.title]
            pattern = r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]" if column.interval else r"0\.\d{3}( ± 0\.\d{3})?"
            assert re.fullmatch(pattern, cell), (model, column.title, cell)
    if metric.interval:
        table, intervals = evidence_frames
        for model in MC_MODELS if metric.monte_carlo else EXPECTED_RANKING:
            low, estimate, high = (intervals.at[model, f"{metric.name}_{part}"] for part in ("low", "estimate", "high"))
            assert low < estimate < high, model
            if metric.pooled_row:  # the interval is of the very number the runner stored
                assert estimate == pytest.approx(table.at[model, metric.name]), model


def test_the_detail_table_has_the_declared_columns_in_order(rendered_evidence: tuple[Path, str, dict]) -> None:
    detail = _table(rendered_evidence[1], "Accuracy in detail")
    assert list(detail["unet-resnet50"]) == [
        "#", "Model", "Seeds ok", "mIoU pooled", "mIoU per image", "Foreground IoU", "Dice pet [95% interval]",
        "Boundary IoU [95% interval]", "Pixel acc."]
    assert "**Dice pet**: the pet's Dice (F1)" in _section(rendered_evidence[1], "Accuracy in detail")


def test_runs_stored_before_dice_had_rows_render_it_from_their_evidence(
        tmp_path: Path, rendered_evidence: tuple[Path, str, dict]) -> None:
    """Dice derives from the stored confusion counts: a folder whose metrics.csv has no Dice rows
    (the committed reference, measured before them) renders the same page."""
    results_dir = write_results(tmp_path, evidence=True)
    metrics = pd.read_csv(results_dir / "metrics.csv")
    new_rows = metrics["metric"].isin(["dice_pet", "dice_pet_per_image", "precision_pet", "recall_pet"])
    assert new_rows.any()
    metrics[~new_rows].to_csv(results_dir / "metrics.csv", index=False)
    assert render_report(results_dir).read_text(encoding="utf-8") == rendered_evidence[1]


def test_runs_without_evidence_render_with_the_stated_fallback(rendered: tuple[Path, str]) -> None:
    markdown = rendered[1]
    assert "The ranking has no significance test: " + NO_EVIDENCE in _glance(markdown)
    assert "**Most accurate" not in _glance(markdown)
    assert "Tied with #1" not in markdown.split("## Failed runs", 1)[0].split("## Leaderboard", 1)[1]
    assert "No significance test: " + NO_EVIDENCE in _section(markdown, "Significance: which models are tied with #1")
    leaderboard = _section(markdown, "Leaderboard")
    assert leaderboard.count(NO_EVIDENCE) == 1  # stated once, for the models with one seed
    assert "*(t)*: no per-image evidence stored" in leaderboard
    assert _section(markdown, "Calibration").strip() == f"Not measured: {NO_EVIDENCE}."
    detail = _table(markdown, "Accuracy in detail")["unet-resnet50"]
    assert detail["mIoU per image"] == detail["Boundary IoU [95% interval]"] == "—"
    assert detail["Dice pet [95% interval]"] == "—"


def test_partial_evidence_tests_only_what_it_can_and_says_so(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path, evidence=True)
    (results_dir / "runs" / "fcn8s-vgg16-s0" / "evidence.npz").unlink()
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    main = _table(markdown, "Leaderboard")
    assert main["fcn8s-vgg16"]["Tied with #1"] == "not tested"
    assert re.fullmatch(r"0\.\d{3} \(n=1\)", main["fcn8s-vgg16"]["mIoU [95% interval]"])  # its metric, no interval
    glance = _glance(markdown)
    assert "**Highest mIoU:** unet-resnet50" in glance and "could not be tested (fcn8s-vgg16)" in glance
    assert "Not tested, for want of per-image evidence: fcn8s-vgg16." in markdown


def test_models_evaluated_on_other_images_get_no_paired_test(tmp_path: Path) -> None:
    results_dir = write_results(tmp_path, evidence=True)
    arrays = synthetic_evidence("classical-otsu", 0, 0.30)
    arrays["image_index"] = arrays["image_index"] + 100  # another part of the test split
    save_evidence(results_dir / "runs" / "classical-otsu-s0" / "evidence.npz", arrays)
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    significance = _section(markdown, "Significance: which models are tied with #1")
    assert "No significance test: models were evaluated on different test images" in significance
    assert "Tied with #1" not in _section(markdown, "Leaderboard").split("|", 1)[1]
    assert "The ranking has no significance test" in _glance(markdown)
    # Each model's own interval still stands.
    otsu = _table(markdown, "Leaderboard")["classical-otsu"]["mIoU [95% interval]"]
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", otsu)


def _cells(markdown: str, title: str) -> list[str]:
    section = _section(markdown, title)
    return [c.strip() for line in section.splitlines() if line.startswith("|") and not line.startswith("|-")
            for c in line.strip("|").split("|")]


def test_no_provenance_cell_is_over_120_characters(tmp_path: Path, rendered_evidence: tuple[Path, str, dict]) -> None:
    results_dir = write_results(tmp_path)
    runs = pd.read_csv(results_dir / "runs.csv")
    for i in range(40):  # a config as wide as the committed reference's, and one very long value
        runs[f"config.profile.setting_{i:02d}"] = 1000 + i
    runs["config.profile.description"] = "a description " * 30
    runs["config.profile.timing.warmup_calls"] = [2, 3] * (len(runs) // 2) + [2] * (len(runs) % 2)
    runs.to_csv(results_dir / "runs.csv", index=False)
    env = json.loads((results_dir / "environment.json").read_text())
    env["profile"] = {"nested": {"deep": "x" * 400}, "seeds": list(range(100))}
    (results_dir / "environment.json").write_text(json.dumps(env))
    markdown = render_report(results_dir).read_text(encoding="utf-8")
    for text in (markdown, rendered_evidence[1]):
        cells = _cells(text, "Provenance") + _cells(text, "Machine and environment")
        assert cells and max(len(c) for c in cells) <= 120, max(cells, key=len)
    provenance = _section(markdown, "Provenance")
    assert "setting_39=1039" in provenance and "Evaluation settings (cont.)" in provenance
    assert "| profile.timing.warmup_calls | 2 values: 2 (8), 3 (7)" in provenance  # only what varies, with counts
    assert "warmup_calls=" not in provenance.split("What varies", 1)[0]
    assert "`profile.nested.deep`" in markdown


def test_the_gallery_stops_at_the_top_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.report import render as report

    monkeypatch.setattr(report, "GALLERY_MODELS", 2)
    shown = []
    draw = figures.prediction_gallery
    monkeypatch.setattr(figures, "prediction_gallery", lambda p: shown.append(list(p)) or draw(p))
    markdown = render_report(write_results(tmp_path)).read_text(encoding="utf-8")
    assert shown[0] == ["unet-resnet50", "unet-mobilenetv2", "classical-slic (classical)"]
    assert ("for the 2 most accurate of the 5 deep models and the best classical segmenter, classical-slic (the "
            "gallery stops at 2 deep models") in markdown
