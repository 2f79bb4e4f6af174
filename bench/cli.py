"""``python -m bench run | list | report``: what each command does (its grammar is :mod:`bench.arguments`).

Arguments are checked before anything is loaded or stored: a bad one is a one-line error with exit
code 2 and no traceback, and nothing already stored is touched.

Why one module of this size: the three commands and the checks each makes before anything is
loaded or stored (profile, models, --out, the folder's context); the grammar is elsewhere.

The project's imports that pull in pandas, TensorFlow or seaborn are made inside the command that
needs them, each saying which (``# lazy: ...``): ``--help`` and a usage error answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import segmodels
from bench.arguments import UsageError, build_parser
from bench.clock import format_duration
from bench.config.backends import (
    INSTALL,
    BackendError,
    check_installed,
    default_backends,
    installed,
    parse_backends,
)
from bench.config.modes import backend_refusal, describe_profile_mode, fast_settings, local_gpus, mixed_modes_warning
from bench.config.profiles import PROFILES, Profile, ProfileError
from bench.config.run_config import matches_model
from bench.execute.executor import EXIT_INTERRUPTED
from bench.execute.limits import memory_problem
from bench.measure import envinfo
from bench.measure.build import imagenet_weights_available
from bench.measure.devices import local_device_shortage
from bench.plan.estimate import describe_estimate, describe_parts, estimates, run_part
from segmodels.registry import PluginAPIDeprecationWarning, PluginError, architecture_names, suggest

#: Where the committed reference results live (``results/<profile>``): read-only for sweeps.
REFERENCE_RESULTS = Path("results")
#: Where a user's sweeps write by default (``results/local/<profile>``), ignored by git.
DEFAULT_RESULTS = REFERENCE_RESULTS / "local"
EXIT_USAGE = 2
EXIT_STORE = 74  # EX_IOERR: the store could not be written (disk full, ...)


# === Resolving ===


def resolve_profile(args: argparse.Namespace) -> Profile:
    """The named profile with the command line's overrides applied."""
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}.{suggest(args.profile, PROFILES)} Profiles: {', '.join(PROFILES)}.")
    overrides = {
        "seeds": args.seeds, "data": args.data, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size, "image_size": args.image_size, "weights": args.weights,
        "precise_bn_batches": args.precise_bn_batches, "jobs": getattr(args, "jobs", None),
        "precision": args.precision, "xla": args.xla, "deterministic": args.deterministic,
        "mc_samples": args.mc_samples, "mc_models": args.mc_models,
        "val_images": args.val_images, "patience": args.patience, "trained_models": args.trained_models,
    }
    if args.mc_models:
        check_model_globs(args.mc_models)
    if args.trained_models:
        check_model_globs(args.trained_models, option="--trained-models")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.fast:
        overrides = {**fast_overrides(PROFILES[args.profile]), **overrides}
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
    if profile.xla == "on" and args.gpus_per_run > 1:
        raise UsageError(
            f"--xla on cannot train on --gpus-per-run {args.gpus_per_run} devices: under MirroredStrategy XLA fails on "
            "the replicas' variables (tensorflow.org/xla/known_issues, 'tf.Variable on a different device'), which "
            "is why Keras's own auto turns it off there. Use --xla auto or off, or one device per run."
        )
    return profile


def fast_overrides(base: Profile) -> dict[str, Any]:
    """``--fast``: the fastest mode on this machine's device (:func:`bench.config.modes.fast_settings`),
    said on stderr; an eager profile (smoke) compiles nothing, so XLA stays off there."""
    choice = fast_settings(local_gpus())
    settings = choice.settings()
    if base.run_eagerly and settings["xla"] == "on":
        settings["xla"] = "off"
    print(f"--fast: precision {settings['precision']}, XLA {settings['xla']}, deterministic "
          f"{'on' if settings['deterministic'] else 'off'} ({choice.reason})", file=sys.stderr)
    return settings


def check_model_globs(globs: Sequence[str], option: str = "--mc-models") -> None:
    """A ``--mc-models`` (or ``--trained-models``) glob that names no model is a usage error (a typo
    would silently do nothing)."""
    from bench.plan.matrix import all_models  # lazy: pandas

    models = all_models()
    for glob in globs:
        if not any(matches_model(a, b, [glob]) for a, b in models):
            architectures = sorted({a for a, _ in models})
            raise UsageError(f"{option} {glob!r} matches no model. Architectures: {', '.join(architectures)}.")


def check_data(text: str) -> str:
    from bench.data import DataError, parse_source  # lazy: TensorFlow

    try:
        parse_source(text)
    except (DataError, ValueError) as error:
        raise UsageError(f"bad --data {text!r}: {error}") from None
    return text


def resolve_pairs(args: argparse.Namespace, profile: Profile) -> list[tuple[str, str]]:
    """The pairs ``--arch`` and ``--backbone`` select; without ``--arch``, the profile's matrix."""
    from bench.plan.matrix import select_models  # lazy: pandas
    from segmodels.classical import list_classical_models  # lazy: scikit-image and TensorFlow

    if args.arch is None:
        args.arch = ",".join(profile.models)
    pairs = select_models(args.arch, args.backbone)
    if not pairs:
        raise UsageError(
            f"no model matches --arch {args.arch!r} --backbone {args.backbone!r}.{_nearest_model(args)} "
            f"Architectures: {', '.join(segmodels.list_architectures())}. "
            f"Backbones: {', '.join(segmodels.list_backbones())}. "
            f"Classical models (--arch 'classical-*', --backbone <method>): {', '.join(list_classical_models())}."
        )
    return pairs


def _nearest_model(args: argparse.Namespace) -> str:
    """" Did you mean ...?" for the first plain (glob-free) --arch or --backbone name that matches nothing."""
    from bench.plan.matrix import all_models, split_globs  # lazy: pandas

    models = all_models()
    archs = {a for a, _ in models} | {f"{a}-{b}" for a, b in models}
    backbones = {b for _, b in models}
    for globs, known in ((args.arch, archs), (args.backbone, backbones)):
        for name in split_globs(globs):
            if not any(c in name for c in "*?[") and name not in known:
                hint = suggest(name, sorted(known))
                if hint:
                    return hint
    return ""


def results_dir(args: argparse.Namespace, profile: Profile) -> Path:
    """``--out``, else ``results/local/<profile>`` (never the committed reference)."""
    return args.out if args.out is not None else DEFAULT_RESULTS / profile.name


def check_out(out: Path) -> None:
    """Fails before anything runs when ``out`` can never be a results folder."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == out else f"is below {folder}, which is a file"
                raise UsageError(f"--out {out} {where}; pass a folder.")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"--out {out} cannot be written: {folder} is not writable (read-only?). Pass another --out.")
            return


# === Commands ===


def _prepare(args: argparse.Namespace) -> tuple[Profile, Any, Any, Any, list[Any]]:
    from bench.plan.matrix import plan, resolve_data  # lazy: pandas
    from bench.store.results import ResultsStore  # lazy: pandas

    profile = resolve_profile(args)
    backends = resolve_backends(args)
    for backend in backends:
        refusal = backend_refusal(profile, backend, args.gpus_per_run)
        if refusal:
            raise UsageError(refusal)
    pairs = resolve_pairs(args, profile)
    out = results_dir(args, profile)
    check_out(out)
    check_memory(profile, pairs, out, args.gpus_per_run)
    from bench.data import DataError  # lazy: TensorFlow

    try:
        data = resolve_data(profile.data, profile.image_size)
    except DataError as error:
        raise UsageError(f"data source {profile.data!r} unusable: {error}") from None
    check_validation_split(profile, data.provenance)
    store = ResultsStore(out)
    return profile, data, store, out, plan(profile, pairs, data, replicas=args.gpus_per_run, backends=backends)


def resolve_backends(args: argparse.Namespace) -> tuple[str, ...]:
    """``--backend`` (default ``$KERAS_BACKEND``, else TensorFlow); ``run`` refuses one that is not
    installed, ``list`` plans it and says so."""
    try:
        backends = parse_backends(args.backend) if args.backend else default_backends()
        if args.command == "run":
            check_installed(backends)
    except BackendError as error:
        came_from = "" if args.backend else f" ($KERAS_BACKEND is {os.environ.get('KERAS_BACKEND')!r}: pass --backend)"
        raise UsageError(f"{error}{came_from}") from None
    return backends


def check_validation_split(profile: Profile, provenance: dict[str, Any]) -> None:
    """``--val-images`` must leave images to train on: refused here, before any run, rather than
    in every worker once its data is loaded."""
    from bench.data.split import choose_validation  # lazy: TensorFlow

    if profile.val_images:
        try:
            choose_validation(int(provenance["train_size"]), profile.val_images, profile.val_seed,
                              str(provenance.get("fingerprint", "")))
        except ValueError as error:
            raise UsageError(f"{error} (the dataset has {provenance['train_size']} training images)") from None


def check_memory(profile: Profile, pairs: list[tuple[str, str]], out: Path, replicas: int) -> None:
    """Refuses, before any data is loaded, a sweep whose runs cannot fit in this machine's memory."""
    from bench.plan.matrix import DataChoice, plan  # lazy: pandas
    from bench.store.results import ResultsStore  # lazy: pandas

    runs = plan(profile, pairs, DataChoice(profile.data, {}), replicas=replicas)
    problem = memory_problem(runs, ResultsStore(out).records() if out.is_dir() else [])
    if problem:
        raise UsageError(problem)


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate  # lazy: only `list` prints a table

    from bench.plan.matrix import status  # lazy: pandas

    profile, data, store, out, runs = _prepare(args)
    st = status(runs, store)
    est = estimates(runs, store, data)
    done = {c.run_id for c in st.done}
    failed = {c.run_id for c in st.failed}
    backends = list(dict.fromkeys(cfg.backend for cfg in runs))
    several = len(backends) > 1
    rows = []
    for cfg in runs:
        record = st.stored.get(cfg.run_id) if cfg.run_id in done | failed else None
        state = "done" if cfg.run_id in done else ("FAILED" if cfg.run_id in failed else "to do")
        time_s = record["wall_time_s"] if record and record.get("wall_time_s") else est[cfg.run_id].seconds
        basis = "stored" if record else est[cfg.run_id].source
        rows.append([cfg.model, *([cfg.backend] if several else []), cfg.seed, run_part(cfg), state,
                     f"{format_duration(time_s)} ({basis})", record["run_id"] if record else cfg.run_id])
    print(f"Profile {profile.name}: {profile.description}")
    print(f"Data: {data.describe()}")
    print(f"Results: {out}")
    mine = store.context()
    if mine is not None and mine.get("context_id") != runs[0].context_id:
        from bench.store.results import context_mismatch  # lazy: pandas

        print(f"!! {context_mismatch(out, mine.get('context', {}), runs[0].context())}")
    headers = ["model", *(["backend"] if several else []), "seed", "part", "status", "time", "run id"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    for name in backends:
        if not installed(name):
            print(f"!! backend {name} is not installed here: `run` would refuse it (install it: {INSTALL[name]})")
    planned = f"{len(runs)} run{'s' * (len(runs) != 1)}"
    print(
        f"\n{planned}: {len(st.done)} done, {len(st.failed)} failed, {len(st.todo)} to do; "
        f"estimated time for what is left: {describe_estimate(st.todo, est, profile.jobs)}"
    )
    for line in describe_parts(st.todo, est, profile.jobs):
        print(f"  {line}")
    companion = _companion_estimate(args, profile, data)
    if companion:
        print(companion)
    return 0


def _companion_estimate(args: argparse.Namespace, profile: Profile, data: Any) -> str:
    """The line of ``list`` for the profile's companion (``quick``: ``costs``), as ``nox -s bench``
    runs it: its default matrix into its default folder; empty without one, or when this command
    already names its own models or folder (the companion would not be the default's)."""
    from bench.plan.matrix import plan, select_models, status  # lazy: pandas
    from bench.store.results import ResultsStore  # lazy: pandas

    if not profile.companion or args.out is not None or args.arch != ",".join(profile.models):
        return ""
    other = PROFILES[profile.companion]
    if (other.data, other.image_size) != (profile.data, profile.image_size):
        return ""  # another dataset or size: its data would have to be resolved on its own
    store = ResultsStore(DEFAULT_RESULTS / other.name)
    runs = plan(other, select_models(",".join(other.models), "*"), data)
    todo = status(runs, store).todo
    est = estimates(runs, store, data)
    lines = [f"\nCompanion profile {other.name} ({other.description}; `nox -s bench` runs it after this one, "
             f"alone: `python -m bench run --profile {other.name}`): {len(runs)} runs, {len(todo)} to do, "
             f"{describe_estimate(todo, est, other.jobs)}"]
    lines += [f"  {line}" for line in describe_parts(todo, est, other.jobs)]
    return "\n".join(lines)


_RAY_ONLY = {"ray_address": "--ray-address", "cpus_per_run": "--cpus-per-run", "max_retries": "--max-retries"}


def make_executor(args: argparse.Namespace, profile: Profile) -> Any:
    """The executor the command line asks for; a context manager (Ray's connects on entry)."""
    if args.executor == "ray":
        if args.jobs is not None:
            raise UsageError("--jobs is for the local executor; on Ray the resources decide (see --cpus-per-run).")
        from bench.execute.ray import RayExecutor, RaySettings  # lazy: pandas

        settings = RaySettings(
            address=args.ray_address, gpus_per_run=args.gpus_per_run,
            **{k: getattr(args, k) for k in ("cpus_per_run", "max_retries") if getattr(args, k) is not None},
        )
        return RayExecutor(settings)
    given = [flag for key, flag in _RAY_ONLY.items() if getattr(args, key) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} only applies with --executor ray.")
    if args.gpus_per_run > 1:
        shortage = local_device_shortage(args.gpus_per_run)
        if shortage:
            raise UsageError(shortage)
    from bench.execute.local import LocalExecutor  # lazy: pandas

    return LocalExecutor(jobs=profile.jobs)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.execute.ray import RayExecutorError  # lazy: pandas
    from bench.execute.sweep import sweep  # lazy: pandas
    from bench.plan.matrix import status  # lazy: pandas
    from bench.store.results import FolderNotOwnedError, StoreWriteError, SweepLockedError  # lazy: pandas

    profile, data, store, out, runs = _prepare(args)
    (context_id,) = {cfg.context_id for cfg in runs}  # one sweep, one comparison context
    executor = make_executor(args, profile)  # its checks come first: claiming writes context.json
    try:
        store.claim(runs[0].context(), context_id)
    except FolderNotOwnedError as error:
        raise UsageError(str(error)) from None
    err = sys.stderr
    try:
        with store.lock(), executor:
            store.clean_temporary()
            store.set_aside_damaged_files()
            store.consolidate()
            st = status(
                runs, store, force=args.force, retry_failed=args.retry_failed,
                weights_available=imagenet_weights_available,
            )
            est = estimates(st.todo, store, data)
            print(f"Profile {profile.name}: {profile.description}", file=err)
            print(f"Data: {data.describe()}", file=err)
            print(f"Executor: {executor.describe()}", file=err)

            swept = list(dict.fromkeys(cfg.backend for cfg in runs))
            for backend in swept:
                mode = describe_profile_mode(profile, accelerator=bool(local_gpus(backend)), backend=backend)
                print(f"Speed mode{f' ({backend})' * (len(swept) > 1)}: {mode}", file=err)
            if data.synthetic and profile.data != "synthetic":
                print("!! No real pet photos were found: this sweep runs on SYNTHETIC data. Its quality "
                      "numbers say nothing about real images.", file=err)
            planned = f"{len(runs)} run{'s' * (len(runs) != 1)}"
            print(
                f"{planned} planned: {len(st.done)} already done, {len(st.failed)} stored as failed "
                f"(--retry-failed redoes them), {len(st.todo)} to run. Estimated time: {describe_estimate(st.todo, est, executor.slots)}.",
                file=err,
            )
            if st.retried_weights:
                print(f"{len(st.retried_weights)} run(s) stored with random initialisation because ImageNet weights "
                      "could not be had are redone: the weights can be had now.", file=err)
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
    except SweepLockedError as error:
        print(f"error: {error}", file=err)
        return EXIT_USAGE
    except RayExecutorError as error:
        raise UsageError(str(error)) from None
    except StoreWriteError as error:  # before the sweep started: nothing ran
        print(f"error: {error.strerror}", file=err)
        return EXIT_STORE
    ok = sum(1 for r in result.stored if r["status"] == "ok")
    failed = len(result.stored) - ok
    n = len(result.stored)
    print(f"Stored {n} run{'s' * (n != 1)} this sweep ({ok} ok, {failed} failed) in {out}.", file=err)
    if result.write_error is not None:
        print(f"error: the sweep stopped: {result.write_error.strerror}", file=err)
        return EXIT_STORE
    if result.interrupted:
        print(
            f"Interrupted: the run in flight was abandoned; everything finished is kept in {out}. "
            "Resume with the same command; render what is there with "
            f"`python -m bench report --out {out}`.",
            file=err,
        )
        return EXIT_INTERRUPTED
    if not args.no_report:
        render_after_sweep(out, out=err)
        warn_mixed_modes(store.records(), err)
    return 0


def warn_mixed_modes(records: list[dict[str, Any]], err: Any) -> None:
    """Says when runs ranked together ran in different effective speed modes (bench.config.modes)."""
    warning = mixed_modes_warning(records)
    if warning:
        print(warning, file=err)


def report_dir(args: argparse.Namespace) -> Path:
    """``--out``; else the user's ``results/local/<profile>`` where it holds results, else the
    committed reference ``results/<profile>``."""
    if args.out is not None:
        return args.out
    name = args.profile or "quick"
    if name not in PROFILES:
        raise UsageError(f"unknown profile {name!r}.{suggest(name, PROFILES)} Profiles: {', '.join(PROFILES)}.")
    local, reference = DEFAULT_RESULTS / name, REFERENCE_RESULTS / name
    if (local / "runs").is_dir() or not (reference / "runs").is_dir():
        return local
    return reference


def cmd_report(args: argparse.Namespace) -> int:
    from bench.store.results import ENVIRONMENT_JSON, ResultsStore, StoreWriteError, atomic_write_json  # lazy: pandas

    out = report_dir(args)
    # The page cites each ranked architecture's paper from the model library: a plugin that cannot
    # be loaded is said now, in one line, as by run and list, before anything is read or written.
    architecture_names()
    store = ResultsStore(out)
    if store.foreign_files():
        raise UsageError(
            f"{out} was not made by segbench (no context.json, no stored runs): the report writes leaderboard.md "
            "and figures only into results folders of the harness. Pass the folder a sweep wrote (--out DIR)."
        )
    if out.is_dir():
        store.set_aside_damaged_files()
    records = store.records() if out.is_dir() else []
    try:
        # Where there is a runs/ folder its records are the truth: CSVs that say otherwise are rebuilt.
        problem = store.tables_problem() if records or store.runs_dir.is_dir() else None
        if problem:
            store.consolidate()
            print(f"{problem}: rebuilt runs.csv, metrics.csv and history.csv from the {len(records)} stored records.",
                  file=sys.stderr)
        environment = environment_problem(out / ENVIRONMENT_JSON)
        if records and environment:
            latest = max(records, key=lambda r: str(r.get("finished_at") or ""))
            if (out / ENVIRONMENT_JSON).exists():
                store.set_aside_file(out / ENVIRONMENT_JSON)
            atomic_write_json(out / ENVIRONMENT_JSON, {**latest.get("env", {}), "rebuilt_from": latest["run_id"]})
            print(f"{out / ENVIRONMENT_JSON} {environment}: rebuilt from the record of {latest['run_id']}.", file=sys.stderr)
    except (StoreWriteError, OSError) as error:
        print(f"error: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return EXIT_STORE
    if not records and (store.runs_dir.is_dir() or not (out / "runs.csv").is_file()):
        raise UsageError(
            f"no results in {out}: run `python -m bench run --out {out}` first (or pass --out DIR)."
            if args.out is not None else f"no results in {out}: run `python -m bench run --profile {args.profile or 'quick'}` first."
        )
    try:
        from bench.report import render_report  # lazy: seaborn and matplotlib
    except ImportError as error:
        print(f"error: the report is not available ({error}).", file=sys.stderr)
        return 1
    print(render_report(out))
    warn_mixed_modes(records, sys.stderr)
    return 0


def environment_problem(path: Path) -> str | None:
    """Why ``environment.json`` cannot be read by the report (``"was missing"``, ...), or ``None``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "was missing"
    except (OSError, ValueError) as error:
        return f"was damaged ({type(error).__name__}; kept in damaged/)"
    return None if isinstance(data, dict) else "was damaged (not a JSON object; kept in damaged/)"


def _refused(error: BaseException) -> bool:
    """Whether ``error`` is a results folder or a model plugin that the command cannot use: said in
    one line, like a bad option. Imported here: the store needs pandas, which --help does not."""
    from bench.store.results import FolderNotOwnedError  # lazy: pandas

    return isinstance(error, (FolderNotOwnedError, PluginError))


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Python shows a DeprecationWarning only when __main__ raises it; a plugin that passes a
    # parameter due to be removed must be told, once per line, whatever module it is.
    warnings.simplefilter("default", PluginAPIDeprecationWarning)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return {"run": cmd_run, "list": cmd_list, "report": cmd_report}[args.command](args)
    except UsageError as error:
        message = str(error)
        print(message if message.startswith(parser.prog) else f"{parser.prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, ImportError) as error:
        if not _refused(error):
            raise
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def render_after_sweep(results_dir: Path, out: TextIO = sys.stderr) -> Path | None:
    """Renders the report after a sweep when ``bench.report`` is there; a failure is said, never
    fatal: the sweep's results are stored whatever the report does."""
    try:
        from bench.report import render_report as render  # lazy: seaborn and matplotlib
    except ImportError as error:
        print(f"Report not rendered: bench.report is not available ({error}).", file=out)
        return None
    try:
        path = render(results_dir)
    except Exception as error:  # any error: the sweep's results are stored whatever the report does
        print(
            f"Report FAILED ({type(error).__name__}: {error}); the results are stored in {results_dir}. "
            f"Retry with: python -m bench report --out {results_dir}",
            file=out,
        )
        return None
    print(f"Report: {path}", file=out)
    return Path(path)
