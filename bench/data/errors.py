"""The data layer's two failure kinds: the data is bad, or the source cannot be had here."""

from __future__ import annotations


class DataError(Exception):
    """Bad data. The message names the file (and line, for list files), the problem, and, where
    there is one, the fix."""


class SourceUnavailableError(DataError):
    """A source cannot be used on this machine (not prepared, no network, not configured).

    The message says what to do instead. `load_pets("auto")` falls through to the next source on
    this error only; any other `DataError` stops it, so broken data is never silently replaced.
    """
