"""The README's promises: the worked example is the real file, the commands it shows exist."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_add_a_model_example_is_the_registered_file_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    source = (REPO / "segmodels" / "architectures" / "fpn.py").read_text()
    code = source[source.index("from __future__") :]
    assert f"```python\n{code}```" in readme


def test_the_two_commands_are_nox_sessions() -> None:
    readme = (REPO / "README.md").read_text()
    noxfile = (REPO / "noxfile.py").read_text()
    for session in ("bench", "tests"):
        assert f"nox -s {session}" in readme
        assert f"def {session}(session" in noxfile
