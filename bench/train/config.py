"""What a training run is made of, without torch: how models train (:class:`TrainSpec`), one model
(:class:`TrainConfig`), the optimizer names, the result columns.

The matrix spec (``bench.matrix.spec``) validates against these names without importing the trainers and makes
the run's ``TrainSpec`` (``Matrix.train_spec()``); the three trainers (``batched``, ``sequential``, ``keras``),
find-lr, step cost and the roofline take it whole. Column meanings: ``bench.train.batched``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, NamedTuple

import lrcore

if TYPE_CHECKING:  # the trainers' tables; this module itself needs no pandas
    import pandas as pd

__all__ = ["TrainSpec", "TrainConfig", "NATIVE_PREFIX", "strip_native", "OPTIMIZERS", "SCHEDULE_FREE_OPTIMIZERS", "ACTIVATION_NAMES", "PRECISIONS", "HISTORY_COLUMNS",
           "SUMMARY_COLUMNS", "ChunkResult", "steps_per_epoch"]

#: Training precisions: "fp32" (float32 throughout) and "bf16" (the matmuls in bfloat16 with float32 master
#: weights, optimizer state, loss and softmax: ``bench.train.mixed``). Runs of different precision are never pooled.
PRECISIONS = ("fp32", "bf16")

#: The MLP's activations (``bench.train.model.ACTIVATIONS`` holds their torch functions).
ACTIVATION_NAMES = ("relu", "gelu", "tanh")

#: Our optimizer names -> (BatchedOptimizer kind, hyper-parameters besides lr).
OPTIMIZERS = {
    "sgd": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "rmsprop": ("rmsprop", {}),
    "adam": ("adam", {}),
    "adamw": ("adamw", {}),
    "sgd_schedulefree": ("sgd_schedulefree", {}),      # momentum 0.9 (the package's default)
    "adamw_schedulefree": ("adamw_schedulefree", {}),  # beta1 0.9, beta2 0.999, weight decay 0
}

#: Schedule-Free SGD / AdamW (Defazio et al. 2024; the ``schedulefree`` package): they replace the decay by
#: averaging, so a matrix gives them only its warmup-only schedules (``Matrix.schedule_free``), and they
#: are evaluated on their averaged weights x (the package's ``optimizer.eval()``).
SCHEDULE_FREE_OPTIMIZERS = ("sgd_schedulefree", "adamw_schedulefree")

#: The base momentum (sgd/rmsprop) or beta1 (adam/adamw) of each optimizer, used in the momentum table
#: for models whose schedule does not cycle momentum.
_BASE_MOMENTUM = {"sgd": 0.0, "momentum": 0.9, "nesterov": 0.9, "rmsprop": 0.0, "adam": 0.9, "adamw": 0.9,
                  "sgd_schedulefree": 0.9, "adamw_schedulefree": 0.9}

HISTORY_COLUMNS = ["model", "name", "optimizer", "schedule", "peak_lr", "seed", "epoch", "train_loss",
                   "val_loss", "val_acc", "lr", "momentum", "epoch_time_s", "trained", "diverged", "stopped"]
SUMMARY_COLUMNS = ["model", "name", "optimizer", "schedule", "peak_lr", "seed", "epochs_trained", "diverged",
                   "diverged_epoch", "stopped_epoch", "final_train_loss", "final_val_loss", "final_val_acc",
                   "best_val_acc", "best_val_epoch", "test_loss", "test_acc", "test_acc_best"]


#: ``lrcore.Plateau`` / ``ReduceLROnPlateau`` settings a matrix's [plateau] table starts from.
PLATEAU_DEFAULTS = {"factor": 0.1, "patience": 2}


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How every model of a run trains, made once (``Matrix.train_spec()``) and passed whole to the trainers,
    find-lr, step cost and the roofline; the one place that holds these defaults.

    ``early_stopping``: None (off), a patience (int) or ``lrcore.EarlyStopping`` keyword arguments (monitored:
    validation loss). ``plateau``: the [plateau] table (``ReduceLROnPlateau`` keywords) of "plateau" schedules.
    ``optim_impl``: the batched optimizer's (auto: numba on the CPU, torch elsewhere); other trainers ignore it."""
    epochs: int = 1
    batch_size: int = 128
    widths: tuple[int, ...] = (784, 256, 128, 10)
    activation: str = "relu"
    dropout: float = 0.0
    early_stopping: int | dict | None = None
    plateau: dict = dataclasses.field(default_factory=dict)
    precision: str = "fp32"
    optim_impl: str = "auto"
    eval_batch_size: int = 5000

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if int(self.epochs) < 1:
            raise ValueError(f"TrainSpec: epochs must be >= 1, got {self.epochs!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"TrainSpec: batch_size must be >= 1, got {self.batch_size!r}")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"TrainSpec: activation must be one of {ACTIVATION_NAMES}, got {self.activation!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainSpec: precision must be one of {PRECISIONS}, got {self.precision!r}")

    def replace(self, **changes) -> "TrainSpec":
        return dataclasses.replace(self, **changes)

    def steps_per_epoch(self, n_train: int) -> int:
        return steps_per_epoch(n_train, self.batch_size)

    def plateau_kwargs(self) -> dict:
        """The [plateau] table over :data:`PLATEAU_DEFAULTS` (factor 0.1, patience 2)."""
        return {**PLATEAU_DEFAULTS, **(self.plateau or {})}

    def early_stopping_kwargs(self) -> dict | None:
        """``lrcore.EarlyStopping`` / ``keras.callbacks.EarlyStopping`` keywords (restore_best_weights on unless
        said otherwise), or None when early stopping is off."""
        es = self.early_stopping
        if es is None:
            return None
        kw = {"patience": int(es)} if isinstance(es, int) or hasattr(es, "__index__") else dict(es)
        kw.setdefault("restore_best_weights", True)
        return kw


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One model: ``schedule`` is lrcore text with placeholders ``peak`` and ``total``, or "plateau".
    ``lr_factor`` and ``stage`` say where a tuned run put it (peak_lr = the matrix's peak x lr_factor; stage
    "tune" / "tune+k" / "eval"; "" outside a tuned run); trainers ignore them."""
    name: str
    optimizer: str
    peak_lr: float
    schedule: str = "Constant(lr=peak)"
    seed: int = 0
    lr_factor: float = 1.0
    stage: str = ""

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig {self.name!r}: optimizer must be one of {sorted(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if not (isinstance(self.peak_lr, (int, float)) and math.isfinite(self.peak_lr) and self.peak_lr > 0):
            raise ValueError(f"TrainConfig {self.name!r}: peak_lr must be a positive number, got {self.peak_lr!r}")

    @property
    def reactive(self) -> bool:
        return self.schedule.strip().lower() == "plateau"

    def parse(self, total: int, steps_per_epoch: int | None = None):
        """The lrcore schedule (None for "plateau"); placeholders ``peak``, ``total``, ``steps_per_epoch``,
        ``epochs`` (the last two when ``steps_per_epoch`` is given). A ``keras-native:`` prefix (the Keras
        trainer's real Keras schedule) is dropped: the rest is the lrcore equivalent."""
        if self.reactive:
            return None
        names = dict(peak=float(self.peak_lr), total=int(total))
        if steps_per_epoch is not None:
            names.update(steps_per_epoch=int(steps_per_epoch), epochs=int(total) // int(steps_per_epoch))
        return lrcore.parse(strip_native(self.schedule), **names)


NATIVE_PREFIX = "keras-native:"


def strip_native(text: str) -> str:
    """Schedule text without the ``keras-native:`` prefix."""
    t = text.strip()
    return t[len(NATIVE_PREFIX):].strip() if t.startswith(NATIVE_PREFIX) else t


class ChunkResult(NamedTuple):
    history: pd.DataFrame
    summary: pd.DataFrame
    throughput: dict


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return -(-int(n_train) // int(batch_size))


