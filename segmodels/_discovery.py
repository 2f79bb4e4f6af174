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
import traceback
from importlib.metadata import entry_points

from segmodels.registry import PluginError

_GROUPS = ("segmodels.architectures", "segmodels.backbones")
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_done = False


def _import_package_modules(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")


def load_plugins(modules: str | None = None) -> None:
    """Imports the modules named (comma-separated), e.g. ``"my_models.pspnet"``.

    Raises:
        PluginError: one line naming the plugin, what went wrong and where, and the fix.
    """
    for name in filter(None, (m.strip() for m in (modules or "").split(","))):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            # The plugin itself (or a package it lives in) is missing only when the missing name is
            # it or one of its parents; any other missing module is one the plugin imports.
            missing = error.name
            if missing is None or not (name == missing or name.startswith(missing + ".")):
                raise _failed(name, "named in $SEGMODELS_PLUGINS", error) from error
            raise PluginError(
                f"Could not import model plugin {name!r} (named in $SEGMODELS_PLUGINS or passed to "
                f"segmodels.load_plugins): {error}. Is its folder on PYTHONPATH?"
            ) from error
        except Exception as error:  # noqa: BLE001 - whatever a plugin raises, it is said in one line
            raise _failed(name, "named in $SEGMODELS_PLUGINS", error) from error


def _failed(name: str, where: str, error: BaseException) -> PluginError:
    """The one-line error of a plugin whose import raised: what, at which line of the plugin."""
    # The innermost line of the plugin's own code: not the registry's, not importlib's.
    frames = traceback.extract_tb(error.__traceback__)
    ours = (_PACKAGE, "<")
    at = next((f" at {f.filename}:{f.lineno}" for f in reversed(frames) if not f.filename.startswith(ours)), "")
    return PluginError(
        f"model plugin {name!r} ({where}) failed to load{at}: {type(error).__name__}: {str(error).rstrip('.')}. "
        "Fix the plugin, or leave it out of $SEGMODELS_PLUGINS"
    )


def discover() -> None:
    global _done
    if _done:
        return
    _done = True
    _import_package_modules("segmodels.backbones")
    _import_package_modules("segmodels.architectures")
    for group in _GROUPS:
        for entry in entry_points(group=group):
            try:
                entry.load()
            except Exception as error:  # noqa: BLE001 - a broken installed plugin is said in one line
                raise _failed(entry.value, f"entry point {entry.name!r} of {group}", error) from error
    load_plugins(os.environ.get("SEGMODELS_PLUGINS"))


def load_classical() -> None:
    """Registers the classical methods. They need the [classical] extra (scikit-image), so the
    networks never import them: only a lookup of a classical method does."""
    import segmodels.classical  # noqa: F401 - lazy: keeps scikit-image optional for the networks
