"""Drive any PyTorch optimizer from an lrcore schedule: ``LrcoreScheduler(optimizer, schedule)``.

>>> import torch, lrcore
>>> from lrcore.integrations.torch import LrcoreScheduler
>>> p = torch.nn.Parameter(torch.zeros(1))
>>> opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
>>> sched = LrcoreScheduler(opt, lrcore.Cosine(lr=0.1, decay_steps=100))
>>> for _ in range(50):
...     opt.step(); sched.step()
>>> round(opt.param_groups[0]["lr"], 6)
0.05

Rules
-----
* Step convention (PyTorch's): call ``scheduler.step()`` once after every ``optimizer.step()``. The
  (t+1)-th optimizer step uses ``schedule(t)``; ``last_epoch`` is t.
* Per parameter group scaling: group i gets ``schedule(t) * base_lrs[i] / reference_lr``, where
  ``base_lrs[i]`` is the group's ``initial_lr`` (its lr when the scheduler was built, as PyTorch's
  schedulers record it) and ``reference_lr`` defaults to group 0's. So group 0 follows the schedule
  exactly (bit for bit, whatever lr the optimizer was built with) and the other groups keep their
  ratio to group 0 (``SGD([{"params": body}, {"params": head, "lr": 0.01}], lr=0.1)`` gives the head a
  tenth of the schedule). Pass ``reference_lr`` to scale every group by its own ``initial_lr``:
  ``reference_lr=schedule_peak`` makes a group with ``lr=peak`` follow the schedule exactly.
* Momentum: when ``schedule.momentum`` is not None (OneCycle, Cyclic with ``cycle_momentum=True``) its
  value at t is written, unscaled and the same for every group, to ``group["momentum"]`` (SGD, RMSprop)
  or ``group["betas"][0]`` (Adam, AdamW, NAdam, RAdam, ...), as ``OneCycleLR`` / ``CyclicLR`` do. An
  optimizer with neither raises ``ValueError`` on construction.
* No Python per step beyond a table lookup: values come from ``lrcore.evaluate`` in tables of
  ``chunk`` steps, aligned to multiples of ``chunk`` so that a resumed run reads the very same tables
  (and the very same bits) as an uninterrupted one.
* Resume: ``state_dict()`` holds plain Python values only (it loads with ``torch.load``'s default
  ``weights_only=True``): the step, the base lrs, the reference lr and the schedule's text form.
  ``load_state_dict`` checks the schedule, restores the step and writes that step's lr (and momentum)
  back into the optimizer, so the result is exact in either order of ``optimizer.load_state_dict`` and
  the scheduler's construction (PyTorch's own ``LinearLR``, ``ConstantLR``, ``OneCycleLR``,
  ``SequentialLR``, ... are only correct when the scheduler is built *before* the optimizer's state is
  loaded: building it afterwards re-runs their first step on the loaded lr).
* ``last_epoch`` as in PyTorch: ``-1`` starts at step 0; a value ``k >= 0`` needs ``initial_lr`` in the
  groups and, as in PyTorch, takes one step on construction (the scheduler is then at step ``k + 1``).
  Prefer ``state_dict``/``load_state_dict``.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..evaluate import BACKENDS, evaluate
from ..schedules import Schedule

__all__ = ["LrcoreScheduler"]

DEFAULT_CHUNK = 4096


def _set(group: dict, key: str, value: float) -> None:
    if isinstance(group[key], torch.Tensor):
        group[key].fill_(value)
    else:
        group[key] = value


class LrcoreScheduler(LRScheduler):
    """``LRScheduler`` following an lrcore ``schedule`` (a Schedule or its text form); see the module
    docstring for the per-group and momentum rules."""

    def __init__(self, optimizer: Optimizer, schedule, last_epoch: int = -1, *, reference_lr: float | None = None,
                 chunk: int = DEFAULT_CHUNK, backend: str = "auto") -> None:
        name = "LrcoreScheduler"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(schedule, str):
            from ..textform import parse
            schedule = parse(schedule)
        if not isinstance(schedule, Schedule):
            raise TypeError(f"{name}: schedule must be an lrcore schedule or its text form, got {schedule!r}")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) or last_epoch < -1:
            raise ValueError(f"{name}: last_epoch must be an integer >= -1, got {last_epoch!r}")
        if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
            raise ValueError(f"{name}: chunk must be a positive integer, got {chunk!r}")
        if backend not in BACKENDS:
            raise ValueError(f"{name}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if reference_lr is not None:
            if isinstance(reference_lr, bool) or not isinstance(reference_lr, numbers.Real) \
                    or not math.isfinite(reference_lr) or reference_lr <= 0:
                raise ValueError(f"{name}: reference_lr must be a finite number > 0, got {reference_lr!r}")
            reference_lr = float(reference_lr)
        if last_epoch >= 0:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise ValueError(f"{name}: last_epoch={last_epoch} resumes a run, but param_groups[{i}] has no "
                                     "'initial_lr'; load the optimizer's state first, or better, build with "
                                     "last_epoch=-1 and call load_state_dict(saved_scheduler_state)")
        self.momentum_key = None
        if schedule.momentum is not None:
            for key in ("momentum", "betas"):
                if all(key in g for g in optimizer.param_groups):
                    self.momentum_key = key
                    break
            else:
                raise ValueError(
                    f"{name}: schedule {type(schedule).__name__} cycles momentum, but {type(optimizer).__name__} has "
                    "no 'momentum' or 'betas' in its param_groups; use an optimizer with momentum (SGD(momentum=...), "
                    f"RMSprop) or betas (Adam, AdamW, ...), or build the schedule with cycle_momentum=False")
        self.schedule = schedule
        self.reference_lr = reference_lr
        self.chunk = int(chunk)
        self.backend = backend
        self._table_start = -1
        self._lr_table = self._mom_table = None
        super().__init__(optimizer, last_epoch)

    # --- tables -------------------------------------------------------------------------------------
    def _values(self, t: int) -> tuple[float, float | None]:
        """(lr, momentum or None) of the schedule at step t, from the table that holds t."""
        i = t - self._table_start
        if self._lr_table is None or not 0 <= i < self.chunk:
            start = (t // self.chunk) * self.chunk
            steps = range(start, start + self.chunk)
            self._lr_table = evaluate(self.schedule, steps, backend=self.backend).tolist()
            mom = self.schedule.momentum
            self._mom_table = None if mom is None else evaluate(mom, steps, backend=self.backend).tolist()
            self._table_start, i = start, t - start
        return self._lr_table[i], (None if self._mom_table is None else self._mom_table[i])

    def _scales(self) -> list[float]:
        base = [float(b) for b in self.base_lrs]
        ref = self.reference_lr if self.reference_lr is not None else base[0]
        if not (math.isfinite(ref) and ref > 0):
            raise ValueError("LrcoreScheduler: param_groups[0] has initial lr "
                             f"{ref!r}; scaling is relative to it, so pass reference_lr > 0")
        return [b / ref for b in base]

    def get_lr(self) -> list[float]:
        """Learning rates of every group at step ``last_epoch`` (also writes the momentum)."""
        t = max(int(self.last_epoch), 0)
        lr, mom = self._values(t)
        if mom is not None:
            self._write_momentum(mom)
        return [lr * s for s in self._scales()]

    _get_closed_form_lr = get_lr  # step(epoch) (deprecated in PyTorch) jumps to any step

    def _write_momentum(self, m: float) -> None:
        for g in self.optimizer.param_groups:
            if self.momentum_key == "momentum":
                _set(g, "momentum", m)
            else:
                b0, b1 = g["betas"]
                if isinstance(b0, torch.Tensor):
                    b0.fill_(m)
                else:
                    g["betas"] = (m, b1)

    # --- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain values only: loads with ``torch.load(..., weights_only=True)``."""
        return {"schedule": str(self.schedule), "last_epoch": int(self.last_epoch),
                "_step_count": int(self._step_count),
                "base_lrs": [float(b) for b in self.base_lrs], "reference_lr": self.reference_lr,
                "_last_lr": [float(x) for x in self._last_lr]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the step and write its lr (and momentum) into the optimizer."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"LrcoreScheduler: state_dict must be a dict, got {type(state_dict).__name__}")
        missing = [k for k in ("schedule", "last_epoch", "base_lrs") if k not in state_dict]
        if missing:
            raise ValueError(f"LrcoreScheduler: state_dict lacks {', '.join(missing)}; "
                             "it was not made by LrcoreScheduler.state_dict()")
        if state_dict["schedule"] != str(self.schedule):
            raise ValueError(f"LrcoreScheduler: state_dict was saved for schedule {state_dict['schedule']}, "
                             f"but this scheduler follows {self.schedule}; build it with the saved schedule "
                             "(lrcore.parse(state_dict['schedule']))")
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"LrcoreScheduler: state_dict has {len(state_dict['base_lrs'])} base_lrs, the optimizer "
                             f"has {len(self.optimizer.param_groups)} param_groups")
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("_step_count", self.last_epoch + 1))
        self.base_lrs = list(state_dict["base_lrs"])
        self.reference_lr = state_dict.get("reference_lr")
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            _set(g, "lr", lr)
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
