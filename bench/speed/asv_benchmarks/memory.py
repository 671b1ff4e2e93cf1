"""Peak memory of training one matrix chunk: ``bench.train.batched.train_chunk`` of M configurations (mixed
optimizers and schedules, the matrix's 784-256-128-10 model) for one epoch of 20 batches of 128.

asv's ``peakmem_`` is the process's peak resident set size, so it includes the interpreter, torch and the
(synthetic: 2,560 + 2 x 500 examples) data: compare across commits and chunk sizes, not as an absolute.
"""
from ._harness import MISSING, pin_threads, skip

# Imported once in asv's forkserver (not in every benchmark process): the package __init__ has already
# pointed sys.path at the commit under test when LRBENCH_ASV_PROJECT is set.
import lrcore  # noqa: F401,E402
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch = None

SCHEDULES = ["Constant(lr=peak)", "Warmup(Cosine(lr=peak, decay_steps=total - total // 10), steps=total // 10)",
             "OneCycle(max_lr=peak, total_steps=total)", "plateau"]
OPTIMIZERS = [("sgd", 0.1), ("momentum", 0.05), ("adam", 1e-3), ("adamw", 1e-3), ("rmsprop", 1e-3),
              ("nesterov", 0.05)]


def synthetic_data(n_train=2560, n_eval=500, seed=0):
    import types

    import torch
    g = torch.Generator().manual_seed(seed)

    def part(n):
        return torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)
    (xt, yt), (xv, yv), (xs, ys) = part(n_train), part(n_eval), part(n_eval)
    return types.SimpleNamespace(x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)


class ChunkMemory:
    params = ([1, 16],)
    param_names = ["models"]
    timeout = 300

    def setup(self, models):
        try:
            import torch  # noqa: F401

            try:
                from bench.train.batched import TrainConfig, train_chunk
            except ImportError:  # a commit before the bench/train/ layout
                from bench.trainer import TrainConfig, train_chunk
        except MISSING as exc:
            skip(f"not at this commit: {exc}")
        pin_threads()
        self.train_chunk = train_chunk
        self.configs = [TrainConfig(name=f"c{m}", optimizer=OPTIMIZERS[m % 6][0], peak_lr=OPTIMIZERS[m % 6][1],
                                    schedule=SCHEDULES[m % 4], seed=m // 24) for m in range(models)]
        self.data = synthetic_data()

    def peakmem_train_chunk(self, models):
        try:  # the settings as one TrainSpec where the commit has one, else as keywords (older commits)
            from bench.train.config import TrainSpec
        except ImportError:
            self.train_chunk(self.configs, self.data, epochs=1, batch_size=128)
        else:
            self.train_chunk(self.configs, self.data, TrainSpec(epochs=1, batch_size=128))
