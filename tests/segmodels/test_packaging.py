"""What each install promises: `pip install segbench` serves the model library alone, and the
report imports where the sweep's POSIX-only lock cannot (pyproject.toml's extras)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Each child runs with these modules uninstallable, as in an environment that lacks them.
_BLOCKER = """
import importlib.abc
import sys

BLOCKED = {blocked!r}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""

# What the extras add; none of it may be needed by `import segmodels` or by building a network.
EXTRAS_ONLY = (
    "pandas", "seaborn", "matplotlib", "tabulate", "tqdm", "tensorflow_datasets", "importlib_resources",
    "psutil", "PIL", "skimage", "ray", "pytest",
)


def _run_blocked(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    script = _BLOCKER.format(blocked=tuple(blocked)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )


def test_the_model_library_needs_only_the_base_dependencies() -> None:
    result = _run_blocked(EXTRAS_ONLY, f"""
        import sys
        import segmodels

        model = segmodels.create_model("unet", "mobilenetv2", num_classes=3, input_shape=(64, 64, 3), weights=None)
        assert model.output_shape == (None, 64, 64, 3), model.output_shape
        assert len(segmodels.list_models()) > 1
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {EXTRAS_ONLY!r})
        assert not loaded, loaded
        assert "segmodels.classical" not in sys.modules, "the classical baselines are the [classical] extra"
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@pytest.mark.parametrize("module", ["bench.store.results", "bench.report"])
def test_the_store_and_the_report_import_without_posix_modules(module: str) -> None:
    """Windows has neither fcntl nor resource; only a sweep needs them."""
    result = _run_blocked(("fcntl", "resource"), f"""
        import {module}
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
