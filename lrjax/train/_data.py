"""Datasets as in-memory arrays, and a seeded shuffling batch iterator with checkpointable state.

Sources (``data.source``):

* ``digits`` — the 1,797 8x8 handwritten digits bundled with scikit-learn (no download), split with a
  seeded permutation into train and test (``test_fraction``).
* ``*.npz`` — arrays ``x_train, y_train, x_test, y_test``; images as ``(N, H, W)``, ``(N, H, W, C)`` or
  flat ``(N, D)`` features; integer labels.
* a directory of MNIST / Fashion-MNIST IDX files (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``).
* a directory of CIFAR-10 python batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``).

Images are float32 NHWC; with ``normalize`` each channel is standardised with the train set's mean and
standard deviation. A missing or malformed file raises :class:`DataError` naming the path and what was
expected.

>>> from lrjax.train import load_dataset, BatchIterator
>>> ds = load_dataset("digits", seed=0)
>>> ds.x_train.shape[1:], ds.num_classes
((8, 8, 1), 10)
>>> it = BatchIterator(ds.num_train, batch_size=32, seed=0)
>>> idx = it.next_indices(); it.state_dict()
{'seed': 0, 'epoch': 0, 'position': 1}
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
from typing import Any

import numpy as np

__all__ = ["Dataset", "DataError", "BatchIterator", "load_dataset"]


class DataError(ValueError):
    """A data file is missing or not in the expected format; the message names the path."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test arrays (float32 NHWC images or (N, D) features, int32 labels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])


# ----------------------------------------------------------------------------- loaders

def _digits(seed: int, test_fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[..., None] / 16.0  # (1797, 8, 8, 1) in [0, 1]
    y = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def _npz(path: str) -> tuple[np.ndarray, ...]:
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(
                    f"{path}: a .npz dataset needs arrays {', '.join(keys)}; missing {', '.join(missing)} "
                    f"(found {', '.join(f.files) or 'none'})"
                )
            return tuple(np.asarray(f[k]) for k in keys)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: cannot read as a .npz file with arrays {', '.join(keys)}: {e}") from None


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (expected magic bytes 00 00 <type> <ndim>, got {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header (expected {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(directory: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    # Some mirrors name them train-images.idx3-ubyte
    alt = stem.replace("-idx", ".idx")
    for name in (alt, alt + ".gz"):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")


def _idx_dir(path: str) -> tuple[np.ndarray, ...]:
    files = [_find(path, s) for s in _IDX_STEMS]
    missing = [s for s, f in zip(_IDX_STEMS, files) if f is None]
    if missing:
        raise DataError(
            f"{path}: an MNIST-style directory needs IDX files {', '.join(_IDX_STEMS)} (raw or .gz); "
            f"missing {', '.join(missing)}"
        )
    xtr, ytr, xte, yte = (_read_idx(f) for f in files)  # type: ignore[arg-type]
    for x, y, f in ((xtr, ytr, files[0]), (xte, yte, files[2])):
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(f"{f}: expected images (N, H, W) matching labels (N,), got {x.shape} and {y.shape}")
    scale = 255.0 if xtr.dtype == np.uint8 else 1.0
    return (xtr.astype(np.float32)[..., None] / scale, ytr, xte.astype(np.float32)[..., None] / scale, yte)


_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def _cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
    except Exception as e:
        raise DataError(f"{path}: cannot read as a CIFAR-10 python batch (a pickled dict): {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: a CIFAR-10 batch is a pickled dict with b'data' and b'labels', got {type(d)}")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path}: a CIFAR-10 batch needs keys b'data' and b'labels', got {sorted(map(str, d))}")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataError(f"{path}: expected data (N, 3072) and labels (N,), got {data.shape} and {labels.shape}")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return x, labels


def _cifar_dir(path: str) -> tuple[np.ndarray, ...]:
    present = [n for n in _CIFAR_TRAIN if os.path.isfile(os.path.join(path, n))]
    if not present or not os.path.isfile(os.path.join(path, "test_batch")):
        raise DataError(
            f"{path}: a CIFAR-10 directory needs data_batch_1 ... data_batch_5 and test_batch; found "
            f"{', '.join(sorted(os.listdir(path))) or 'nothing'}"
        )
    parts = [_cifar_batch(os.path.join(path, n)) for n in present]
    xte, yte = _cifar_batch(os.path.join(path, "test_batch"))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xte, yte


def _as_images(x: np.ndarray, path: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise DataError(f"{path}: {name} must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim not in (2, 4):
        raise DataError(f"{path}: {name} must be (N, D), (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32)


def load_dataset(source: str = "digits", *, seed: int = 0, test_fraction: float = 0.2,
                 normalize: bool = True) -> Dataset:
    """Load ``source`` (``digits``, a ``.npz``, an IDX directory or a CIFAR-10 directory)."""
    if source == "digits":
        xtr, ytr, xte, yte = _digits(seed, test_fraction)
        name = "digits"
    else:
        path = os.path.expanduser(source)
        if not os.path.exists(path):
            raise DataError(
                f"{path}: no such file or directory (expected 'digits', a .npz with x_train, y_train, x_test, "
                "y_test, a directory of MNIST IDX files or a directory of CIFAR-10 python batches)"
            )
        if os.path.isfile(path):
            if not path.endswith(".npz"):
                raise DataError(f"{path}: a data file must be a .npz with x_train, y_train, x_test, y_test")
            xtr, ytr, xte, yte = _npz(path)
        elif any(os.path.isfile(os.path.join(path, n)) for n in ("test_batch",) + _CIFAR_TRAIN):
            xtr, ytr, xte, yte = _cifar_dir(path)
        else:
            xtr, ytr, xte, yte = _idx_dir(path)
        name = os.path.basename(os.path.normpath(path))
        xtr, xte = _as_images(xtr, path, "x_train"), _as_images(xte, path, "x_test")
        if xtr.shape[1:] != xte.shape[1:]:
            raise DataError(f"{path}: x_train and x_test shapes differ: {xtr.shape[1:]} vs {xte.shape[1:]}")
    ytr, yte = np.asarray(ytr), np.asarray(yte)
    src = source
    for y, x, nm in ((ytr, xtr, "y_train"), (yte, xte, "y_test")):
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{src}: {nm} must be integer labels of shape (N,) matching the images, got {y.shape}")
        if y.dtype.kind not in "iu" or (y.size and y.min() < 0):
            raise DataError(f"{src}: {nm} must be non-negative integer class labels, got dtype {y.dtype}")
    if xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise DataError(f"{src}: train and test sets must not be empty, got {xtr.shape[0]} and {xte.shape[0]}")
    num_classes = int(max(ytr.max(), yte.max())) + 1
    if normalize:
        axes = tuple(range(xtr.ndim - 1))
        mean = xtr.mean(axis=axes, keepdims=True)
        std = xtr.std(axis=axes, keepdims=True)
        std = np.where(std > 0, std, 1.0) if xtr.ndim == 2 else np.maximum(std, 1e-6)
        xtr = ((xtr - mean) / std).astype(np.float32)
        xte = ((xte - mean) / std).astype(np.float32)
    return Dataset(name, np.ascontiguousarray(xtr), ytr.astype(np.int32), np.ascontiguousarray(xte),
                   yte.astype(np.int32), num_classes)


# ----------------------------------------------------------------------------- iterator

class BatchIterator:
    """Seeded shuffling over ``n`` examples in batches of ``batch_size`` (last partial batch dropped).

    Epoch ``e`` uses the permutation ``numpy.random.default_rng([seed, e]).permutation(n)``, so the whole
    stream is a function of ``(seed, epoch, position)`` — the state saved in checkpoints.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, *, epoch: int = 0, position: int = 0):
        if batch_size > n:
            raise ValueError(f"data.batch_size={batch_size} is larger than the training set ({n} examples)")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.epoch, self.position = int(epoch), int(position)
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def _permutation(self) -> np.ndarray:
        if self._perm_epoch != self.epoch:
            self._perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            self._perm_epoch = self.epoch
        return self._perm  # type: ignore[return-value]

    def next_indices(self) -> np.ndarray:
        """Indices of the next batch; advances the state."""
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
        start = self.position * self.batch_size
        idx = self._permutation()[start: start + self.batch_size]
        self.position += 1
        return idx

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
