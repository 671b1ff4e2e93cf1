"""Machine-independent ratios (``track_``): two timings taken in the same process, interleaved, with numba
and torch on one thread (two for the training ratio, as the gate measures it); the value is a time
fraction (the fast path's time over the reference's), so that smaller is better as asv assumes.
The CI gate (``bench.speed.regression``) times the same code paths against a reference commit instead.
"""
from ._harness import MISSING, harness, skip

# Imported once in asv's forkserver (not in every benchmark process): the package __init__ has already
# pointed sys.path at the commit under test when LRBENCH_ASV_PROJECT is set.
import lrcore  # noqa: F401,E402
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch = None


class Ratios:
    timeout = 300
    unit = "time fraction"

    def setup(self):
        try:
            import lrcore  # noqa: F401
            self.R = harness("probes")
        except MISSING as exc:
            skip(f"not at this commit: {exc}")

    def _fraction(self, fn, *args, **kwargs):
        try:
            return 1.0 / fn(*args, **kwargs)["value"]
        except MISSING:  # not at this commit (e.g. no bench.train.model yet): NaN, which asv shows as n/a
            return float("nan")

    def track_numba_over_lrcore_numpy(self):
        """lrcore numba / lrcore numpy backend, warmup+cosine 1e6 steps (falls to ~1 if the kernel is bypassed)."""
        return self._fraction(self.R.measure_numba_vs_lrcore_numpy)

    def track_numba_over_numpy_closed_form(self):
        """lrcore numba / a hand-written numpy closed form of warmup+cosine, 1e6 steps."""
        return self._fraction(self.R.measure_numba_vs_closed_form)

    def track_many_numba_over_numpy(self):
        """evaluate_many of 200 mixed schedules x 5000 steps: numba / numpy backend."""
        return self._fraction(self.R.measure_many_numba_vs_numpy)

    def track_batched_over_sequential(self):
        """Training steps of 36 MLPs on 2 threads (bench.speed.probes.TrainingPair): the batched trainer's
        step / the sequential trainer's (torch.optim + LrcoreScheduler, one model at a time)."""
        return self._fraction(self.R.measure_batched_vs_sequential)

