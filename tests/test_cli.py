"""Bad arguments: a clear one-line error, exit code 2, no traceback, nothing stored touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.arguments import parse_seeds
from bench.cli import main
from tests.support.commands import bench_cli

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
    (["run", "--run-timeout", "-5"], "--run-timeout must be a positive number, got -5"),
    (["run", "--run-timeout", "0"], "--run-timeout must be a positive number"),
    (["run", "--seeds", "0-200000"], "at most 100 per sweep"),
    (["run", "--profile", "smoke", "--arch", "unett"], "Did you mean 'unet'?"),
    (["run", "--profile", "smoke", "--backbone", "resnet5"], "Did you mean 'resnet50'?"),
    (["run", "--profile", "smoke", "--arch", "classical-cany"], "Did you mean 'classical-canny'?"),
    (["run", "--profile", "smoke", "--backend", "theano"], "theano is not a Keras backend; choose from tensorflow, jax, torch"),
    (["list", "--profile", "smoke", "--backend", "tensorflow,mxnet"], "mxnet is not a Keras backend"),
    (["run", "--profile", "quick", "--backend", "jax", "--xla", "off"], "--xla off cannot apply on --backend jax"),
    (["run", "--profile", "quick", "--backend", "jax", "--gpus-per-run", "2"], "cannot apply on --backend jax"),
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


def test_out_below_a_file_or_unwritable_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["run", "--profile", "smoke", "--out", str(a_file / "results")]) == 2
    err = capsys.readouterr().err
    assert f"is below {a_file}, which is a file" in err and "Traceback" not in err
    assert main(["run", "--profile", "smoke", "--out", str(a_file)]) == 2
    assert "is a file; pass a folder" in capsys.readouterr().err
    assert a_file.read_text() == "mine"
    # A read-only folder (root ignores permission bits, so the check itself is made to say no).
    import bench.cli

    monkeypatch.setattr(bench.cli.os, "access", lambda path, mode: False)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "ro" / "results")]) == 2
    assert "is not writable (read-only?)" in capsys.readouterr().err


def test_a_sweep_into_a_folder_it_does_not_own_stops_before_anything_runs(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    (theirs / "runs").mkdir(parents=True)
    (theirs / "metrics.csv").write_text("epoch,miou\n1,0.5\n")
    (theirs / "history.csv").write_text("epoch,loss\n0,1.2\n")
    done = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "tinytest", "--backbone", "mobilenetv2", "--out", str(theirs), timeout=180)
    assert done.returncode == 2 and "not made by segbench" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in theirs.iterdir()) == ["history.csv", "metrics.csv", "runs"]
    assert (theirs / "metrics.csv").read_text() == "epoch,miou\n1,0.5\n" and not any((theirs / "runs").iterdir())


@pytest.mark.parametrize("command", ["run", "list", "report"])
def test_help_names_the_folders_the_commands_use(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--help must name where results go: it once said results/<profile>, the read-only reference."""
    from bench.cli import DEFAULT_RESULTS, REFERENCE_RESULTS

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{DEFAULT_RESULTS.as_posix()}/<profile>" in text
    if command != "report":
        assert f"committed reference {REFERENCE_RESULTS.as_posix()}/<profile>" in text


def test_one_run_is_counted_in_the_singular(tmp_path: Path) -> None:
    """A one-model sweep once printed "1 runs: ..." (list) and "1 runs planned" (run)."""
    done = bench_cli(tmp_path, "list", "--profile", "smoke", "--arch", "classical-canny", "--out", str(tmp_path / "r"),
                     timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\n1 run: 0 done, 0 failed, 1 to do;" in done.stdout


def test_a_read_only_cache_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The default data is generated into the cache; a read-only one ended in OSError: [Errno 30]."""
    import errno

    import bench.data.cache

    def read_only(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bench.data.cache.tempfile, "mkdtemp", read_only)
    out = tmp_path / "r"
    assert main(["run", "--profile", "smoke", "--arch", "classical", "--backbone", "otsu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"the data cache {tmp_path / 'cache' / 'pets-synthetic'} cannot be written (Read-only file system)" in err
    assert "point $SEGBENCH_CACHE at a writable folder" in err and not out.exists()
