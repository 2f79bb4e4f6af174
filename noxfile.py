"""Sessions: `nox -s bench` runs the benchmark, `nox -s tests` the test suite, `nox -s lint` ruff,
`nox -s gpu` the accelerator check (a short matrix of precision and XLA modes; fails loudly).

Arguments after `--` pass through: `nox -s bench -- --profile smoke --arch 'unet*'`.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
# TensorFlow is a ~600 MB install: reuse the environment between runs of the same session.
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
# The real Oxford-IIIT Pet sample that sits beside the repository in CI and on the developers'
# machines. A user's checkout has no ../shared; everything then falls back on its own.
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-sample"

QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}


def _env() -> dict[str, str]:
    env = dict(QUIET_TF)
    if SHARED_SAMPLE.is_dir() and "SEGBENCH_PETS_DIR" not in os.environ:
        env["SEGBENCH_PETS_DIR"] = str(SHARED_SAMPLE)
    return env


def _wants_ray(args: list[str]) -> bool:
    """Whether the bench arguments ask for the Ray executor (Ray is an optional extra)."""
    return "--executor=ray" in args or any(a == "--executor" and b == "ray" for a, b in zip(args, args[1:]))


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the heavy models run in subprocesses, two workers at a time)."""
    # JAX (the CPU build, ~100 MB) so that the backend tests run; PyTorch's CUDA build is GBs: its
    # tests run where it is installed.
    session.install("-e", ".[bench,test,ray,jax]")
    args = session.posargs or ["-n", "2", "--dist", "loadgroup", "-m", "not perf"]
    session.run("pytest", *args, env=_env())


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository, with the rules pyproject.toml lists (the ones the code follows)."""
    # Pinned to one minor release: a new ruff may add checks to a selected rule family.
    session.install("ruff>=0.17,<0.18")
    session.run("ruff", "check", *(session.posargs or ["."]))


@nox.session
def bench(session: nox.Session) -> None:
    """The default: the quick profile's ranking, then the costs of every pair (its companion,
    `costs`), each with its leaderboard; with arguments after `--`, exactly the sweep they name
    (`-- --executor ray` on Ray)."""
    session.install("-e", ".[bench,ray]" if _wants_ray(session.posargs) else ".[bench]")
    if session.posargs:
        session.run("python", "-m", "bench", "run", *session.posargs, env=_env())
        return
    session.run("python", "-m", "bench", "run", "--profile", "quick", env=_env())
    session.run("python", "-m", "bench", "run", "--profile", "costs", env=_env())


@nox.session
def perf(session: nox.Session) -> None:
    """pytest-benchmark timings: the input pipeline, the harness's overhead, and its latency cross-check.

    The JSON lands in results/local/perf (ignored by git, like every user's results); the suite
    compares the harness's batch-1 p50 with pytest-benchmark's median for the same callable (they
    must agree within 10%).
    """
    session.install("-e", ".[bench,test]")
    out = ROOT / "results" / "local" / "perf"
    out.mkdir(parents=True, exist_ok=True)
    args = session.posargs or ["tests/perf", "-s"]
    session.run(
        "pytest", "-m", "perf", "-p", "no:cacheprovider", "--benchmark-json", str(out / "benchmark.json"), *args,
        env=_env(),
    )


def _posarg_value(posargs: list[str], flag: str) -> str | None:
    """The value of ``flag`` among the session's arguments (``--flag v`` or ``--flag=v``), before any ``--``."""
    args = posargs[: posargs.index("--")] if "--" in posargs else posargs
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


@nox.session
def gpu(session: nox.Session) -> None:
    """The accelerator check: every precision x XLA mode on a short schedule, through the CLI.

    Prints images/s per model and mode and the mIoU parity table; exits non-zero on any failed run,
    any run that fell back from the mode asked for, or parity outside the tolerance; exits 3 where
    the backend sees no GPU (`-- --allow-cpu` runs it on the CPU). `-- --backend jax` checks JAX
    (installing its CUDA build instead of TensorFlow's); `-- --models unet-mobilenetv2` for a
    shorter matrix; arguments after a second `--` go to every `python -m bench run`.
    """
    # Each backend's CUDA libraries come with its own extra (Linux): TensorFlow's [and-cuda], JAX's
    # [cuda12]; PyTorch's default Linux wheel carries CUDA.
    backend = _posarg_value(session.posargs, "--backend") or os.environ.get("KERAS_BACKEND") or "tensorflow"
    cuda = {"tensorflow": ["tensorflow[and-cuda]"], "jax": ["jax[cuda12]"], "torch": ["torch"]}
    if backend not in cuda:
        session.error(f"--backend {backend!r}: choose tensorflow, jax or torch")
    session.install("-e", ".[bench,test]", *cuda[backend])
    # First the training loop with and without a host sync per step (ms/step, on the GPU), then the matrix.
    session.run(
        "pytest", "tests/perf/test_speed_modes.py", "-m", "perf", "-k", "per_step_sync", "-s", "-p", "no:cacheprovider",
        env=_env(),
    )
    session.run("python", "-m", "bench.gpu_check", *session.posargs, env=_env())


@nox.session
def report(session: nox.Session) -> None:
    """Re-render the leaderboard from stored results (`-- --profile smoke` for another profile)."""
    session.install("-e", ".[report]")
    session.run("python", "-m", "bench", "report", *session.posargs, env=_env())
