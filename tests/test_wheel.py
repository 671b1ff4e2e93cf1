"""lrbench as an installed package: the wheel built from this checkout, installed outside it, runs the quick
matrix from an empty folder and writes ./results there (never under the package), with the built-in
matrices read from the wheel; a command whose extra is missing says which extra to install.

The wheel is installed with ``--no-deps`` into a scratch folder; its dependencies come from the project's
venv. Python runs with ``-S`` so that the venv's editable install of this checkout is not on the path: the
code that runs is the wheel's.
"""
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from bench.matrix import load_matrix

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(sysconfig.get_paths()["purelib"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True)
    [whl] = out.glob("lrbench-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    return target


def lrbench(args, cwd: Path, path: list[Path], timeout=900) -> subprocess.CompletedProcess:
    """``lrbench ARGS`` through the installed console script, with only ``path`` importable (plus the stdlib)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LRBENCH_RESULTS")}
    env["PYTHONPATH"] = os.pathsep.join(map(str, path))
    script = path[0] / "bin" / "lrbench"
    return subprocess.run([sys.executable, "-S", str(script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_wheel_holds_the_package_data_and_not_the_asv_suite(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for m in ("quick", "default", "full", "keras-classic"):
        assert f"bench/matrix/builtin/{m}.toml" in names
    assert not [n for n in names if "asv_benchmarks" in n]
    assert not [n for n in names if n.startswith(("tests/", "results/"))]


def test_installed_wheel_runs_the_quick_matrix_from_an_empty_folder(installed, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    before = sorted(p.relative_to(installed) for p in installed.rglob("*") if "__pycache__" not in p.parts)
    r = lrbench(["run", "--matrix", "quick", "--epochs", "1", "--seeds", "1", "--no-progress"], work,
                [installed, SITE])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    [run] = (work / "results" / "runs").iterdir()
    summary = pd.read_csv(run / "summary.csv")
    quick = load_matrix("quick")  # the checkout's: every (schedule, optimizer) pair, schedule-free ones included
    pairs = {(c.name, c.optimizer) for c in quick.configs()}
    # quick is tuned: its grid on the tuning seed (stage tune, tune+1 ...), then every pair once on seed 0 (eval)
    evaluation = summary[summary["stage"] == "eval"]
    tuning = summary[summary["stage"].str.startswith("tune")]
    assert len(pairs) == 38 and len(evaluation) == len(pairs) and len(tuning) >= 3 * len(pairs)
    assert len(tuning) + len(evaluation) == len(summary)
    assert set(zip(evaluation["name"], evaluation["optimizer"])) == pairs == set(zip(tuning["name"], tuning["optimizer"]))
    assert (evaluation["seed"] == 0).all() and not set(tuning["seed"]) & {0}
    assert evaluation["test_acc"].between(0.5, 1.0).all()
    for name in ("meta.json", "epochs.parquet", "report.html", "report.md"):
        assert (run / name).is_file(), name
    assert "<img" in (run / "report.html").read_text()
    after = sorted(p.relative_to(installed) for p in installed.rglob("*") if "__pycache__" not in p.parts)
    assert after == before, "the run wrote inside the installed package"
    assert str(work / "results") in r.stdout.replace("\n", "") or run.name in r.stdout


def test_installed_wheel_names_the_built_in_matrices(installed, tmp_path):
    r = lrbench(["run", "--matrix", "nosuch", "--epochs", "1"], tmp_path, [installed, SITE])
    assert r.returncode != 0
    assert "no such built-in matrix" in r.stderr and "quick" in r.stderr and "default" in r.stderr
    assert "Traceback" not in r.stderr


def test_help_shows_a_results_default_outside_the_package(installed, tmp_path):
    r = lrbench(["run", "--help"], tmp_path, [installed, SITE])
    assert r.returncode == 0 and "./results" in r.stdout and str(installed) not in r.stdout


@pytest.fixture(scope="module")
def without_torch(tmp_path_factory) -> Path:
    """A folder of links to every package of the venv but PyTorch: an install of lrbench[bench] only."""
    site = tmp_path_factory.mktemp("site-without-torch")
    for entry in SITE.iterdir():
        if entry.name.split("-")[0].split(".")[0] in ("torch", "functorch", "torchgen", "lrbench", "__editable__"):
            continue
        (site / entry.name).symlink_to(entry)
    return site


def test_a_missing_extra_is_named(installed, without_torch, tmp_path):
    r = lrbench(["run", "--matrix", "quick", "--epochs", "1"], tmp_path, [installed, without_torch])
    assert r.returncode == 1, r.stderr
    assert "lrbench run needs torch" in r.stderr and "pip install 'lrbench[torch]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "results").exists()
    # what needs no torch still works without it
    out = tmp_path / "s.png"
    r = lrbench(["plot", "Cosine(lr=0.1, decay_steps=100)", "--steps", "100", "-o", str(out)], tmp_path,
                [installed, without_torch])
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.stat().st_size > 1000
