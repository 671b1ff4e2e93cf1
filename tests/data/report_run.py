"""A small real run folder for the report tests: trained with bench.train.batched.train_chunk on a subset of
Fashion-MNIST (2,000 train / 1,000 validation / 1,000 test images, widths (784, 64, 10)), written in the
run-folder layout of the contract (meta.json, epochs.parquet, summary.csv, throughput.csv).

2 optimizers (sgd, adam) x 4 schedules (constant, warmup_cosine, plateau, hot = 3000 x the peak, which
diverges for sgd) x 2 seeds x 4 epochs = 16 models in one chunk; a few seconds on the CPU. ``twins`` adds
schedule-free optimizers, each on the warmup-only schedule ``warmup_constant`` only (not crossed with the others),
on the same seeds, as a matrix runs them.
"""
from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path

import pandas as pd
import torch

SCHEDULES = {
    "constant": "Constant(lr=peak)",
    "warmup_cosine": "Warmup(Cosine(lr=peak, decay_steps=total - total // 20), steps=total // 20)",
    "plateau": "plateau",
    "hot": "Constant(lr=peak * 3000)",
}
PEAKS = {"sgd": 0.1, "adam": 0.002}
SEEDS = [0, 1]
EPOCHS = 4
BATCH = 128
WIDTHS = [784, 64, 10]
TARGET = 0.78
TWIN_SCHEDULE = ("warmup_constant", "Warmup(Constant(lr=peak), steps=total // 20)")


def small_data():
    from bench.train.data import load_fashion_mnist
    full = load_fashion_mnist()
    return dataclasses.replace(full, x_train=full.x_train[:2000], y_train=full.y_train[:2000],
                               x_val=full.x_val[:1000], y_val=full.y_val[:1000],
                               x_test=full.x_test[:1000], y_test=full.y_test[:1000])


def make_run(results: Path, data, run_id: str = "20261122-000000-tiny", schedules: dict | None = None,
             trainer: str = "batched", peaks: dict | None = None, twins: dict | None = None,
             seeds: list | None = None) -> Path:
    """Train the matrix above (``trainer``: "batched" = bench.train.batched.train_chunk, "sequential" =
    bench.train.sequential.train_sequential) and write ``results/runs/<run_id>/``; returns the run folder.
    ``peaks``: optimizer -> peak (default PEAKS); ``twins``: schedule-free optimizer -> peak, each run on
    TWIN_SCHEDULE only; ``seeds``: default SEEDS."""
    from bench.train.batched import TrainConfig, train_chunk
    schedules = dict(SCHEDULES if schedules is None else schedules)
    peaks = dict(PEAKS if peaks is None else peaks)
    seeds = list(SEEDS if seeds is None else seeds)
    configs = [TrainConfig(name=n, optimizer=o, peak_lr=p, schedule=t, seed=s)
               for o, p in peaks.items() for n, t in schedules.items() for s in seeds]
    if twins:
        configs += [TrainConfig(name=TWIN_SCHEDULE[0], optimizer=o, peak_lr=p, schedule=TWIN_SCHEDULE[1], seed=s)
                    for o, p in twins.items() for s in seeds]
        peaks.update(twins)
        schedules[TWIN_SCHEDULE[0]] = TWIN_SCHEDULE[1]
    if trainer == "batched":
        train = train_chunk
    else:
        from bench.train.sequential import train_sequential as train
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is several times faster on a shared machine
    try:
        from bench.train.config import TrainSpec
        res = train(configs, data, TrainSpec(epochs=EPOCHS, batch_size=BATCH, widths=tuple(WIDTHS)))
    finally:
        torch.set_num_threads(threads)
    run_dir = Path(results) / "runs" / run_id
    run_dir.mkdir(parents=True)
    M = len(configs)
    hist = res.history.copy()
    hist["trainer"], hist["chunk"] = trainer, 0
    hist["model_time_s"] = hist["epoch_time_s"] / (M if trainer == "batched" else 1)
    hist.to_parquet(run_dir / "epochs.parquet", index=False)
    summ = res.summary.copy()
    summ["trainer"], summ["chunk"] = trainer, 0
    summ.to_csv(run_dir / "summary.csv", index=False)
    tp = res.throughput
    pd.DataFrame([dict(chunk=0, trainer=trainer, device="cpu", n_models=M, epochs=EPOCHS, steps=tp["steps"],
                       batch_size=BATCH, n_train=len(data.x_train), wall_s=tp["wall_s"],
                       samples_per_s=tp["samples_per_s"], model_epochs_per_s=tp["model_epochs_per_s"],
                       flop_per_s=tp["flop_per_s"], flops=tp["flops"], matmul_flop_per_s=1e10)]
                 ).to_csv(run_dir / "throughput.csv", index=False)
    matrix = dict(name="tiny", description="report test fixture", framework="torch", epochs=EPOCHS, seeds=seeds,
                  batch_size=BATCH, early_stopping=0, target_val_acc=TARGET, baseline="constant",
                  contender="warmup_cosine", model=dict(widths=WIDTHS, activation="relu", dropout=0.0),
                  peak_lr=peaks, schedules=schedules, plateau=dict(factor=0.1, patience=2), source="tests")
    meta = dict(run_id=run_id, status="complete", command="pytest fixture", matrix=matrix, framework="torch",
                trainer=trainer, device="cpu", device_name=platform.processor() or "cpu",
                n_threads=torch.get_num_threads(), git_commit="0" * 40, git_dirty=True,
                versions=dict(python=platform.python_version(), torch=torch.__version__, pandas=pd.__version__),
                started_utc="2026-11-22T00:00:00Z", finished_utc="2026-11-22T00:00:10Z", epochs=EPOCHS,
                seeds=seeds, executor="local", n_configs=M, chunks=[list(range(M))], peak_lr=peaks,
                throughput=dict(wall_s=tp["wall_s"], samples_per_s=tp["samples_per_s"],
                                model_epochs_per_s=tp["model_epochs_per_s"], flop_per_s=tp["flop_per_s"],
                                matmul_flop_per_s=1e10),
                data=dict(dir="/usr/share/datasets/fashion-mnist", sha256_verified=True, n_train=len(data.x_train),
                          n_val=len(data.x_val), n_test=len(data.x_test), split_seed=0))
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return run_dir


def write_speed_table(results: Path, runs: list[Path]) -> Path:
    """``results/speed/trainer_cpu.csv`` (the contract's columns) from the measured throughput of ``runs``."""
    rows = []
    for r in runs:
        tp = pd.read_csv(r / "throughput.csv").iloc[0]
        meta = json.loads((r / "meta.json").read_text())
        rows.append(dict(trainer=tp["trainer"], device="cpu", device_name=meta["device_name"], n_models=tp["n_models"],
                         epochs=tp["epochs"], model_epochs_per_s=tp["model_epochs_per_s"],
                         samples_per_s=tp["samples_per_s"], flop_per_s=tp["flop_per_s"], matmul_flop_per_s=1e10))
    df = pd.DataFrame(rows)
    seq = df.loc[df["trainer"] == "sequential", "model_epochs_per_s"]
    df["speedup_vs_sequential"] = df["model_epochs_per_s"] / (seq.iloc[0] if len(seq) else float("nan"))
    path = Path(results) / "speed" / "trainer_cpu.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


TUNED_MATRIX = """
name = "tinytuned"
epochs = 3
seeds = [0, 1, 2]
batch_size = 100
target_val_acc = 0.74
baseline = "constant"
contender = "warmup_cosine"
[model]
widths = [784, 32, 10]
[tuning]
lr_factors = [0.1, 1.0, 10.0]
tuning_seeds = [7, 8, 9]
extend = 1
[peak_lr]
sgd = 1.0
adam = 0.0002
sgd_schedulefree = 1.0
[schedules]
constant = "Constant(lr=peak)"
warmup_cosine = "Warmup(Cosine(lr=peak, decay_steps=total - total // 20), steps=total // 20)"
[schedule_free]
warmup_constant = "Warmup(Constant(lr=peak), steps=total // 20)"
"""


def tuned_data():
    """The Fashion-MNIST slice of the tuned fixture (3,000 train / 1,000 validation / 1,000 test images)."""
    from bench.train.data import load_fashion_mnist
    return load_fashion_mnist("cpu").head(3000, 1000, 1000)


def make_tuned_run(results: Path, data, run_id: str = "20261206-000000-tinytuned", matrix_text: str = TUNED_MATRIX,
                   step_cost: bool = True) -> Path:
    """A real tuned run by the runner (bench.matrix.runner.run_matrix): sgd, adam x (constant, warmup_cosine) +
    sgd_schedulefree on its warmup-only schedule, each screened over peak_lr x [0.1, 1, 10] on tuning seed 7, the leaders confirmed on seeds 8 and 9 (sgd and
    sgd_schedulefree at 10 fail; adam's grid, centred low, pushes some optimum to the edge), one step outward where
    the best sits on the edge, then evaluated on seeds 0, 1, 2; with its LR range test and (``step_cost``)
    step_cost.csv measured as ``lrbench run`` does (2 short rounds)."""
    import textwrap

    from bench.matrix.runner import run_matrix
    from bench.matrix.spec import load_matrix
    src = Path(results) / f"{run_id}.toml"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(textwrap.dedent(matrix_text))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = run_matrix(load_matrix(src), results_dir=Path(results), run_id=run_id, device="cpu", data=data,
                             progress=False)
        if step_cost:
            from bench.speed import step_cost as SC
            SC.write(run_dir, SC.measure(run_dir, rounds=2, steps=3, warmup=1))
    finally:
        torch.set_num_threads(threads)
    return run_dir
