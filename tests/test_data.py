"""bench.train.data: verified Fashion-MNIST files, search order, split and normalisation."""
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.train import data as D

NAMES = [name for name, _, _ in D.FILES.values()]


@pytest.fixture(scope="module")
def real_dir():
    try:
        return D.find_data_dir()
    except D.DataNotFoundError as exc:  # pragma: no cover - machines without the Debian package
        pytest.skip(str(exc).splitlines()[0])


@pytest.fixture(scope="module")
def fm(real_dir):
    return D.load_fashion_mnist("cpu", real_dir)


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No default location has the data: only what a test names explicitly."""
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setattr(D, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(D, "KERAS_DIR", tmp_path / "no-keras")
    return tmp_path


def _linked_copy(src: Path, dst: Path, except_name=None) -> Path:
    """dst with symlinks to the real files, except ``except_name`` which is copied (to be corrupted)."""
    dst.mkdir()
    for name in NAMES:
        f = D._file_in(src, name)
        if name == except_name:
            shutil.copyfile(f, dst / f.name)
        else:
            (dst / f.name).symlink_to(f)
    return dst


def test_real_files_shapes_classes_and_normalisation(fm):
    assert fm.x_train.shape == (50000, 784) and fm.x_val.shape == (10000, 784) and fm.x_test.shape == (10000, 784)
    assert str(fm.x_train.dtype) == "torch.float32" and str(fm.y_train.dtype) == "torch.int64"
    assert np.bincount(fm.y_train.numpy()).tolist() == [5000] * 10
    assert np.bincount(fm.y_val.numpy()).tolist() == [1000] * 10
    assert np.bincount(fm.y_test.numpy()).tolist() == [1000] * 10
    assert fm.n_classes == len(D.CLASSES) == 10 and fm.n_features == 784
    assert abs(fm.mean - 0.2860) < 1e-3 and abs(fm.std - 0.3530) < 1e-3
    assert abs(float(fm.x_train.double().mean())) < 1e-5 and abs(float(fm.x_train.double().std()) - 1) < 1e-5
    # the same rule on every split: pixel 0 maps to -mean/std everywhere
    lo = -fm.mean / fm.std
    for x in (fm.x_train, fm.x_val, fm.x_test):
        assert abs(float(x.min()) - lo) < 1e-6
    # labels follow the official file: validation labels are those of the chosen official indices
    raw = D.load_raw(fm.source)
    assert np.array_equal(fm.y_val.numpy(), raw["train_labels"][fm.val_index])
    assert np.array_equal(fm.y_test.numpy(), raw["test_labels"])


def test_payload_digests_and_official_gz_of_debian_copy(real_dir):
    raw = D.load_raw(real_dir)  # verified on load
    assert raw["train_images"].shape == (60000, 28, 28) and raw["test_images"].shape == (10000, 28, 28)
    assert set(D.PAYLOAD_SHA256) == set(NAMES)
    assert set(D.OFFICIAL_GZ_SHA256) == set(D.OFFICIAL_GZ_MD5) == {n + ".gz" for n in NAMES}


def test_split_is_deterministic_disjoint_and_stratified(real_dir):
    labels = D.load_raw(real_dir)["train_labels"]
    tr, va = D.split_indices(labels, 10_000, seed=0)
    tr2, va2 = D.split_indices(labels, 10_000, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 60000
    assert np.array_equal(np.union1d(tr, va), np.arange(60000))
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)
    assert np.bincount(labels[va]).tolist() == [1000] * 10
    _, va3 = D.split_indices(labels, 10_000, seed=1)
    assert not np.array_equal(va, va3)
    _, va4 = D.split_indices(labels, 10_000, seed=0, stratified=False)
    assert len(va4) == 10_000 and not np.array_equal(va, va4)
    with pytest.raises(ValueError, match="n_val"):
        D.split_indices(labels, 10_001)


def test_corrupted_gzip_byte_is_caught(real_dir, nowhere):
    d = _linked_copy(real_dir, nowhere / "copy", except_name="t10k-labels-idx1-ubyte")
    f = D._file_in(d, "t10k-labels-idx1-ubyte")
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(D.DataCorruptError) as info:
        D.load_raw(d)
    assert isinstance(info.value, ValueError) and str(f) in str(info.value)


def test_sha_mismatch_of_valid_gzip_is_caught(real_dir, nowhere):
    d = _linked_copy(real_dir, nowhere / "copy", except_name="t10k-labels-idx1-ubyte")
    f = D._file_in(d, "t10k-labels-idx1-ubyte")
    payload = bytearray(gzip.decompress(f.read_bytes()))
    payload[100] = (payload[100] + 1) % 10  # still a valid IDX file with labels 0..9
    f.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(D.DataCorruptError, match="SHA-256") as info:
        D.load_raw(d)
    assert D.PAYLOAD_SHA256["t10k-labels-idx1-ubyte"] in str(info.value)


def test_uncompressed_copy_is_accepted(real_dir, nowhere):
    d = _linked_copy(real_dir, nowhere / "copy")
    gz = d / "t10k-labels-idx1-ubyte.gz"
    (d / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    raw = D.load_raw(d)
    assert raw["source"] == d and raw["test_labels"].shape == (10000,)


def test_missing_everywhere_lists_places_and_install_hint(nowhere, monkeypatch):
    env_dir = nowhere / "env-dir"
    env_dir.mkdir()
    (env_dir / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv(D.ENV_VAR, str(env_dir))
    arg_dir = nowhere / "arg-dir"
    with pytest.raises(D.DataNotFoundError) as info:
        D.load_fashion_mnist(data_dir=arg_dir)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    msg = str(err)
    for place in (arg_dir, env_dir, nowhere / "no-debian", (nowhere / "no-keras").expanduser()):
        assert str(place) in msg
    assert "does not exist" in msg and "missing train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and D.ENV_VAR in msg and "--data-dir" in msg
    assert [p for _, p, _ in err.searched][:2] == [arg_dir, env_dir]
    monkeypatch.delenv(D.ENV_VAR)
    with pytest.raises(D.DataNotFoundError, match="not set"):
        D.find_data_dir()


def test_search_order_and_env_precedence(real_dir, nowhere, monkeypatch):
    a = _linked_copy(real_dir, nowhere / "a")
    b = _linked_copy(real_dir, nowhere / "b")
    monkeypatch.setattr(D, "DEBIAN_DIR", real_dir)
    assert D.find_data_dir() == real_dir
    monkeypatch.setenv(D.ENV_VAR, str(a))
    assert D.find_data_dir() == a                 # env before the system copy
    assert D.find_data_dir(b) == b                # the argument before env
    monkeypatch.setenv(D.ENV_VAR, str(nowhere / "empty"))
    with pytest.warns(UserWarning, match="skipped"):
        assert D.find_data_dir() == real_dir      # a wrong explicit place falls back, with a warning
    monkeypatch.setattr(D, "DEBIAN_DIR", nowhere / "no-debian")
    monkeypatch.setattr(D, "KERAS_DIR", b)
    monkeypatch.delenv(D.ENV_VAR)
    assert D.find_data_dir() == b                 # Keras cache last


def test_parse_idx_checks_magic_shape_and_length():
    good = (0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    assert D.parse_idx(good, 0x801, (3,)).tolist() == [1, 2, 3]
    with pytest.raises(D.DataCorruptError, match="magic"):
        D.parse_idx(good, 0x803, (3,))
    with pytest.raises(D.DataCorruptError, match="shape"):
        D.parse_idx(good, 0x801, (4,))
    with pytest.raises(D.DataCorruptError, match="data bytes"):
        D.parse_idx(good + b"\0", 0x801, (3,))
    with pytest.raises(D.DataCorruptError, match="header"):
        D.parse_idx(b"\0\0", 0x801, (3,))


def test_head_takes_the_first_images_of_each_split():
    from bench.train.data import load_fashion_mnist
    try:
        d = load_fashion_mnist("cpu")
    except FileNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST not installed: {exc}")
    h = d.head(30, 20, 10)
    assert (len(h.x_train), len(h.x_val), len(h.x_test), len(h.train_index)) == (30, 20, 10, 30)
    assert torch.equal(h.x_val, d.x_val[:20]) and torch.equal(h.y_test, d.y_test[:10]) and h.mean == d.mean
    with pytest.raises(ValueError, match="n_val must be in"):
        d.head(30, 0, 10)
