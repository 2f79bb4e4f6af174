"""Training one model with ``model.fit``: the chapter's loss and optimiser, plus two callbacks.

No host sync per step. With the TensorFlow backend Keras calls batch hooks on the training thread
(``IS_THREAD_SAFE`` is false, so ``async_safe`` callbacks change nothing) and its ``CallbackList``
copies the step's logs to the host before every call (``pythonify_logs``), which makes the host
wait for the device after each step. ``fit`` takes a ``CallbackList`` of the caller's:
:class:`BoundaryCallbacks` passes batch-end hooks on at *check points* only: each epoch's first
and last step and every :data:`CHECK_EVERY` steps between. In between the training loop
dispatches steps without reading anything from the device, and the computation is the same step
for step (so are the numbers: unlike ``steps_per_execution``, which would run the steps of a
partial last execution, no step is added).

* :class:`NaNGuard` stops training at the first check point whose loss is not finite and says
  where. Keras's ``loss`` log is the epoch's running mean: once one step's loss is not finite,
  every later one of the epoch is not either, so the non-finite step lies after the last finite
  check point; the first step is a check point, so a model that diverges at once is named to the
  step (``NaN loss at epoch 1 step 1``), a later one to its window of at most
  :data:`CHECK_EVERY` steps (the run is then stored as failed: a diverged model's test metrics
  would be meaningless).
* :class:`StepTimer` times the steady state: from the end of each epoch's first step (iterator
  start, validation before it; in the first epoch, tracing and compiling the train function) to
  the end of its last step, both check points, where reading the logs waited for the device. The
  interval includes everything the harness does between steps (input pipeline, callbacks, progress
  bar), which is the point: the figure is what a user of the harness gets, and the overhead
  benchmark compares it with a bare ``model.fit`` on in-memory tensors. It also times the first
  step (``train_first_step_s``: tracing and, with XLA, compilation included).

With a :class:`bench.measure.validation.Validation` the model is measured on the validation images after
each epoch, and with a patience Keras's ``EarlyStopping`` ends training once ``val_miou`` has not
improved for that many epochs and restores the best epoch's weights (its BatchNorm statistics, as
validation recomputed them, included). The epoch count is then a cap: :class:`TrainResult` says
whether the run stopped on its plateau or at the cap, still improving.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import keras

from bench.measure.validation import MONITOR, Validation
from bench.store.results import HISTORY_COLUMNS

#: Batch-end hooks (and so host syncs) every this many steps, besides each epoch's first and last.
CHECK_EVERY = 16


class NaNLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class BoundaryCallbacks(keras.callbacks.CallbackList):
    """Keras's ``CallbackList`` whose batch-end hooks run at check points only (see above).

    Train-batch hooks run at each epoch's first and last step and every ``check_every`` steps;
    test-batch hooks (validation inside ``fit``) not at all, since no callback of the harness
    reads them (the progress bar ignores them inside ``fit``). Epoch hooks run as always.
    """

    def __init__(self, callbacks: list[keras.callbacks.Callback], *, check_every: int = CHECK_EVERY, **kwargs: Any) -> None:
        super().__init__(callbacks, **kwargs)
        self.check_every = check_every

    def is_check_point(self, batch: int) -> bool:
        steps = self.params.get("steps") or 0
        return batch == 0 or (batch + 1) % self.check_every == 0 or batch + 1 == steps

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.is_check_point(batch):
            super().on_train_batch_end(batch, logs)

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss it sees and says where (1-based epoch and step,
    or the window of steps between two check points)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.where: str | None = None
        self._last_finite = -1  # the last step of this epoch seen with a finite loss

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self._last_finite = -1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or self.where is not None:
            return
        if math.isfinite(float(loss)):
            self._last_finite = batch
            return
        first = self._last_finite + 2  # 1-based: the step after the last finite one
        steps = f"step {batch + 1}" if first == batch + 1 else f"between steps {first} and {batch + 1}"
        self.where = f"NaN loss at epoch {self.epoch + 1} {steps}"
        self.model.stop_training = True


class StepTimer(keras.callbacks.Callback):
    """Steady-state training throughput and the first step's time, from check-point step ends."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self._epoch = 0
        self._ends: dict[int, dict[int, float]] = {}  # epoch -> step -> end time
        self._first_begin: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._first_begin is None:
            self._first_begin = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._ends.setdefault(self._epoch, {})[batch] = time.perf_counter()

    def _windows(self) -> list[tuple[int, float]]:
        """``(steps, seconds)`` of each epoch's steady state: from the end of its first step (which
        holds the tracing or the pipeline's warm-up) to the end of its last step."""
        out = []
        for _, ends in sorted(self._ends.items()):
            last = max(ends)
            if last >= 1 and 0 in ends:
                out.append((last, ends[last] - ends[0]))
        return out

    @property
    def images_per_second(self) -> float | None:
        """Steady-state training throughput, or None when the schedule had no steady step."""
        windows = [(n, s) for n, s in self._windows() if s > 0]
        if not windows:
            return None
        return self.batch_size * sum(n for n, _ in windows) / sum(s for _, s in windows)

    @property
    def first_step_s(self) -> float | None:
        """Seconds of the first training step: tracing, XLA compilation and the step itself."""
        ends = self._ends.get(0, {})
        if self._first_begin is None or 0 not in ends:
            return None
        return ends[0] - self._first_begin


#: The per-epoch columns of a run's history (history.csv's, after the run's key and the epoch).
HISTORY_KEYS = tuple(HISTORY_COLUMNS[HISTORY_COLUMNS.index("epoch") + 1:])


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` measured.

    Attributes:
        epochs_run: Epochs trained (the cap, or fewer where early stopping ended training).
        best_epoch: 1-based epoch of the best ``val_miou`` (``None`` without validation).
        best_val_miou: Its value.
        stopped_early: Whether early stopping ended training (``val_miou`` had not improved for
            ``patience`` epochs) before the epoch cap.
        restored_best: Whether the best epoch's weights were restored (early stopping on: at a
            plateau or at the cap alike); otherwise the run goes on with the last epoch's.
    """

    history: list[dict[str, float | int | None]]
    train_time_s: float
    train_throughput: float | None
    first_step_s: float | None = None
    jit_compile: bool = False
    epochs_run: int = 0
    best_epoch: int | None = None
    best_val_miou: float | None = None
    stopped_early: bool = False
    restored_best: bool = False

    @property
    def tested_val_miou(self) -> float | None:
        """The validation mIoU of the weights the run goes on with: the best epoch's where they
        were restored, else the last epoch's."""
        if self.restored_best:
            return self.best_val_miou
        last = self.history[-1].get(MONITOR) if self.history else None
        return None if last is None else float(last)


def compile_model(
    model: keras.Model, learning_rate: float, jit_compile: bool = False, run_eagerly: bool = False
) -> None:
    """The chapter's setup: Adam, sparse cross-entropy on logits, pixel accuracy.

    ``jit_compile`` asks Keras for XLA; Keras may refuse (op determinism on, a layer that does not
    support it), so what it really does is ``model.jit_compile`` afterwards. Under the
    ``mixed_float16`` policy Keras wraps the optimiser in a ``LossScaleOptimizer`` (dynamic loss
    scaling); ``mixed_bfloat16`` needs none. ``run_eagerly`` is Keras's (JAX and PyTorch; on
    TensorFlow an eager profile turns every ``tf.function`` eager instead, input pipeline aside).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # A metric object (not the string "accuracy", which Keras resolves and builds inside the
        # first traced step) and a built optimiser: the train function then creates no variable
        # while tracing, and TensorFlow traces it once instead of twice. Tracing a ResNet's
        # train step costs tens of seconds on a CPU, more than a quick run's training.
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
    )
    model.optimizer.build(model.trainable_variables)


def train(
    model: keras.Model,
    train_data: Any,
    *,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    learning_rate: float,
    verbose: int | str = "auto",
    jit_compile: bool = False,
    run_eagerly: bool = False,
    check_every: int = CHECK_EVERY,
    validation: Validation | None = None,
    patience: int = 0,
) -> TrainResult:
    """Compiles and fits ``model``; raises :class:`NaNLossError` on a non-finite loss.

    Args:
        model: The model, built and not yet compiled.
        train_data: An infinite batched dataset of ``(images, masks)``.
        epochs, steps_per_epoch, batch_size, learning_rate: The schedule.
        verbose: Keras's progress display.
        jit_compile: Ask Keras for XLA (:attr:`TrainResult.jit_compile` says what it did).
        run_eagerly: Keras's own (see :func:`compile_model`).
        check_every: Steps between check points (:class:`BoundaryCallbacks`); 1 reads the logs
            after every step, as Keras's own ``CallbackList`` does.
        validation: Measures the model after each epoch (the ``val_*`` logs).
        patience: With ``validation``, stop once ``val_miou`` has not improved for this many
            epochs and restore the best epoch's weights; 0 trains every epoch and keeps the last.
    """
    if patience and validation is None:
        raise ValueError("early stopping (patience > 0) needs a validation split")
    compile_model(model, learning_rate, jit_compile, run_eagerly)
    guard = NaNGuard()
    timer = StepTimer(batch_size)
    verbose = 1 if verbose == "auto" else verbose
    # Order matters: the validation writes the logs that early stopping and the history read.
    stopper = (
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience, restore_best_weights=True)
        if patience else None
    )
    measured = [cb for cb in (validation, stopper) if cb is not None]
    callbacks = BoundaryCallbacks(
        [guard, timer, *measured], check_every=check_every, add_history=True, add_progbar=verbose != 0, verbose=verbose,
        epochs=epochs, steps=steps_per_epoch, model=model,
    )
    start = time.perf_counter()
    fit = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        shuffle=False,  # the input pipeline shuffles, seeded
        verbose=verbose,
    )
    train_time = time.perf_counter() - start
    if guard.where:
        raise NaNLossError(guard.where)
    history = []
    logs = fit.history
    for i in range(len(logs.get("loss", []))):
        row: dict[str, float | int | None] = {"epoch": i + 1}
        for key in HISTORY_KEYS:
            values = logs.get(key)
            row[key] = float(values[i]) if values is not None and i < len(values) else None
        history.append(row)
    best_epoch, best = _best(history)
    return TrainResult(
        history, train_time, timer.images_per_second, timer.first_step_s, bool(model.jit_compile),
        epochs_run=len(history),
        best_epoch=best_epoch,
        best_val_miou=best,
        stopped_early=stopper is not None and stopper.stopped_epoch > 0,
        restored_best=stopper is not None and stopper.best_weights is not None,
    )


def _best(history: list[dict[str, float | int | None]]) -> tuple[int | None, float | None]:
    """The 1-based epoch of the highest ``val_miou`` (the first of equals, as ``EarlyStopping``
    keeps it) and its value; ``(None, None)`` without validation."""
    scored = [(row[MONITOR], row["epoch"]) for row in history
              if row.get(MONITOR) is not None and math.isfinite(row[MONITOR])]
    if not scored:
        return None, None
    value, epoch = max(scored, key=lambda item: (item[0], -item[1]))
    return int(epoch), float(value)
