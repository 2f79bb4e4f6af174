"""Planning a sweep: which data, which models, which runs, and which of them are already stored.

:func:`resolve_data` turns the profile's data source into the concrete one every worker loads,
:func:`select_models` picks (architecture, backbone) pairs from the command line's globs,
:func:`plan` makes one :class:`~bench.config.run_config.RunConfig` per pair and seed, and :func:`status`
sorts them into done, failed and to do by looking up their stored records.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import segmodels
from bench.config.backends import DEFAULT_BACKEND, installed, ranked_backend
from bench.config.profiles import Profile
from bench.config.run_config import CLASSICAL, RunConfig, matches_model
from bench.store.results import ResultsStore


@dataclass(frozen=True)
class DataChoice:
    """The resolved data source of a sweep and its provenance (``bench.data.Provenance``)."""

    spec: str
    provenance: dict[str, Any]
    requested: str = "auto"

    @property
    def synthetic(self) -> bool:
        return bool(self.provenance.get("synthetic"))

    def describe(self) -> str:
        p = self.provenance
        if not self.synthetic:
            kind = "real Oxford-IIIT Pet photos"
        elif self.requested == "synthetic":
            kind = "synthetic images (as asked)"
        else:
            kind = "SYNTHETIC images (no real photos found)"
        where = f" from {p.get('location')}" if p.get("location") else ""
        return f"{kind}{where}: {p.get('train_size')} train / {p.get('test_size')} test, via {p.get('source')}"


def resolve_data(requested: str, image_size: int) -> DataChoice:
    """Turns ``auto`` (or any source) into the concrete source the workers will load."""
    # Lazy: bench.data loads the images, which `report` and `--help` never need.
    from bench.data import load_pets

    # The provenance (and the fingerprint every worker checks) is the same on both paths; without
    # TensorFlow the sweep reads the arrays its workers on JAX or PyTorch will read.
    splits = load_pets(requested, image_size=image_size, seed=0, as_arrays=not installed("tensorflow"))
    provenance = splits.provenance.as_dict()
    source = str(provenance.get("source", requested))
    if source in ("tfds", "synthetic"):
        spec = source
    elif source.startswith("dir") and provenance.get("location"):
        spec = f"dir:{provenance['location']}"
    else:
        spec = requested
    return DataChoice(spec, provenance, requested)


def split_globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()] or ["*"]


def all_models() -> list[tuple[str, str]]:
    """The matrix: every deep (architecture, backbone) pair, then every classical method as
    (``classical``, method)."""
    # Lazy: the classical methods need scikit-image (the [classical] extra) and TensorFlow.
    from segmodels.classical import list_classical_models

    deep = [(a, b) for a in segmodels.list_architectures() for b in segmodels.list_backbones()]
    return deep + [segmodels.parse_model_id(m) for m in list_classical_models()]


def select_models(arch_globs: str, backbone_globs: str) -> list[tuple[str, str]]:
    """The (architecture, backbone) pairs of :func:`all_models` matching the comma-separated globs.

    An ``--arch`` glob matches the architecture name or the whole model id, so ``classical``,
    ``classical-*`` and ``unet-mobilenetv2`` all select; a ``--backbone`` glob matches the backbone,
    which for a classical model is its method (``canny``).
    """
    archs, backbones = split_globs(arch_globs), split_globs(backbone_globs)
    return [
        (a, b) for a, b in all_models()
        if matches_model(a, b, archs) and any(fnmatch.fnmatch(b, g) for g in backbones)
    ]


CLASSICAL_SEED = 0  # the methods draw no random numbers: one run per sweep, whatever the seeds
#: A cost run (a network the profile does not train) is built and timed only: the seed draws its
#: initial weights, whose values change no cost it measures, so one run per sweep, whatever the seeds.
COST_SEED = 0


def plan(
    profile: Profile, pairs: Sequence[tuple[str, str]], data: DataChoice, *, replicas: int = 1,
    backends: Sequence[str] = (DEFAULT_BACKEND,),
) -> list[RunConfig]:
    """The runs of ``pairs``, in a stable order: classical methods first (one run each, seed 0, on
    one device: they run NumPy), then one run per trained deep pair and seed, cheap backbones first,
    each on ``replicas`` devices, and last the cost runs of the networks the profile does not train
    (one each, seed 0), so that the ranking is complete first. With several ``backends`` each
    network's runs are planned once per backend, side by side; a classical method runs once, on the
    ranked backend (:func:`bench.config.backends.ranked_backend`: its work is NumPy's, the same on
    every backend)."""

    fingerprint = str(data.provenance.get("fingerprint", ""))
    pairs = sorted(pairs, key=lambda ab: (ab[0] != CLASSICAL, _natural(ab[1]), ab[0]))

    def config(a: str, b: str, seed: int, p: Profile, replicas: int = 1, backend: str = backends[0]) -> RunConfig:
        return RunConfig(
            architecture=a, backbone=b, seed=seed, profile=p, data=data.spec, dataset_fingerprint=fingerprint,
            replicas=replicas, backend=backend,
        )

    # A classical run carries the sweep's whole profile (its comparison context is the sweep's),
    # and its identity leaves out the training settings it never reads: --epochs does not redo it.
    networks = [(a, b) for a, b in pairs if a != CLASSICAL]
    trained = [(a, b) for a, b in networks if config(a, b, COST_SEED, profile).trains]
    costed = [(a, b) for a, b in networks if (a, b) not in set(trained)]
    return (
        [config(a, b, CLASSICAL_SEED, profile, backend=ranked_backend(backends)) for a, b in pairs if a == CLASSICAL]
        + [config(a, b, s, profile, replicas, k) for s in profile.seeds for a, b in trained for k in backends]
        + [config(a, b, COST_SEED, profile, replicas, k) for a, b in costed for k in backends]
    )


def _natural(name: str) -> tuple[Any, ...]:
    """``resnet50 < resnet101 < resnet152``, MobileNet first: roughly cheapest first."""
    parts = re.split(r"(\d+)", name)
    return (not name.startswith("mobilenet"), *[(int(p) if p.isdigit() else p) for p in parts])


@dataclass
class Status:
    """What the store says of each planned run.

    Attributes:
        done, failed, todo: The planned runs by what their stored record says.
        stored: The stored record of each planned run that has one, by the planned run id (a run
            stored under an older id, same identity, is found too).
        retried_weights: Runs stored with random initialisation because ImageNet weights could
            not be had, which are redone now that they can.
    """

    done: list[RunConfig] = field(default_factory=list)
    failed: list[RunConfig] = field(default_factory=list)
    todo: list[RunConfig] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    retried_weights: list[RunConfig] = field(default_factory=list)


def status(
    runs: Sequence[RunConfig], store: ResultsStore, *, force: bool = False, retry_failed: bool = False,
    weights_available: Callable[[dict[str, Any]], bool] | None = None,
) -> Status:
    """Sorts ``runs`` into done, failed and to do by their stored records.

    A stored run is looked up by its identity (:meth:`RunConfig.identity`), so a run stored under
    an older run id with the same settings is found, whatever the sweep's seed list was. A run
    that asked for ImageNet weights and fell back to random initialisation is done only while the
    weights still cannot be had (``weights_available(record)``, asked once per missing file).
    """
    out = Status()
    by_identity = store.records_by_identity()
    available: dict[str, bool] = {}
    for cfg in runs:
        record = by_identity.get(cfg.config_hash)
        if record is not None:
            out.stored[cfg.run_id] = record
        if force or record is None:
            out.todo.append(cfg)
        elif record.get("status") == "ok":
            if fell_back(cfg, record) and weights_available is not None:
                reason = str(record.get("weights"))  # names the missing file and its host
                if reason not in available:
                    available[reason] = weights_available(record)
                if available[reason]:
                    out.todo.append(cfg)
                    out.retried_weights.append(cfg)
                    continue
            out.done.append(cfg)
        elif retry_failed:
            out.todo.append(cfg)
        else:
            out.failed.append(cfg)
    return out


def fell_back(cfg: RunConfig, record: dict[str, Any]) -> bool:
    """Whether ``record`` is of a run that asked for ImageNet weights and trained from random ones."""
    return (
        cfg.architecture != CLASSICAL and cfg.profile.weights == "imagenet"
        and str(record.get("weights", "")).startswith("none")
    )
