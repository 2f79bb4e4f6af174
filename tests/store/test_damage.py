"""A damaged or odd results folder, through the command line: every command ends in one clear line
and a sensible exit code, and the store stays consistent where it was not at fault.

One real sweep of a classical segmenter (seconds) is made once; each test damages a copy of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main

pytest.importorskip("bench.data", reason="bench.data (the data pipeline) is not there yet")

pytestmark = pytest.mark.slow

SWEEP = ["--profile", "smoke", "--arch", "classical", "--backbone", "otsu"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("swept") / "r"
    assert main(["run", *SWEEP, "--out", str(out), "--no-report"]) == 0
    return out


@pytest.fixture
def results(swept: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "r"
    shutil.copytree(swept, copy, symlinks=True)
    return copy


def _run_dir(results: Path) -> Path:
    (run,) = list((results / "runs").iterdir())
    return run


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Exception in thread" not in err, err[-3000:]


def test_a_record_without_seed_is_set_aside_and_redone(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(results)
    record = json.loads((run / "record.json").read_text())
    del record["seed"]
    (run / "record.json").write_text(json.dumps(record))
    assert main(["report", "--out", str(results)]) == 2  # nothing left to report...
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"damaged record {run / 'record.json'}: not a record this harness can read (no seed)" in err
    assert len(list((results / "damaged").glob(f"{run.name}-*/record.json"))) == 1
    assert main(["run", *SWEEP, "--out", str(results), "--no-report"]) == 0  # ...and the run is redone
    assert "1 to run" in capsys.readouterr().err
    assert list(pd.read_csv(results / "runs.csv")["run_id"]) == [run.name]


def test_a_truncated_context_is_rebuilt_by_list_and_report(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = json.loads((results / "context.json").read_text())
    (results / "context.json").write_text((results / "context.json").read_text()[:120])
    assert main(["list", *SWEEP, "--out", str(results)]) == 0
    captured = capsys.readouterr()
    _no_traceback(captured.err)
    assert f"damaged {results / 'context.json'}: not valid JSON" in captured.err and "| done" in captured.out
    assert json.loads((results / "context.json").read_text())["context_id"] == before["context_id"]
    (results / "context.json").write_text("{")
    assert main(["report", "--out", str(results)]) == 0
    _no_traceback(capsys.readouterr().err)
    assert len(list((results / "damaged").glob("context.json-*"))) == 2


def test_a_truncated_predictions_file_sets_its_run_aside(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(results)
    data = (run / "predictions.npz").read_bytes()
    (run / "predictions.npz").write_bytes(data[: len(data) // 2])
    main(["report", "--out", str(results)])
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"damaged file {run / 'predictions.npz'}: not a readable .npz" in err and "redone" in err
    assert len(list((results / "damaged").glob(f"{run.name}-*/predictions.npz"))) == 1
    assert main(["run", *SWEEP, "--out", str(results)]) == 0  # redone, and the report renders
    err = capsys.readouterr().err
    assert "1 to run" in err and "Report FAILED" not in err and (results / "leaderboard.md").is_file()


def test_a_backup_copy_of_a_run_is_ignored_never_counted(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(results)
    shutil.copytree(run, run.with_name(f"{run.name}.bak"))
    rows = len(pd.read_csv(results / "metrics.csv"))
    assert main(["report", "--out", str(results)]) == 0
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"{run}.bak is not a run (it holds the record of run {run.name}: a copy?): ignored" in err
    assert len(pd.read_csv(results / "runs.csv")) == 1 and len(pd.read_csv(results / "metrics.csv")) == rows


@pytest.mark.parametrize("command", ["run", "list", "report"])
def test_runs_replaced_by_a_file_is_refused_in_one_line(results: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(results / "runs")
    (results / "runs").write_text("a file")
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    args = [command, *(SWEEP if command != "report" else []), "--out", str(results)]
    assert main(args) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"{results / 'runs'} is a file, not the folder of stored runs" in err
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before


def test_a_sweep_inside_the_committed_reference_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = tmp_path / "results" / "quick"  # a copy: a failing check must not write into the checkout
    reference.mkdir(parents=True)
    committed = Path(__file__).resolve().parents[2] / "results" / "quick" / "context.json"
    (reference / "context.json").write_bytes(committed.read_bytes())
    assert main(["run", *SWEEP, "--out", str(reference / "sub"), "--no-report"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"--out {reference / 'sub'} is inside {reference}, the committed reference results" in err
    assert not (reference / "sub").exists()


def test_an_image_size_beyond_the_memory_is_refused_with_the_largest_that_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["run", *SWEEP, "--image-size", "100000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "--image-size 100000 with --batch-size 4: a run of classical-otsu is expected to need about" in err
    assert "more than the" in err and "the largest that fits is --image-size" in err
    assert not out.exists()
