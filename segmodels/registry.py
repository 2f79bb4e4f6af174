"""Registries of architectures, backbones and classical methods.

Registration is a plain decorator writing to a module-level dict: a duplicate name is an error,
an unknown name is an error that lists the known names and suggests the nearest
(:func:`suggest`, the one "did you mean" of the project).

An entry carries what a harness needs to know of a model besides how to build it: a cost hint
for the benchmark's run-time and memory estimate (:class:`ArchitectureCost`, :class:`BackboneCost`).
A model that gives none gets the defaults, so adding a model stays one file with one decorator.
An architecture also gives a short citation, ``paper=`` (the one of its module's docstring), which
the leaderboard shows beside the architectures it ranks.

The decorators, the cost hints and :class:`segmodels.backbones.base.Encoder` are the plugin API
(README, "The plugin API"): a parameter renamed or removed later keeps working for one release, with
a warning that says what to write instead (:func:`deprecated_keywords`).
"""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

#: The architecture part of every classical model id: ``classical-<method>``.
CLASSICAL_ARCHITECTURE = "classical"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class PluginError(ImportError):
    """A model plugin that cannot be loaded: missing, failing on import, or registering a taken name."""


class UnknownNameError(KeyError):
    """An architecture, backbone or classical method that nobody registered."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def suggest(name: str, known: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the known name nearest ``name``, or ``""`` if none is near.

    >>> suggest("quik", ["smoke", "quick", "full"])
    " Did you mean 'quick'?"
    """
    near = difflib.get_close_matches(str(name).lower(), list(known), n=1, cutoff=0.5)
    return f" Did you mean {near[0]!r}?" if near else ""


# === Cost hints ===
# Calibrated on the project's reference machine (2 CPU cores, no GPU) from `--profile quick` runs
# at 128 px (training speed, fixed costs) and the smoke and quick sweeps (peak memory); read by
# bench.plan.estimate. The defaults are what a model that was never measured gets: a middling head on a
# slow backbone, so a new model is not promised more than it may deliver.


@dataclass(frozen=True)
class ArchitectureCost:
    """What an architecture adds to the cost of a run, relative to U-Net on the same backbone.

    Attributes:
        relative_train_cost: Training time per image relative to U-Net (1.0).
        heavy_head: The head has hundreds of millions of parameters (FCN's 7x7x4096 fc6): building
            and updating them adds :attr:`BackboneCost.heavy_head_extra_s` seconds, and they, not the
            activations, set the peak memory (:attr:`BackboneCost.peak_mb_heavy_head`).
    """

    relative_train_cost: float = 1.5
    heavy_head: bool = False


@dataclass(frozen=True)
class BackboneCost:
    """What a backbone costs a run.

    Attributes:
        train_images_per_s_128: Training images per second of U-Net on this backbone at 128 px.
        fixed_s: Seconds a run costs whatever its length: process start and imports, data, model
            build and FLOP count, tracing of the train, validation, precise-BN and predict functions
            (most of a quick run). Halved at 64 px and below.
        heavy_head_extra_s: Seconds a heavy head (:attr:`ArchitectureCost.heavy_head`) adds on
            this backbone.
        peak_mb: Peak host memory (MB) of a run of 4 images of 64x64 (the smoke profile), the
            largest measured over the architectures without a heavy head, rounded up.
        peak_mb_heavy_head: The same for architectures with a heavy head.
    """

    train_images_per_s_128: float = 2.0
    fixed_s: float = 60.0
    heavy_head_extra_s: float = 35.0
    peak_mb: float = 2650.0
    peak_mb_heavy_head: float = 15600.0


# === Entries ===


@dataclass(frozen=True)
class ArchitectureEntry:
    """What the registry knows of an architecture.

    Attributes:
        name: Registry key, e.g. ``"fcn8s"``.
        build: ``build(encoder, num_classes, **kwargs) -> keras.Model``.
        output_stride: The stride of the deepest feature map the architecture consumes; a backbone
            asked for 16 dilates its last stage (DeepLabV3).
        cost: Hints for the benchmark's run-time and memory estimate.
        paper: Short citation, e.g. ``"Long et al., CVPR 2015, arXiv:1411.4038"``; ``""`` where
            the architecture gave none.
    """

    name: str
    build: Callable[..., Any]
    output_stride: int = 32
    cost: ArchitectureCost = field(default_factory=ArchitectureCost)
    paper: str = ""


@dataclass(frozen=True)
class BackboneEntry:
    """What the registry knows of a backbone.

    Attributes:
        name: Registry key, e.g. ``"resnet50"``.
        build: ``build(input_shape, weights, output_stride) -> Encoder``.
        cost: Hints for the benchmark's run-time and memory estimate.
    """

    name: str
    build: Callable[..., Any]
    cost: BackboneCost = field(default_factory=BackboneCost)


@dataclass(frozen=True)
class ClassicalEntry:
    """What the registry knows of a classical (non-learned) segmenter (:mod:`segmodels.classical`).

    Attributes:
        name: Registry key, e.g. ``"canny"``; the model id is ``classical-<name>``.
        family: ``"edge"`` or ``"region"``: the benchmark compares the two.
        description: One line with the citation, shown in tables.
        partition: ``(H, W, 3) float32 in [0, 1] -> (H, W) int`` label image of candidate regions.
    """

    name: str
    family: Literal["edge", "region"]
    description: str
    partition: Callable[..., Any]


_ARCHITECTURES: dict[str, ArchitectureEntry] = {}
_BACKBONES: dict[str, BackboneEntry] = {}
_CLASSICAL: dict[str, ClassicalEntry] = {}


def _check_new(kind: str, name: str, table: dict[str, Any]) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} must be lowercase letters, digits and underscores "
            "(it becomes part of a model id '<architecture>-<backbone>')."
        )
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered; pick another name.")


# === Deprecation ===
# The plugin API's promise: a plugin written against one release loads in the next. A parameter of
# a decorator that is renamed or removed goes out of the signature and into `deprecated_keywords`,
# which keeps accepting it, with a warning, until the release it names.


class PluginAPIDeprecationWarning(DeprecationWarning):
    """A plugin passes a parameter of the plugin API that a later release removes.

    A DeprecationWarning, so that a test suite that turns those into errors sees it; a class of
    its own, so that ``python -m bench`` can show it (Python hides DeprecationWarnings raised
    outside ``__main__``, and a plugin is never ``__main__``).
    """


def deprecated_keywords(**old: tuple[str | None, str]) -> Callable[[F], F]:
    """Lets a function of the plugin API take keyword arguments it no longer has, for one release.

    ``@deprecated_keywords(paper_ref=("paper", "0.3.0"))`` on :func:`register_architecture` would
    pass ``paper_ref=x`` on as ``paper=x``, with a :class:`PluginAPIDeprecationWarning` at the
    caller's line naming the replacement and the release that removes ``paper_ref``; a ``None``
    replacement drops the keyword (a parameter removed with nothing in its place) with the same
    warning. Passing both the old keyword and its replacement is a ``TypeError``.

    Args:
        **old: ``old_keyword=(new_keyword or None, the release that removes old_keyword)``.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def accepting_old_keywords(*args: Any, **kwargs: Any) -> Any:
            for keyword, (new, removed_in) in old.items():
                if keyword not in kwargs:
                    continue
                value = kwargs.pop(keyword)
                if new is None:
                    advice = "it has no effect any more: leave it out"
                elif new in kwargs:
                    raise TypeError(
                        f"{function.__name__}() got {keyword}= and {new}=; {keyword}= is the old name of {new}=: "
                        f"pass {new}= only."
                    )
                else:
                    kwargs[new] = value
                    advice = f"use {new}= instead"
                warnings.warn(
                    f"{function.__name__}({keyword}=...) is deprecated; {advice}. {keyword}= is removed in "
                    f"segbench {removed_in}.",
                    PluginAPIDeprecationWarning,
                    stacklevel=2,
                )
            return function(*args, **kwargs)

        return cast(F, accepting_old_keywords)

    return decorate


# === Registration ===


def register_architecture(
    name: str, *, output_stride: int = 32, cost: ArchitectureCost | None = None, paper: str = ""
) -> Callable[[F], F]:
    """Register ``build(encoder, num_classes, **kwargs) -> keras.Model`` under ``name``.

    Args:
        name: Lowercase registry key, e.g. ``"fcn8s"``.
        output_stride: 32, or 16 for architectures that want a dilated last stage.
        cost: Cost hints for the benchmark's estimate; ``None`` for the defaults.
        paper: Short citation, e.g. ``"Long et al., CVPR 2015, arXiv:1411.4038"``; the leaderboard
            cites it for every ranked model of the architecture.
    """
    if output_stride not in (16, 32):
        raise ValueError(f"output_stride must be 16 or 32, got {output_stride}.")
    if not isinstance(paper, str):
        raise ValueError(f"paper must be a short citation (a string), got {paper!r}.")

    def decorate(build: F) -> F:
        _check_new("architecture", name, _ARCHITECTURES)
        _ARCHITECTURES[name] = ArchitectureEntry(name, build, output_stride, cost or ArchitectureCost(), paper)
        return build

    return decorate


def register_backbone(name: str, *, cost: BackboneCost | None = None) -> Callable[[F], F]:
    """Register ``build(input_shape, weights, output_stride) -> Encoder`` under ``name``.

    Args:
        name: Lowercase registry key, e.g. ``"resnet50"``.
        cost: Cost hints for the benchmark's estimate; ``None`` for the defaults.
    """

    def decorate(build: F) -> F:
        _check_new("backbone", name, _BACKBONES)
        _BACKBONES[name] = BackboneEntry(name, build, cost or BackboneCost())
        return build

    return decorate


def register_classical(name: str, *, family: Literal["edge", "region"], description: str) -> Callable[[F], F]:
    """Register ``partition(image) -> label image`` as the classical method ``name``.

    Args:
        name: Lowercase registry key, e.g. ``"canny"``.
        family: ``"edge"`` or ``"region"``.
        description: One line with the citation.
    """
    if family not in ("edge", "region"):
        raise ValueError(f"family must be 'edge' or 'region', got {family!r}.")

    def decorate(partition: F) -> F:
        _check_new("classical method", name, _CLASSICAL)
        _CLASSICAL[name] = ClassicalEntry(name, family, description, partition)
        return partition

    return decorate


# === Lookup ===


#: What fills the tables before a lookup: the package installs them on import
#: (``segmodels/__init__.py``: :func:`segmodels._discovery.discover` for the networks,
#: :func:`segmodels._discovery.load_classical` for the classical methods). Injected rather than
#: imported because the modules they import register themselves here: this module imports none of
#: them, so the graph has no circle.
_LOADERS: dict[str, Callable[[], None]] = {}


def install_loaders(*, networks: Callable[[], None], classical: Callable[[], None]) -> None:
    """Sets what :func:`get_architecture` and the other lookups run before they look."""
    _LOADERS["networks"] = networks
    _LOADERS["classical"] = classical


def _discover() -> None:
    _LOADERS["networks"]()


def _load_classical() -> None:
    _LOADERS["classical"]()


def _lookup(kind: str, name: str, table: dict[str, T]) -> T:
    try:
        return table[name]
    except KeyError:
        pass
    known = sorted(table)
    raise UnknownNameError(f"Unknown {kind} {name!r}.{suggest(name, known)} Known {kind}s: {', '.join(known)}.")


def get_architecture(name: str) -> ArchitectureEntry:
    _discover()
    return _lookup("architecture", name, _ARCHITECTURES)


def get_backbone(name: str) -> BackboneEntry:
    _discover()
    return _lookup("backbone", name, _BACKBONES)


def get_classical(name: str) -> ClassicalEntry:
    _load_classical()
    return _lookup("classical method", name, _CLASSICAL)


def architecture_names() -> list[str]:
    _discover()
    return sorted(_ARCHITECTURES)


def backbone_names() -> list[str]:
    _discover()
    return sorted(_BACKBONES)


def classical_names() -> list[str]:
    _load_classical()
    return sorted(_CLASSICAL)


def _unregister(names: Iterable[str]) -> None:
    """Test helper: forget architectures registered by a test."""
    for name in names:
        _ARCHITECTURES.pop(name, None)
