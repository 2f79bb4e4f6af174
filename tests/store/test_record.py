"""The typed record: every key declared once (``bench.store.record.Record``), written nowhere
else undeclared, and documented in docs/results-schema.md."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from bench.config.modes import Mode
from bench.store.record import RECORD_FIELDS, Record, failed_record, new_record
from tests.support.records import undeclared_keys

REPO = Path(__file__).resolve().parents[2]


def _written_keys(tree: ast.AST) -> dict[str, int]:
    """Literal keys written into a name ``record``: ``record["k"] = ...``, ``record.setdefault("k",
    ...)`` and ``record.update({"k": ...})``, each with the line it is written on."""
    found: dict[str, int] = {}

    def is_record(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == "record"

    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        elif isinstance(node, ast.AugAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and is_record(target.value) and isinstance(target.slice, ast.Constant):
                found[target.slice.value] = target.lineno
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_record(node.func.value):
            if node.func.attr == "setdefault" and node.args and isinstance(node.args[0], ast.Constant):
                found[node.args[0].value] = node.lineno
            if node.func.attr == "update" and node.args and isinstance(node.args[0], ast.Dict):
                for key in node.args[0].keys:
                    if isinstance(key, ast.Constant):
                        found[key.value] = node.lineno
    return found


def test_the_key_finder_sees_every_form_of_write() -> None:
    source = 'record["a"] = 1\nrecord["b"], record["c"] = 2, 3\nrecord.setdefault("d", [])\nrecord.update({"e": 4})\nother["f"] = 5\n'
    assert set(_written_keys(ast.parse(source))) == {"a", "b", "c", "d", "e"}


def test_every_key_the_harness_writes_is_declared() -> None:
    undeclared = {}
    for path in sorted((REPO / "bench").rglob("*.py")):
        for key, line in _written_keys(ast.parse(path.read_text(encoding="utf-8"))).items():
            if key not in RECORD_FIELDS:
                undeclared[f"{path.relative_to(REPO)}:{line}"] = key
    assert undeclared == {}


def test_new_failed_and_mode_fields_are_declared() -> None:
    from bench.config.profiles import PROFILES
    from bench.config.run_config import RunConfig

    cfg = RunConfig("unet", "mobilenetv2", 0, PROFILES["smoke"], "synthetic", "f" * 64)
    assert undeclared_keys(new_record(cfg)) == set()
    assert undeclared_keys(failed_record(cfg, "boom", peak_rss_mb=10.0)) == set()
    assert undeclared_keys(Mode("float32", False, True, "why").fields()) == set()
    # What new_record writes is the declared "every run" block, nothing more and nothing less.
    assert list(new_record(cfg)) == list(RECORD_FIELDS[: len(new_record(cfg))])


def test_the_schema_doc_lists_exactly_the_declared_keys() -> None:
    doc = (REPO / "docs" / "results-schema.md").read_text(encoding="utf-8")
    section = doc.split("## record.json (one per run)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| key")]
    documented = {key.strip() for row in rows for key in row.split("|")[1].split(",")}
    assert documented == set(RECORD_FIELDS)
    assert set(Record.__annotations__) == set(RECORD_FIELDS) and len(RECORD_FIELDS) == len(set(RECORD_FIELDS))


def test_the_committed_reference_records_hold_only_declared_keys() -> None:
    records = sorted((REPO / "results").glob("*/runs/*/record.json"))
    assert records, "no committed reference under results/"
    undeclared = {p.parent.name: undeclared_keys(json.loads(p.read_text())) for p in records}
    assert {run: keys for run, keys in undeclared.items() if keys} == {}
