"""``python -m bench run | list | report``: the command line of the benchmark.

Arguments are checked before anything is loaded or stored: a bad one is a one-line error with exit
code 2 and no traceback, and nothing already stored is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.config import PROFILES, Profile

DEFAULT_RESULTS = Path("results")
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad command-line argument (exit code 2)."""


# === Parsing ===


def _int_at_least(minimum: int, name: str) -> Any:
    """An argparse type: an integer >= ``minimum``, with a message naming the option."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {value}")
        return value

    return parse


def _positive_float(name: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text}")
        return value

    return parse


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-2"`` or ``"3"`` -> distinct non-negative seeds, in order."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise argparse.ArgumentTypeError(
                f"--seeds takes non-negative integers like '0,1,2' or '0-2', got {text!r}"
            )
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise argparse.ArgumentTypeError(f"--seeds range {part!r} is empty (write low-high)")
        seeds.extend(s for s in range(lo, hi + 1) if s not in seeds)
    return tuple(seeds)


def _image_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--image-size must be an integer, got {text!r}") from None
    if value < 32 or value % 32:
        near = max(32, round(value / 32) * 32)
        raise argparse.ArgumentTypeError(
            f"--image-size must be a multiple of 32 (the backbones downsample 5 times), got {value}; try {near}"
        )
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: usage line, message, exit 2
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description="Train and measure segmentation models; store tidy results.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def selection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)} (default: quick)")
        p.add_argument(
            "--arch", default="*",
            help="glob(s), comma-separated, each matched against the architecture name or the whole model id: "
                 "'unet', 'fcn*', 'classical' or 'classical-*' (the classical segmenters), 'unet-mobilenetv2' "
                 "(default: all, classical included)",
        )
        p.add_argument(
            "--backbone", default="*",
            help="backbone glob(s), comma-separated; a classical model's backbone is its method, e.g. 'canny' "
                 "(default: all)",
        )
        p.add_argument("--seeds", type=parse_seeds, help="seeds, e.g. '0,1,2' or '0-2' (default: the profile's)")
        p.add_argument("--data", help="auto | tfds | dir:PATH | synthetic (default: the profile's)")
        p.add_argument("--epochs", type=_int_at_least(1, "--epochs"))
        p.add_argument("--steps-per-epoch", type=_int_at_least(1, "--steps-per-epoch"))
        p.add_argument("--batch-size", type=_int_at_least(1, "--batch-size"))
        p.add_argument("--image-size", type=_image_size, help="square side in pixels, a multiple of 32")
        p.add_argument("--weights", choices=["imagenet", "none"], help="encoder initialisation")
        p.add_argument(
            "--precise-bn-batches", type=_int_at_least(0, "--precise-bn-batches"),
            help="training batches for recomputing BatchNorm statistics before evaluation; 0 = off",
        )
        p.add_argument(
            "--gpus-per-run", type=_int_at_least(1, "--gpus-per-run"), default=1, metavar="N",
            help="GPUs one run trains on; above 1 with tf.distribute.MirroredStrategy, the global batch staying "
                 "the profile's (default: 1, the GPU where there is one, else the CPU)",
        )
        p.add_argument("--out", type=Path, help="results directory (default: results/<profile>)")

    run = commands.add_parser("run", help="train and measure the selected matrix, then render the report")
    selection(run)
    run.add_argument("--force", action="store_true", help="redo runs that are already stored")
    run.add_argument("--retry-failed", action="store_true", help="redo stored failed runs (successes are kept)")
    run.add_argument("--run-timeout", type=float, metavar="SECONDS", help="stop a run after this long (stored as failed)")
    run.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    run.add_argument(
        "--jobs", type=_int_at_least(1, "--jobs"), metavar="N",
        help="local executor: runs at once, as long as their expected peak memory fits "
             "(default: the profile's: 1, or 2 for smoke, whose eager timings are not compared anyway)",
    )
    run.add_argument(
        "--executor", choices=["local", "ray"], default="local",
        help="where runs execute: this machine (default) or a Ray cluster (pip install -e '.[ray]')",
    )
    ray = run.add_argument_group("Ray (with --executor ray)")
    ray.add_argument(
        "--ray-address", metavar="ADDRESS",
        help="join this running cluster (what `ray start --head` printed, or 'auto'); default: $RAY_ADDRESS, "
             "else a local cluster for this sweep",
    )
    ray.add_argument(
        "--cpus-per-run", type=_positive_float("--cpus-per-run"), metavar="N",
        help="CPUs a run reserves (default 1); on CPU-only nodes this decides how many runs share a node",
    )
    ray.add_argument(
        "--max-retries", type=_int_at_least(0, "--max-retries"), metavar="N",
        help="times a run whose Ray worker died (killed, out of memory, node lost) is restarted before it "
             "is stored as failed (default 1)",
    )

    lst = commands.add_parser("list", help="show the matrix, what is stored, and the time estimate")
    selection(lst)

    report = commands.add_parser("report", help="render the report from stored results")
    where = report.add_mutually_exclusive_group()
    where.add_argument("--profile", help="render results/<profile>")
    where.add_argument("--out", type=Path, help="render this results directory")
    return parser


# === Resolving ===


def resolve_profile(args: argparse.Namespace) -> Profile:
    """The named profile with the command line's overrides applied."""
    if args.profile not in PROFILES:
        import difflib

        near = difflib.get_close_matches(args.profile, PROFILES, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UsageError(f"unknown profile {args.profile!r}.{hint} Profiles: {', '.join(PROFILES)}.")
    profile = PROFILES[args.profile]
    overrides = {
        "seeds": args.seeds, "data": args.data, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size, "image_size": args.image_size, "weights": args.weights,
        "precise_bn_batches": args.precise_bn_batches, "jobs": getattr(args, "jobs", None),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("data") is not None:
        overrides["data"] = check_data(overrides["data"])
    profile = dataclasses.replace(profile, **overrides)
    if profile.batch_size % args.gpus_per_run:
        raise UsageError(
            f"--gpus-per-run {args.gpus_per_run} must divide the batch size {profile.batch_size}: the global "
            f"batch is split evenly across the GPUs (pass --batch-size "
            f"{-(-profile.batch_size // args.gpus_per_run) * args.gpus_per_run})."
        )
    return profile


def check_data(text: str) -> str:
    from bench.data import DataError, parse_source

    try:
        parse_source(text)
    except (DataError, ValueError) as error:
        raise UsageError(f"bad --data {text!r}: {error}") from None
    return text


def resolve_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    import segmodels
    from segmodels.classical import list_classical_models

    from bench.runner import select_models

    pairs = select_models(args.arch, args.backbone)
    if not pairs:
        raise UsageError(
            f"no model matches --arch {args.arch!r} --backbone {args.backbone!r}. "
            f"Architectures: {', '.join(segmodels.list_architectures())}. "
            f"Backbones: {', '.join(segmodels.list_backbones())}. "
            f"Classical models (--arch 'classical-*', --backbone <method>): {', '.join(list_classical_models())}."
        )
    return pairs


def results_dir(args: argparse.Namespace, profile: Profile) -> Path:
    return args.out if args.out is not None else DEFAULT_RESULTS / profile.name


# === Commands ===


def _prepare(args: argparse.Namespace) -> tuple[Profile, Any, Any, Any, list[Any]]:
    from bench.runner import plan, resolve_data
    from bench.store import ResultsStore

    profile = resolve_profile(args)
    pairs = resolve_pairs(args)
    out = results_dir(args, profile)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory.")
    from bench.data import DataError

    try:
        data = resolve_data(profile.data, profile.image_size)
    except DataError as error:
        raise UsageError(f"data source {profile.data!r} unusable: {error}") from None
    store = ResultsStore(out)
    return profile, data, store, out, plan(profile, pairs, data, replicas=args.gpus_per_run)


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.estimate import format_duration
    from bench.runner import estimates, status

    profile, data, store, out, runs = _prepare(args)
    st = status(runs, store)
    est = estimates(runs, store, data)
    done = {c.run_id for c in st.done}
    failed = {c.run_id for c in st.failed}
    rows = []
    for cfg in runs:
        record = store.load_record(cfg.run_id) if cfg.run_id in done | failed else None
        state = "done" if cfg.run_id in done else ("FAILED" if cfg.run_id in failed else "to do")
        time_s = record["wall_time_s"] if record and record.get("wall_time_s") else est[cfg.run_id].seconds
        basis = "stored" if record else est[cfg.run_id].source
        rows.append([cfg.model, cfg.seed, state, f"{format_duration(time_s)} ({basis})", cfg.run_id])
    print(f"Profile {profile.name}: {profile.description}")
    print(f"Data: {data.describe()}")
    print(f"Results: {out}")
    print(tabulate(rows, headers=["model", "seed", "status", "time", "run id"], tablefmt="github"))
    from bench.runner import describe_estimate

    print(
        f"\n{len(runs)} runs: {len(st.done)} done, {len(st.failed)} failed, {len(st.todo)} to do; "
        f"estimated time for what is left: {describe_estimate(st.todo, est, profile.jobs)}"
    )
    return 0


_RAY_ONLY = {"ray_address": "--ray-address", "cpus_per_run": "--cpus-per-run", "max_retries": "--max-retries"}


def make_executor(args: argparse.Namespace, profile: Profile) -> Any:
    """The executor the command line asks for; a context manager (Ray's connects on entry)."""
    import contextlib

    if args.executor == "ray":
        if args.jobs is not None:
            raise UsageError("--jobs is for the local executor; on Ray the resources decide (see --cpus-per-run).")
        from bench.ray_executor import RayExecutor, RaySettings

        settings = RaySettings(
            address=args.ray_address, gpus_per_run=args.gpus_per_run,
            **{k: getattr(args, k) for k in ("cpus_per_run", "max_retries") if getattr(args, k) is not None},
        )
        return RayExecutor(settings)
    given = [flag for key, flag in _RAY_ONLY.items() if getattr(args, key) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} only applies with --executor ray.")
    if args.gpus_per_run > 1:
        check_local_devices(args.gpus_per_run)
    from bench.runner import LocalExecutor

    return contextlib.nullcontext(LocalExecutor(jobs=profile.jobs))


def check_local_devices(replicas: int) -> None:
    """Fails before the sweep when this machine cannot give a run ``replicas`` devices."""
    import tensorflow as tf

    from bench.worker import VIRTUAL_DEVICES_ENV

    gpus = len(tf.config.list_physical_devices("GPU"))
    available = gpus or int(os.environ.get(VIRTUAL_DEVICES_ENV, "0") or 0)  # as the worker picks them
    if available < replicas:
        raise UsageError(
            f"--gpus-per-run {replicas} needs {replicas} GPUs and this machine has {gpus}. Use fewer, run on a Ray "
            f"cluster with bigger nodes (--executor ray), or set {VIRTUAL_DEVICES_ENV}={replicas} to try the "
            "multi-device path on CPUs."
        )


def cmd_run(args: argparse.Namespace) -> int:
    from bench import envinfo
    from bench.ray_executor import RayExecutorError
    from bench.runner import describe_estimate, estimates, render_report, status, sweep
    from bench.store import SweepLockedError

    profile, data, store, out, runs = _prepare(args)
    executor_cm = make_executor(args, profile)
    err = sys.stderr
    try:
        with store.lock(), executor_cm as executor:
            store.clean_staging()
            store.consolidate()
            st = status(runs, store, force=args.force, retry_failed=args.retry_failed)
            est = estimates(st.todo, store, data)
            print(f"Profile {profile.name}: {profile.description}", file=err)
            print(f"Data: {data.describe()}", file=err)
            print(f"Executor: {executor.describe()}", file=err)
            if data.synthetic and profile.data != "synthetic":
                print("!! No real pet photos were found: this sweep runs on SYNTHETIC data. Its quality "
                      "numbers say nothing about real images.", file=err)
            print(
                f"{len(runs)} runs planned: {len(st.done)} already done, {len(st.failed)} stored as failed "
                f"(--retry-failed redoes them), {len(st.todo)} to run. Estimated time: {describe_estimate(st.todo, est, executor.slots)}.",
                file=err,
            )
            environment = {
                **envinfo.collect(),
                **envinfo.dataset_columns(data.provenance),
                "dataset_provenance": data.provenance,
                "profile": dataclasses.asdict(profile),
                "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
                "executor": executor.describe(),
            }
            if st.todo:  # environment.json describes the sweep that measured; one that runs nothing keeps it
                store.write_environment(environment)
            result = sweep(
                st.todo, store, environment=environment, est=est, timeout_s=args.run_timeout, out=err, executor=executor
            )
            store.consolidate()
    except SweepLockedError as error:
        print(f"error: {error}", file=err)
        return EXIT_USAGE
    except RayExecutorError as error:
        raise UsageError(str(error)) from None
    ok = sum(1 for r in result.stored if r["status"] == "ok")
    failed = len(result.stored) - ok
    print(f"Stored {len(result.stored)} runs this sweep ({ok} ok, {failed} failed) in {out}.", file=err)
    if result.interrupted:
        print(
            f"Interrupted: the run in flight was abandoned; everything finished is kept in {out}. "
            "Resume with the same command; render what is there with "
            f"`python -m bench report --out {out}`.",
            file=err,
        )
        return 130
    if not args.no_report:
        render_report(out, out=err)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.out is not None:
        out = args.out
    else:
        name = args.profile or "quick"
        if name not in PROFILES:
            raise UsageError(f"unknown profile {name!r}. Profiles: {', '.join(PROFILES)}.")
        out = DEFAULT_RESULTS / name
    if not out.is_dir():
        raise UsageError(f"no results in {out}: run `python -m bench run` first (or pass --out DIR).")
    try:
        from bench.report import render_report
    except ImportError as error:
        print(f"error: the report is not available ({error}).", file=sys.stderr)
        return 1
    print(render_report(out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return {"run": cmd_run, "list": cmd_list, "report": cmd_report}[args.command](args)
    except UsageError as error:
        message = str(error)
        print(message if message.startswith(parser.prog) else f"{parser.prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
