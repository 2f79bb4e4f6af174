"""Checks on stored records that the end-to-end tests share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.store.record import RECORD_FIELDS


def undeclared_keys(record: dict[str, Any]) -> set[str]:
    """The keys of ``record`` that :class:`bench.store.record.Record` does not declare."""
    return set(record) - set(RECORD_FIELDS)


def stored_records(out: Path) -> list[dict[str, Any]]:
    """Every ``record.json`` under a results folder."""
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/record.json"))]
