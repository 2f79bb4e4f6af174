"""Imports every module that registers something, so that registering is all a new model does.

Three places are searched, once, on first use of the registry:
1. the modules of ``segmodels.architectures`` and ``segmodels.backbones`` (a new file there is
   picked up with no other edit);
2. installed packages that declare entry points in the groups ``segmodels.architectures``,
   ``segmodels.backbones`` or ``segmodels.classical`` (a model that lives in its own package);
3. the comma-separated module names in ``$SEGMODELS_PLUGINS`` (a model in a local file on the
   ``PYTHONPATH``; the benchmark's worker processes inherit it).

A plugin module may register anything: the group only says where it was found. A plugin that
cannot be loaded is a :class:`~segmodels.registry.PluginError` of one line that names it, says what
went wrong and where, and how to fix it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import traceback
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from segmodels.registry import PluginError

_GROUPS = ("segmodels.architectures", "segmodels.backbones", "segmodels.classical")
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# Frames that are never the plugin's own line: this package's, importlib's (import_module, entry
# point loading) and the frozen import machinery's ("<frozen importlib._bootstrap>").
_NOT_THE_PLUGIN = (_PACKAGE, os.path.dirname(os.path.abspath(importlib.__file__)), "<")
_PLUGINS_FIX = "Fix the plugin, or leave it out of $SEGMODELS_PLUGINS"
_done = False


def _import_package_modules(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")


def _load(module: str, load: Callable[[], object], where: str, fix: str, missing: Callable[[Exception], str]) -> None:
    """Runs ``load`` (the import of the plugin ``module``); whatever it raises becomes one line.

    Args:
        module: The plugin's module name.
        load: Imports it.
        where: Where it was named, e.g. ``"named in $SEGMODELS_PLUGINS"``.
        fix: What to do about a plugin that raised.
        missing: The message for a plugin module that does not exist, from the error.
    """
    try:
        load()
    except ModuleNotFoundError as error:
        # The plugin itself (or a package it lives in) is missing only when the missing name is
        # it or one of its parents; any other missing module is one the plugin imports.
        gone = error.name
        if gone is None or not (module == gone or module.startswith(gone + ".")):
            raise _failed(module, where, error, fix) from error
        raise PluginError(missing(error)) from error
    except Exception as error:  # whatever a plugin raises, it is said in one line
        raise _failed(module, where, error, fix) from error


def load_plugins(modules: str | None = None) -> None:
    """Imports the modules named (comma-separated), e.g. ``"my_models.pspnet"``.

    Raises:
        PluginError: one line naming the plugin, what went wrong and where, and the fix.
    """
    for name in filter(None, (m.strip() for m in (modules or "").split(","))):
        _load(
            name, lambda name=name: importlib.import_module(name), "named in $SEGMODELS_PLUGINS", _PLUGINS_FIX,
            lambda error, name=name: (
                f"Could not import model plugin {name!r} (named in $SEGMODELS_PLUGINS or passed to "
                f"segmodels.load_plugins): {error}. Is its folder on PYTHONPATH?"
            ),
        )


def _load_entry_point(entry: EntryPoint, group: str) -> None:
    dist = getattr(entry.dist, "name", None)
    package = f"the package {dist!r}" if dist else "the package that declares it"
    where = f"entry point {entry.name!r} of {group}" + (f", declared by {dist!r}" if dist else "")
    _load(
        entry.module, entry.load, where, f"Fix the plugin, or uninstall {package}",
        lambda error: (
            f"Could not import model plugin {entry.module!r} ({where}): {error}. The entry point names a module "
            f"that is not installed: reinstall {package}, or uninstall it"
        ),
    )


def _failed(name: str, where: str, error: BaseException, fix: str) -> PluginError:
    """The one-line error of a plugin whose import raised: what, at which line of the plugin."""
    # The innermost line of the plugin's own code: not the registry's, not importlib's.
    frames = traceback.extract_tb(error.__traceback__)
    plugin = [f for f in frames if not f.filename.startswith(_NOT_THE_PLUGIN)]
    at = f" at {plugin[-1].filename}:{plugin[-1].lineno}" if plugin else ""
    return PluginError(
        f"model plugin {name!r} ({where}) failed to load{at}: {type(error).__name__}: {str(error).rstrip('.')}. {fix}"
    )


#: Keras's backends and the extra of this package that brings each.
_BACKEND_EXTRAS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def require_keras_backend() -> None:
    """Imports Keras, or fails in one line when the backend it would load is not installed: the
    base install brings no backend (``pip install segbench[tensorflow]``, ``[jax]`` or ``[torch]``)."""
    try:
        import keras  # noqa: F401 - loads the backend KERAS_BACKEND names (tensorflow by default)
    except ModuleNotFoundError as error:
        backend = os.environ.get("KERAS_BACKEND") or "tensorflow"
        if (error.name or "").partition(".")[0] not in _BACKEND_EXTRAS:
            raise
        raise ImportError(
            f"Keras needs its backend {backend!r} (KERAS_BACKEND), which is not installed: install one with "
            f"`pip install segbench[{_BACKEND_EXTRAS.get(backend, 'tensorflow')}]` (or [jax], [torch]) or set "
            "KERAS_BACKEND to one that is"
        ) from error


def discover() -> None:
    global _done
    if _done:
        return
    _done = True
    require_keras_backend()
    _import_package_modules("segmodels.backbones")
    _import_package_modules("segmodels.architectures")
    for group in _GROUPS:
        for entry in entry_points(group=group):
            _load_entry_point(entry, group)
    load_plugins(os.environ.get("SEGMODELS_PLUGINS"))


def load_classical() -> None:
    """Registers the classical methods: the built-in ones, then the plugins' (the same discovery as
    the networks', which is where a plugin's ``register_classical`` runs). They need the [classical]
    extra (scikit-image), so the networks never import them: only a lookup of a classical method does."""
    import segmodels.classical  # noqa: F401 - lazy: keeps scikit-image optional for the networks

    discover()
