"""The command line's grammar: ``python -m bench run | list | report`` and the type of each option.

Option values are parsed here (an integer, a seed list, a choice); whether a value is in range is
the profile's question (:func:`bench.config.profiles.profile_problem`), asked once the overrides are
applied. A bad value is a :class:`UsageError`: one line, exit code 2, nothing loaded or stored.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from bench.config.profiles import MAX_SEEDS, PROFILES


class UsageError(Exception):
    """A bad command-line argument (exit code 2)."""


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
        if hi - lo + 1 > MAX_SEEDS:  # checked before the range is expanded: 0-200000 must not hang
            raise argparse.ArgumentTypeError(
                f"--seeds range {part!r} has {hi - lo + 1} seeds; at most {MAX_SEEDS} per sweep (each seed "
                "trains every model once): pass a smaller range"
            )
        seeds.extend(range(lo, hi + 1))
    return tuple(dict.fromkeys(seeds))


def parse_globs(text: str) -> tuple[str, ...]:
    """``"bayesian_segnet, fcn*"`` -> ``("bayesian_segnet", "fcn*")``; ``""`` -> ``()``."""
    return tuple(g.strip() for g in text.split(",") if g.strip())


def _integer(name: str) -> Any:
    """An argparse type: any integer (its range is the profile's to check)."""

    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None

    return parse


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
            "--arch",
            help="glob(s), comma-separated, each matched against the architecture name or the whole model id: "
                 "'unet', 'fcn*', 'classical' or 'classical-*' (the classical segmenters), 'unet-mobilenetv2', "
                 "'*' for every model (default: the profile's matrix; quick: six architectures on MobileNetV2 "
                 "and the classical methods; the others: every model)",
        )
        p.add_argument(
            "--backbone", default="*",
            help="backbone glob(s), comma-separated; a classical model's backbone is its method, e.g. 'canny' "
                 "(default: all)",
        )
        p.add_argument(
            "--backend",
            help="Keras backend(s), comma-separated: tensorflow, jax, torch; several run each model once per "
                 "backend, side by side (default: $KERAS_BACKEND, else tensorflow)",
        )
        p.add_argument("--seeds", type=parse_seeds, help="seeds, e.g. '0,1,2' or '0-2' (default: the profile's)")
        p.add_argument("--data", help="auto | tfds | dir:PATH | synthetic (default: the profile's)")
        p.add_argument("--epochs", type=_int_at_least(1, "--epochs"))
        p.add_argument("--steps-per-epoch", type=_int_at_least(1, "--steps-per-epoch"))
        p.add_argument("--batch-size", type=_int_at_least(1, "--batch-size"))
        p.add_argument("--image-size", type=_integer("--image-size"), help="square side in pixels, a multiple of 32")
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
        speed = p.add_argument_group("speed mode (part of a run's identity; README 'Speed')")
        speed.add_argument(
            "--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"],
            help="Keras dtype policy; the logits stay float32 (default: the profile's, float32)",
        )
        speed.add_argument(
            "--xla", choices=["auto", "on", "off"],
            help="XLA compilation; auto = on for one GPU without op determinism, off on CPUs (default: auto)",
        )
        speed.add_argument(
            "--deterministic", action=argparse.BooleanOptionalAction, default=None,
            help="TensorFlow's op determinism: the same seed gives the same numbers (default: on)",
        )
        speed.add_argument(
            "--fast", action="store_true",
            help="the fastest mode on this machine's device (GPU: mixed precision, XLA, no determinism; CPU: "
                 "float32, no XLA); --precision/--xla/--deterministic given beside it win",
        )
        mc = p.add_argument_group("Monte-Carlo dropout (part of the identity of the runs it evaluates only)")
        mc.add_argument(
            "--mc-samples", type=_int_at_least(0, "--mc-samples"), metavar="T",
            help="stochastic passes per test batch for the models --mc-models names, seeded by the run's seed; "
                 "0 = none (default: the profile's: smoke 2, quick 8, full 50)",
        )
        mc.add_argument(
            "--mc-models", type=parse_globs, metavar="GLOBS",
            help="models evaluated with Monte-Carlo dropout as well, globs matched as --arch's: "
                 "'bayesian_segnet,fcn*'; '' = none (default: bayesian_segnet)",
        )
        trained = p.add_argument_group("training to a plateau (part of the identity of the runs that train)")
        trained.add_argument(
            "--val-images", type=_int_at_least(0, "--val-images"), metavar="N",
            help="training images held out for validation, the same for every model and seed (never test "
                 "images); 0 = no validation (default: the profile's: smoke 8, quick 16, full 368)",
        )
        trained.add_argument(
            "--patience", type=_int_at_least(0, "--patience"), metavar="EPOCHS",
            help="stop once the validation mIoU has not improved for this many epochs and restore the best "
                 "epoch's weights, --epochs being the cap; 0 = train every epoch (default: the profile's)",
        )
        trained.add_argument(
            "--trained-models", type=parse_globs, metavar="GLOBS",
            help="the networks trained, evaluated and ranked, globs matched as --arch's; every other network "
                 "selected is a cost run: size, FLOPs, speed and memory, no accuracy (default: the profile's: "
                 "quick '*-mobilenetv2', smoke and full '*')",
        )
        p.add_argument("--out", type=Path, help="results directory (default: results/local/<profile>; the committed "
                                                "reference results/<profile> is read-only)")

    run = commands.add_parser("run", help="train and measure the selected matrix, then render the report")
    selection(run)
    run.add_argument("--force", action="store_true", help="redo runs that are already stored")
    run.add_argument("--retry-failed", action="store_true", help="redo stored failed runs (successes are kept)")
    run.add_argument(
        "--run-timeout", type=_positive_float("--run-timeout"), metavar="SECONDS",
        help="stop a run after this long (stored as failed)",
    )
    run.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    run.add_argument(
        "--jobs", type=_int_at_least(1, "--jobs"), metavar="N",
        help="local executor: runs at once, as long as their expected peak memory fits "
             "(default: the profile's: 1, or 2 for smoke, whose eager timings are not compared anyway)",
    )
    run.add_argument(
        "--executor", choices=["local", "ray"], default="local",
        help="where runs execute: this machine (default) or a Ray cluster (pip install -e '.[bench,ray]')",
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
    where.add_argument("--profile", help="render results/local/<profile> where it holds runs, else the committed "
                                            "reference results/<profile>")
    where.add_argument("--out", type=Path, help="render this results directory")
    return parser
