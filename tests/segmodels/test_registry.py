"""Registration and the errors a user meets first: wrong names, sizes, class counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import segmodels
from segmodels import registry


def test_unknown_architecture_lists_known_names_and_suggests_the_nearest() -> None:
    with pytest.raises(segmodels.UnknownNameError) as error:
        segmodels.create_model("fcn_8s", "resnet50")
    message = str(error.value)
    assert "Unknown architecture 'fcn_8s'" in message
    assert "Did you mean 'fcn8s'?" in message
    assert "deeplabv3" in message and "unet" in message


def test_unknown_backbone_lists_known_names_and_suggests_the_nearest() -> None:
    with pytest.raises(segmodels.UnknownNameError, match=r"Did you mean 'resnet101'\?.*mobilenetv2"):
        segmodels.create_model("unet", "resnet_101")


@pytest.mark.parametrize("shape", [(100, 128, 3), (128, 130, 3), (16, 16, 3)])
def test_input_size_must_be_a_multiple_of_32(shape: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="multiple of 32.*; try "):
        segmodels.create_model("unet", "mobilenetv2", input_shape=shape)


def test_the_size_check_names_the_nearest_valid_size() -> None:
    assert segmodels.input_size_problem(128, 96) is None
    assert segmodels.input_size_problem(100, 130).endswith("got 100x130; try 96x128")
    assert segmodels.input_size_problem(16).endswith("got 16; try 32")  # never below one multiple


def test_input_must_have_three_channels() -> None:
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        segmodels.create_model("unet", "mobilenetv2", input_shape=(128, 128, 1))


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.5, True])
def test_num_classes_must_be_an_integer_of_at_least_two(num_classes: object) -> None:
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        segmodels.create_model("unet", "mobilenetv2", num_classes=num_classes)  # type: ignore[arg-type]


def test_duplicate_and_malformed_names_are_refused() -> None:
    segmodels.list_models()  # make sure the built-in ones are registered
    with pytest.raises(ValueError, match="already registered"):
        segmodels.register_architecture("unet")(lambda encoder, num_classes: None)
    with pytest.raises(ValueError, match="lowercase"):
        segmodels.register_architecture("My-Net")(lambda encoder, num_classes: None)


def test_classical_methods_follow_the_same_name_rules() -> None:
    registry.classical_names()  # registers the built-in methods
    with pytest.raises(ValueError, match="already registered"):
        registry.register_classical("canny", family="edge", description="again")(lambda image: image)
    with pytest.raises(ValueError, match="lowercase"):
        registry.register_classical("Canny-2", family="edge", description="")(lambda image: image)
    with pytest.raises(ValueError, match="'edge' or 'region'"):
        registry.register_classical("blobs", family="blob", description="")  # type: ignore[arg-type]
    with pytest.raises(segmodels.UnknownNameError, match=r"Unknown classical method 'cany'\. Did you mean 'canny'\?"):
        registry.get_classical("cany")


def test_suggest_names_the_nearest_or_nothing() -> None:
    assert registry.suggest("quik", ["smoke", "quick", "full"]) == " Did you mean 'quick'?"
    assert registry.suggest("ResNet50", ["resnet50", "resnet101"]) == " Did you mean 'resnet50'?"
    assert registry.suggest("zzz", ["smoke", "quick", "full"]) == ""


def test_every_model_carries_cost_hints_and_a_new_one_gets_the_defaults() -> None:
    for name in segmodels.list_architectures():
        assert registry.get_architecture(name).cost.relative_train_cost > 0
    for name in segmodels.list_backbones():
        cost = registry.get_backbone(name).cost
        assert cost.train_images_per_s_128 > 0 and cost.peak_mb < cost.peak_mb_heavy_head
    assert registry.get_architecture("fcn8s").cost.heavy_head
    assert not registry.get_architecture("unet").cost.heavy_head

    @segmodels.register_architecture("no_hints_test")
    def no_hints(encoder: segmodels.Encoder, num_classes: int) -> None:
        return None

    try:
        assert registry.get_architecture("no_hints_test").cost == segmodels.ArchitectureCost()
    finally:
        registry._unregister(["no_hints_test"])


def test_a_registered_architecture_runs_on_every_backbone() -> None:
    import keras

    @segmodels.register_architecture("one_by_one_test")
    def one_by_one(encoder: segmodels.Encoder, num_classes: int) -> keras.Model:
        inputs = encoder.new_input()
        x = keras.layers.Conv2D(num_classes, 1)(encoder(inputs)[4])
        return keras.Model(inputs, keras.layers.UpSampling2D(4)(x))

    try:
        assert segmodels.list_models("one_by_one_test-*") == [
            f"one_by_one_test-{b}" for b in segmodels.list_backbones()
        ]
        model = segmodels.create_model("one_by_one_test", "mobilenetv2", num_classes=4, input_shape=(64, 64, 3))
        assert model.output_shape == (None, 64, 64, 4)
    finally:
        registry._unregister(["one_by_one_test"])


def test_a_model_in_its_own_file_joins_the_registry_through_segmodels_plugins(tmp_path: Path) -> None:
    # What a user does to add a model outside the repository: one file, one decorator.
    (tmp_path / "my_head.py").write_text(
        textwrap.dedent(
            """
            import keras
            import segmodels

            @segmodels.register_architecture("my_head")
            def my_head(encoder, num_classes):
                inputs = encoder.new_input()
                x = keras.layers.Conv2D(num_classes, 1)(encoder(inputs)[8])
                return keras.Model(inputs, keras.layers.UpSampling2D(8)(x))
            """
        )
    )
    env = {**os.environ, "SEGMODELS_PLUGINS": "my_head", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", "import segmodels; print(','.join(segmodels.list_models('my_head-*')))"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert out.split(",") == [f"my_head-{b}" for b in segmodels.list_backbones()]


def test_a_missing_plugin_module_says_where_it_was_named() -> None:
    with pytest.raises(ImportError, match=r"no_such_module_xyz.*\$SEGMODELS_PLUGINS") as error:
        segmodels.load_plugins("no_such_module_xyz")
    assert "--plugins" not in str(error.value)  # no such flag


def test_model_ids_round_trip() -> None:
    assert segmodels.parse_model_id("bayesian_segnet-resnet152") == ("bayesian_segnet", "resnet152")
    assert segmodels.model_id("fcn8s", "resnet101") == "fcn8s-resnet101"
    with pytest.raises(ValueError, match="<architecture>-<backbone>"):
        segmodels.parse_model_id("unet")


def test_the_package_and_its_light_parts_import_without_keras() -> None:
    # The harness imports the class list, the size check and the suggestions before anything heavy.
    code = (
        "import sys, segmodels, segmodels.trimap, segmodels.shapes, segmodels.registry; "
        "heavy = {'keras', 'tensorflow'} & set(sys.modules); assert not heavy, heavy; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_plugin_of_the_first_release_registers_with_its_paper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first release's decorator took ``paper=``; a plugin written against it must still load."""
    (tmp_path / "first_release_linknet.py").write_text(textwrap.dedent(
        '''
        from segmodels import register_architecture

        @register_architecture("linknet", paper="Chaurasia & Culurciello, VCIP 2017, arXiv:1707.03718")
        def linknet(encoder, num_classes, **kwargs):
            raise NotImplementedError
        '''
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        segmodels.load_plugins("first_release_linknet")
        entry = registry.get_architecture("linknet")
        assert entry.paper == "Chaurasia & Culurciello, VCIP 2017, arXiv:1707.03718"
        assert entry.output_stride == 32 and entry.cost == registry.ArchitectureCost()
    finally:
        registry._unregister(["linknet"])
        sys.modules.pop("first_release_linknet", None)


BUILT_IN = [n for n in segmodels.list_architectures()
            if registry.get_architecture(n).build.__module__.startswith("segmodels.architectures.")]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_architecture_cites_the_paper_of_its_docstring(name: str) -> None:
    """The leaderboard cites ``paper=``; the module docstring is where the citation was first written."""
    import importlib

    entry = registry.get_architecture(name)
    docstring = importlib.import_module(entry.build.__module__).__doc__ or ""
    arxiv = re.search(r"arXiv:\d{4}\.\d{4,5}$", entry.paper)
    assert arxiv, entry.paper
    cited = " ".join(docstring.split())
    first_author = entry.paper.split(",")[0].split(" ")[0]
    assert arxiv.group() in cited and first_author in cited, (name, entry.paper, cited[:300])


BROKEN_PLUGINS = {
    "raises": ('raise RuntimeError("boom")', r"line 2: RuntimeError: boom\."),
    "taken_name": (
        'from segmodels import register_architecture\n\n@register_architecture("unet")\ndef b(encoder, n): pass',
        r"line 4: ValueError: architecture 'unet' is already registered; pick another name\.",
    ),
    "missing_dependency": ("import no_such_dependency_xyz", r"line 2: ModuleNotFoundError: No module named 'no_such_dependency_xyz'\."),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_PLUGINS))
def test_a_broken_plugin_is_one_line_naming_its_file_and_the_fix(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, said = BROKEN_PLUGINS[kind]
    name = f"broken_plugin_{kind}"
    (tmp_path / f"{name}.py").write_text(f"\n{source}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.get_architecture("unet")  # the built-ins are registered first, as in discovery
    with pytest.raises(registry.PluginError) as error:
        segmodels.load_plugins(name)
    message = str(error.value).replace(str(tmp_path / f"{name}.py") + ":", "line ")
    assert f"model plugin {name!r}" in message and "\n" not in message, message
    assert re.search(said, message) and message.endswith("Fix the plugin, or leave it out of $SEGMODELS_PLUGINS"), message
    assert isinstance(error.value, ImportError)  # what callers of load_plugins caught before


def test_a_broken_plugin_stops_the_command_line_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_plugin_cli.py").write_text('raise RuntimeError("boom")\n')
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SEGMODELS_PLUGINS": "broken_plugin_cli", "PYTHONPATH": os.pathsep.join([str(repo), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "list", "--profile", "smoke", "--arch", "unet", "--out", str(tmp_path / "r")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "model plugin 'broken_plugin_cli' (named in $SEGMODELS_PLUGINS) failed to load at" in done.stderr
    assert not (tmp_path / "r").exists()
