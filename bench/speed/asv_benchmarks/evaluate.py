"""lrcore evaluation speed: backend x schedule family x step count, and evaluate_many."""
import numpy as np

from ._harness import MISSING, pin_threads, skip

# Imported once in asv's forkserver (not in every benchmark process): the package __init__ has already
# pointed sys.path at the commit under test when LRBENCH_ASV_PROJECT is set.
import lrcore  # noqa: F401,E402
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch = None

FAMILIES = ["warmup_cosine", "onecycle", "restarts", "exponential"]


def make(family, n):
    import lrcore
    if family == "warmup_cosine":
        return lrcore.Warmup(lrcore.Cosine(0.1, n - n // 100), steps=n // 100)
    if family == "onecycle":
        return lrcore.OneCycle(0.1, n)
    if family == "restarts":
        return lrcore.CosineRestarts(0.1, max(1, n // 20), t_mul=2.0)
    return lrcore.Exponential(0.1, 0.5, max(1, n // 10))


def _cuda_or_skip(backend):
    if backend == "cuda":
        try:
            from numba import cuda
            if not cuda.is_available():
                skip("no CUDA GPU")
        except ImportError:
            skip("numba-cuda not installed")


class Evaluate:
    """``lrcore.evaluate(schedule, steps, backend=..., out=buffer)`` (compilation excluded)."""
    params = (["numpy", "numba", "cuda"], FAMILIES, [10_000, 1_000_000])
    param_names = ["backend", "family", "steps"]

    def setup(self, backend, family, steps):
        _cuda_or_skip(backend)
        pin_threads()
        import lrcore
        try:
            self.schedule = make(family, steps)
            if backend == "cuda":
                from numba import cuda
                self.out = cuda.device_array(steps)
            else:
                self.out = np.empty(steps)
            lrcore.evaluate(self.schedule, steps, backend=backend, out=self.out)  # compile outside timing
        except MISSING as exc:
            skip(f"not at this commit: {exc}")
        self.evaluate = lrcore.evaluate

    def time_evaluate(self, backend, family, steps):
        self.evaluate(self.schedule, steps, backend=backend, out=self.out)
        if backend == "cuda":
            from numba import cuda
            cuda.synchronize()


class EvaluateMany:
    """``lrcore.evaluate_many`` of m mixed schedules (every family, random parameters) x 100,000 steps."""
    params = (["numpy", "numba"], [10, 1000])
    param_names = ["backend", "schedules"]
    timeout = 180

    def setup(self, backend, m):
        pin_threads()
        import lrcore

        from ._harness import harness
        if backend == "numpy" and m > 100:
            skip("numpy backend at 1000 schedules: minutes per run, not informative")
        try:
            self.schedules = harness("probes").mixed_schedules(m, 100_000)
            self.out = np.empty((m, 100_000))
            lrcore.evaluate_many(self.schedules, 100_000, backend=backend, out=self.out)
        except MISSING as exc:
            skip(f"not at this commit: {exc}")
        self.evaluate_many = lrcore.evaluate_many

    def time_evaluate_many(self, backend, m):
        self.evaluate_many(self.schedules, 100_000, backend=backend, out=self.out)


class FamilyShare:
    """Share of the write limit (a Numba parallel loop writing ``i * c`` into the same float64 buffer)
    that ``lrcore.evaluate(s, n, backend="numba", out=buffer)`` reaches per schedule family, and
    ``evaluate_many`` of mixed schedules: measured side by side, median of rounds (``bench.speed.families``)."""
    params = (["warmup+cosine", "inverse-time", "cosine restarts", "cyclic exp_range", "exponential",
               "Sequential(linear, cosine)", "step", "multistep", "one-cycle (3 phase)", "polynomial (power 1.7)",
               "inverse-sqrt", "cosine periodic", "evaluate_many"],)
    param_names = ["family"]
    unit = "share of the write limit"
    timeout = 300

    def setup(self, family):
        pin_threads()
        from ._harness import harness
        try:
            self.measure = harness("families").measure  # today's measurement code, the commit's lrcore
        except MISSING as exc:
            skip(f"not available: {exc}")

    def track_share(self, family):
        names = ["evaluate_many"] if family == "evaluate_many" else [family]
        rows = self.measure(n=4_000_000, many=200, many_steps=20_000, rounds=5, names=names, log=lambda s: None)
        return rows[0]["share"]
