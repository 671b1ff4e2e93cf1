"""Fashion-MNIST for the benchmark: verified local IDX files, a fixed validation split, torch tensors.

``load_fashion_mnist(device, data_dir)`` finds the four official files (never downloads), checks their
checksums, splits 10,000 validation images off the training set and normalises. Search order, checksums
and errors: docs/BENCH.md, "bench/train/data.py".
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "FILES", "PAYLOAD_SHA256", "OFFICIAL_GZ_SHA256", "OFFICIAL_GZ_MD5", "DEBIAN_GZ_SHA256",
           "DEBIAN_DIR", "KERAS_DIR", "ENV_VAR", "FashionMNISTError", "DataNotFoundError", "DataCorruptError",
           "FashionMNIST", "search_locations", "find_data_dir", "parse_idx", "read_idx_file", "load_raw",
           "split_indices", "load_fashion_mnist"]

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_DIR = Path("~/.keras/datasets/fashion-mnist")

#: role -> (file name without .gz, IDX magic number, expected shape)
FILES = {
    "train_images": ("train-images-idx3-ubyte", 0x00000803, (60000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", 0x00000801, (60000,)),
    "test_images": ("t10k-images-idx3-ubyte", 0x00000803, (10000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", 0x00000801, (10000,)),
}

#: SHA-256 of the decompressed IDX files (what is verified).
PAYLOAD_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: The official downloads (github.com/zalandoresearch/fashion-mnist, README's MD5 column).
OFFICIAL_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
OFFICIAL_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
#: Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (same payload, re-written gzip header).
DEBIAN_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

INSTALL_HINT = ("Install the data with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files land in "
                f"{DEBIAN_DIR}), or put the four official files (from github.com/zalandoresearch/fashion-mnist) "
                f"in a directory and name it with ${ENV_VAR} or --data-dir (data_dir=...). Nothing is "
                "downloaded at run time.")


class FashionMNISTError(Exception):
    """Base class of the data errors."""


class DataNotFoundError(FashionMNISTError, FileNotFoundError):
    """No searched directory holds all four Fashion-MNIST files. ``.searched``: [(place, path, problem)]."""

    def __init__(self, message, searched=()):
        super().__init__(message)
        self.searched = list(searched)

    def __str__(self):
        return self.args[0]


class DataCorruptError(FashionMNISTError, ValueError):
    """A Fashion-MNIST file exists but its content is not the official one (digest, gzip or IDX check)."""


@dataclasses.dataclass(frozen=True)
class FashionMNIST:
    """The benchmark's data, as torch tensors on one device (see the module docstring for the rules)."""
    x_train: "torch.Tensor"  # (50000, 784) float32, standardised
    y_train: "torch.Tensor"  # (50000,) int64
    x_val: "torch.Tensor"    # (10000, 784)
    y_val: "torch.Tensor"
    x_test: "torch.Tensor"   # (10000, 784), official t10k
    y_test: "torch.Tensor"
    train_index: np.ndarray  # indices into the official 60k training set
    val_index: np.ndarray
    mean: float              # of x/255 over the training split
    std: float
    split_seed: int
    source: Path             # the directory the files came from

    @property
    def device(self):
        return self.x_train.device

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(CLASSES)

    def head(self, n_train: int, n_val: int, n_test: int) -> "FashionMNIST":
        """The first ``n_train`` / ``n_val`` / ``n_test`` images of each split (same normalisation): a
        small real data set for tests and quick experiments."""
        for name, n, have in (("n_train", n_train, len(self.x_train)), ("n_val", n_val, len(self.x_val)),
                              ("n_test", n_test, len(self.x_test))):
            if not 1 <= int(n) <= have:
                raise ValueError(f"FashionMNIST.head: {name} must be in [1, {have}], got {n}")
        return dataclasses.replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
                                   x_val=self.x_val[:n_val], y_val=self.y_val[:n_val], x_test=self.x_test[:n_test],
                                   y_test=self.y_test[:n_test], train_index=self.train_index[:n_train],
                                   val_index=self.val_index[:n_val])


# ----------------------------------------------------------------------------------------------- search

def search_locations(data_dir=None) -> list[tuple[str, Path | None]]:
    """The places searched, in order, as (description, path or None when not given)."""
    env = os.environ.get(ENV_VAR) or None
    return [("data_dir argument (--data-dir)", Path(data_dir).expanduser() if data_dir is not None else None),
            (f"${ENV_VAR}", Path(env).expanduser() if env else None),
            ("Debian package dataset-fashion-mnist", DEBIAN_DIR),
            ("Keras cache", KERAS_DIR.expanduser())]


def _file_in(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def find_data_dir(data_dir=None) -> Path:
    """The first searched directory that holds all four files (``.gz`` or uncompressed)."""
    searched = []
    for k, (place, path) in enumerate(search_locations(data_dir)):
        if path is None:
            searched.append((place, None, "not set"))
            continue
        if not path.is_dir():
            problem = "does not exist" if not path.exists() else "is not a directory"
        else:
            missing = [name + ".gz" for name, _, _ in FILES.values() if _file_in(path, name) is None]
            if not missing:
                for place0, path0, problem0 in searched[:2]:  # the explicitly named places
                    if path0 is not None:
                        warnings.warn(f"Fashion-MNIST: {place0} {path0} skipped ({problem0}); using {path}",
                                      stacklevel=2)
                return path
            problem = "missing " + ", ".join(missing)
        searched.append((place, path, problem))
    lines = [f"  {k + 1}. {place}: " + (f"{path} ({problem})" if path is not None else problem)
             for k, (place, path, problem) in enumerate(searched)]
    raise DataNotFoundError("Fashion-MNIST not found. Searched, in order:\n" + "\n".join(lines) + "\n"
                            + INSTALL_HINT, searched)


# ------------------------------------------------------------------------------------------------- IDX

def parse_idx(payload: bytes, magic: int, shape: tuple, what: str = "IDX data") -> np.ndarray:
    """Parse an IDX byte string (big-endian header: magic, then one uint32 per dimension; uint8 data)."""
    ndim = len(shape)
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise DataCorruptError(f"{what}: {len(payload)} bytes is shorter than the IDX header ({header} bytes)")
    got_magic = int.from_bytes(payload[:4], "big")
    if got_magic != magic:
        raise DataCorruptError(f"{what}: IDX magic number 0x{got_magic:08x}, expected 0x{magic:08x}")
    dims = tuple(int.from_bytes(payload[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if dims != tuple(shape):
        raise DataCorruptError(f"{what}: IDX shape {dims}, expected {tuple(shape)}")
    size = int(np.prod(shape))
    if len(payload) != header + size:
        raise DataCorruptError(f"{what}: {len(payload) - header} data bytes, expected {size}")
    return np.frombuffer(payload, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_file(path, role: str, verify: bool = True) -> np.ndarray:
    """Read one of the four files (``role`` a key of :data:`FILES`), check digest, magic and shape."""
    name, magic, shape = FILES[role]
    path = Path(path)
    try:
        raw = path.read_bytes()
        payload = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataCorruptError(f"Fashion-MNIST file {path} cannot be read or decompressed ({exc}). "
                               f"Re-install it. {INSTALL_HINT}") from exc
    if verify:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != PAYLOAD_SHA256[name]:
            raise DataCorruptError(f"Fashion-MNIST file {path} is corrupt or not the official file: SHA-256 of "
                                   f"its IDX content is {digest}, expected {PAYLOAD_SHA256[name]}. "
                                   f"Re-install it. {INSTALL_HINT}")
    return parse_idx(payload, magic, shape, what=str(path))


_RAW_CACHE: dict = {}


def load_raw(data_dir=None) -> dict[str, np.ndarray]:
    """The four verified arrays (uint8 images (N, 28, 28), uint8 labels (N,)) keyed by role, plus the
    directory under ``"source"``. Cached per directory and file (size, mtime)."""
    directory = find_data_dir(data_dir)
    paths = {role: _file_in(directory, name) for role, (name, _, _) in FILES.items()}
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values())
    if key not in _RAW_CACHE:
        arrays = {role: read_idx_file(p, role) for role, p in paths.items()}
        for role in ("train_labels", "test_labels"):
            if arrays[role].max() >= len(CLASSES):
                raise DataCorruptError(f"{paths[role]}: label {arrays[role].max()} out of range 0..9")
        _RAW_CACHE.clear()  # keep one copy (~55 MB) at most
        _RAW_CACHE[key] = arrays
    return {**_RAW_CACHE[key], "source": directory}


# ----------------------------------------------------------------------------------------------- split

def split_indices(labels: np.ndarray, n_val: int = 10_000, seed: int = 0, stratified: bool = True):
    """(train_index, val_index), each sorted ascending, disjoint, covering ``range(len(labels))``.

    Stratified: ``n_val / n_classes`` per class (``n_val`` must divide evenly), chosen per class in class
    order by one ``numpy.random.default_rng(seed)``. Not stratified: the first ``n_val`` of one permutation.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not isinstance(n_val, (int, np.integer)) or not 0 < n_val < n:
        raise ValueError(f"split_indices: n_val must be an integer in 1..{n - 1}, got {n_val!r}")
    rng = np.random.default_rng(seed)
    if stratified:
        classes = np.unique(labels)
        if n_val % len(classes):
            raise ValueError(f"split_indices: n_val must be a multiple of the {len(classes)} classes when "
                             f"stratified, got {n_val}")
        per = n_val // len(classes)
        parts = []
        for c in classes:
            members = np.flatnonzero(labels == c)
            if per >= len(members):
                raise ValueError(f"split_indices: class {c} has {len(members)} examples, cannot take {per}")
            parts.append(rng.permutation(members)[:per])
        val = np.sort(np.concatenate(parts))
    else:
        val = np.sort(rng.permutation(n)[:n_val])
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


# ---------------------------------------------------------------------------------------------- tensors

def load_fashion_mnist(device="cpu", data_dir=None, *, n_val: int = 10_000, split_seed: int = 0,
                       stratified: bool = True) -> FashionMNIST:
    """Load, verify, split and normalise Fashion-MNIST; tensors are placed on ``device`` once."""
    import torch

    raw = load_raw(data_dir)
    train_idx, val_idx = split_indices(raw["train_labels"], n_val, split_seed, stratified)
    images = raw["train_images"].reshape(60000, 784)
    train_pixels = images[train_idx]
    scaled = train_pixels.astype(np.float64) / 255.0
    mean = float(scaled.mean())
    std = float(scaled.std())

    def prep(x):
        return torch.from_numpy(((x.astype(np.float32) / np.float32(255.0)) - np.float32(mean))
                                / np.float32(std)).to(device)

    def lab(y):
        return torch.from_numpy(y.astype(np.int64)).to(device)

    return FashionMNIST(x_train=prep(train_pixels), y_train=lab(raw["train_labels"][train_idx]),
                        x_val=prep(images[val_idx]), y_val=lab(raw["train_labels"][val_idx]),
                        x_test=prep(raw["test_images"].reshape(10000, 784)), y_test=lab(raw["test_labels"]),
                        train_index=train_idx, val_index=val_idx, mean=mean, std=std, split_seed=split_seed,
                        source=raw["source"])
