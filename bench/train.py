"""Training one model with ``model.fit``: the chapter's loss and optimiser, plus two callbacks.

* :class:`NaNGuard` stops training at the first non-finite loss and says where (the run is then
  stored as failed: a diverged model's test metrics would be meaningless).
* :class:`StepTimer` times the steady state: the interval between the ends of consecutive training
  steps within an epoch, leaving out each epoch's first step (iterator start, validation before
  it; in the first epoch, tracing the train function). The interval includes everything the
  harness does between steps (input pipeline, callbacks, progress bar), which is the point: the
  figure is what a user of the harness gets, and the overhead benchmark compares it with a bare
  ``model.fit`` on in-memory tensors.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import keras


class NaNLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where (1-based epoch and step)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.where: str | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = f"NaN loss at epoch {self.epoch + 1} step {batch + 1}"
            self.model.stop_training = True


class StepTimer(keras.callbacks.Callback):
    """Collects steady-state step intervals (seconds) and the images they processed."""

    def __init__(self, batch_size: int, skip_first_epoch_steps: int = 1) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.skip_first = skip_first_epoch_steps
        self.intervals: list[float] = []
        self._epoch = 0
        self._last: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._last = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        skip = self.skip_first if self._epoch == 0 else 1
        if self._last is not None and batch >= skip:
            self.intervals.append(now - self._last)
        self._last = now

    @property
    def images_per_second(self) -> float | None:
        """Steady-state training throughput, or None when the schedule had no steady step."""
        if not self.intervals:
            return None
        return self.batch_size * len(self.intervals) / sum(self.intervals)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` measured."""

    history: list[dict[str, float | int | None]]
    train_time_s: float
    train_throughput: float | None


def compile_model(model: keras.Model, learning_rate: float) -> None:
    """The chapter's setup: Adam, sparse cross-entropy on logits, pixel accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # A metric object (not the string "accuracy", which Keras resolves and builds inside the
        # first traced step) and a built optimiser: the train function then creates no variable
        # while tracing, and TensorFlow traces it once instead of twice. Tracing a ResNet's
        # train step costs tens of seconds on a CPU, more than a quick run's training.
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
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
    validation_data: Any = None,
    validation_steps: int | None = None,
    verbose: int | str = "auto",
) -> TrainResult:
    """Compiles and fits ``model``; raises :class:`NaNLossError` on a non-finite loss.

    Args:
        model: The model, built and not yet compiled.
        train_data: An infinite batched dataset of ``(images, masks)``.
        epochs, steps_per_epoch, batch_size, learning_rate: The schedule.
        validation_data: A finite batched dataset evaluated after each epoch (``validation_steps``
            batches of it).
        verbose: Keras's progress display.
    """
    compile_model(model, learning_rate)
    guard = NaNGuard()
    timer = StepTimer(batch_size)
    start = time.perf_counter()
    fit = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_data,
        validation_steps=validation_steps if validation_data is not None else None,
        callbacks=[guard, timer],
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
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            values = logs.get(key)
            row[key] = float(values[i]) if values is not None and i < len(values) else None
        history.append(row)
    return TrainResult(history, train_time, timer.images_per_second)
