"""Imports every module that registers something, so that registering is all a new model does.

Three places are searched, once, on first use of the registry:
1. the modules of ``segmodels.architectures`` and ``segmodels.backbones`` (a new file there is
   picked up with no other edit);
2. installed packages that declare entry points in the groups ``segmodels.architectures`` or
   ``segmodels.backbones`` (a model that lives in its own package);
3. the comma-separated module names in ``$SEGMODELS_PLUGINS`` (a model in a local file on the
   ``PYTHONPATH``; the benchmark's worker processes inherit it).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from importlib.metadata import entry_points

_GROUPS = ("segmodels.architectures", "segmodels.backbones")
_done = False


def _import_package_modules(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")


def load_plugins(modules: str | None = None) -> None:
    """Imports the modules named (comma-separated), e.g. ``"my_models.pspnet"``."""
    for name in filter(None, (m.strip() for m in (modules or "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ImportError(
                f"Could not import model plugin {name!r} (named in $SEGMODELS_PLUGINS or passed to "
                f"segmodels.load_plugins): {error}. Is its folder on PYTHONPATH?"
            ) from error


def discover() -> None:
    global _done
    if _done:
        return
    _done = True
    _import_package_modules("segmodels.backbones")
    _import_package_modules("segmodels.architectures")
    for group in _GROUPS:
        for entry in entry_points(group=group):
            entry.load()
    load_plugins(os.environ.get("SEGMODELS_PLUGINS"))
