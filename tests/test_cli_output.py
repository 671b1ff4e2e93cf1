"""What ``lrbench run`` prints at its end, when its output goes to a file or a pipe (CI logs, ``| tee``): the
results table with every optimizer and schedule name in full, never cut to ``nester…``."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "results" / "runs" / "default-cpu"   # a committed run: 12 schedules x 6 optimizers


def test_piped_summary_table_prints_names_in_full():
    code = ("import sys; from pathlib import Path; from rich.console import Console; from bench.cli import _print_run; "
            "_print_run(Path(sys.argv[1]), Console(stderr=True))")
    out = subprocess.run([sys.executable, "-c", code, str(RUN)], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"}).stdout
    assert "…" not in out
    summary = pd.read_csv(RUN / "summary.csv")
    for name in set(summary["name"]) | set(summary["optimizer"]):
        assert f" {name} " in out, name
