"""What every executor promises the sweep (:class:`Executor`), and the sweep's interruption."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bench.config.run_config import RunConfig
    from bench.store.results import ResultsStore

#: The exit status of a sweep stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM during a sweep."""


class Executor(Protocol):
    """Runs a sweep's runs somewhere and stores each one the moment it ends.

    ``run`` yields every stored record as its run ends (in the order they end), storing each
    before yielding it; on an interruption it stops its runs, stores nothing partial, and lets the
    exception through. Executors are context managers: Ray's connects on entry.
    """

    name: str

    @property
    def slots(self) -> int:
        """How many runs execute at once (for the ETA)."""

    def describe(self) -> str:
        """One line for the sweep's header."""

    def run(
        self, runs: Sequence[RunConfig], store: ResultsStore, *, env_defaults: dict[str, Any],
        timeout_s: float | None, echo: Callable[[str], None], on_start: Callable[[RunConfig], None],
    ) -> Iterator[dict[str, Any]]: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: Any) -> None: ...
