"""Datasets as in-memory arrays, and a seeded shuffling batch iterator with checkpointable state.

Sources (``data.source``):

* ``digits`` — the 1,797 8x8 handwritten digits bundled with scikit-learn (no download), split with a
  seeded permutation into train and test (``test_fraction``).
* ``mnist1d`` — MNIST-1D (Greydanus, 2020): 5,000 one-dimensional signals of length 40, generated locally
  by the ``mnist1d`` package with its standard arguments (4,000 train, 1,000 test) and cached; unlike the
  digits, schedules and strategies give visibly different results on it.
* ``*.npz`` — arrays ``x_train, y_train`` and optionally ``x_test, y_test`` (without them a seeded
  ``test_fraction`` of the examples is held out, as for the digits): inputs of any shape (flat ``(N, D)``
  features, ``(N, L)`` or ``(N, L, C)`` sequences, ``(N, H, W[, C])`` images), integer class labels ``(N,)``
  or float regression targets ``(N,)``/``(N, T)``. Read with ``allow_pickle=False``: an object array is
  refused, never unpickled.
* a directory of MNIST / Fashion-MNIST IDX files (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``).
* a directory of CIFAR-10 python batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``). These are
  pickles, and unpickling a crafted file runs any code it holds, so they are unpickled only when every file
  matches the official CIFAR-10 release's MD5 (:data:`CIFAR10_MD5`, the checksums torchvision checks), or
  with ``trust_pickle=True`` (``data.trust_pickle: true``); otherwise a :class:`DataError` and nothing is
  read.

Class labels are the integers ``0 .. C-1`` as stored: every one of them must occur in the training labels
(a gap such as 0, 1, 2, 10 would silently add output units that never see an example), and a test or
validation label must be one of them. With ``num_classes=C`` (``data.num_classes``) the labels are checked
against ``0 .. C-1`` instead, and classes absent from a split are allowed.

Or your own arrays (:func:`from_arrays`), used as given. IDX and CIFAR images are float32 NHWC in [0, 1]
(uint8 inputs of a ``.npz`` are scaled likewise); with ``normalize`` each input channel (the last axis) is
standardised with the training split's mean and standard deviation. A validation split
(``validation_fraction``) is carved from the training examples with the data seed, before normalising.
A missing or malformed file, or non-finite inputs, raise :class:`DataError` naming the path (and the array
and row) and what was expected.

>>> from lrjax.engine import load_dataset, BatchIterator
>>> ds = load_dataset("digits", seed=0, validation_fraction=0.1)
>>> ds.x_train.shape[1:], ds.num_classes, ds.num_train, len(ds.y_val)
((8, 8, 1), 10, 1294, 144)
>>> it = BatchIterator(ds.num_train, batch_size=32, seed=0)
>>> idx = it.next_indices(); it.state_dict()
{'seed': 0, 'epoch': 0, 'position': 1}
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from lrjax._checks import integer
from lrjax.engine._config import source_name
from lrjax.engine._util import cache_dir

__all__ = ["Dataset", "DataError", "BatchIterator", "load_dataset", "from_arrays", "CIFAR10_MD5", "check_token_windows"]


class DataError(ValueError):
    """A data file is missing or not in the expected format; the message names the path."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train, test and (optional) validation arrays.

    Inputs are float32 arrays of any shape ``(N, ...)``. Targets are int32 class labels ``(N,)`` (then
    ``num_classes`` is their count) or float32 regression targets ``(N,)`` / ``(N, T)`` (``num_classes``
    is None). ``x_val``/``y_val`` are None without a validation split.

    Token windows (language models): inputs and targets are int32 ``(N, T)`` (a target < 0 is padding) and
    ``num_classes`` is the vocabulary. For a text corpus ``stream`` holds the training bytes, from which
    training draws fresh windows on the device; ``x_train``/``y_train`` are then a fixed sample of windows of
    it (what an evaluation of the training split scores) and ``x_val``... the fixed evaluation windows of the
    other splits. ``info``: what a run records about the data (a corpus's size, hash and files).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    stream: np.ndarray | None = None
    info: dict[str, Any] | None = None

    @property
    def num_train(self) -> int:
        """Training examples: rows, or for a text stream the windows of one pass over it (``"1 epoch"``)."""
        if self.stream is not None:
            return max(1, (int(self.stream.size) - 1) // self.context)
        return int(self.x_train.shape[0])

    @property
    def sequence(self) -> bool:
        """Token windows: integer targets with a time axis, ``(N, T)``."""
        return self.y_train.dtype.kind in "iu" and self.y_train.ndim == 2

    @property
    def context(self) -> int | None:
        """Tokens per window (``T``) for token windows, else None."""
        return int(self.y_train.shape[1]) if self.sequence else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape (no batch axis)."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def is_classification(self) -> bool:
        return self.num_classes is not None

    @property
    def num_outputs(self) -> int:
        """What a model must output per example: the class count, or the size of one target."""
        if self.num_classes is not None:
            return int(self.num_classes)
        return int(math.prod(self.y_train.shape[1:]))

    @property
    def has_validation(self) -> bool:
        return self.x_val is not None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name == "val":
            if self.x_val is None:
                raise ValueError(f"{self.name}: no validation split (set data.validation_fraction > 0)")
            return self.x_val, self.y_val  # type: ignore[return-value]
        if name == "test":
            return self.x_test, self.y_test
        if name == "train":
            return self.x_train, self.y_train
        raise ValueError(f"split must be 'train', 'val' or 'test', got split={name!r}")


# ----------------------------------------------------------------------------- loaders

def _split_test(x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float, where: str
                ) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)``: the first ``round(N * test_fraction)`` examples of the seeded
    permutation ``default_rng(seed).permutation(N)`` are the test split."""
    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n_test >= n:
        raise DataError(f"{where}: test_fraction={test_fraction} of {n} examples leaves {n_test} for the test "
                        f"split and {n - n_test} for training; both need at least one")
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def _digits(seed: int, test_fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits  # noqa: PLC0415 - heavy: only the digits need scikit-learn

    d = load_digits()
    x = d.images.astype(np.float32)[..., None] / 16.0  # (1797, 8, 8, 1) in [0, 1]
    y = d.target.astype(np.int32)
    return _split_test(x, y, seed, test_fraction, "digits")


def _npz(path: str, seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, ...]:
    """The arrays of a .npz (``allow_pickle=False``); without ``x_test, y_test`` a seeded test split."""
    need, split = ("x_train", "y_train"), ("x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in need if k not in f.files]
            has = [k for k in split if k in f.files]
            if missing or len(has) == 1:
                missing += [k for k in split if k not in f.files] if has else []
                raise DataError(
                    f"{path}: a .npz dataset needs arrays x_train, y_train and optionally x_test with y_test "
                    f"(without them a seeded data.test_fraction is held out); missing {', '.join(missing)} "
                    f"(found {', '.join(f.files) or 'none'})"
                )
            arrays = {k: np.asarray(f[k]) for k in need + tuple(has)}
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: cannot read as a .npz file with arrays x_train, y_train[, x_test, y_test]: "
                        f"{' '.join(str(e).split())}") from None
    if has:
        return tuple(arrays[k] for k in need + split)
    x, y = arrays["x_train"], arrays["y_train"]
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"{path}: x_train and y_train must hold one target per example, got shapes {x.shape} and "
                        f"{y.shape}")
    return _split_test(x, y, seed, test_fraction, path)


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:  # a truncated .gz ends in EOFError
        raise DataError(f"{path}: cannot read IDX file ({type(e).__name__}: {e or 'truncated'})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (expected magic bytes 00 00 <type> <ndim>, got {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header (expected {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: dimensions that overflow int64 stay exact
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

#: The MD5 of each file of the official CIFAR-10 python release (cifar-10-python.tar.gz), as torchvision's
#: ``CIFAR10`` checks them: lrjax unpickles a CIFAR folder only when every file matches (or when trusted).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


def _md5(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_official(path: str, names: list[str]) -> None:
    """Refuse (before anything is unpickled) a CIFAR folder whose files are not the official release's."""
    for n in names:
        f = os.path.join(path, n)
        try:
            digest = _md5(f)
        except OSError as e:
            raise DataError(f"{f}: cannot read ({e.strerror or e})") from None
        if digest != CIFAR10_MD5[n]:
            raise DataError(
                f"{f}: not the official CIFAR-10 release (MD5 {digest}, expected {CIFAR10_MD5[n]}); CIFAR batches "
                "are pickles, and unpickling a crafted file runs any code in it, so lrjax reads only the official "
                "files. Set data.trust_pickle: true only for a folder you trust, or convert it to a .npz"
            )


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


def _cifar_dir(path: str, trust_pickle: bool = False) -> tuple[np.ndarray, ...]:
    present = [n for n in _CIFAR_TRAIN if os.path.isfile(os.path.join(path, n))]
    if not present or not os.path.isfile(os.path.join(path, "test_batch")):
        raise DataError(
            f"{path}: a CIFAR-10 directory needs data_batch_1 ... data_batch_5 and test_batch; found "
            f"{', '.join(sorted(os.listdir(path))) or 'nothing'}"
        )
    if not trust_pickle:
        _check_official(path, present + ["test_batch"])
    parts = [_cifar_batch(os.path.join(path, n)) for n in present]
    xte, yte = _cifar_batch(os.path.join(path, "test_batch"))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xte, yte


def _mnist1d() -> tuple[np.ndarray, ...]:
    """MNIST-1D with the package's standard arguments, generated once and cached as a .npz."""
    path = os.path.join(cache_dir(), "mnist1d-v1.npz")
    if os.path.isfile(path):
        try:
            return _npz(path)
        except DataError:  # a broken cache file (killed mid-write): make it again
            pass
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # noqa: PLC0415 - heavy: only MNIST-1D needs it
    except ImportError as e:  # pragma: no cover - mnist1d is a dependency
        raise DataError(f"data.source='mnist1d' needs the mnist1d package: pip install mnist1d ({e})") from None
    state = np.random.get_state()  # make_dataset seeds numpy's global generator; leave the caller's alone
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    arrays = {"x_train": d["x"].astype(np.float32), "y_train": d["y"].astype(np.int32),
              "x_test": d["x_test"].astype(np.float32), "y_test": d["y_test"].astype(np.int32)}
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a concurrent or killed writer never leaves half a file under the name
    return tuple(arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))


def _inputs(x: Any, where: str, name: str) -> np.ndarray:
    """Inputs as float32 ``(N, ...)`` (uint8 scaled to [0, 1]); every value finite."""
    x = np.asarray(x)
    if x.dtype.kind not in "iufb":
        raise DataError(f"{where}: {name} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{where}: {name} must have a batch axis and at least one more, (N, ...), got shape {x.shape}")
    if x.size == 0:
        raise DataError(f"{where}: {name} is empty (shape {x.shape}); it needs at least one example of at least "
                        "one value")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: {name} holds non-finite values (NaN or inf), first in row {row} "
                        f"({int(bad.sum())} rows in all); clean the data before training")
    return x


def _show(labels: np.ndarray, limit: int = 8) -> str:
    text = ", ".join(str(int(v)) for v in labels[:limit])
    return text + (f", ... ({len(labels)} in all)" if len(labels) > limit else "")


def _classes(ytr: np.ndarray, others: Mapping[str, np.ndarray], where: str, num_classes: int | None) -> int:
    r"""The class count ``C`` of integer labels: the classes are ``0 .. C-1`` as stored.

    Without ``num_classes``: :math:`C = \max(y_{train}) + 1`, and every class ``0 .. C-1`` must occur in
    ``y_train`` (a gap would widen the model by outputs that never see an example) and every label of
    ``others`` (``y_test``, ``y_val``) must be one of them. With ``num_classes``: every label is below it.
    """
    if num_classes is not None:
        for nm, y in (("y_train", ytr), *others.items()):
            bad = np.unique(y[y >= num_classes])
            if bad.size:
                raise DataError(f"{where}: {nm} holds labels {_show(bad)}, outside data.num_classes={num_classes} "
                                f"(classes 0 .. {num_classes - 1}); raise data.num_classes or relabel the data")
        return int(num_classes)
    present = np.unique(ytr)
    c = int(present[-1]) + 1
    if present.size != c:
        gaps = np.setdiff1d(np.arange(c), present)
        raise DataError(f"{where}: y_train's labels are {_show(present)}, but classes are 0 .. C-1 as stored and "
                        f"{_show(gaps)} never occur{'s' if gaps.size == 1 else ''}; relabel them 0 .. "
                        f"{present.size - 1}, or set data.num_classes if those classes exist but are absent here")
    for nm, y in others.items():
        bad = np.unique(y[y >= c])
        if bad.size:
            raise DataError(f"{where}: {nm} holds labels {_show(bad)} that y_train never has (its classes are 0 .. "
                            f"{c - 1}); a model cannot learn them: fix the split, or set data.num_classes")
    return c


def _targets(ytr: Any, yte: Any, xtr: np.ndarray, xte: np.ndarray, where: str, num_classes: int | None = None
             ) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Integer labels (classification; :func:`_classes`) or float targets (regression), checked against the
    inputs."""
    ytr, yte = np.asarray(ytr), np.asarray(yte)
    kinds = {ytr.dtype.kind, yte.dtype.kind}
    for y, x, nm in ((ytr, xtr, "y_train"), (yte, xte, "y_test")):
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: {nm} must have one target per example of x ({x.shape[0]}), got shape {y.shape}")
        if y.dtype.kind not in "iuf":
            raise DataError(f"{where}: {nm} must be integer class labels or float targets, got dtype {y.dtype}")
    if kinds <= set("iu"):
        for y, nm in ((ytr, "y_train"), (yte, "y_test")):
            if y.ndim != 1:
                raise DataError(f"{where}: {nm} must be integer labels of shape (N,), got shape {y.shape} "
                                "(float targets train a regression: loss: mse)")
            if y.size and y.min() < 0:
                raise DataError(f"{where}: {nm} must be non-negative integer class labels, got min {y.min()}")
        return ytr.astype(np.int32), yte.astype(np.int32), _classes(ytr, {"y_test": yte}, where, num_classes)
    if num_classes is not None:
        raise DataError(f"{where}: data.num_classes={num_classes} is for integer class labels, but the targets are "
                        f"floats ({ytr.dtype}: a regression); remove data.num_classes")
    if ytr.shape[1:] != yte.shape[1:]:
        raise DataError(f"{where}: y_train and y_test target shapes differ: {ytr.shape[1:]} vs {yte.shape[1:]}")
    ytr, yte = ytr.astype(np.float32), yte.astype(np.float32)
    for y, nm in ((ytr, "y_train"), (yte, "y_test")):
        bad = ~np.isfinite(y.reshape(y.shape[0], -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{where}: {nm} holds non-finite values (NaN or inf), first in row "
                            f"{int(np.flatnonzero(bad)[0])}")
    return ytr, yte, None


def _normalize(x: np.ndarray, *others: np.ndarray | None) -> list[np.ndarray | None]:
    """Standardise ``x`` and ``others`` with ``x``'s statistics: per feature for ``(N, D)``, per channel
    (the last axis) otherwise."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    std = np.where(std > 0, std, 1.0) if x.ndim != 4 else np.maximum(std, 1e-6)
    return [None if a is None else np.ascontiguousarray(((a - mean) / std).astype(np.float32)) for a in (x, *others)]


def _carve(xtr: np.ndarray, ytr: np.ndarray, fraction: float, seed: int, where: str):
    """``(x_train, y_train, x_val, y_val)``: a seeded ``fraction`` of the training examples held out."""
    if not fraction:
        return xtr, ytr, None, None
    n = xtr.shape[0]
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise DataError(f"{where}: validation_fraction={fraction} of {n} training examples leaves "
                        f"{n_val} for validation and {n - n_val} for training; both need at least one")
    perm = np.random.default_rng([seed, 0x5A1]).permutation(n)
    va, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return xtr[tr], ytr[tr], xtr[va], ytr[va]


def check_token_windows(x: Any, y: Any, *, vocab_size: int, where: str, name: str = "train"
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Token windows ``x_<name>``, ``y_<name>`` (integers ``(N, T)``, from a ``.npz``) as ``int32``, checked:
    same shape, inputs in ``[0, vocab_size)``, targets below ``vocab_size`` (a negative target is padding).
    A :class:`DataError` names ``where``, the array, the row and the value otherwise."""
    x, y = np.asarray(x), np.asarray(y)
    for a, nm in ((x, f"x_{name}"), (y, f"y_{name}")):
        if a.dtype.kind not in "iu" or a.ndim != 2:
            raise DataError(f"{where}: token windows {nm} must be integers (N, T), got {a.dtype} {a.shape}")
    if x.shape != y.shape:
        raise DataError(f"{where}: x_{name} {x.shape} and y_{name} {y.shape} must have one target per token")
    for a, nm, lo in ((x, f"x_{name}", 0), (y, f"y_{name}", None)):
        bad = (a >= vocab_size) | (a < 0 if lo is not None else False)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            raise DataError(f"{where}: {nm}[{r}, {c}] = {int(a[r, c])} is not a token of the vocabulary of "
                            f"{vocab_size} (inputs in [0, {vocab_size}); a target < 0 is padding)")
    return x.astype(np.int32), y.astype(np.int32)


def _is_windows(x: Any, y: Any) -> bool:
    """Token windows: integer inputs and integer targets of one shape ``(N, T)``."""
    x, y = np.asarray(x), np.asarray(y)
    return x.dtype.kind in "iu" and y.dtype.kind in "iu" and x.ndim == 2 and y.shape == x.shape


def _windows(name: str, where: str, xtr: Any, ytr: Any, xte: Any, yte: Any, *, validation_fraction: float,
             seed: int, x_val: Any, y_val: Any, num_classes: int | None) -> Dataset:
    """A :class:`Dataset` of token windows: the vocabulary is ``num_classes`` (default: the largest token + 1);
    every input is a token of it, every target one or padding (< 0); the splits have windows of one length."""
    given = [("train", xtr, ytr), ("test", xte, yte)] + ([("val", x_val, y_val)] if x_val is not None else [])
    for nm, x, y in given:
        x, y = np.asarray(x), np.asarray(y)
        if not _is_windows(x, y):
            raise DataError(f"{where}: token windows x_{nm}, y_{nm} must be integers of one shape (N, T), got "
                            f"{x.dtype} {x.shape} and {y.dtype} {y.shape}")
        if x.shape[0] == 0:
            raise DataError(f"{where}: x_{nm} is empty (shape {x.shape}); it needs at least one window")
        if x.shape[1] != np.asarray(xtr).shape[1]:
            raise DataError(f"{where}: x_{nm} has windows of {x.shape[1]} tokens, x_train of "
                            f"{np.asarray(xtr).shape[1]}; every split needs one window length")
    vocab = num_classes if num_classes is not None else 1 + max(
        int(max(np.asarray(x).max(), np.asarray(y).max())) for _, x, y in given)
    arrays = {nm: check_token_windows(x, y, vocab_size=vocab, where=where, name=nm) for nm, x, y in given}
    (xtr, ytr), (xte, yte) = arrays["train"], arrays["test"]
    if "val" in arrays:
        if validation_fraction:
            raise DataError(f"{where}: x_val/y_val were given and validation_fraction={validation_fraction}; "
                            "use one or the other")
        xva, yva = arrays["val"]
    else:
        xtr, ytr, xva, yva = _carve(xtr, ytr, validation_fraction, seed, where)
    return Dataset(name, np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte, int(vocab), xva, yva)


def _assemble(name: str, where: str, xtr: Any, ytr: Any, xte: Any, yte: Any, *, normalize: bool,
              validation_fraction: float, seed: int, x_val: Any = None, y_val: Any = None,
              num_classes: int | None = None) -> Dataset:
    if num_classes is not None:
        num_classes = integer("", "data.num_classes", num_classes, lo=1)
    if _is_windows(xtr, ytr):  # token windows: tokens stay integers, nothing is normalised
        return _windows(name, where, xtr, ytr, xte, yte, validation_fraction=validation_fraction, seed=seed,
                        x_val=x_val, y_val=y_val, num_classes=num_classes)
    given = num_classes
    xtr, xte = _inputs(xtr, where, "x_train"), _inputs(xte, where, "x_test")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{where}: x_train and x_test shapes differ: {xtr.shape[1:]} vs {xte.shape[1:]}")
    ytr, yte, num_classes = _targets(ytr, yte, xtr, xte, where, num_classes)
    if x_val is not None:
        if validation_fraction:
            raise DataError(f"{where}: x_val/y_val were given and validation_fraction={validation_fraction}; "
                            "use one or the other")
        xva = _inputs(x_val, where, "x_val")
        yva = np.asarray(y_val)
        if xva.shape[1:] != xtr.shape[1:] or yva.shape[1:] != ytr.shape[1:] or yva.shape[0] != xva.shape[0]:
            raise DataError(f"{where}: x_val/y_val must match the training arrays' shapes, got {xva.shape} and "
                            f"{yva.shape}")
        if num_classes is not None:
            if yva.dtype.kind not in "iu" or (yva.size and yva.min() < 0):
                raise DataError(f"{where}: y_val must be non-negative integer class labels like y_train, got "
                                f"dtype {yva.dtype}")
            _classes(ytr, {"y_val": yva}, where, given)
        yva = yva.astype(ytr.dtype)
    else:
        xtr, ytr, xva, yva = _carve(xtr, ytr, validation_fraction, seed, where)
    if normalize:
        xtr, xte, xva = _normalize(xtr, xte, xva)
    return Dataset(name, np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte, num_classes,
                   None if xva is None else np.ascontiguousarray(xva), yva)


def load_dataset(source: str = "digits", *, seed: int = 0, test_fraction: float = 0.2,
                 normalize: bool = True, validation_fraction: float = 0.0, trust_pickle: bool = False,
                 num_classes: int | None = None) -> Dataset:
    """Load ``source`` (``digits``, ``mnist1d``, a ``.npz``, an IDX directory or a CIFAR-10 directory).

    ``seed`` draws the splits that are not given (the test split of the digits and of a ``.npz`` without
    one, the validation split). ``trust_pickle``: unpickle a CIFAR folder whose files are not the official
    release (see the module docs: only for a folder you trust). ``num_classes``: the class count, when
    some classes are absent from the data (labels are checked against ``0 .. num_classes-1``).
    """
    if source == "digits":
        xtr, ytr, xte, yte = _digits(seed, test_fraction)
        name = where = "digits"
    elif source == "mnist1d":
        xtr, ytr, xte, yte = _mnist1d()
        name = where = "mnist1d"
    else:
        path = where = os.path.expanduser(source)
        if not os.path.exists(path):
            raise DataError(
                f"{path}: no such file or directory (expected 'digits', 'mnist1d', a .npz with x_train, y_train, "
                "x_test, y_test, a directory of MNIST IDX files or a directory of CIFAR-10 python batches)"
            )
        if os.path.isfile(path):
            if not path.endswith(".npz"):
                raise DataError(f"{path}: a data file must be a .npz with x_train, y_train (and optionally "
                                "x_test, y_test)")
            xtr, ytr, xte, yte = _npz(path, seed, test_fraction)
        elif any(os.path.isfile(os.path.join(path, n)) for n in ("test_batch",) + _CIFAR_TRAIN):
            xtr, ytr, xte, yte = _cifar_dir(path, trust_pickle)
        else:
            xtr, ytr, xte, yte = _idx_dir(path)
        name = source_name(path)
    return _assemble(name, where, xtr, ytr, xte, yte, normalize=normalize,
                     validation_fraction=validation_fraction, seed=seed, num_classes=num_classes)


def from_arrays(data: Mapping[str, Any] | Dataset, *, name: str = "arrays", validation_fraction: float = 0.0,
                seed: int = 0, normalize: bool = False, num_classes: int | None = None) -> Dataset:
    """Your own arrays as a :class:`Dataset`: a mapping with ``x_train, y_train, x_test, y_test`` (and
    optionally ``x_val, y_val``), checked like a loaded source and used as given (``normalize=False``).

    A :class:`Dataset` is returned as it is, with a validation split carved when it has none and
    ``validation_fraction > 0``.

    >>> import numpy as np
    >>> ds = from_arrays({"x_train": np.ones((8, 3)), "y_train": np.arange(8.0), "x_test": np.ones((2, 3)),
    ...                   "y_test": np.zeros(2)})
    >>> ds.num_classes is None, ds.num_outputs
    (True, 1)
    """
    if isinstance(data, Dataset):
        if validation_fraction and not data.has_validation:
            xtr, ytr, xva, yva = _carve(data.x_train, data.y_train, validation_fraction, seed, data.name)
            return dataclasses.replace(data, x_train=xtr, y_train=ytr, x_val=xva, y_val=yva)
        return data
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a Dataset or a mapping with x_train, y_train, x_test, y_test arrays, "
                        f"got {type(data).__name__}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    missing = [k for k in keys if k not in data]
    extra = sorted(set(data) - set(keys) - {"x_val", "y_val", "name"})
    if missing or extra or (("x_val" in data) != ("y_val" in data)):
        raise DataError(f"data: a mapping needs arrays {', '.join(keys)} (and optionally x_val with y_val); "
                        f"missing {', '.join(missing) or 'none'}, unknown {', '.join(extra) or 'none'}")
    return _assemble(str(data.get("name", name)), "data", *(data[k] for k in keys), normalize=normalize,
                     validation_fraction=validation_fraction, seed=seed, x_val=data.get("x_val"),
                     y_val=data.get("y_val"), num_classes=num_classes)


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

    def take(self, n: int) -> np.ndarray:
        """The indices of the next ``n`` batches, ``(n, batch_size)``; advances the state."""
        return np.stack([self.next_indices() for _ in range(n)])

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
