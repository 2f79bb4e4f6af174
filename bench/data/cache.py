"""Where the data layer keeps what it makes, written atomically: synthetic sets, extracted archives
and decoded, resized arrays (directories, below), and records of datasets decoded in full
(`bench.data.verify`).

A directory in the cache is complete or absent: it is built under a hidden temporary name beside
its final place and renamed into place only when every file is written, so a crash, a Ctrl-C or a
failed extraction never leaves a half-written directory that a later run would trust.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.data.errors import DataError

CACHE_ENV = "SEGBENCH_CACHE"
_FULL_OR_READ_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def cache_root() -> Path:
    """`$SEGBENCH_CACHE`, else `$XDG_CACHE_HOME/segbench`, else `~/.cache/segbench`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "segbench"


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes `final` when the block succeeds.

    If the block raises, the temporary directory is removed and `final` is untouched. If another
    process finished the same directory first, its copy wins and ours is discarded: both were
    built from the same inputs.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as error:
        raise cache_unwritable(final.parent, error) from None
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if error.errno in _FULL_OR_READ_ONLY:
            raise cache_unwritable(final.parent, error) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def discard_directory(path: Path) -> None:
    """Remove a cached directory found damaged: renamed away first, so no reader ever sees it half removed."""
    doomed = path.with_name(f".{path.name}.damaged-{os.getpid()}")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return  # another process discarded it first
    shutil.rmtree(doomed, ignore_errors=True)


def cache_unwritable(folder: Path, error: OSError) -> DataError:
    """The one-line error of a cache folder that cannot be written, naming the way out."""
    return DataError(
        f"the data cache {folder} cannot be written ({error.strerror or error}); point ${CACHE_ENV} at a "
        "writable folder with some free space"
    )
