"""asv benchmarks (`asv run`), grouped by what they measure; parameters declared with asv ``params``.

* evaluate.py      lrcore evaluate / evaluate_many: backend x schedule family x step count
* integrations.py  lrcore's torch LRScheduler per step against PyTorch's own schedulers
* training.py      one training step: the batched trainer's vs the sequential trainer's (torch.optim + LrcoreScheduler)
* memory.py        peak memory (RSS) of training one matrix chunk
* ratios.py        track_: same-process time ratios that do not depend on the machine
* accuracy.py      track_: test error rate (1 - accuracy) of the short deterministic training

The benchmark code is always the working tree's; the project code is the commit under test. Benchmarks
that need a module or name an older commit lacks are skipped there (``NotImplementedError`` in setup).
See docs/TRACKING.md.
"""

import os as _os
import sys as _sys

# Numba caches in a folder of their own (.asv/numba-cache, git-ignored): _harness.py loads this tree's
# bench/speed modules as the package _lrbench_harness, and a cached kernel of theirs written beside the source
# would be loaded by the plain import later and fail there ("No module named '_lrbench_harness'").
_os.environ.setdefault("NUMBA_CACHE_DIR", _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "..", "..",
                                                        "..", ".asv", "numba-cache"))
if "numba" in _sys.modules:  # numba read its configuration already
    _sys.modules["numba"].config.CACHE_DIR = _os.environ["NUMBA_CACHE_DIR"]

# LRBENCH_ASV_PROJECT=<checkout>: import the project (lrcore, bench) from that checkout of an older commit
# instead of the installed one (asv's "existing" environment runs python in isolated mode, so PYTHONPATH
# is ignored). bench/speed/asv_benchmarks/history.py sets it for each commit it benchmarks.
# The installed project's editable-install finder is dropped too: it would serve modules the commit lacks
# (bench.train.batched, ...) from the working tree.
if _os.environ.get("LRBENCH_ASV_PROJECT"):
    _sys.path.insert(0, _os.path.abspath(_os.environ["LRBENCH_ASV_PROJECT"]))
    _sys.meta_path[:] = [f for f in _sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    _sys.path_hooks[:] = [h for h in _sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
    _sys.path_importer_cache.clear()
