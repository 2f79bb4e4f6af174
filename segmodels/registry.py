"""Registries of architectures and backbones.

Registration is a plain decorator writing to a module-level dict: a duplicate name is an error,
an unknown name is an error that lists the known names and suggests the nearest.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An architecture or backbone name that nobody registered."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclass(frozen=True)
class ArchitectureEntry:
    """What the registry knows of an architecture.

    Attributes:
        name: Registry key, e.g. ``"fcn8s"``.
        build: ``build(encoder, num_classes, **kwargs) -> keras.Model``.
        output_stride: The stride of the deepest feature map the architecture consumes; a backbone
            asked for 16 dilates its last stage (DeepLabV3).
        paper: Short citation shown by ``list_architectures(verbose=True)`` and the leaderboard.
    """

    name: str
    build: Callable[..., Any]
    output_stride: int = 32
    paper: str = ""


@dataclass(frozen=True)
class BackboneEntry:
    """What the registry knows of a backbone: ``build(input_shape, weights, output_stride)``."""

    name: str
    build: Callable[..., Any]


_ARCHITECTURES: dict[str, ArchitectureEntry] = {}
_BACKBONES: dict[str, BackboneEntry] = {}


def _check_new(kind: str, name: str, table: dict[str, Any]) -> None:
    if not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} must be lowercase letters, digits and underscores "
            "(it becomes part of a model id '<architecture>-<backbone>')."
        )
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered; pick another name.")


def register_architecture(
    name: str, *, output_stride: int = 32, paper: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``build(encoder, num_classes, **kwargs) -> keras.Model`` under ``name``.

    Args:
        name: Lowercase registry key, e.g. ``"fcn8s"``.
        output_stride: 32, or 16 for architectures that want a dilated last stage.
        paper: Short citation, e.g. ``"Long et al., CVPR 2015, arXiv:1411.4038"``.
    """
    if output_stride not in (16, 32):
        raise ValueError(f"output_stride must be 16 or 32, got {output_stride}.")

    def decorate(build: Callable[..., Any]) -> Callable[..., Any]:
        _check_new("architecture", name, _ARCHITECTURES)
        _ARCHITECTURES[name] = ArchitectureEntry(name, build, output_stride, paper)
        return build

    return decorate


def register_backbone(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``build(input_shape, weights, output_stride) -> Encoder`` under ``name``."""

    def decorate(build: Callable[..., Any]) -> Callable[..., Any]:
        _check_new("backbone", name, _BACKBONES)
        _BACKBONES[name] = BackboneEntry(name, build)
        return build

    return decorate


def _discover() -> None:
    # Imported here: the discovered modules import this one to register themselves.
    from segmodels._discovery import discover

    discover()


def _lookup(kind: str, name: str, table: dict[str, T]) -> T:
    _discover()
    try:
        return table[name]
    except KeyError:
        pass
    known = sorted(table)
    near = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.5)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise UnknownNameError(f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}.")


def get_architecture(name: str) -> ArchitectureEntry:
    return _lookup("architecture", name, _ARCHITECTURES)


def get_backbone(name: str) -> BackboneEntry:
    return _lookup("backbone", name, _BACKBONES)


def architecture_names() -> list[str]:
    _discover()
    return sorted(_ARCHITECTURES)


def backbone_names() -> list[str]:
    _discover()
    return sorted(_BACKBONES)


def _unregister(names: Iterable[str]) -> None:
    """Test helper: forget architectures registered by a test."""
    for name in names:
        _ARCHITECTURES.pop(name, None)
