"""An lrcore schedule as a Keras 3 learning-rate schedule: ``LrcoreSchedule(schedule, steps)``.

>>> import lrcore, keras
>>> from lrcore.integrations.keras import LrcoreSchedule
>>> lr = LrcoreSchedule(lrcore.Cosine(lr=0.1, decay_steps=1000), steps=1000)
>>> opt = keras.optimizers.SGD(learning_rate=lr)
>>> float(lr(500))
0.05000000074505806

* Evaluation: ``lrcore.evaluate(schedule, steps)`` is computed once (float64, then rounded to
  float32, Keras's learning-rate dtype) into a table; ``__call__(step)`` is a gather from that constant
  (``keras.ops.take``, ``tf.gather`` on TensorFlow), so it runs inside compiled ``train_step`` graphs and
  under XLA, with no Python per step.
* Past the end of the table (steps >= ``steps``) the last value is held (and steps < 0 read step 0):
  make ``steps`` at least the number of optimizer steps of the training run. Holding is exact for
  schedules that end on a floor (Cosine, Polynomial, OneCycle, WSD, ...); periodic ones (Cyclic,
  CosineRestarts, PyTorch's periodic cosine) would have gone on cycling, so size the table for them.
  ``steps`` defaults to ``DEFAULT_STEPS`` (100,000 steps, a 400 kB float32 table).
* Serialization: ``get_config`` stores the schedule's text form (``str(schedule)``) and ``steps``;
  ``from_config`` reads it back with ``lrcore.parse`` (``ast``, nothing runs). The class is
  registered as ``"lrcore>LrcoreSchedule"``, so a ``.keras`` model using it loads back with
  ``keras.models.load_model`` once this module is imported. A ``Lambda``/``Multiplicative`` built on a
  Python callable has no text form: give its ``fn`` as an expression string (``fn="0.95 ** t"``).
"""
from __future__ import annotations

import numbers
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402

from ..evaluate import evaluate  # noqa: E402
from ..schedules import Schedule  # noqa: E402
from ..textform import parse  # noqa: E402

__all__ = ["LrcoreSchedule", "DEFAULT_STEPS"]

DEFAULT_STEPS = 100_000
MAX_STEPS = 1 << 27  # a 512 MiB float32 table; beyond that, hold the last value of a coarser plan


@keras.saving.register_keras_serializable(package="lrcore")
class LrcoreSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A Keras ``LearningRateSchedule`` giving ``schedule(step)`` (float32) for steps < ``steps`` and
    the last of those values after; ``schedule`` is an lrcore schedule or its text form."""

    def __init__(self, schedule, steps: int | None = None, name: str | None = None):
        super().__init__()
        if isinstance(schedule, str):
            schedule = parse(schedule)
        if not isinstance(schedule, Schedule):
            raise TypeError(f"LrcoreSchedule: schedule must be an lrcore schedule or its text form, got {schedule!r}")
        if steps is None:
            steps = DEFAULT_STEPS
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"LrcoreSchedule: steps (the table length) must be an integer in [1, {MAX_STEPS}], "
                             f"got {steps!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"LrcoreSchedule: name must be a string or None, got {name!r}")
        self.schedule = schedule
        self.steps = int(steps)
        self.name = name
        self.table = evaluate(schedule, self.steps).astype(np.float32)

    def __call__(self, step):
        table = keras.ops.convert_to_tensor(self.table, dtype="float32")
        idx = keras.ops.clip(keras.ops.cast(step, "int64"), 0, self.steps - 1)
        return keras.ops.take(table, idx)

    def get_config(self) -> dict:
        try:
            self.schedule.to_dict()  # a schedule on a Python callable has no text form: say so here
        except TypeError as e:
            raise TypeError(f"LrcoreSchedule: cannot serialize {self.schedule}: {e}") from None
        return {"schedule": str(self.schedule), "steps": self.steps, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "LrcoreSchedule":
        if not isinstance(config, dict) or "schedule" not in config:
            raise ValueError(f"LrcoreSchedule: config must be a dict with a 'schedule' text, got {config!r}")
        return cls(**config)
