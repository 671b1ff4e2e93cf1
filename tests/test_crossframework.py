"""Cross-framework comparison: paired statistics, and two small real runs (PyTorch and Keras)."""
import types

import numpy as np
import pandas as pd
import pytest

from bench.report import stats as RS
from bench.report.crossframework import COLUMNS, bootstrap_ci, compare, describe, paired_stats, sign_flip_p, verdict


def test_sign_flip_exact():
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx(2 / 64)
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_p([1.0, 1.0, 1.0]) == pytest.approx(0.25)  # 3 seeds can never reach 0.05
    assert sign_flip_p([1.0, -1.0]) == 1.0
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0])
    assert 1.0 <= lo < 2.0 < hi <= 3.0 and (lo, hi) == bootstrap_ci([1.0, 2.0, 3.0])


def test_paired_stats_use_the_paired_t_interval():
    """Significance is the report's paired t interval (3 consistent seeds suffice), not the sign-flip p."""
    d = [-0.0025, -0.0030, -0.0021]
    r = paired_stats(d)
    m, lo, hi = RS.mean_interval(d)
    assert (r["mean_diff"], r["t_low"], r["t_high"]) == pytest.approx((m, lo, hi))
    assert hi < 0 and r["significant"] and r["p_value"] == pytest.approx(0.25)
    mixed = paired_stats([0.004, -0.006, 0.001])
    assert mixed["t_low"] < 0 < mixed["t_high"] and not mixed["significant"]
    one = paired_stats([0.01, float("nan")])
    assert one["n_pairs"] == 1 and np.isnan(one["t_low"]) and not one["significant"]
    assert describe(dict(metric="test_acc", **r)) == (f"PyTorch - Keras test accuracy: {100 * m:+.2f} pp, 95% "
                                                      f"t-interval [{100 * lo:+.2f}, {100 * hi:+.2f}]: significant")
    assert describe(dict(metric="final_val_loss", **paired_stats([0.001, -0.002, 0.0005]))).endswith(
        ": not significant")
    assert describe(dict(metric="test_acc", **one)) == "PyTorch - Keras test accuracy: +1.00 pp on 1 pair(s): " \
                                                       "no interval, no test"
    with pytest.raises(ValueError, match="alpha must be 0.05"):
        paired_stats(d, alpha=0.1)


def _write(run_dir, summary):
    run_dir.mkdir()
    summary.to_csv(run_dir / "summary.csv", index=False)
    (run_dir / "meta.json").write_text("{}")


def test_compare_shifted_and_identical(tmp_path):
    base = pd.DataFrame(dict(model=range(6), name=["a"] * 6, optimizer=["adam"] * 6, seed=range(6),
                             test_acc=np.linspace(0.8, 0.85, 6), final_val_loss=np.linspace(0.4, 0.3, 6)))
    _write(tmp_path / "t", base)
    shifted = base.assign(test_acc=base.test_acc + 0.01)
    _write(tmp_path / "k", shifted)
    df = compare(tmp_path / "t", tmp_path / "k")
    assert list(df.columns) == COLUMNS and (tmp_path / "k" / "crossframework.csv").is_file()
    acc = df[df.metric == "test_acc"].iloc[0]
    assert acc.config == "a / adam" and acc.n_pairs == 6 and acc.mean_diff == pytest.approx(-0.01)
    assert acc.p_value == pytest.approx(2 / 64) and acc.significant
    assert acc.t_low == pytest.approx(-0.01) and acc.t_high == pytest.approx(-0.01)  # every seed shifted alike
    assert verdict(df).startswith("PyTorch and Keras differ significantly on test accuracy in 1 of 1 "
                                  "configurations (a / adam)")
    assert "a / adam (6 pairs): PyTorch - Keras test accuracy: -1.00 pp, 95% t-interval [-1.00, -1.00]: " \
           "significant." in verdict(df)
    same = compare(tmp_path / "t", tmp_path / "t", tmp_path / "same.csv")
    assert (same.mean_diff == 0).all() and (same.p_value == 1).all() and not same.significant.any()
    assert verdict(same).startswith("PyTorch and Keras do not differ significantly on test accuracy in any of the 1")
    two = pd.concat([base, base.assign(name="b", test_acc=base.test_acc - 0.02)])
    _write(tmp_path / "t2", two)
    _write(tmp_path / "k2", pd.concat([shifted, base.assign(name="b", test_acc=base.test_acc - 0.02)]))
    df2 = compare(tmp_path / "t2", tmp_path / "k2", write=False)
    assert list(df2.config) == ["a / adam", "a / adam", "b / adam", "b / adam", "all", "all"]
    pooled = df2[(df2.config == "all") & (df2.metric == "test_acc")].iloc[0]
    assert pooled.n_pairs == 12 and pooled.mean_diff == pytest.approx(-0.005)
    m, lo, hi = RS.mean_interval([-0.01] * 6 + [0.0] * 6)
    assert (pooled.t_low, pooled.t_high) == pytest.approx((lo, hi)) and pooled.significant
    text = verdict(df2)
    assert "in 1 of 2 configurations (a / adam), and over all 12 pairs pooled" in text
    assert f"All 12 pairs pooled: PyTorch - Keras test accuracy: -0.50 pp, 95% t-interval [{100 * lo:+.2f}, " \
           f"{100 * hi:+.2f}]: significant." in text
    assert "b / adam (6 pairs): PyTorch - Keras test accuracy: +0.00 pp" in text
    loss = verdict(df2, "final_val_loss")
    assert loss.startswith("PyTorch and Keras do not differ significantly on final validation loss in any of the 2 "
                           "configurations, nor over all 12 pairs pooled")
    _write(tmp_path / "other", base.assign(name="b"))
    with pytest.raises(ValueError, match="no configuration"):
        compare(tmp_path / "t", tmp_path / "other", write=False)


def test_real_torch_and_keras_runs(tmp_path):
    pytest.importorskip("keras")
    from bench.train.data import load_fashion_mnist
    from bench.train.keras import train_keras
    from bench.train.batched import TrainConfig, train_chunk
    try:
        d = load_fashion_mnist()
    except (FileNotFoundError, ValueError) as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")
    data = types.SimpleNamespace(x_train=d.x_train[:1024], y_train=d.y_train[:1024], x_val=d.x_val[:512],
                                 y_val=d.y_val[:512], x_test=d.x_test[:512], y_test=d.y_test[:512])
    text = "keras.CosineDecay(initial_learning_rate=0.0, decay_steps=total - 4, warmup_target=peak, warmup_steps=4)"
    cfgs = [TrainConfig("cosine_warmup", "adam", 1e-3, text, seed=s) for s in (0, 1)]
    from bench.train.config import TrainSpec
    t = train_chunk(cfgs, data, TrainSpec(epochs=1, widths=(784, 32, 10)))
    k = train_keras(cfgs, data, TrainSpec(epochs=1, widths=(784, 32, 10)))
    _write(tmp_path / "torch", t.summary)
    _write(tmp_path / "keras", k.summary)
    df = compare(tmp_path / "torch", tmp_path / "keras")
    assert list(df.columns) == COLUMNS and list(df.metric) == ["test_acc", "final_val_loss"]
    assert (df.n_pairs == 2).all() and (df.p_value >= 0.5).all()  # 2 pairs: the sign-flip p is 0.5 or 1
    for r in df.itertuples():
        d = (t.summary.set_index("seed")[r.metric] - k.summary.set_index("seed")[r.metric]).to_numpy(float)
        assert (r.mean_diff, r.t_low, r.t_high) == pytest.approx(RS.mean_interval(d))
        assert r.significant == (r.t_low > 0 or r.t_high < 0)
    same = compare(tmp_path / "keras", tmp_path / "keras", write=False)
    assert (same.mean_diff == 0).all() and not same.significant.any()
    back = pd.read_csv(tmp_path / "keras" / "crossframework.csv")
    assert list(back.columns) == COLUMNS and len(back) == 2


def test_torch_counterpart(tmp_path):
    from bench.matrix.spec import load_matrix
    p = tmp_path / "k.toml"
    p.write_text("""
framework = "keras"
epochs = 2
seeds = [0, 1]
baseline = "fixed"
contender = "cos_native"
[peak_lr]
adam = 0.001
[schedules]
fixed = "Constant(lr=peak)"
cos = "keras.CosineDecay(initial_learning_rate=peak, decay_steps=total)"
cos_native = "keras-native:keras.CosineDecay(initial_learning_rate=peak, decay_steps=total)"
""")
    t = load_matrix(p).torch_counterpart()
    assert t.framework == "torch" and list(t.schedules) == ["fixed", "cos"] and t.name == "k-torch"
    assert t.baseline == "fixed" and t.contender is None


def test_cross_check_command(tmp_path):
    from click.testing import CliRunner

    from bench.cli import crossframework_cmd
    base = pd.DataFrame(dict(model=range(3), name=["a"] * 3, optimizer=["sgd"] * 3, seed=range(3),
                             test_acc=[0.8, 0.81, 0.82], final_val_loss=[0.5, 0.4, 0.45]))
    _write(tmp_path / "t", base)
    _write(tmp_path / "k", base.assign(test_acc=base.test_acc + 0.001))
    res = CliRunner().invoke(crossframework_cmd, [str(tmp_path / "t"), str(tmp_path / "k")])
    assert res.exit_code == 0, res.output
    # Keras +0.1 pp on every one of 3 seeds: the paired t interval calls it (the sign-flip p alone could not)
    assert "PyTorch and Keras differ significantly on test accuracy in 1 of 1 configurations (a / sgd)" in res.output
    assert "a / sgd (3 pairs): PyTorch - Keras test accuracy: -0.10 pp, 95% t-interval [-0.10, -0.10]: " \
           "significant." in res.output
    assert "do not differ significantly on final validation loss" in res.output  # one verdict per metric
    assert (tmp_path / "k" / "crossframework.csv").is_file()
    res = CliRunner().invoke(crossframework_cmd, [str(tmp_path / "t"), str(tmp_path / "k"), "--alpha", "0.1"])
    assert res.exit_code == 1 and "alpha must be 0.05" in res.output
    res = CliRunner().invoke(crossframework_cmd, [str(tmp_path / "t"), str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "nothing" in res.output
