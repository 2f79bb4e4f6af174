"""Bad arguments: a clear one-line error, exit code 2, no traceback, nothing stored touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import bench_cli

from bench.arguments import parse_seeds
from bench.cli import main

BAD = [
    (["run", "--profile", "quik"], "unknown profile 'quik'. Did you mean 'quick'?"),
    (["run", "--profile", "smoke", "--arch", "nosuch*"], "no model matches --arch 'nosuch*'"),
    (["run", "--profile", "smoke", "--backbone", "vgg16"], "Backbones: mobilenetv2"),
    (["run", "--image-size", "100"], "multiple of 32"),
    (["run", "--image-size", "big"], "--image-size must be an integer"),
    (["run", "--seeds", "one"], "--seeds takes non-negative integers"),
    (["run", "--seeds", "3-1"], "is empty"),
    (["run", "--epochs", "0"], "--epochs must be a positive integer"),
    (["run", "--weights", "random"], "invalid choice"),
    (["list", "--profile", "nope"], "unknown profile"),
    (["report", "--profile", "nope"], "unknown profile"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_argument_is_a_clear_error(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored = tmp_path / "results"
    stored.mkdir()
    (stored / "runs.csv").write_text("precious\n")
    if argv[0] != "frobnicate" and "--out" not in argv and argv[0] != "report":
        argv = [*argv, "--out", str(stored)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert [p.name for p in stored.iterdir()] == ["runs.csv"]
    assert (stored / "runs.csv").read_text() == "precious\n"


def test_bad_data_source_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bench.data")
    assert main(["run", "--profile", "smoke", "--data", "ftp://pets", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--data 'ftp://pets'" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_report_without_results_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--out", str(tmp_path / "none")]) == 2
    assert "python -m bench run" in capsys.readouterr().err


def test_errors_through_the_real_command_line(tmp_path: Path) -> None:
    done = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "nosuch", "--out", str(tmp_path / "r"), timeout=120)
    assert done.returncode == 2
    assert "no model matches --arch 'nosuch'" in done.stderr and "Architectures:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


def test_seeds_syntax() -> None:
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds("0-2,5") == (0, 1, 2, 5)
    assert parse_seeds("1,1") == (1,)
