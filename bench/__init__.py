"""lrbench's benchmark: train schedule x optimizer x seed matrices on Fashion-MNIST, report, track speed.

``cli`` (every ``lrbench`` command) -> ``speed/`` and ``matrix/`` -> ``train/`` -> ``lrcore``; ``report/``
reads result files and lrcore only. ``results`` (where results go, run lookup, atomic writes) and
``machine`` (provenance) sit below them all. README.md "Where things are" has the map.
"""
