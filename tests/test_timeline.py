"""The asv history digest (bench/speed/timeline.py): a row per recorded commit, oldest first; points measured
by older benchmark code are told apart; the committed timeline.csv of each machine matches its results."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.speed import timeline as T

MACHINES = sorted(p.parent for p in T.RESULTS.glob("*/timeline.csv"))


def _results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in folder.glob("*.json") if p.name != "machine.json"]


@pytest.mark.parametrize("folder", MACHINES, ids=lambda p: p.name)
def test_committed_timeline_matches_the_results_beside_it(folder):
    """`make track` rewrites timeline.csv after measuring: a result file without its row fails here."""
    committed = pd.read_csv(folder / "timeline.csv")
    fresh = T.table(T.load(folder))
    assert list(committed["commit"]) == list(fresh["commit"]), "run: python -m bench.speed.timeline --machine " \
        + folder.name
    assert sorted(committed["commit"]) == sorted(r["commit_hash"][:7] for r in _results(folder))
    pd.testing.assert_frame_equal(committed.drop(columns="date"), fresh.drop(columns="date").astype(committed.dtypes
                                  .drop("date").to_dict()), rtol=1e-5)


def test_a_machine_with_tracked_results_has_a_timeline():
    assert MACHINES, "results/asv/<machine>/timeline.csv: none committed"
    with_results = {p.parent for p in T.RESULTS.glob("ci-2core-intel-*/*-existing-*.json")}
    assert with_results <= set(MACHINES)


def test_rows_are_commits_oldest_first_and_values_are_each_series_own(tmp_path):
    src = MACHINES[0]
    long = T.load(src)
    dates = long.drop_duplicates("commit")["date"]
    assert dates.is_monotonic_increasing
    first = min(_results(src), key=lambda r: r["date"])
    entry = dict(zip(first["result_columns"], first["results"]["ratios.Ratios.track_batched_over_sequential"]))
    got = long[(long["commit"] == first["commit_hash"][:7]) & (long["label"].str.startswith("batched / seq"))]
    assert got["value"].item() == pytest.approx(entry["result"][0])


def test_points_of_older_benchmark_code_are_hollow_and_the_rest_current(tmp_path):
    src = MACHINES[0]
    files = sorted((p for p in src.glob("*.json") if p.name != "machine.json"),
                   key=lambda p: json.loads(p.read_text())["date"])[:2]
    for p in files:
        shutil.copy(p, tmp_path / p.name)
    older = json.loads((tmp_path / files[0].name).read_text())
    name = "memory.ChunkMemory.peakmem_train_chunk"
    older["results"][name][older["result_columns"].index("version")] = "another benchmark source"
    (tmp_path / files[0].name).write_text(json.dumps(older))
    long = T.load(tmp_path)
    mem = long[long["label"].str.startswith("peak memory")]
    assert list(mem["current"]) == [False, True]
    assert long[~long["label"].str.startswith("peak memory")].dropna(subset=["value"])["current"].all()


def test_write_makes_the_table_and_the_figure(tmp_path):
    shutil.copytree(MACHINES[0], tmp_path / "m")
    (tmp_path / "m" / "timeline.csv").unlink()
    csv, png = T.write("m", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    table = pd.read_csv(csv)
    assert table.columns[:2].tolist() == ["commit", "date"]
    assert [c.rsplit(" (", 1)[0] for c in table.columns[2:]] == [s.label for s in T.HEADLINES]


def test_an_empty_folder_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="make track"):
        T.load(tmp_path)


def test_the_command_rewrites_every_machines_digest(tmp_path):
    for folder in MACHINES:
        shutil.copytree(folder, tmp_path / folder.name)
        (tmp_path / folder.name / "timeline.png").unlink()
    assert T.main(["--results", str(tmp_path)]) == 0
    assert sorted(p.parent.name for p in tmp_path.glob("*/timeline.png")) == [f.name for f in MACHINES]


def test_an_unknown_machine_is_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        T.main(["--results", str(tmp_path), "--machine", "no-such-machine"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "--machine no-such-machine: no asv result files in" in err and "Traceback" not in err
