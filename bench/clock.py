"""Timestamps and durations, written one way wherever the harness stores or prints them."""

from __future__ import annotations

import datetime as dt


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``started_at``, ``finished_at``, ``date``)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def format_duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``3.2 h``: the leaderboard's format, also used by estimates and ETAs."""
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
