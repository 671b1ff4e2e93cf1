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


#: A folder where ``tuned_report_run`` keeps its run between sessions (unset: a fresh one per session).
TUNED_RUN_ENV = "LRBENCH_TEST_TUNED_RUN_CACHE"


@pytest.fixture(scope="session")
def tuned_report_run(tmp_path_factory):
    """A small real tuned run (tests/data/report_run.py ``make_tuned_run``) with its step_cost.csv, trained once per
    session for the report's tests (test_report_tuned.py, the browser test); copy it before changing it. With
    $LRBENCH_TEST_TUNED_RUN_CACHE set, trained once into that folder and reused while its fixture is unchanged."""
    import hashlib
    import importlib.util
    import json
    from pathlib import Path
    src = Path(__file__).parent / "data" / "report_run.py"
    spec = importlib.util.spec_from_file_location("report_run", src)
    rr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rr)
    cache = os.environ.get(TUNED_RUN_ENV)
    if not cache:
        return rr.make_tuned_run(tmp_path_factory.mktemp("tuned-results"), rr.tuned_data())
    root = Path(cache) / hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    run_dir = root / "runs" / "20261206-000000-tinytuned"
    meta = run_dir / "meta.json"
    if not (meta.is_file() and json.loads(meta.read_text()).get("status") == "complete"
            and (run_dir / "step_cost.csv").is_file()):
        import shutil
        shutil.rmtree(root, ignore_errors=True)
        rr.make_tuned_run(root, rr.tuned_data())
    return run_dir
