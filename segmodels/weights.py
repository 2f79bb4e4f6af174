"""ImageNet weights for the backbones: the Keras cache, a download, or a clear error. Never a hang.

keras.applications downloads weights with no timeout and retries for minutes on a machine without
network. Here the cache (``$KERAS_HOME/models`` or ``~/.keras/models``, where Keras itself keeps
them) is checked first; a download is tried only when the weights host answers within a few
seconds (:func:`segmodels._network.host_unreachable`); otherwise the error says which file is
missing, where it was looked for and how to put it there.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from segmodels._network import host_unreachable

DOWNLOAD_TIMEOUT_S = 60.0


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for and can be neither found nor downloaded."""


@dataclass(frozen=True)
class WeightsFile:
    """One keras.applications weights file.

    Attributes:
        filename: Name under which Keras caches it.
        url: Where keras.applications downloads it from.
        md5: Expected hash, where Keras publishes one.
    """

    filename: str
    url: str
    md5: str | None = None


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights (mirrors ``keras.utils.get_file``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def resolve_weights(weights: str | os.PathLike[str] | None, spec: WeightsFile, backbone: str) -> str | None:
    """Turns ``weights`` into what keras.applications takes: ``None`` or a local file path.

    Args:
        weights: ``None`` (random init), ``"imagenet"``, or a path to a keras.applications weights
            file for this backbone (the ``..._notop.h5`` / ``..._no_top.h5`` file).
        spec: The file this backbone's ImageNet weights come in.
        backbone: Registry name, for messages.

    Raises:
        WeightsUnavailableError: ``"imagenet"`` with no cached file and no network.
        FileNotFoundError: A path that does not exist.
    """
    if weights is None or weights == "none":
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"Weights file {str(path)!r} for backbone {backbone!r} does not exist. Pass "
                f"weights='imagenet', weights=None, or the path of {spec.filename}."
            )
        return str(path)
    cached = keras_models_dir() / spec.filename
    if cached.is_file():
        return str(cached)
    host = urlparse(spec.url)
    if os.environ.get("SEGMODELS_OFFLINE") == "1":
        problem: str | None = "SEGMODELS_OFFLINE=1 rules out the network"
    else:
        problem = host_unreachable(host.hostname or "", host.port or 443)
    if problem:
        raise WeightsUnavailableError(
            f"ImageNet weights for backbone {backbone!r} are not cached at {cached} and "
            f"{host.hostname} cannot be reached ({problem}). On a connected machine "
            f"download {spec.url} and copy it to {cached} (or set KERAS_HOME), pass weights=<path "
            "to the file>, or use weights=None to train from random initialisation."
        )
    import keras  # only to download: importing it takes seconds

    with _socket_timeout(DOWNLOAD_TIMEOUT_S):
        return keras.utils.get_file(spec.filename, spec.url, cache_subdir="models", file_hash=spec.md5)
