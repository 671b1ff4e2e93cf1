"""lrcore evaluation speed per backend, schedule family and step count."""
import numpy as np

import lrcore

FAMILIES = {
    "warmup_cosine": lambda n: lrcore.Warmup(lrcore.Cosine(0.1, n - n // 100), steps=n // 100),
    "onecycle": lambda n: lrcore.OneCycle(0.1, n),
    "restarts": lambda n: lrcore.CosineRestarts(0.1, max(1, n // 20), t_mul=2.0),
    "exponential": lambda n: lrcore.Exponential(0.1, 0.5, max(1, n // 10)),
}


class Evaluate:
    params = (["numpy", "numba"], list(FAMILIES), [10_000, 1_000_000])
    param_names = ["backend", "family", "steps"]

    def setup(self, backend, family, steps):
        self.schedule = FAMILIES[family](steps)
        self.out = np.empty(steps)
        lrcore.evaluate(self.schedule, steps, backend=backend, out=self.out)  # compile outside timing

    def time_evaluate(self, backend, family, steps):
        lrcore.evaluate(self.schedule, steps, backend=backend, out=self.out)


class EvaluateMany:
    params = ([10, 1000],)
    param_names = ["schedules"]

    def setup(self, m):
        from bench.speed import mixed_schedules
        self.schedules = mixed_schedules(m, 100_000)
        self.out = np.empty((m, 100_000))
        lrcore.evaluate_many(self.schedules, 100_000, backend="numba", out=self.out)

    def time_evaluate_many(self, m):
        lrcore.evaluate_many(self.schedules, 100_000, backend="numba", out=self.out)
