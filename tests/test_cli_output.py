"""What ``lrbench run`` prints at its end, when its output goes to a file or a pipe (CI logs, ``| tee``): the
results table with every optimizer and schedule name in full, never cut to ``nester…``."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

from lrbench_process import lrbench, tiny_matrix

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "results" / "runs" / "default-tuned-cpu"   # a committed tuned run: 12 schedules x 6 optimizers + 2


def test_piped_summary_table_prints_names_in_full():
    code = ("import sys; from pathlib import Path; from rich.console import Console; from bench.cli import _print_run; "
            "_print_run(Path(sys.argv[1]), Console(stderr=True))")
    out = subprocess.run([sys.executable, "-c", code, str(RUN)], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"}).stdout
    assert "…" not in out
    summary = pd.read_csv(RUN / "summary.csv")
    for name in set(summary["name"]) | set(summary["optimizer"]):
        assert f" {name} " in out, name


def test_piped_run_prints_a_plain_line_per_epoch(tmp_path):
    """``lrbench run ... | tee log``: no progress bars (their control codes), one line per epoch with the
    chunk, the epoch, elapsed time, ETA and the best validation accuracy so far."""
    spec = tiny_matrix(tmp_path, "tiny-piped", epochs=2)
    r = lrbench("run", "--matrix", spec, "--results", tmp_path / "results", "--no-report")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if " epoch " in ln and "elapsed" in ln]
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("chunk 1/1 (#0, 2 models) epoch 1/2: 0:00:") and "ETA 0:00:" in lines[0]
    assert "best val acc 0." in lines[1] and "epoch 2/2" in lines[1]
    assert "\x1b[" not in r.stderr and "━" not in r.stderr  # no bars, no control codes
