"""The plugin API (README, "The plugin API"): a plugin written against it keeps loading.

Each form the README documents is a plugin module written here and loaded the way a user's is, by
``$SEGMODELS_PLUGINS`` or an installed entry point, through the real command line. A broken plugin
stops every command in one line, with exit code 2 and nothing written. A parameter renamed later
goes through :func:`segmodels.registry.deprecated_keywords`, tested on a planted rename.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import textwrap
import warnings
from pathlib import Path

import pandas as pd
import pytest

import segmodels
from segmodels import registry
from tests.support.commands import bench_cli

REPO = Path(__file__).resolve().parents[2]
FIRST_RELEASE_LINE = '@register_architecture("linknet", paper="Chaurasia & Culurciello, VCIP 2017, arXiv:1707.03718")'
LINKNET_PAPER = "Chaurasia & Culurciello, VCIP 2017, arXiv:1707.03718"


def _module(*pieces: str) -> str:
    """A module's source from pieces, each dedented on its own."""
    return "\n\n".join(textwrap.dedent(piece).strip("\n") for piece in pieces) + "\n"


def _write(tmp_path: Path, name: str, source: str) -> Path:
    """A plugin module on the PYTHONPATH that :func:`tests.support.commands.plugin_env` sets."""
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source)
    return path


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# TensorFlow's own C++ logging at import, which TF_CPP_MIN_LOG_LEVEL does not silence: absl's line
# before its log is initialised, and the lines in its format ("I0000 00:00:1796206782.925843   16074
# cudart_stub.cc:31] Could not find cuda drivers ..."). Not the harness's to say or to hide.
_TENSORFLOW_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
                             r"STDERR|[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w.]+:\d+\] .*)$")


def _said(stderr: str) -> list[str]:
    """The lines the command wrote on stderr, without TensorFlow's start-up logging."""
    return [line for line in stderr.strip().splitlines() if not _TENSORFLOW_LOG.match(line)]


def _install_entry_point(tmp_path: Path, distribution: str, group: str, name: str, module: str) -> None:
    """What ``pip install`` of a package declaring the entry point leaves on the path: a dist-info."""
    info = tmp_path / "plugins" / f"{distribution}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n")


# === The documented forms ===

# The first release's README plugin, with a decoder so that it can run: its decorator line unchanged.
LINKNET = _module(f'''
    import keras

    from segmodels import register_architecture


    {FIRST_RELEASE_LINE}
    def linknet(encoder, num_classes, **kwargs):
        inputs = encoder.new_input()
        features = encoder(inputs)
        x = features[32]
        for stride in (16, 8, 4, 2):
            x = keras.layers.Conv2D(encoder.channels[stride], 1)(x)
            x = keras.layers.UpSampling2D(2)(x)
            x = keras.layers.Add()([x, features[stride]])
        logits = keras.layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same")(x)
        return keras.Model(inputs, logits)
''')

_HEAD = '''
    def _head(encoder, num_classes):
        inputs = encoder.new_input()
        x = keras.layers.Conv2D(num_classes, 1)(encoder(inputs)[4])
        return keras.Model(inputs, keras.layers.UpSampling2D(4)(x))
'''

FORMS = {
    # An architecture with nothing but its name, from the package.
    "plugin_bare": _module('''
        import keras

        import segmodels
        ''', _HEAD, '''
        @segmodels.register_architecture("plugin_bare")
        def bare(encoder, num_classes):
            return _head(encoder, num_classes)
    '''),
    # Every parameter of register_architecture, from the registry module as the built-ins import it.
    "plugin_hinted": _module('''
        import keras

        from segmodels.backbones.base import Encoder
        from segmodels.registry import ArchitectureCost, register_architecture
        ''', _HEAD, '''
        @register_architecture(
            "plugin_hinted", output_stride=16, cost=ArchitectureCost(relative_train_cost=0.5, heavy_head=False),
            paper="Someone et al., 2024, arXiv:2401.00001",
        )
        def hinted(encoder: Encoder, num_classes: int) -> keras.Model:
            return _head(encoder, num_classes)
    '''),
    "first_release_linknet": LINKNET,
    # A backbone: a Keras model wrapped by make_encoder, with its cost hints.
    "plugin_backbone": _module('''
        import keras

        from segmodels import BackboneCost, Encoder, make_encoder, register_backbone


        @register_backbone("tinybackbone", cost=BackboneCost(train_images_per_s_128=200.0, fixed_s=5.0, peak_mb=900.0))
        def tinybackbone(input_shape, weights=None, output_stride=32) -> Encoder:
            if weights not in (None, "none"):
                raise ValueError(f"tinybackbone has no pretrained weights, got weights={weights!r}")
            images = keras.Input(shape=tuple(input_shape))
            x, taps = images, {}
            for stride in (2, 4, 8, 16, 32)[: 5 if output_stride == 32 else 4]:
                x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name=f"down{stride}")(x)
                taps[stride] = f"down{stride}"
            return make_encoder("tinybackbone", keras.Model(images, x), taps, input_shape, "tf", output_stride,
                                weights or "none")
    '''),
    # A classical method: a partition of the image into candidate regions.
    "plugin_classical": _module('''
        import numpy as np

        from segmodels import register_classical


        @register_classical("quadrants", family="region", description="The four quadrants of the image (a test)")
        def quadrants(image):
            height, width = image.shape[:2]
            rows = np.arange(height)[:, None] >= height // 2
            columns = np.arange(width)[None, :] >= width // 2
            return (2 * rows + columns).astype(np.int32)
    '''),
    # A plugin of a release that renamed a parameter: planted (nothing is deprecated today) the way
    # such a release would ship it, so that what `python -m bench` prints is checked.
    "plugin_renamed": _module('''
        import keras

        from segmodels.registry import deprecated_keywords, register_architecture
        ''', _HEAD, '''
        register_architecture = deprecated_keywords(reference=("paper", "9.0.0"))(register_architecture)


        @register_architecture("plugin_renamed", reference="Someone else et al., 2023")
        def renamed(encoder, num_classes):
            return _head(encoder, num_classes)
    '''),
}

ENTRY_POINT_PLUGIN = _module('''
    import keras

    from segmodels import register_architecture
    ''', _HEAD, '''
    @register_architecture("plugin_entry_point", paper="Installed et al., 2025")
    def installed(encoder, num_classes):
        return _head(encoder, num_classes)
''')


def test_a_plugin_of_every_documented_form_is_listed_by_the_command_line(tmp_path: Path) -> None:
    for name, source in FORMS.items():
        _write(tmp_path, name, source)
    _write(tmp_path, "installed_plugin", ENTRY_POINT_PLUGIN)
    _install_entry_point(tmp_path, "segbench_test_installed", "segmodels.architectures", "installed", "installed_plugin")
    expected = {
        "plugin_bare": "plugin_bare-mobilenetv2",
        "plugin_hinted": "plugin_hinted-mobilenetv2",
        "first_release_linknet": "linknet-mobilenetv2",
        "plugin_backbone": "unet-tinybackbone",
        "plugin_classical": "classical-quadrants",
        "plugin_renamed": "plugin_renamed-mobilenetv2",
        "an entry point": "plugin_entry_point-mobilenetv2",
    }
    done = bench_cli(
        tmp_path, "list", "--profile", "smoke", "--arch", ",".join(expected.values()), "--backbone", "*",
        "--out", str(tmp_path / "r"), SEGMODELS_PLUGINS=",".join(FORMS), timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = set(re.findall(r"^\| (\S+)", done.stdout, flags=re.MULTILINE))
    missing = {form: model for form, model in expected.items() if model not in listed}
    assert not missing, (missing, done.stdout[-3000:])
    # The planted rename is said at the plugin's line, with what to write instead.
    plugin = tmp_path / "plugins" / "plugin_renamed.py"
    line = _line_of(plugin, '@register_architecture("plugin_renamed"')
    warning = (f"{plugin}:{line}: PluginAPIDeprecationWarning: register_architecture(reference=...) is deprecated; "
               "use paper= instead. reference= is removed in segbench 9.0.0.")
    assert warning in done.stderr, done.stderr[-3000:]


def _papers(markdown: str) -> dict[str, str]:
    """The leaderboard's "Architectures and their papers" table, architecture -> paper."""
    section = markdown.split("### Architectures and their papers", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]
    return {architecture.strip("`"): paper for architecture, paper in rows}


@pytest.mark.slow
def test_the_first_release_plugin_runs_and_is_cited_unchanged(tmp_path: Path) -> None:
    """The first release's README plugin trains and is ranked, beside a classical plugin (a worker
    finds plugin methods too); the leaderboard cites its paper, and a report rendered where the
    plugin is not loaded lists it without one and changes no stored file."""
    _write(tmp_path, "first_release_linknet", LINKNET)
    _write(tmp_path, "plugin_classical", FORMS["plugin_classical"])
    out = tmp_path / "smoke"
    done = bench_cli(
        tmp_path, "run", "--profile", "smoke", "--arch", "linknet,classical-quadrants",
        "--backbone", "mobilenetv2,quadrants", "--out", str(out),
        SEGMODELS_PLUGINS="first_release_linknet,plugin_classical", timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["model"]) == ["classical-quadrants", "linknet-mobilenetv2"]
    assert (runs["status"] == "ok").all(), runs.get("error")
    assert _papers((out / "leaderboard.md").read_text(encoding="utf-8")) == {"linknet": LINKNET_PAPER}

    stored = {p.relative_to(out): p.read_bytes() for p in (out / "runs").rglob("*") if p.is_file()}
    again = bench_cli(tmp_path, "report", "--out", str(out), SEGMODELS_PLUGINS="", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    uncited = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert _papers(uncited) == {"linknet": "—"} and "a plugin not loaded here" in uncited
    assert {p.relative_to(out): p.read_bytes() for p in (out / "runs").rglob("*") if p.is_file()} == stored


# === Broken plugins ===

BROKEN = {
    "raises": ('raise RuntimeError("boom")\n', r"failed to load at \S+broken_raises\.py:1: RuntimeError: boom\. "
               r"Fix the plugin, or leave it out of \$SEGMODELS_PLUGINS$"),
    "registers_twice": (
        'from segmodels import register_architecture\n\n\n@register_architecture("twice")\ndef a(encoder, n):\n'
        '    pass\n\n\n@register_architecture("twice")\ndef b(encoder, n):\n    pass\n',
        r"failed to load at \S+broken_registers_twice\.py:9: ValueError: architecture 'twice' is already "
        r"registered; pick another name\. Fix the plugin, or leave it out of \$SEGMODELS_PLUGINS$",
    ),
    "missing": (None, r"^python -m bench: error: Could not import model plugin 'broken_missing' \(named in "
                      r"\$SEGMODELS_PLUGINS or passed to segmodels\.load_plugins\): No module named 'broken_missing'\. "
                      r"Is its folder on PYTHONPATH\?$"),
}
COMMANDS = {
    "run": ["run", "--profile", "smoke", "--arch", "unet", "--backbone", "mobilenetv2"],
    "list": ["list", "--profile", "smoke", "--arch", "unet", "--backbone", "mobilenetv2"],
    "report": ["report"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_a_broken_plugin_stops_every_command_in_one_line_writing_nothing(breakage: str, command: str,
                                                                        tmp_path: Path) -> None:
    source, said = BROKEN[breakage]
    module = f"broken_{breakage}"
    if source is not None:
        _write(tmp_path, module, source)
    out = tmp_path / "results"
    done = bench_cli(tmp_path, *COMMANDS[command], "--out", str(out), SEGMODELS_PLUGINS=module, timeout=180)
    lines = _said(done.stderr)
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert f"model plugin {module!r}" in lines[0] and re.search(said, lines[0]), lines[0]
    assert not out.exists()


def test_a_broken_plugin_leaves_a_stored_folder_as_it_was(tmp_path: Path) -> None:
    """``report`` reads the model library before it reads, rebuilds or renders anything."""
    from tests.support.report_fixture import write_results

    stored = write_results(tmp_path / "stored")
    before = {p.relative_to(stored): p.read_bytes() for p in stored.rglob("*") if p.is_file()}
    _write(tmp_path, "broken_raises", BROKEN["raises"][0])
    done = bench_cli(tmp_path, "report", "--out", str(stored), SEGMODELS_PLUGINS="broken_raises", timeout=180)
    assert done.returncode == 2 and len(_said(done.stderr)) == 1, done.stderr[-3000:]
    assert {p.relative_to(stored): p.read_bytes() for p in stored.rglob("*") if p.is_file()} == before


def test_an_installed_plugin_that_names_a_missing_module_is_one_line_naming_its_package(tmp_path: Path) -> None:
    _install_entry_point(tmp_path, "segbench_test_stale", "segmodels.backbones", "stale", "stale_plugin.backbone")
    out = tmp_path / "results"
    done = bench_cli(tmp_path, "list", "--profile", "smoke", "--arch", "unet", "--out", str(out), SEGMODELS_PLUGINS="",
                     timeout=180)
    lines = _said(done.stderr)
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0] == (
        "python -m bench: error: Could not import model plugin 'stale_plugin.backbone' (entry point 'stale' of "
        "segmodels.backbones, declared by 'segbench_test_stale'): No module named 'stale_plugin'. The entry point "
        "names a module that is not installed: reinstall the package 'segbench_test_stale', or uninstall it"
    )
    assert not out.exists()


# === Deprecation of a parameter ===


def test_a_renamed_keyword_warns_at_the_callers_line_and_is_passed_on() -> None:
    planted = registry.deprecated_keywords(reference=("paper", "9.0.0"))(registry.register_architecture)
    with pytest.warns(DeprecationWarning) as caught:
        planted("deprecation_test", reference="Someone et al., 2020")(lambda encoder, num_classes: None)
    try:
        assert registry.get_architecture("deprecation_test").paper == "Someone et al., 2020"
    finally:
        registry._unregister(["deprecation_test"])
    (warning,) = caught
    assert warning.category is registry.PluginAPIDeprecationWarning
    assert str(warning.message) == ("register_architecture(reference=...) is deprecated; use paper= instead. "
                                    "reference= is removed in segbench 9.0.0.")
    assert warning.filename == __file__  # the plugin's line, not the registry's
    assert planted.__name__ == "register_architecture" and planted.__doc__ == registry.register_architecture.__doc__


def test_a_removed_keyword_warns_and_is_dropped() -> None:
    planted = registry.deprecated_keywords(legacy_flag=(None, "9.0.0"))(registry.register_backbone)
    with pytest.warns(registry.PluginAPIDeprecationWarning, match=r"^register_backbone\(legacy_flag=\.\.\.\) is "
                      r"deprecated; it has no effect any more: leave it out\. legacy_flag= is removed in segbench 9\.0\.0\.$"):
        planted("deprecation_backbone_test", legacy_flag=True, cost=registry.BackboneCost(fixed_s=1.0))(
            lambda input_shape, weights=None, output_stride=32: None)
    try:
        assert registry.get_backbone("deprecation_backbone_test").cost.fixed_s == 1.0
    finally:
        registry._BACKBONES.pop("deprecation_backbone_test", None)


def test_the_old_and_the_new_keyword_together_are_refused_and_the_new_alone_is_silent() -> None:
    planted = registry.deprecated_keywords(reference=("paper", "9.0.0"))(registry.register_architecture)
    with pytest.raises(TypeError, match=r"got reference= and paper=; reference= is the old name of paper="):
        planted("deprecation_both_test", reference="a", paper="b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        planted("deprecation_new_test", paper="b")(lambda encoder, num_classes: None)
    try:
        assert registry.get_architecture("deprecation_new_test").paper == "b"
    finally:
        registry._unregister(["deprecation_new_test"])


# === The README's promise is the code's ===


def _plugin_api_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split("### The plugin API", 1)[1].split("\n## ", 1)[0]


API = {
    "register_architecture": "segmodels.registry",
    "register_backbone": "segmodels.registry",
    "register_classical": "segmodels.registry",
    "ArchitectureCost": "segmodels.registry",
    "BackboneCost": "segmodels.registry",
    "Encoder": "segmodels.backbones.base",
    "make_encoder": "segmodels.backbones.base",
}


@pytest.mark.parametrize("name", sorted(API))
def test_the_readme_names_every_parameter_and_where_to_import_from(name: str) -> None:
    home = getattr(importlib.import_module(API[name]), name)
    assert getattr(segmodels, name) is home
    rows = {row.split("|")[1].strip().strip("`").split("(")[0]: row for row in _plugin_api_section().splitlines()
            if row.startswith("| `")}
    row = rows[name]
    assert f"`{API[name]}`" in row
    if name == "Encoder":
        parameters = [f.name for f in dataclasses.fields(home)] + ["new_input"]
    else:
        parameters = list(inspect.signature(home).parameters)
    documented = row.split("|")[1] + row.split("|")[2]
    assert [p for p in parameters if not re.search(rf"\b{p}\b", documented)] == [], row


def test_the_readme_says_what_is_not_the_api_and_what_is_promised() -> None:
    section = " ".join(_plugin_api_section().split())
    assert "Not part of the API: the harness's modules (everything under `bench/`" in section
    assert "A parameter renamed or removed goes through a deprecation first: for one release it keeps working" in section
    assert f"```python\n{FIRST_RELEASE_LINE}\n```" in _plugin_api_section()


def test_only_tensorflows_start_up_logging_is_set_aside_from_what_a_command_says() -> None:
    stderr = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
              "I0000 00:00:1796206782.925843   16074 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
              "python -m bench: error: model plugin 'x' (named in $SEGMODELS_PLUGINS) failed to load\n"
              "WARNING: something of ours\n")
    assert _said(stderr) == ["python -m bench: error: model plugin 'x' (named in $SEGMODELS_PLUGINS) failed to load",
                             "WARNING: something of ours"]
