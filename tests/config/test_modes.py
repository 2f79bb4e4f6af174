"""Speed modes: precision, XLA and determinism as recorded settings; no per-step host
sync in training; inference costs at several batch sizes; the GPU check's path on a CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from bench.config import modes
from bench.config.profiles import QUICK, SMOKE, ProfileError, TimingSpec
from bench.config.run_config import RunConfig
from bench.measure.timing import (
    example_batch,
    first_call_seconds,
    largest_batch,
    make_forward,
    make_predict_fn,
    measure_latency,
    throughput_by_batch,
    trace_seconds,
)
from bench.measure.train import BoundaryCallbacks, NaNGuard, StepTimer, compile_model, train
from bench.plan import estimate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_tf_state():
    """Modes change process-wide state: the dtype policy and op determinism; put them back."""
    policy, deterministic = keras.mixed_precision.global_policy().name, tf_config.is_op_determinism_enabled()
    yield
    keras.mixed_precision.set_global_policy(policy)
    (tf.config.experimental.enable_op_determinism if deterministic else tf_config.disable_op_determinism)()


def _cfg(architecture: str = "unet", **changes) -> RunConfig:
    return RunConfig(architecture, "mobilenetv2", 0, QUICK.override(**changes), "synthetic", "f" * 64)


def _tiny(size: int = 16) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))


def _batches(size: int = 16, batch: int = 4, scale: float = 1.0) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = (rng.random((batch * 2, size, size, 3), dtype=np.float32) * scale).astype(np.float32)
    y = rng.integers(0, 3, (batch * 2, size, size, 1)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat()


# === Settings, validation, identity ===


def test_profile_defaults_and_refused_combinations() -> None:
    assert (QUICK.precision, QUICK.xla, QUICK.deterministic) == ("float32", "auto", True)
    assert QUICK.timing.throughput_batches == (1, 8, 32) and SMOKE.timing.throughput_batches == (1, 2)
    with pytest.raises(ProfileError, match="--precision must be one of float32, mixed_float16, mixed_bfloat16"):
        QUICK.override(precision="float16")
    with pytest.raises(ProfileError, match="--xla must be one of"):
        QUICK.override(xla="yes")
    # Keras turns XLA off under op determinism: refused before anything runs, never a silent fallback.
    with pytest.raises(ProfileError, match="--xla on needs --no-deterministic"):
        QUICK.override(xla="on")
    with pytest.raises(ProfileError, match="runs eagerly"):
        SMOKE.override(xla="on", deterministic=False)
    with pytest.raises(ProfileError, match="throughput_batches"):
        QUICK.override(timing=TimingSpec(throughput_batches=(1, 0)))
    assert QUICK.override(xla="on", deterministic=False, precision="mixed_float16").xla == "on"


def test_default_mode_keeps_stored_ids_and_contexts() -> None:
    """The defaults reproduce every run stored before the settings existed (float32, op
    determinism, hence no XLA on any device): no new key in the identity or the context, so the
    committed reference keeps its context id and a user's folders stay theirs."""
    reference = json.loads((REPO / "results" / "quick" / "context.json").read_text())
    stored = json.loads(next((REPO / "results" / "quick" / "runs").glob("unet-mobilenetv2-s0-*/record.json")).read_text())
    cfg = RunConfig.from_dict(stored["config"])
    assert cfg.context_id == reference["context_id"] and cfg.run_id == stored["run_id"]
    new = ("profile.precision", "profile.xla", "profile.deterministic", "profile.timing.throughput_batches")
    assert not set(new) & (set(cfg.identity()) | set(cfg.context()))
    # Any other mode is another run and another comparison context ...
    for change in ({"precision": "mixed_bfloat16"}, {"deterministic": False}, {"xla": "off"}):
        other = _cfg(**change)
        assert other.run_id != _cfg().run_id and other.context_id != _cfg().context_id, change
    # ... except for a classical segmenter, which computes in NumPy whatever the mode.
    assert _cfg("classical", precision="mixed_bfloat16").run_id == _cfg("classical").run_id
    again = RunConfig.from_json(_cfg(precision="mixed_float16").to_json())
    assert again == _cfg(precision="mixed_float16") and again.profile.timing.throughput_batches == (1, 8, 32)


def test_resolve_xla_and_fast_choices() -> None:
    def resolve(setting, **kw):
        base = {"deterministic": False, "accelerator": True, "eager": False}
        return modes.resolve_xla(setting, **{**base, **kw})[0]

    assert resolve("auto") is True
    assert resolve("auto", accelerator=False) is False  # XLA trained 3.2x slower on the reference CPU
    assert resolve("auto", deterministic=True) is False  # Keras's rule, today's behaviour on a GPU
    assert resolve("auto", eager=True) is False and resolve("auto", replicas=2) is False
    assert resolve("on", accelerator=False) is True and resolve("off") is False

    cpu = modes.fast_settings([])
    assert cpu.settings() == {"precision": "float32", "xla": "off", "deterministic": True}
    assert modes.fast_settings([("A100", (8, 0))]).settings() == {"precision": "mixed_bfloat16", "xla": "on", "deterministic": False}
    assert modes.fast_settings([("V100", (7, 0))]).precision == "mixed_float16"
    assert modes.fast_settings([("P100", (6, 0))]).precision == "float32"
    for choice in (cpu, modes.fast_settings([("H200", (9, 0))])):  # every pick is a valid profile
        QUICK.override(**choice.settings())


def test_cli_flags_reach_the_profile_and_bad_combinations_exit_2(capsys) -> None:
    from bench.arguments import build_parser
    from bench.cli import main, resolve_profile

    parse = build_parser().parse_args
    profile = resolve_profile(parse(["list", "--precision", "mixed_bfloat16", "--xla", "on", "--no-deterministic"]))
    assert (profile.precision, profile.xla, profile.deterministic) == ("mixed_bfloat16", "on", False)
    fast = resolve_profile(parse(["list", "--fast"]))  # this machine has no GPU
    assert (fast.precision, fast.xla, fast.deterministic) == ("float32", "off", True)
    assert "--fast: precision float32, XLA off" in capsys.readouterr().err
    assert resolve_profile(parse(["list", "--fast", "--precision", "mixed_bfloat16"])).precision == "mixed_bfloat16"
    assert main(["run", "--xla", "on", "--out", "/nonexistent/never"]) == 2
    assert "--xla on needs --no-deterministic" in capsys.readouterr().err
    # XLA under MirroredStrategy fails on the replicas' variables (tried: InvalidArgumentError on 2 CPUs).
    assert main(["run", "--xla", "on", "--no-deterministic", "--gpus-per-run", "2", "--out", "/nonexistent/never"]) == 2
    assert "--xla on cannot train on --gpus-per-run 2 devices" in capsys.readouterr().err


def test_the_estimate_scales_for_the_mode() -> None:
    cpu_xla = QUICK.override(xla="on", deterministic=False)
    assert estimate.mode_time_factor(QUICK, accelerator=False) == 1.0
    assert estimate.mode_time_factor(cpu_xla, accelerator=False) == pytest.approx(3.2)
    assert estimate.mode_time_factor(QUICK.override(precision="mixed_bfloat16"), accelerator=False) == 1.0
    assert estimate.mode_time_factor(QUICK.override(precision="mixed_float16"), accelerator=False) == pytest.approx(3.9)
    assert estimate.mode_time_factor(QUICK.override(precision="mixed_bfloat16"), accelerator=True) < 0.5
    slow = estimate.model_cost(_cfg(xla="on", deterministic=False), 200, 120)
    assert slow > estimate.model_cost(_cfg(), 200, 120) * 1.5
    assert "measured on the 2-core reference CPU" in estimate.describe_mode(cpu_xla, accelerator=False)
    assert "published GPU figures as priors" in estimate.describe_mode(QUICK.override(precision="mixed_float16"), accelerator=True)


def test_mixed_modes_in_one_context_are_warned_about() -> None:
    cfg = _cfg(deterministic=False)
    record = {"status": "ok", "config": cfg.as_dict(), "run_id": "a", "precision": "float32", "xla": "off", "deterministic": False}
    assert modes.mixed_modes_warning([record, {**record, "run_id": "b"}]) is None
    # xla=auto resolved on a CPU for one run and on a GPU for the other: the same context.
    warning = modes.mixed_modes_warning([record, {**record, "run_id": "b", "xla": "on"}])
    assert warning and "XLA on" in warning and "XLA off" in warning
    legacy = {k: v for k, v in record.items() if k not in ("precision", "xla", "deterministic")}
    assert modes.record_mode(legacy) == ("float32", "off", True)


# === Float32 logits, loss scaling ===


def test_every_architecture_ends_in_float32_logits_under_mixed_precision(restore_tf_state) -> None:
    """The cast is in ``segmodels.create_model``, the one place every registry model comes from;
    checked on the cheapest real model (the mechanism does not depend on the architecture)."""
    import segmodels

    plain = segmodels.create_model("unet", "mobilenetv2", input_shape=(32, 32, 3))
    assert "logits_float32" not in [layer.name for layer in plain.layers]  # float32: the model as before
    for policy in ("mixed_bfloat16", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        model = segmodels.create_model("unet", "mobilenetv2", input_shape=(32, 32, 3))
        assert model.name == "unet-mobilenetv2" and model.layers[-1].name == "logits_float32"
        assert model.layers[-2].compute_dtype == policy.split("_")[1]  # the network computes in half precision
        assert model.outputs[0].dtype == "float32" and model(np.zeros((1, 32, 32, 3), np.float32)).dtype == "float32"
        assert model.count_params() == plain.count_params()


def test_mixed_float16_training_scales_the_loss(restore_tf_state) -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = _tiny()
    compile_model(model, 1e-3)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = _tiny()
    compile_model(model, 1e-3)
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


# === Training without a per-step host sync ===


def test_the_training_loop_reads_the_device_at_check_points_only(monkeypatch) -> None:
    """Keras's own CallbackList copies the logs to the host (``pythonify_logs``) after every step;
    ``BoundaryCallbacks`` only at each epoch's first and last step and every ``check_every``."""
    from keras.src.callbacks import callback_list

    copies = []
    real = callback_list.python_utils.pythonify_logs

    def counting(logs):
        if logs:
            copies.append(sorted(logs))
        return real(logs)

    monkeypatch.setattr(callback_list.python_utils, "pythonify_logs", counting)

    class Seen(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = []

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append(batch)

    model = _tiny()
    compile_model(model, 1e-3)
    seen = Seen()
    callbacks = BoundaryCallbacks([seen], check_every=4, add_history=True, add_progbar=False, verbose=0, epochs=1,
                                  steps=10, model=model)
    model.fit(_batches(), epochs=1, steps_per_epoch=10, callbacks=callbacks, verbose=0)
    assert seen.steps == [0, 3, 7, 9]
    per_step = len(copies)
    copies.clear()
    model.fit(_batches(), epochs=1, steps_per_epoch=10, callbacks=[Seen()], verbose=0)
    assert len(copies) - per_step == 10 - 4  # Keras's list: one copy more for each step between check points


def test_nan_guard_names_the_step_or_the_window_between_check_points() -> None:
    guard = NaNGuard()
    guard.set_model(_tiny())
    guard.on_epoch_begin(0)
    guard.on_train_batch_end(0, {"loss": math.nan})
    assert guard.where == "NaN loss at epoch 1 step 1" and guard.model.stop_training
    guard = NaNGuard()
    guard.set_model(_tiny())
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(0, {"loss": 1.0})
    guard.on_train_batch_end(15, {"loss": 2.0})
    guard.on_train_batch_end(31, {"loss": math.inf})  # the running mean turned between the two checks
    guard.on_train_batch_end(39, {"loss": math.nan})
    assert guard.where == "NaN loss at epoch 2 between steps 17 and 32"


def test_step_timer_counts_the_steady_state_from_two_clock_readings_per_epoch(monkeypatch) -> None:
    clock = iter([0.0, 10.0, 11.0, 12.5, 20.0, 21.0, 23.0])  # begin of step 0, then the ends
    monkeypatch.setattr("bench.measure.train.time.perf_counter", lambda: next(clock))
    timer = StepTimer(batch_size=4)
    timer.on_epoch_begin(0)
    timer.on_train_batch_begin(0)
    for step in range(3):
        timer.on_train_batch_end(step)
    timer.on_epoch_begin(1)
    for step in range(3):
        timer.on_train_batch_end(step)
    assert timer.first_step_s == 10.0  # tracing and compiling included
    # Epoch 1: steps 2-3 from 10.0 to 12.5; epoch 2: steps 2-3 from 20.0 to 23.0.
    assert timer.images_per_second == pytest.approx(4 * 4 / (2.5 + 3.0))
    monkeypatch.setattr("bench.measure.train.time.perf_counter", lambda: 0.0)
    empty = StepTimer(batch_size=4)
    empty.on_epoch_begin(0)
    empty.on_train_batch_end(0)
    assert empty.images_per_second is None


def test_train_reports_throughput_first_step_and_a_nan_where_it_happened(restore_tf_state) -> None:
    keras.utils.set_random_seed(0)
    result = train(_tiny(), _batches(), epochs=2, steps_per_epoch=3, batch_size=4, learning_rate=1e-3, verbose=0)
    assert result.train_throughput > 0 and result.first_step_s > 0 and result.jit_compile is False
    assert [h["epoch"] for h in result.history] == [1, 2]
    inputs = keras.Input((16, 16, 3))
    exploding = keras.Model(inputs, keras.layers.Rescaling(float("inf"))(keras.layers.Conv2D(3, 1)(inputs)))
    from bench.measure.train import NaNLossError

    with pytest.raises(NaNLossError, match=r"^NaN loss at epoch 1 step 1$"):
        train(exploding, _batches(), epochs=2, steps_per_epoch=3, batch_size=4, learning_rate=1e-3, verbose=0)


def test_xla_is_what_keras_really_compiled(restore_tf_state) -> None:
    """XLA runs on a CPU (slowly): asked without op determinism, Keras compiles with it; under
    op determinism Keras silently refuses, which the record must say (the profile refuses it
    before a run; the worker records what ``model.jit_compile`` says after compiling)."""
    tf_config.disable_op_determinism()
    result = train(_tiny(), _batches(), epochs=1, steps_per_epoch=2, batch_size=4, learning_rate=1e-3, verbose=0, jit_compile=True)
    assert result.jit_compile is True
    tf.config.experimental.enable_op_determinism()
    with pytest.warns(UserWarning, match="jit_compile"):
        result = train(_tiny(), _batches(), epochs=1, steps_per_epoch=2, batch_size=4, learning_rate=1e-3, verbose=0, jit_compile=True)
    assert result.jit_compile is False
    mode = modes.Mode("float32", True, True).with_xla(result.jit_compile, "Keras compiled without XLA")
    assert mode.fields() == {"precision": "float32", "xla": "off", "deterministic": True, "mode_note": "Keras compiled without XLA"}


def test_apply_mode_sets_policy_and_determinism(restore_tf_state) -> None:
    mode = modes.apply_mode(QUICK.override(precision="mixed_bfloat16", deterministic=False))
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16" and not tf_config.is_op_determinism_enabled()
    assert mode == modes.Mode("mixed_bfloat16", False, False, mode.note) and "CPU" in mode.note
    classical = modes.apply_mode(QUICK.override(precision="mixed_bfloat16"), classical=True)
    assert keras.mixed_precision.global_policy().name == "float32" and tf_config.is_op_determinism_enabled()
    assert classical.precision == "float32" and "NumPy" in classical.note


# === Inference costs ===


def test_inference_costs_trace_first_call_percentiles_and_batches() -> None:
    model = _tiny(32)
    for jit in (False, True):
        forward = make_forward(model, jit_compile=jit)
        assert trace_seconds(forward) > 0
        predict = make_predict_fn(model, forward)
        assert first_call_seconds(predict, example_batch(1, 32)) > 0
        assert predict(example_batch(2, 32)).shape == (2, 32, 32, 3)
    spec = TimingSpec(warmup_calls=1, min_calls=10, min_seconds=0.0, max_calls=10, max_seconds=1.0,
                      throughput_calls=1, throughput_batches=(1, 4))
    stats = measure_latency(predict, example_batch(1, 32), spec)
    assert stats.p50_ms <= stats.p95_ms <= stats.p99_ms
    assert set(throughput_by_batch(predict, 32, spec)) == {1, 4}
    skipped = largest_batch(predict, 32, spec, accelerator=False)
    assert skipped.batch is None and skipped.note.startswith("skipped: no accelerator")


def test_largest_batch_doubles_until_out_of_memory() -> None:
    def predict(images):
        if images.shape[0] > 8:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return np.zeros(images.shape)

    spec = TimingSpec(throughput_calls=1)
    found = largest_batch(predict, 8, spec, accelerator=True)
    assert found.batch == 8 and found.images_per_s > 0 and "batch 16 ran out of device memory" in found.note
    assert largest_batch(predict, 8, spec, accelerator=True, limit=4).batch == 4


def test_environment_columns_are_appended_and_empty_without_a_gpu() -> None:
    from bench.measure.envinfo import collect
    from bench.store.results import ENV_COLUMNS

    # Appended after the older columns, whose order stays: the GPU's, then the backend's.
    assert ENV_COLUMNS[-7:-4] == ["gpu_name", "cudnn_version", "tf32"]
    assert ENV_COLUMNS[-4:] == ["keras_backend", "jax_version", "jaxlib_version", "torch_version"]
    assert ENV_COLUMNS[:2] == ["device", "tf_version"]
    env = collect()
    assert env["gpu_name"] == env["cudnn_version"] == env["tf32"] == ""


def test_environment_columns_on_a_gpu_machine(monkeypatch) -> None:
    """The GPU branch of the environment, with the device faked (no GPU in CI)."""
    from bench.measure import envinfo

    monkeypatch.setattr(envinfo, "accelerators", lambda: ["NVIDIA H200"])
    monkeypatch.setattr(envinfo, "_compute_capability", lambda: "9.0")
    env = envinfo.collect()
    build = tf.sysconfig.get_build_info()
    assert env["device"] == env["gpu_name"] == "NVIDIA H200" and env["gpu_compute_capability"] == "9.0"
    assert env["cuda_version"] == str(build.get("cuda_version", "")) and env["cudnn_version"] == str(build.get("cudnn_version", ""))
    assert env["tf32"] is tf.config.experimental.tensor_float_32_execution_enabled()


# === The GPU check, its path on a CPU ===


def test_gpu_check_refuses_a_machine_without_gpu(capsys) -> None:
    from bench import gpu_check

    assert gpu_check.main([]) == gpu_check.EXIT_NO_GPU
    assert "GPU CHECK NOT RUN" in capsys.readouterr().err


def test_gpu_check_parity_table_flags_a_mode_out_of_tolerance() -> None:
    from bench.config.modes import PARITY_TOLERANCE
    from bench.gpu_check import MATRIX, parity

    rows = [{"model": "m", "mode": str(cell), "cell": cell, "miou": 0.5 + 0.001 * i} for i, cell in enumerate(MATRIX)]
    table, errors = parity(rows)
    assert len(table) == len(MATRIX) and not errors
    rows[-1] = {**rows[-1], "miou": 0.5 + 2 * PARITY_TOLERANCE}
    assert len(parity(rows)[1]) == 1


@pytest.mark.slow
def test_gpu_check_runs_every_mode_end_to_end_on_cpu(tmp_path: Path) -> None:
    """The check's whole path through the real CLI, every precision and XLA mode, on a CPU with
    the tiny test architecture and a tiny traced schedule (the smoke profile runs eagerly, where
    XLA cannot apply)."""
    import subprocess
    import sys

    from tests.support.commands import plugin_env

    out = tmp_path / "check"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--allow-cpu", "--models", "tinytest-mobilenetv2", "--out", str(out),
         "--", "--image-size", "32", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2"],
        env=plugin_env(tmp_path), capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "GPU check passed: 6 runs in 6 modes" in done.stdout
    summary = json.loads((out / "gpu_check.json").read_text())
    assert len(summary["rows"]) == 6 and not summary["errors"]
    runs = __import__("pandas").read_csv(out / "mixed_bfloat16-xla_on-nondet" / "runs.csv")
    assert (runs["precision"] == "mixed_bfloat16").all() and (runs["xla"] == "on").all()
    assert (~runs["deterministic"]).all() and runs["config.profile.xla"].eq("on").all()


@pytest.mark.slow
def test_mixed_bfloat16_reaches_float32_miou_on_a_tiny_schedule(tmp_path: Path) -> None:
    """The GPU check's parity claim in miniature: U-Net MobileNetV2, the same seed and schedule (smoke
    profile), float32 and mixed_bfloat16, through the real CLI: mIoU within the GPU check's
    tolerance (README "Speed" has the figure on the real sample)."""
    from bench.gpu_check import PARITY_TOLERANCE
    from tests.support.commands import bench_cli

    miou = {}
    for precision in ("float32", "mixed_bfloat16"):
        out = tmp_path / precision
        done = bench_cli(tmp_path, "run", "--profile", "smoke", "--arch", "unet-mobilenetv2", "--epochs", "2",
                         "--precision", precision, "--out", str(out), "--no-report", timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        (record,) = [json.loads(p.read_text()) for p in out.glob("runs/*/record.json")]
        assert record["status"] == "ok" and record["precision"] == precision
        miou[precision] = next(m["value"] for m in record["metrics"] if m["metric"] == "miou")
    assert abs(miou["mixed_bfloat16"] - miou["float32"]) <= PARITY_TOLERANCE, miou


@pytest.mark.slow
def test_mixed_precision_on_two_devices_with_mirrored_strategy(tmp_path: Path) -> None:
    """``SEGBENCH_VIRTUAL_DEVICES`` covers the multi-device path: mixed_bfloat16 under MirroredStrategy."""
    from tests.support.commands import bench_cli

    out = tmp_path / "r"
    done = bench_cli(
        tmp_path, "run", "--profile", "quick", "--data", "synthetic", "--image-size", "32", "--batch-size", "4",
        "--epochs", "1", "--steps-per-epoch", "3", "--weights", "none", "--arch", "tinytest", "--backbone", "mobilenetv2",
        "--precision", "mixed_bfloat16", "--no-deterministic", "--gpus-per-run", "2", "--seeds", "0", "--out", str(out),
        "--no-report",
        SEGBENCH_VIRTUAL_DEVICES="2", timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = [json.loads(p.read_text()) for p in out.glob("runs/*/record.json")]
    assert record["status"] == "ok", record.get("error")
    assert (record["precision"], record["xla"], record["deterministic"]) == ("mixed_bfloat16", "off", False)
    assert len(record["replica_devices"]) == 2 and "xla auto -> off" in record["mode_note"]


def test_the_gpu_check_is_a_documented_nox_session() -> None:
    readme = (REPO / "README.md").read_text()
    assert "nox -s gpu" in readme and "## Speed" in readme
    assert "def gpu(session" in (REPO / "noxfile.py").read_text()


def test_each_backend_resolves_and_refuses_the_modes_it_cannot_honour() -> None:
    from bench.config.modes import backend_refusal, resolve_xla

    quick, smoke = QUICK, SMOKE
    # JAX compiles every step with XLA, an eager profile included; it cannot run uncompiled.
    assert resolve_xla("auto", deterministic=True, accelerator=False, eager=False, backend="jax")[0] is True
    assert resolve_xla("auto", deterministic=True, accelerator=False, eager=True, backend="jax")[0] is True
    assert "--xla off cannot apply on --backend jax" in backend_refusal(quick.override(xla="off"), "jax")
    assert backend_refusal(quick, "jax") is None and backend_refusal(smoke, "jax") is None
    # PyTorch: eager unless XLA (torch.compile through Keras) is asked for.
    assert resolve_xla("auto", deterministic=False, accelerator=True, eager=False, backend="torch")[0] is False
    assert resolve_xla("on", deterministic=False, accelerator=True, eager=False, backend="torch")[0] is True
    # TensorFlow is as it was: auto is off on a CPU.
    assert resolve_xla("auto", deterministic=False, accelerator=False, eager=False)[0] is False
    # Several devices per run are TensorFlow's MirroredStrategy only.
    assert backend_refusal(quick, "tensorflow", replicas=2) is None
    assert "cannot apply on --backend torch" in backend_refusal(quick, "torch", replicas=2)


def test_the_gpu_check_expects_each_backends_own_modes() -> None:
    from bench.gpu_check import MATRICES, ran_as

    assert [ran_as(cell, "jax")[1] for cell in MATRICES["jax"]] == ["on"] * len(MATRICES["jax"])
    assert ran_as(("float32", "off", True), "tensorflow") == ("float32", "off", True)
    assert {cell[0] for cell in MATRICES["jax"]} == {"float32", "mixed_float16", "mixed_bfloat16"}
