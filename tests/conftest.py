import os

import pytest
from hypothesis import settings

# Bounded example counts keep CI fast and its draws fixed (derandomize: a CI verdict does not depend on
# luck); `HYPOTHESIS_PROFILE=thorough` runs 1,000 random examples per property.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def kernel_family_cache(tmp_path_factory):
    """Where tests/kernel_families.py keeps the float32 reference runs of each PyTorch kernel family: one
    folder per session, inherited by the subprocesses of tests/test_kernel_families.py (kept when set)."""
    from kernel_families import CACHE_ENV
    if not os.environ.get(CACHE_ENV):
        os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("kernel-families"))
    return os.environ[CACHE_ENV]


def pytest_collection_modifyitems(config, items):
    """Benchmarks (tests using the ``benchmark`` fixture) run only with ``--benchmark-only``."""
    if config.getoption("benchmark_only", False):
        return
    skip = pytest.mark.skip(reason="benchmark: run with pytest --benchmark-only")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
