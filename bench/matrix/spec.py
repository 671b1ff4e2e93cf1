"""Matrix files: which schedules x optimizers x seeds to train, validated before any training starts.

``load_matrix(name_or_path)`` reads a built-in (``builtin/*.toml``) or a TOML file into a :class:`Matrix`;
``Matrix.configs()`` lists the configurations (optimizer-major, then schedule, then seed: the ``model``
numbers of every results file); a ``[tuning]`` table (:class:`Tuning`) makes it a tuned matrix, whose stages
``bench.matrix.tuning`` plans. The file format and the validation rules: docs/BENCH.md, "bench/matrix/spec.py".
"""
from __future__ import annotations

import dataclasses
import math
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

import lrcore

from ..train.config import ACTIVATION_NAMES as ACTIVATIONS
from ..train.config import (NATIVE_PREFIX, OPTIMIZERS, PRECISIONS, SCHEDULE_FREE_OPTIMIZERS, TrainConfig,
                            TrainSpec, steps_per_epoch, strip_native)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Matrix", "MatrixError", "Tuning", "BUILTIN", "builtin_names", "load_matrix", "parse_seeds",
           "TUNING_METRICS"]

#: The built-in matrix files: package data of ``bench.matrix``, read with importlib.resources.
BUILTIN = resources.files("bench.matrix") / "builtin"
FRAMEWORKS = ("torch", "keras")
#: Fashion-MNIST training images after the validation split: the size the schedule check assumes.
N_TRAIN = 50_000
PLATEAU_KEYS = ("factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")
TOP_KEYS = ("name", "description", "framework", "precision", "epochs", "seeds", "batch_size", "early_stopping",
            "target_val_acc", "baseline", "contender", "model", "peak_lr", "schedules", "schedule_free", "plateau",
            "tuning")
#: What schedule-free optimizers run when a matrix names them without a [schedule_free] table: warmup over
#: the first 5% of steps, then the peak (the package's recipe: warmup only, the averaging does the rest).
DEFAULT_SCHEDULE_FREE = {"warmup_constant": "Warmup(Constant(lr=peak), steps=total // 20)"}
MODEL_KEYS = ("widths", "activation", "dropout")
TUNING_KEYS = ("lr_factors", "tuning_seeds", "metric", "extend", "screen_seeds", "confirm_neighbours")
#: A learning rate is selectable only after this many tuning seeds trained it without a collapse (DESIGN.md).
MIN_TUNING_SEEDS = 3
#: Selection metrics of a tuned matrix (validation only, never test): the validation accuracy at the end of
#: training, or at the best epoch (early stopping's restore point).
TUNING_METRICS = ("final_val_acc", "best_val_acc")


@dataclasses.dataclass(frozen=True)
class Tuning:
    """A matrix's ``[tuning]`` table: every (optimizer, schedule) trains at ``peak_lr * f`` for each factor
    ``f`` on the first ``screen_seeds`` of ``seeds`` (the tuning seeds, >= 3, disjoint from the evaluation
    seeds); an optimum on the grid's edge trains the next factor outward, up to ``extend`` times; the leading
    factors (and, with ``confirm_neighbours``, their neighbours) train on the other tuning seeds. Selected: the
    highest mean ``metric`` among factors trained on every tuning seed without a collapse
    (bench/matrix/tuning.py)."""
    lr_factors: tuple[float, ...]
    seeds: tuple[int, ...]
    metric: str = "final_val_acc"
    extend: int = 2
    screen_seeds: int = 1
    confirm_neighbours: bool = True

    @property
    def screen(self) -> tuple[int, ...]:
        """The seeds every grid factor trains on."""
        return self.seeds[:self.screen_seeds]

    @property
    def confirm(self) -> tuple[int, ...]:
        """The seeds only the leading factors train on."""
        return self.seeds[self.screen_seeds:]

    def to_dict(self) -> dict:
        return {"lr_factors": list(self.lr_factors), "tuning_seeds": list(self.seeds), "metric": self.metric,
                "extend": self.extend, "screen_seeds": self.screen_seeds,
                "confirm_neighbours": self.confirm_neighbours}


class MatrixError(ValueError):
    """A matrix file that breaks a rule; the message names the file, the key and the rule."""


def builtin_names() -> list[str]:
    return sorted(p.name[:-len(".toml")] for p in BUILTIN.iterdir() if p.name.endswith(".toml"))


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_seeds(value) -> list[int]:
    """``3`` -> [0, 1, 2]; ``[4, 7]`` -> [4, 7]; ``"0,1,2"`` (command line) -> [0, 1, 2]."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"seeds: expected a count or a comma-separated list of integers, got {value!r}") from None
        value = nums[0] if len(nums) == 1 and "," not in value else nums
    if _int(value):
        if value < 1:
            raise ValueError(f"seeds: a count must be >= 1, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(_int(s) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            raise ValueError(f"seeds: must be distinct, got {value}")
        return list(value)
    raise ValueError(f"seeds: expected a count >= 1 or a non-empty list of distinct integers >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Matrix:
    """A validated matrix (see the module docstring); ``source`` says where it came from."""
    name: str
    epochs: int
    seeds: tuple[int, ...]
    peak_lr: dict[str, Any]
    schedules: dict[str, str]
    description: str = ""
    framework: str = "torch"
    batch_size: int = 128
    early_stopping: int = 0
    target_val_acc: float = 0.85
    baseline: str | None = None
    contender: str | None = None
    widths: tuple[int, ...] = TrainSpec.widths
    activation: str = TrainSpec.activation
    dropout: float = TrainSpec.dropout
    plateau: dict[str, Any] = dataclasses.field(default_factory=dict)
    schedule_free: dict[str, str] = dataclasses.field(default_factory=dict)
    tuning: Tuning | None = None
    precision: str = "fp32"
    source: str = ""

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(N_TRAIN, self.batch_size)

    def train_spec(self, **changes) -> TrainSpec:
        """How this matrix's models train, as one value for the trainers, find-lr, step cost and the roofline
        (``changes``: fields to override, e.g. ``optim_impl``)."""
        return TrainSpec(**{**dict(epochs=self.epochs, batch_size=self.batch_size, widths=self.widths,
                                   activation=self.activation, dropout=self.dropout,
                                   early_stopping=self.early_stopping or None, plateau=dict(self.plateau),
                                   precision=self.precision), **changes})

    schedule_free_optimizers = SCHEDULE_FREE_OPTIMIZERS

    def schedules_of(self, optimizer: str) -> dict[str, str]:
        """The schedules an optimizer runs: ``schedule_free`` for the schedule-free ones, else ``schedules``."""
        return self.schedule_free if optimizer in SCHEDULE_FREE_OPTIMIZERS else self.schedules

    @property
    def n_configs(self) -> int:
        """Models on the evaluation seeds (all models of an untuned matrix)."""
        return len(self.points) * len(self.seeds)

    @property
    def n_tuning_models(self) -> int:
        """Models of a tuned matrix's grid on its screening seeds (before extensions and confirmations); 0 when
        untuned."""
        t = self.tuning
        return 0 if t is None else len(self.points) * len(t.lr_factors) * len(t.screen)

    def needs_find(self) -> list[str]:
        """Optimizers whose peak is "find"."""
        return [o for o, v in self.peak_lr.items() if v == "find"]

    def configs(self, peaks: dict[str, float] | None = None) -> list[TrainConfig]:
        """All configurations at the peaks, optimizer-major, then schedule, then seed (an untuned run's
        models). ``peaks`` fills "find" peaks."""
        return self.point_configs([(o, s, 1.0) for o in self.peak_lr for s in self.schedules_of(o)], self.seeds,
                                  peaks)

    def point_configs(self, points, seeds, peaks: dict[str, float] | None = None, stage: str = "") -> list[TrainConfig]:
        """The configurations of ``points`` ((optimizer, schedule name, lr factor), in order) x ``seeds``: peak
        learning rate ``peaks[optimizer] * factor``. ``peaks`` fills "find" peaks."""
        resolved = {**self.peak_lr, **(peaks or {})}
        missing = [o for o, v in resolved.items() if v == "find"]
        if missing:
            raise MatrixError(f"matrix {self.name}: peak_lr of {missing} is 'find': run the LR range test first")
        return [TrainConfig(name=s, optimizer=o, peak_lr=float(resolved[o]) * float(f),
                            schedule=self.schedules_of(o)[s], seed=seed, lr_factor=float(f), stage=stage)
                for o, s, f in points for seed in seeds]

    @property
    def points(self) -> list[tuple[str, str]]:
        """Every (optimizer, schedule name), in matrix order."""
        return [(o, s) for o in self.peak_lr for s in self.schedules_of(o)]

    def replace(self, **changes) -> "Matrix":
        """A copy with some fields changed (``epochs``, ``seeds``, ...), validated again."""
        d = self.to_dict()
        for k, v in changes.items():
            if k in MODEL_KEYS:
                d["model"][k] = v
            else:
                d[k] = list(v) if isinstance(v, tuple) else v
        return from_dict(d, source=self.source)

    def torch_counterpart(self) -> "Matrix":
        """The PyTorch half of a cross-framework check: this (Keras) matrix without its ``keras-native:``
        schedules, ``framework = "torch"``, named ``<name>-torch``; the lrcore texts (also ``keras.X(...)``
        ones) mean the same schedule in both frameworks, so its runs pair with the Keras run's by schedule
        name. Baseline / contender are kept when they survive, else dropped."""
        keep = {n: t for n, t in self.schedules.items() if not t.strip().startswith(NATIVE_PREFIX)}
        if not keep:
            raise ValueError(f"matrix {self.name}: every schedule is keras-native; nothing runs in PyTorch")
        return self.replace(framework="torch", schedules=keep, name=f"{self.name}-torch",
                            baseline=self.baseline if self.baseline in keep else None,
                            contender=self.contender if self.contender in keep else None)

    def to_dict(self) -> dict:
        """The matrix in the file's layout (JSON/TOML-safe), plus ``source``."""
        d = {"name": self.name, "description": self.description, "framework": self.framework,
             "precision": self.precision, "epochs": self.epochs, "seeds": list(self.seeds),
             "batch_size": self.batch_size,
             "early_stopping": self.early_stopping, "target_val_acc": self.target_val_acc,
             "model": {"widths": list(self.widths), "activation": self.activation, "dropout": self.dropout},
             "peak_lr": dict(self.peak_lr), "schedules": dict(self.schedules), "plateau": dict(self.plateau),
             "source": self.source}
        if self.tuning is not None:
            d["tuning"] = self.tuning.to_dict()
        if self.schedule_free:
            d["schedule_free"] = dict(self.schedule_free)
        if self.baseline is not None:
            d["baseline"] = self.baseline
        if self.contender is not None:
            d["contender"] = self.contender
        return d


def load_matrix(spec: str | Path) -> Matrix:
    """A built-in name (``quick``, ``default``, ...) or a path to a TOML file -> validated :class:`Matrix`."""
    spec_s = str(spec)
    path = Path(spec_s)
    if not spec_s.endswith(".toml") and (BUILTIN / f"{spec_s}.toml").is_file():
        path, source = BUILTIN / f"{spec_s}.toml", f"built-in:{spec_s}"
    elif path.is_file():
        source = str(path)
    else:
        raise MatrixError(f"matrix {spec_s!r}: no such built-in matrix ({', '.join(builtin_names())}) "
                          f"and no such file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise MatrixError(f"matrix {path}: not valid TOML: {e}") from None
    raw.setdefault("name", Path(path.name).stem)
    return from_dict(raw, source=source)


def from_dict(raw: dict, source: str = "") -> Matrix:
    """Validate a matrix given as a dict (the TOML layout; ``source`` ignored inside): one check per table, in
    the file's order; the first rule broken raises :class:`MatrixError` naming the file, the key and the rule."""
    where = f"matrix {source or raw.get('name', '?')}"

    def fail(msg):
        raise MatrixError(f"{where}: {msg}")

    raw = {k: v for k, v in raw.items() if k != "source"}
    top = _top(raw, fail)
    model = _model(raw.get("model", {}), fail)
    peaks = _peak_lr(raw.get("peak_lr"), fail)
    plateau = _plateau(raw.get("plateau", {}), fail)
    schedules, sf = _schedules(raw, peaks, top, fail)
    tuning = _tuning(raw.get("tuning"), top["seeds"], top["early_stopping"], fail)
    roles = _roles(raw, schedules, fail)
    return Matrix(peak_lr=dict(peaks), schedules=dict(schedules), plateau=dict(plateau), schedule_free=sf,
                  tuning=tuning, source=source, **top, **model, **roles)


def _top(raw: dict, fail) -> dict:
    """The top-level keys: name, framework and precision (checked together), epochs, seeds, batch size, early
    stopping, the accuracy target, the description."""
    from ..train.registry import check_combination
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        fail(f"unknown key(s) {unknown}; allowed: {', '.join(TOP_KEYS)}")
    name = raw.get("name", "matrix")
    if not isinstance(name, str) or not name.strip():
        fail(f"name must be a non-empty string, got {name!r}")
    framework = raw.get("framework", "torch")
    if framework not in FRAMEWORKS:
        fail(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    precision = raw.get("precision", "fp32")
    if precision not in PRECISIONS:
        fail(f"precision must be one of {PRECISIONS} (bf16: the matmuls in bfloat16, float32 master weights), "
             f"got {precision!r}")
    problem = check_combination(None, framework, precision)
    if problem:
        fail(problem)
    epochs = raw.get("epochs")
    if not _int(epochs) or epochs < 1:
        fail(f"epochs must be an integer >= 1, got {epochs!r}")
    try:
        seeds = tuple(parse_seeds(raw.get("seeds", 1)))
    except ValueError as e:
        fail(str(e))
    batch_size = raw.get("batch_size", TrainSpec.batch_size)
    if not _int(batch_size) or not 1 <= batch_size <= N_TRAIN:
        fail(f"batch_size must be an integer in [1, {N_TRAIN}], got {batch_size!r}")
    es = raw.get("early_stopping", 0)
    if es is False:
        es = 0
    if not _int(es) or es < 0:
        fail(f"early_stopping must be 0 (off) or a patience >= 1, got {es!r}")
    target = raw.get("target_val_acc", 0.85)
    if not _num(target) or not 0 < target <= 1:
        fail(f"target_val_acc must be a number in (0, 1], got {target!r}")
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        fail(f"description must be a string, got {desc!r}")
    return dict(name=name, framework=framework, precision=precision, epochs=epochs, seeds=seeds,
                batch_size=batch_size, early_stopping=es, target_val_acc=float(target), description=desc)


def _model(model, fail) -> dict:
    """The ``[model]`` table: widths from 784 pixels to 10 classes, activation, dropout."""
    if not isinstance(model, dict):
        fail(f"[model] must be a table, got {model!r}")
    bad = sorted(set(model) - set(MODEL_KEYS))
    if bad:
        fail(f"[model] unknown key(s) {bad}; allowed: {', '.join(MODEL_KEYS)}")
    widths = model.get("widths", list(TrainSpec.widths))
    if not (isinstance(widths, list) and len(widths) >= 2 and all(_int(w) and w >= 1 for w in widths)):
        fail(f"[model] widths must be a list of >= 2 positive integers, got {widths!r}")
    if widths[0] != 784 or widths[-1] != 10:
        fail(f"[model] widths must start with 784 (28x28 pixels) and end with 10 (classes), got {widths}")
    activation = model.get("activation", TrainSpec.activation)
    if activation not in ACTIVATIONS:
        fail(f"[model] activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    dropout = model.get("dropout", TrainSpec.dropout)
    if not _num(dropout) or not 0 <= dropout < 1:
        fail(f"[model] dropout must be a number in [0, 1), got {dropout!r}")
    return dict(widths=tuple(widths), activation=activation, dropout=float(dropout))


def _peak_lr(peaks, fail) -> dict:
    """The ``[peak_lr]`` table: known optimizers, each a positive number or "find"."""
    if not isinstance(peaks, dict) or not peaks:
        fail(f"[peak_lr] must be a table naming at least one optimizer ({', '.join(OPTIMIZERS)})")
    for opt, v in peaks.items():
        if opt not in OPTIMIZERS:
            fail(f"[peak_lr] unknown optimizer {opt!r}; known: {', '.join(OPTIMIZERS)}")
        if not (v == "find" or (_num(v) and v > 0)):
            fail(f"[peak_lr] {opt} must be a positive number or \"find\", got {v!r}")
    return peaks


def _plateau(plateau, fail) -> dict:
    """The ``[plateau]`` table: ``ReduceLROnPlateau`` keywords that ``lrcore.Plateau`` accepts."""
    if not isinstance(plateau, dict):
        fail(f"[plateau] must be a table, got {plateau!r}")
    bad = sorted(set(plateau) - set(PLATEAU_KEYS))
    if bad:
        fail(f"[plateau] unknown key(s) {bad}; allowed: {', '.join(PLATEAU_KEYS)}")
    try:
        lrcore.Plateau(1, 1.0, mode="min", semantics="torch", **plateau)
    except (TypeError, ValueError) as e:
        fail(f"[plateau] {e}")
    return plateau


def _schedules(raw: dict, peaks: dict, top: dict, fail) -> tuple[dict, dict]:
    """The ``[schedules]`` and ``[schedule_free]`` tables (the latter defaulted where schedule-free optimizers
    run), each schedule parsed and evaluated at every peak over the run's steps."""
    framework = top["framework"]
    schedules = raw.get("schedules")
    if not isinstance(schedules, dict) or not schedules:
        fail("[schedules] must be a table with at least one schedule")
    sf_opts = [o for o in peaks if o in SCHEDULE_FREE_OPTIMIZERS]
    sf = raw.get("schedule_free")
    if sf is not None:
        if not isinstance(sf, dict) or not sf:
            fail("[schedule_free] must be a table with at least one warmup-only schedule")
        if not sf_opts:
            fail(f"[schedule_free] is given but [peak_lr] names no schedule-free optimizer "
                 f"({', '.join(SCHEDULE_FREE_OPTIMIZERS)})")
    sf = dict(sf or (DEFAULT_SCHEDULE_FREE if sf_opts else {}))
    if sf_opts and framework != "torch":
        fail(f"[peak_lr] {sf_opts}: the schedule-free optimizers run in the PyTorch trainers only (framework = \"torch\")")
    clash = sorted(set(sf) & set(schedules))
    if clash:
        fail(f"[schedule_free] names {clash} are also in [schedules]: give the schedule-free schedules their own "
             "names (results are looked up by name)")
    check_peaks = sorted({float(v) for v in peaks.values() if v != "find"} | {1.0})
    for table, sname, text in [("schedules", n, t) for n, t in schedules.items()] + \
            [("schedule_free", n, t) for n, t in sf.items()]:
        _schedule(table, sname, text, framework, top["epochs"], top["batch_size"], check_peaks, fail)
    return schedules, sf


def _schedule(table: str, sname: str, text, framework: str, epochs: int, batch_size: int, check_peaks, fail):
    """One schedule's text: "plateau" (not for schedule-free), ``keras-native:`` (Keras matrices only), else
    lrcore text whose learning rates are finite and >= 0 at every step, for every peak."""
    if not isinstance(text, str) or not text.strip():
        fail(f"[{table}] {sname!r} must be lrcore text or \"plateau\", got {text!r}")
    if not sname.strip():
        fail(f"[{table}] a schedule name must not be empty")
    if text.strip().lower() == "plateau":
        if table == "schedule_free":
            fail(f"[schedule_free] {sname!r}: plateau is a decay; schedule-free optimizers take a warmup-only "
                 "schedule (e.g. Warmup(Constant(lr=peak), steps=total // 20))")
        return
    if text.strip().startswith(NATIVE_PREFIX):
        if framework != "keras":
            fail(f"[schedules] {sname!r}: {NATIVE_PREFIX} (a real Keras schedule) needs framework = \"keras\"")
        if not strip_native(text).startswith(("keras.", "Constant(")):
            fail(f"[schedules] {sname!r}: after {NATIVE_PREFIX} give a keras.X(...) schedule (or Constant(...): "
                 f"Keras's fixed rate, a plain float), got {text!r}")
    spe = steps_per_epoch(N_TRAIN, batch_size)
    total = epochs * spe
    for peak in check_peaks:
        try:
            s = lrcore.parse(strip_native(text), peak=peak, total=total, steps_per_epoch=spe, epochs=epochs)
        except (TypeError, ValueError) as e:
            fail(f"[{table}] {sname!r}: {e}")
        values = lrcore.evaluate(s, total)
        bad_at = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if len(bad_at):
            fail(f"[{table}] {sname!r} gives lr {values[bad_at[0]]!r} at step {bad_at[0]} "
                 f"(peak={peak}, total={total}): learning rates must be finite and >= 0")


def _roles(raw: dict, schedules: dict, fail) -> dict:
    """``baseline`` and ``contender``: schedules of the matrix; default "constant" / "warmup_cosine" when present."""
    out = {}
    for key in ("baseline", "contender"):
        v = raw.get(key)
        if v is not None and v not in schedules:
            fail(f"{key} = {v!r} is not a schedule of the matrix ({', '.join(schedules)})")
        out[key] = v
    if out["baseline"] is None and "constant" in schedules:
        out["baseline"] = "constant"
    if out["contender"] is None and "warmup_cosine" in schedules:
        out["contender"] = "warmup_cosine"
    return out


def _tuning(table, seeds: tuple[int, ...], early_stopping: int, fail) -> Tuning | None:
    """The ``[tuning]`` table validated (None when absent); see :class:`Tuning`."""
    if table is None:
        return None
    if not isinstance(table, dict):
        fail(f"[tuning] must be a table, got {table!r}")
    bad = sorted(set(table) - set(TUNING_KEYS))
    if bad:
        fail(f"[tuning] unknown key(s) {bad}; allowed: {', '.join(TUNING_KEYS)}")
    factors = table.get("lr_factors")
    if not (isinstance(factors, list) and len(factors) >= 2 and all(_num(f) and f > 0 for f in factors)):
        fail(f"[tuning] lr_factors must be a list of >= 2 positive numbers (multipliers of each optimizer's "
             f"peak_lr), got {factors!r}")
    if len(set(factors)) != len(factors) or list(factors) != sorted(factors):
        fail(f"[tuning] lr_factors must be distinct and in increasing order, got {factors}")
    try:
        tseeds = tuple(parse_seeds(table.get("tuning_seeds")))
    except ValueError as e:
        fail(f"[tuning] tuning_{e}")
    if not isinstance(table.get("tuning_seeds"), list):
        fail(f"[tuning] tuning_seeds must be a list of seeds (disjoint from seeds), got {table.get('tuning_seeds')!r}")
    shared = sorted(set(tseeds) & set(seeds))
    if shared:
        fail(f"[tuning] tuning_seeds {shared} are also evaluation seeds: a configuration must be judged on seeds "
             f"its learning rate was not chosen on (seeds = {list(seeds)}, tuning_seeds = {list(tseeds)})")
    metric = table.get("metric", "best_val_acc" if early_stopping else "final_val_acc")
    if metric not in TUNING_METRICS:
        hint = " (selection never reads a test metric)" if isinstance(metric, str) and "test" in metric else ""
        fail(f"[tuning] metric must be one of {', '.join(TUNING_METRICS)}, got {metric!r}{hint}")
    extend = table.get("extend", 2)
    if not _int(extend) or extend < 0:
        fail(f"[tuning] extend must be an integer >= 0 (extra factors tried outward when the best is on the "
             f"grid's edge), got {extend!r}")
    if len(tseeds) < MIN_TUNING_SEEDS:
        fail(f"[tuning] tuning_seeds needs at least {MIN_TUNING_SEEDS} seeds: a learning rate is selected only after "
             f"{MIN_TUNING_SEEDS} tuning seeds trained it without a collapse, got {list(tseeds)} (set screen_seeds = 1 "
             "to train the whole grid on the first seed only and the leading factors on the others)")
    screen = table.get("screen_seeds", 1)
    if not _int(screen) or not 1 <= screen <= len(tseeds):
        fail(f"[tuning] screen_seeds must be an integer from 1 to the number of tuning seeds ({len(tseeds)}): how "
             f"many of them train every grid factor, got {screen!r}")
    neighbours = table.get("confirm_neighbours", True)
    if not isinstance(neighbours, bool):
        fail(f"[tuning] confirm_neighbours must be true or false (whether the neighbours of the leading factor are "
             f"trained on every tuning seed too), got {neighbours!r}")
    return Tuning(lr_factors=tuple(float(f) for f in factors), seeds=tseeds, metric=metric, extend=extend,
                  screen_seeds=screen, confirm_neighbours=neighbours)
