"""Optimizer families and the report's question "Do you need a schedule?".

A schedule-free optimizer (Schedule-Free SGD / AdamW, Defazio et al. 2024) runs with a warmup-only schedule
and is compared with the best scheduled configuration (optimizer x schedule) of its family. The report owns
this table (it reads result files only, never the trainers):

============  ==========================  ======================
family        scheduled optimizers        schedule-free twin
============  ==========================  ======================
SGD-like      sgd, momentum, nesterov     sgd_schedulefree
Adam-like     adam, adamw                 adamw_schedulefree
============  ==========================  ======================

``rmsprop`` has no schedule-free twin. Schedule-free rows of a run are found by their optimizer name, never by
their schedule's name (a matrix may call the warmup-only schedule anything). The comparison itself:
:func:`bench.report.stats.schedule_free`; rules: docs/BENCH.md, "bench/report/families.py".
"""
from __future__ import annotations

import dataclasses

__all__ = ["Family", "FAMILIES", "NO_TWIN", "is_schedule_free", "family_of", "order_optimizers", "SELECTION_NOTE",
           "TUNED_SELECTION_NOTE"]


@dataclasses.dataclass(frozen=True)
class Family:
    """A family of optimizers: its scheduled ``members`` and its schedule-free ``twin`` (``twin_label`` in words)."""
    name: str
    members: tuple[str, ...]
    twin: str
    twin_label: str


FAMILIES: tuple[Family, ...] = (
    Family("SGD-like", ("sgd", "momentum", "nesterov"), "sgd_schedulefree", "schedule-free SGD"),
    Family("Adam-like", ("adam", "adamw"), "adamw_schedulefree", "schedule-free AdamW"),
)
#: Scheduled optimizers without a schedule-free twin.
NO_TWIN: tuple[str, ...] = ("rmsprop",)

SELECTION_NOTE = ("The best scheduled configuration is picked after looking at these same test accuracies (the "
                  "best of the family's scheduled configurations on these seeds), so selection bias favours it: a "
                  "schedule-free twin that matches it matches a choice made with hindsight.")
#: The same in a tuned run, where the choice is made on the tuning seeds (bench.report.stats.schedule_free).
TUNED_SELECTION_NOTE = ("Each family's rival is picked on the tuning seeds (the highest "
                        "tuning metric at each configuration's selected learning rate), before the evaluation seeds "
                        "are looked at: no hindsight, so it is not favoured by selection bias on these test "
                        "accuracies, and it need not be the family's best on them (its rank among the family's "
                        "configurations on the evaluation seeds is given; the hindsight line compares with the best).")


def is_schedule_free(optimizer: str) -> bool:
    """Whether ``optimizer`` is a schedule-free optimizer (a family's twin, or any name ending ``_schedulefree``)."""
    return any(str(optimizer) == f.twin for f in FAMILIES) or str(optimizer).endswith("_schedulefree")


def family_of(optimizer: str) -> Family | None:
    """The family of a scheduled optimizer or of a twin; None for one outside every family (rmsprop)."""
    return next((f for f in FAMILIES if optimizer == f.twin or optimizer in f.members), None)


def order_optimizers(names) -> list[str]:
    """``names`` with each family's optimizers next to each other (the heatmap spans a twin's row over them):
    groups in the order of their first member in ``names``, run order kept within a group; an optimizer outside
    every family is a group of its own."""
    names = list(names)

    def group(n):
        f = family_of(n)
        return f.name if f is not None else n
    first = {}
    for i, n in enumerate(names):
        first.setdefault(group(n), i)
    return sorted(names, key=lambda n: (first[group(n)], names.index(n)))
