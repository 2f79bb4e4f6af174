"""``python -m bench run | list | report``: what each command does (its grammar is :mod:`bench.arguments`).

Arguments are checked before anything is loaded or stored: a bad one is a one-line error with exit
code 2 and no traceback, and nothing already stored is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.arguments import UsageError, build_parser
from bench.executors.base import EXIT_INTERRUPTED
from bench.profiles import PROFILES, Profile, ProfileError

DEFAULT_RESULTS = Path("results")
EXIT_USAGE = 2


# === Resolving ===


def resolve_profile(args: argparse.Namespace) -> Profile:
    """The named profile with the command line's overrides applied."""
    if args.profile not in PROFILES:
        import difflib

        near = difflib.get_close_matches(args.profile, PROFILES, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UsageError(f"unknown profile {args.profile!r}.{hint} Profiles: {', '.join(PROFILES)}.")
    overrides = {
        "seeds": args.seeds, "data": args.data, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size, "image_size": args.image_size, "weights": args.weights,
        "precise_bn_batches": args.precise_bn_batches, "jobs": getattr(args, "jobs", None),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("data") is not None:
        overrides["data"] = check_data(overrides["data"])
    try:
        profile = PROFILES[args.profile].override(**overrides)
    except ProfileError as error:
        raise UsageError(str(error)) from None
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
    from bench.plan import select_models
    from segmodels.classical import list_classical_models

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
    from bench.plan import plan, resolve_data
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

    from bench.clock import format_duration
    from bench.estimate import describe_estimate, estimates
    from bench.plan import status

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
    print(
        f"\n{len(runs)} runs: {len(st.done)} done, {len(st.failed)} failed, {len(st.todo)} to do; "
        f"estimated time for what is left: {describe_estimate(st.todo, est, profile.jobs)}"
    )
    return 0


_RAY_ONLY = {"ray_address": "--ray-address", "cpus_per_run": "--cpus-per-run", "max_retries": "--max-retries"}


def make_executor(args: argparse.Namespace, profile: Profile) -> Any:
    """The executor the command line asks for; a context manager (Ray's connects on entry)."""
    if args.executor == "ray":
        if args.jobs is not None:
            raise UsageError("--jobs is for the local executor; on Ray the resources decide (see --cpus-per-run).")
        from bench.executors.ray import RayExecutor, RaySettings

        settings = RaySettings(
            address=args.ray_address, gpus_per_run=args.gpus_per_run,
            **{k: getattr(args, k) for k in ("cpus_per_run", "max_retries") if getattr(args, k) is not None},
        )
        return RayExecutor(settings)
    given = [flag for key, flag in _RAY_ONLY.items() if getattr(args, key) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} only applies with --executor ray.")
    if args.gpus_per_run > 1:
        from bench.devices import local_device_shortage

        shortage = local_device_shortage(args.gpus_per_run)
        if shortage:
            raise UsageError(shortage)
    from bench.executors.local import LocalExecutor

    return LocalExecutor(jobs=profile.jobs)


def cmd_run(args: argparse.Namespace) -> int:
    from bench import envinfo
    from bench.estimate import describe_estimate, estimates
    from bench.executors.ray import RayExecutorError
    from bench.plan import status
    from bench.store import SweepLockedError
    from bench.sweep import render_report, sweep

    profile, data, store, out, runs = _prepare(args)
    executor = make_executor(args, profile)
    err = sys.stderr
    try:
        with store.lock(), executor:
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
        return EXIT_INTERRUPTED
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
        return EXIT_INTERRUPTED
