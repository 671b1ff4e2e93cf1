"""Test error rate (1 - accuracy; asv treats smaller as better) of the short deterministic training of
``bench/speed/shortrun.py``: 300 steps of the batched trainer on 6,400 real Fashion-MNIST images, four
configurations (warmup+cosine SGD momentum, OneCycle nesterov, warmup+cosine Adam, constant SGD), scored on
the 10,000 test images. One torch thread and deterministic algorithms: bit-reproducible on one machine.

Needs Fashion-MNIST (Debian package dataset-fashion-mnist, or FASHION_MNIST_DIR); skipped without it.
"""
from ._harness import MISSING, harness, skip

# Imported once in asv's forkserver (not in every benchmark process): the package __init__ has already
# pointed sys.path at the commit under test when LRBENCH_ASV_PROJECT is set.
import lrcore  # noqa: F401,E402
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch = None

NAMES = ["warmup_cosine-momentum", "onecycle-nesterov", "warmup_cosine-adam", "constant-sgd", "mean"]


def _error_rates(**kw) -> dict:
    """The short training's test error rate per config and their mean, or {"skip": why}."""
    try:
        r = harness("shortrun").short_training(**kw)
    except MISSING as exc:
        return {"skip": f"not at this commit: {exc}"}
    except (FileNotFoundError, ValueError) as exc:
        return {"skip": f"Fashion-MNIST unavailable: {exc}"}
    return {**r["error_rate"], "mean": r["mean_error_rate"]}


class ShortTraining:
    params = (NAMES,)
    param_names = ["config"]
    timeout = 600

    def setup_cache(self):
        # run once per commit for every config; a plain dict of floats (asv stores it between processes)
        return _error_rates()

    def setup(self, cache, config):
        if "skip" in cache:
            skip(cache["skip"])

    def track_test_error_rate(self, cache, config):
        return cache[config]

    track_test_error_rate.unit = "error rate"


class ShortTrainingBF16:
    """The same short training in bf16 (bfloat16 matmuls, float32 master weights): its own series, never pooled
    with fp32's."""
    params = (NAMES,)
    param_names = ["config"]
    timeout = 600

    def setup_cache(self):
        return _error_rates(precision="bf16")  # its own setup_cache: asv keys the cache by the function

    def setup(self, cache, config):
        if "skip" in cache:
            skip(cache["skip"])

    def track_test_error_rate(self, cache, config):
        return cache[config]

    track_test_error_rate.unit = "error rate"
