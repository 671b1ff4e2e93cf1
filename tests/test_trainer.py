"""bench.train.batched on a small subset of Fashion-MNIST (2,048 train / 512 val / 512 test, widths (784, 32, 10))."""
import dataclasses

import numpy as np
import pytest

import lrcore
from bench.train.batched import HISTORY_COLUMNS, SUMMARY_COLUMNS, TrainConfig, steps_per_epoch, train_chunk
from bench.train.config import TrainSpec

WIDTHS = (784, 32, 10)
EPOCHS = 3
BATCH = 128


@pytest.fixture(scope="module")
def data():
    from bench.train.data import load_fashion_mnist
    try:
        full = load_fashion_mnist("cpu")
    except FileNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST not installed: {exc}")
    return full.head(2048, 512, 512)


def run(configs, data, **kw):
    kw.setdefault("epochs", EPOCHS)
    if "plateau_kwargs" in kw:
        kw["plateau"] = kw.pop("plateau_kwargs")
    return train_chunk(configs, data, TrainSpec(batch_size=BATCH, widths=WIDTHS, **kw))


CONFIGS = [
    TrainConfig("const-adam", "adam", 1e-3, "Constant(lr=peak)", seed=0),
    TrainConfig("cos-mom", "momentum", 0.05, "Cosine(lr=peak, decay_steps=total)", seed=1),
    TrainConfig("onecycle-mom", "momentum", 0.1, "OneCycle(max_lr=peak, total_steps=total)", seed=2),
    TrainConfig("plateau-adam", "adam", 1e-3, "plateau", seed=3),
]


@pytest.fixture(scope="module")
def chunk(data):
    return run(CONFIGS, data)


def test_chunk_trains(chunk):
    history, summary, tp = chunk
    assert list(history.columns) == HISTORY_COLUMNS
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(history) == len(CONFIGS) * EPOCHS and len(summary) == len(CONFIGS)
    assert list(summary["name"]) == [c.name for c in CONFIGS]
    for m in range(len(CONFIGS)):
        h = history[history.model == m].sort_values("epoch")
        assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
        assert h.val_loss.iloc[-1] < h.val_loss.iloc[0]
        assert h.val_acc.iloc[-1] > 0.5
    assert not history.diverged.any() and history.trained.all()
    assert (summary.test_acc > 0.5).all() and (summary.test_acc_best > 0.5).all()
    assert (summary.epochs_trained == EPOCHS).all()
    # the onecycle model cycles momentum, the others keep their own
    spe = steps_per_epoch(2048, BATCH)
    sched = lrcore.parse(CONFIGS[2].schedule, peak=0.1, total=EPOCHS * spe)
    mom = history[history.model == 2].momentum.to_numpy()
    np.testing.assert_allclose(mom, lrcore.evaluate(sched.momentum, EPOCHS * spe)[spe - 1::spe], rtol=1e-6)
    assert (history[history.model == 1].momentum == 0.9).all()
    assert tp["samples_per_s"] > 0 and tp["model_epochs_per_s"] > 0 and tp["flop_per_s"] > 0


def test_lr_column_matches_schedule(chunk):
    history = chunk.history
    spe = steps_per_epoch(2048, BATCH)
    total = EPOCHS * spe
    for m, c in enumerate(CONFIGS[:3]):
        want = lrcore.evaluate(c.parse(total), total)[spe - 1::spe].astype(np.float32)
        got = history[history.model == m].sort_values("epoch").lr.to_numpy()
        np.testing.assert_array_equal(got.astype(np.float32), want)
    # plateau starts at peak and only ever goes down
    lr = history[history.model == 3].sort_values("epoch").lr.to_numpy()
    assert lr[0] == np.float32(1e-3) and np.all(np.diff(lr) <= 0)


def test_paired_design_identical_configs(data):
    cfg = TrainConfig("a", "momentum", 0.05, "Cosine(lr=peak, decay_steps=total)", seed=7)
    other = TrainConfig("c", "momentum", 0.05, "Cosine(lr=peak, decay_steps=total)", seed=8)
    history, summary, _ = run([cfg, other, dataclasses.replace(cfg, name="b")], data, epochs=2)
    a = history[history.name == "a"].reset_index(drop=True)
    b = history[history.name == "b"].reset_index(drop=True)
    c = history[history.name == "c"].reset_index(drop=True)
    for col in ["train_loss", "val_loss", "val_acc", "lr"]:
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
    assert not np.array_equal(a.train_loss.to_numpy(), c.train_loss.to_numpy())  # another seed: other run
    sa, sb = summary[summary.name == "a"].iloc[0], summary[summary.name == "b"].iloc[0]
    assert sa.test_acc == sb.test_acc and sa.test_acc_best == sb.test_acc_best


def test_divergent_model_is_frozen_and_flagged(data):
    configs = [TrainConfig("ok", "adam", 1e-3, seed=0), TrainConfig("boom", "sgd", 1e6, seed=0)]
    history, summary, _ = run(configs, data, epochs=2)
    boom = summary[summary.name == "boom"].iloc[0]
    assert boom.diverged and boom.diverged_epoch == 0
    hb = history[history.name == "boom"]
    assert hb.diverged.all() and not hb.trained.iloc[1]
    ok = history[history.name == "ok"].sort_values("epoch")
    assert not ok.diverged.any() and ok.val_acc.iloc[-1] > 0.5
    # the healthy model trained exactly as it does alone (same seed, same batches)
    alone, _, _ = run(configs[:1], data, epochs=2)
    np.testing.assert_allclose(ok.train_loss.to_numpy(), alone.train_loss.to_numpy(), rtol=1e-5)


def test_early_stopping_freezes_and_restores(data):
    configs = [TrainConfig("hot", "sgd", 1.0, seed=0), TrainConfig("ok", "adam", 1e-2, seed=0)]
    history, summary, _ = run(configs, data, epochs=5, early_stopping=0)
    assert list(history.columns) == HISTORY_COLUMNS
    assert (summary.stopped_epoch >= 0).any()
    for _, s in summary.iterrows():
        h = history[history.model == s.model].sort_values("epoch")
        if s.stopped_epoch < 0:
            continue
        assert s.epochs_trained == s.stopped_epoch + 1
        assert h.trained.to_numpy().tolist() == [e <= s.stopped_epoch for e in range(5)]
        assert h.stopped.to_numpy().tolist() == [e >= s.stopped_epoch for e in range(5)]
        assert np.isnan(h.train_loss.to_numpy()[s.stopped_epoch + 1:]).all()
        # the final score uses the restored best (lowest validation loss) weights
        best = h[h.trained].val_loss.min()
        assert s.final_val_loss == pytest.approx(best, rel=1e-6)


def test_plateau_reduces_lr_on_validation_loss(data):
    # threshold 10 (relative): no epoch counts as an improvement, so with patience 0 lr drops every epoch
    cfg = TrainConfig("plateau", "adam", 1e-3, "plateau", seed=0)
    history, _, _ = run([cfg], data, plateau_kwargs=dict(patience=0, threshold=10.0))
    lr = history.sort_values("epoch").lr.to_numpy()
    np.testing.assert_allclose(lr, [1e-3, 1e-4, 1e-5], rtol=1e-6)


SF_CONFIGS = [
    TrainConfig("warmup_constant", "sgd_schedulefree", 0.1, "Warmup(Constant(lr=peak), steps=total // 20)", seed=0),
    TrainConfig("warmup_constant", "adamw_schedulefree", 2.5e-3, "Warmup(Constant(lr=peak), steps=total // 20)",
                seed=0),
    TrainConfig("cosine", "adamw", 1e-3, "Cosine(lr=peak, decay_steps=total)", seed=0),
]


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_schedule_free_in_a_chunk_matches_the_package(impl, data):
    """Schedule-free models beside a scheduled one, trained by the batched trainer and one at a time by the
    schedulefree package (bench.train.sequential): the same validation scores of x every epoch."""
    pytest.importorskip("schedulefree")
    from bench.train.sequential import train_sequential
    mine = run(SF_CONFIGS, data, optim_impl=impl, epochs=2)
    ref = train_sequential(SF_CONFIGS, data, TrainSpec(epochs=2, batch_size=BATCH, widths=WIDTHS))
    a, b = (r.history.sort_values(["model", "epoch"]).reset_index(drop=True) for r in (mine, ref))
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=2e-4)
    np.testing.assert_allclose(a["val_acc"], b["val_acc"], atol=2.5 / 512)  # at most 2 of 512 answers flip
    np.testing.assert_allclose(a["lr"], b["lr"], rtol=1e-6)
    np.testing.assert_allclose(mine.summary["test_acc"], ref.summary["test_acc"], atol=2.5 / 512)
    assert (a["val_acc"] > 0.5).all()
