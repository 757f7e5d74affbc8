r"""Text as bytes for language models: a corpus of three byte streams, and windows drawn on the device.

A :class:`TextCorpus` holds the train, validation and test splits of a text corpus as 1-D ``uint8`` streams:
the tokens are the bytes themselves (vocabulary 256, no tokenizer). :func:`load_text` reads

* a **file** (any bytes): split into contiguous blocks: the first :math:`1 - f_v - f_t` of the file trains,
  the next :math:`f_v` validates, the last :math:`f_t` tests (``files`` records the byte ranges); a folder
  with one text file is read the same way;
* a **folder**: every text file under it (see :func:`is_text`; hidden files and folders are skipped),
  split *by file* with a seeded assignment (``files`` records the relative paths of each split). Within a
  split the files follow one another in sorted path order, each followed by one NUL byte (``0x00``), which
  no text file holds: the model sees where a file ends;
* nothing (``path=None``): the running Python's standard-library sources (``*.py`` under
  ``sysconfig.get_paths()["stdlib"]``, without ``site-packages``, ``dist-packages`` and the test suites),
  the first ``max_bytes`` (8 MiB by default) in sorted path order: real text on every machine, no download.
  ``python`` records the version, ``sha256`` the bytes; loading takes about 40 ms (warm disk cache).

``sha256`` is the hash of the bytes read: for a file, of the file as it is (``sha256sum FILE``, or its first
``max_bytes``); for a folder, of its text files' bytes in sorted relative-path order, each followed by one
NUL byte: the corpus before it is split. The split itself is a function of the files (recorded), the
fractions and the seed.

Training draws windows of ``context + 1`` bytes at random offsets *on the device*: :func:`window_batch` is a
pure function of the stream, a key and the micro-batch number :math:`i`,

.. math:: o_b \sim \mathcal U\{0, \dots, L - T - 1\}\ \text{(key folded with } i),\qquad
          x_{bt} = s_{o_b + t},\quad y_{bt} = s_{o_b + t + 1},\quad t < T,

so nothing of size :math:`N \times T` is ever built: the memory is the stream's bytes plus a few batches,
and a resumed run draws the same windows from the same :math:`i` without any iterator state.
Evaluation uses fixed windows (:func:`eval_windows`): ``count`` seeded ones, or all of the stream, strided.

Intended integration (not wired here): ``data: {source: text, path: FILE|DIR, context: 128}`` loads a
:class:`TextCorpus`; the engine keeps ``train`` on the device, and the runner's ``batch(source, i)``
becomes :func:`text_batch` over ``Source(arrays=stream, index=key, offset=0)`` (:func:`text_source`); the
evaluation splits are :func:`eval_windows` of ``val`` and ``test`` fed to ``eval_batches`` as any other
``(x, y)``; the task is the sequence task of ``make_task`` (targets ``(context,)``, 256 outputs).
``.npz`` files of token windows go through :func:`check_token_windows`.

>>> import jax, jax.numpy as jnp, numpy as np
>>> s = np.frombuffer(b"hello, world! " * 20, np.uint8)
>>> b = window_batch(jnp.asarray(s), jax.random.key_data(jax.random.key(0)), 3, batch_size=2, context=5)
>>> b["x"].shape, b["y"].dtype
((2, 5), dtype('int32'))
>>> bytes(np.asarray(b["x"][0], np.uint8)) in s.tobytes()
True
>>> x, y = eval_windows(np.frombuffer(b"abcdefgh", np.uint8), context=3, count=None, seed=0)
>>> x.tolist(), y.tolist()
([[97, 98, 99], [100, 101, 102], [103, 0, 0]], [[98, 99, 100], [101, 102, 103], [104, -1, -1]])
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import integer, number
from lrjax.engine._config import source_name
from lrjax.engine._data import DataError, Dataset, check_token_windows
from lrjax.engine._runner import Source

__all__ = ["TextCorpus", "load_text", "text_dataset", "is_text", "window_batch", "text_source", "text_batch",
           "eval_windows",
           "check_token_windows", "VOCAB_SIZE", "SEPARATOR", "STDLIB_MAX_BYTES"]

VOCAB_SIZE = 256
"""Bytes are the tokens."""

SEPARATOR = 0
"""The byte after each file of a folder (NUL: no text file holds one)."""

STDLIB_MAX_BYTES = 8 * 2**20
"""The default corpus's size cap (8 MiB of the about 12 MB of CPython 3.11's non-test sources)."""

_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})
_SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class TextCorpus:
    """A byte corpus split three ways (see the module docs).

    ``train``, ``val``, ``test``: 1-D ``uint8`` streams (``val`` is None when ``validation_fraction`` is 0).
    ``files``: per split, the relative paths of its files (a folder) or ``(file, start, stop)``, its byte
    range ``[start, stop)`` of the one file. ``num_bytes``: bytes read (before separators); ``sha256``: their hash; ``python``: the version
    of the Python whose standard library is the corpus, else None; ``context``: tokens per training example.
    """

    name: str
    train: np.ndarray
    val: np.ndarray | None
    test: np.ndarray
    files: dict[str, list[Any]]
    num_bytes: int
    sha256: str
    python: str | None
    context: int
    path: str | None = None

    vocab_size = VOCAB_SIZE

    @property
    def has_validation(self) -> bool:
        return self.val is not None

    def split(self, name: str) -> np.ndarray:
        """The stream of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in _SPLITS:
            raise ValueError(f"split must be 'train', 'val' or 'test', got split={name!r}")
        s = getattr(self, name)
        if s is None:
            raise ValueError(f"{self.name}: no validation split (set data.validation_fraction > 0)")
        return s

    def record(self) -> dict[str, Any]:
        """What a run records about its data (strict-JSON values)."""
        return {"name": self.name, "path": self.path, "num_bytes": self.num_bytes, "sha256": self.sha256,
                "python": self.python, "context": self.context, "vocab_size": VOCAB_SIZE,
                "split_bytes": {k: int(getattr(self, k).size) for k in _SPLITS if getattr(self, k) is not None},
                "files": {k: [list(f) if isinstance(f, tuple) else f for f in v] for k, v in self.files.items()}}


def is_text(data: bytes) -> bool:
    r"""Text: no NUL byte, and valid UTF-8 (ASCII included).

    >>> is_text("naïve café\n".encode()), is_text(b"\x89PNG\r\n\x1a\n\x00"), is_text(b"caf\xe9")
    (True, False, False)
    """
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ----------------------------------------------------------------------------- reading

def _walk(root: str, *, suffix: str | None, skip: frozenset[str]) -> list[str]:
    """Relative POSIX paths of the regular files under ``root``, sorted (hidden entries and ``skip`` out)."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in skip)
        for n in sorted(names):
            if n.startswith(".") or (suffix is not None and not n.endswith(suffix)):
                continue
            full = os.path.join(folder, n)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(found)


def _read_texts(root: str, rels: list[str], max_bytes: int | None) -> list[tuple[str, bytes]]:
    """``(path, bytes)`` of the readable text files among ``rels`` in order, up to ``max_bytes`` in all (a
    file that would pass the cap is left out, and later, smaller ones may still fit)."""
    out, total = [], 0
    for rel in rels:
        try:
            with open(os.path.join(root, rel), "rb") as fh:
                data = fh.read()
        except OSError:  # unreadable (permissions, a broken link, gone since the walk): not part of the corpus
            continue
        if not data or not is_text(data):
            continue
        if max_bytes is not None and total + len(data) > max_bytes:
            continue
        out.append((rel, data))
        total += len(data)
    return out


def _assign(sizes: list[int], fractions: tuple[float, float], seed: int) -> list[str]:
    """The split of each file. In a seeded order, a file goes to the first of val, test that it leaves within
    half a file of its target bytes, else to train; once the files left are no more than the splits still
    empty, each goes to the empty split whose target it fits best (so every split gets one file at least)."""
    total = float(sum(sizes))
    targets = {"train": (1.0 - sum(fractions)) * total, "val": fractions[0] * total, "test": fractions[1] * total}
    splits = [s for s in _SPLITS if targets[s] > 0]
    got = dict.fromkeys(splits, 0)
    count = dict.fromkeys(splits, 0)
    out = ["train"] * len(sizes)
    order = np.random.default_rng(seed).permutation(len(sizes))
    for pos, i in enumerate(order):
        empty = [s for s in splits if count[s] == 0]
        if len(empty) >= len(sizes) - pos:
            choice = min(empty, key=lambda s: abs(targets[s] - sizes[i]))
        else:
            choice = next((s for s in ("val", "test") if s in got and got[s] + sizes[i] / 2 <= targets[s]), "train")
        out[i] = choice
        got[choice] += sizes[i]
        count[choice] += 1
    return out


def _folder_splits(files: list[tuple[str, bytes]], fractions: tuple[float, float], seed: int
                   ) -> tuple[dict[str, np.ndarray | None], dict[str, list[Any]]]:
    need = 1 + sum(f > 0 for f in fractions)
    if len(files) < need:
        raise ValueError(f"{len(files)} text files for {need} splits (one file at least each)")
    where = _assign([len(d) for _, d in files], fractions, seed)
    streams: dict[str, np.ndarray | None] = {}
    names: dict[str, list[Any]] = {}
    sep = bytes([SEPARATOR])
    for split, frac in zip(_SPLITS, (1.0, *fractions)):
        if frac <= 0:
            streams[split], names[split] = None, []
            continue
        mine = [(p, d) for (p, d), s in zip(files, where) if s == split]
        names[split] = [p for p, _ in mine]
        streams[split] = np.frombuffer(b"".join(d + sep for _, d in mine), np.uint8)
    return streams, names


def _block_splits(rel: str, data: bytes, fractions: tuple[float, float]
                  ) -> tuple[dict[str, np.ndarray | None], dict[str, list[Any]]]:
    n = len(data)
    n_val, n_test = (int(round(f * n)) for f in fractions)
    bounds = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test), "test": (n - n_test, n)}
    arr = np.frombuffer(data, np.uint8)
    streams: dict[str, np.ndarray | None] = {}
    names: dict[str, list[Any]] = {}
    for split, frac in zip(_SPLITS, (1.0, *fractions)):
        lo, hi = bounds[split]
        streams[split] = arr[lo:hi] if frac > 0 else None
        names[split] = [(rel, lo, hi)] if frac > 0 else []
    return streams, names


def load_text(path: str | None, *, context: int, validation_fraction: float = 0.1, test_fraction: float = 0.1,
              seed: int = 0, max_bytes: int | None = None) -> TextCorpus:
    """The :class:`TextCorpus` of a file, a folder of text files, or (``path=None``) the standard library.

    Args:
      path: a file (split in contiguous blocks), a folder (split by file) or None (Python's own sources).
      context: tokens per training example (each split must hold ``context + 1`` bytes at least).
      validation_fraction: in [0, 1); 0: no validation split.
      test_fraction: in (0, 1).
      seed: draws the files' assignment (folders only).
      max_bytes: read at most this many bytes (None: all; for the standard library 8 MiB).

    Raises :class:`DataError` naming the path for a missing path, a folder with no readable text file (or too
    few for the splits), a split shorter than one window; ``ValueError`` for an impossible argument.

    >>> c = load_text(None, context=128, max_bytes=200_000)
    >>> c.name, c.train.dtype, c.num_bytes <= 200_000, len(c.files["val"]) > 0
    ('python-stdlib', dtype('uint8'), True, True)
    """
    fn = "load_text"
    context = integer(fn, "context", context, lo=1)
    fv = number(fn, "validation_fraction", validation_fraction, lo=0, hi=1, hi_open=True)
    ft = number(fn, "test_fraction", test_fraction, lo=0, hi=1, lo_open=True, hi_open=True)
    if fv + ft >= 1:
        raise ValueError(f"{fn}: validation_fraction + test_fraction must be < 1 (some text must train), got "
                         f"validation_fraction={validation_fraction!r}, test_fraction={test_fraction!r}")
    seed = integer(fn, "seed", seed)
    if max_bytes is not None:
        max_bytes = integer(fn, "max_bytes", max_bytes, lo=1)
    python = None
    if path is None:
        root = sysconfig.get_paths()["stdlib"]
        python = ".".join(map(str, sys.version_info[:3]))
        files = _read_texts(root, _walk(root, suffix=".py", skip=_SKIP_DIRS),
                            STDLIB_MAX_BYTES if max_bytes is None else max_bytes)
        name, where, single = "python-stdlib", f"the Python {python} standard library ({root})", False
    else:
        root = os.path.expanduser(str(path))
        where, name = root, source_name(root)
        if os.path.isfile(root):
            try:
                with open(root, "rb") as fh:
                    data = fh.read() if max_bytes is None else fh.read(max_bytes)
            except OSError as e:
                raise DataError(f"{root}: cannot read ({type(e).__name__}: {e})") from None
            files, single = [(os.path.basename(root), data)], True
        elif os.path.isdir(root):
            files = _read_texts(root, _walk(root, suffix=None, skip=frozenset()), max_bytes)
            single = len(files) == 1  # one text file: split it in blocks, as a file
            if not files:
                raise DataError(f"{root}: no readable text file in this folder (text: UTF-8 without NUL bytes; "
                                "hidden files are skipped)")
        else:
            raise DataError(f"{root}: no such file or folder (data.path: a text file, or a folder of text files)")
    if not files:  # the standard library under a max_bytes smaller than any file
        raise DataError(f"{where}: no text file of at most max_bytes={max_bytes} bytes")
    digest = hashlib.sha256()
    for _, d in files:
        digest.update(d)
        if not single:
            digest.update(bytes([SEPARATOR]))
    fractions = (fv, ft)
    if single:
        streams, names = _block_splits(files[0][0], files[0][1], fractions)
    else:
        try:
            streams, names = _folder_splits(files, fractions, seed)
        except ValueError as e:
            raise DataError(f"{where}: {e}; add files, set data.validation_fraction: 0, or give one file") from None
    for split in _SPLITS:
        s = streams[split]
        if s is not None and s.size < context + 1:
            sizes = ", ".join(f"{k} {v.size}" for k, v in streams.items() if v is not None)
            raise DataError(f"{where}: the {split} split holds {s.size} bytes, fewer than one window of context + 1 "
                            f"= {context + 1} bytes ({sum(len(d) for _, d in files)} bytes read; splits: {sizes}); "
                            "give more text or a shorter data.context")
    return TextCorpus(name=name, train=streams["train"], val=streams["val"], test=streams["test"],  # type: ignore[arg-type]
                      files=names, num_bytes=sum(len(d) for _, d in files), sha256=digest.hexdigest(),
                      python=python, context=context, path=None if path is None else str(path))


# ----------------------------------------------------------------------------- training windows

def _key(key: jax.Array) -> jax.Array:
    return key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)


def window_batch(stream: jax.Array, key: jax.Array, i: jax.Array | int, *, batch_size: int, context: int
                 ) -> dict[str, jax.Array]:
    """Micro-batch ``i``: ``batch_size`` windows of ``context + 1`` bytes of ``stream`` at offsets drawn with
    ``fold_in(key, i)``, as ``{"x": (B, T) int32, "y": (B, T) int32}`` (``y`` is ``x`` one byte later).

    Pure and jittable (``i`` may be traced; ``key`` is raw ``uint32`` key data or a typed key): each window
    is one ``dynamic_slice`` of the stream, so no ``(N, T)`` array is ever built.
    """
    n = int(stream.shape[0])
    if n < context + 1:
        raise ValueError(f"window_batch: the stream holds {n} bytes, fewer than one window of context + 1 = "
                         f"{context + 1}")
    offsets = jax.random.randint(jax.random.fold_in(_key(key), i), (batch_size,), 0, n - context, jnp.int32)
    windows = jax.vmap(lambda o: jax.lax.dynamic_slice_in_dim(stream, o, context + 1))(offsets).astype(jnp.int32)
    return {"x": windows[:, :-1], "y": windows[:, 1:]}


def text_source(stream: jax.Array, key: jax.Array) -> Source:
    """The runner's :class:`~lrjax.engine.Source` for :func:`text_batch`: the stream, and the data key where
    an index table would be (both leaves: a sweep may stack keys and share the stream)."""
    return Source(stream, key, 0)


def text_batch(*, batch_size: int, context: int) -> Callable[[Source, jax.Array], dict[str, jax.Array]]:
    """The runner's ``batch(source, i)`` for text (:func:`window_batch` of a :func:`text_source`).

    >>> import jax, jax.numpy as jnp
    >>> src = text_source(jnp.arange(50, dtype=jnp.uint8), jax.random.key_data(jax.random.key(1)))
    >>> b = text_batch(batch_size=4, context=8)(src, jnp.int32(7))
    >>> bool((b["y"] == b["x"] + 1).all())
    True
    """
    b = integer("text_batch", "batch_size", batch_size, lo=1)
    t = integer("text_batch", "context", context, lo=1)
    return lambda source, i: window_batch(source.arrays, source.index, i, batch_size=b, context=t)


# ----------------------------------------------------------------------------- evaluation windows

def eval_windows(stream: np.ndarray, *, context: int, count: int | None, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    r"""Fixed evaluation windows of ``stream`` as host ``int32`` arrays ``(x, y)`` of shape ``(n, context)``.

    ``count``: that many windows at offsets drawn with ``seed`` (with replacement, like training's); None:
    every byte after the first is a target exactly once, in windows strided by ``context``:
    :math:`x_k = s_{kT \dots kT+T-1}`, :math:`y_k = s_{kT+1 \dots kT+T}`; the last window is padded
    (``x`` with 0, ``y`` with -1: padding, which counts nowhere).
    """
    fn = "eval_windows"
    t = integer(fn, "context", context, lo=1)
    s = np.asarray(stream)
    if s.ndim != 1:
        raise ValueError(f"{fn}: stream must be 1-D, got shape {s.shape}")
    n = s.size
    if n < t + 1:
        raise ValueError(f"{fn}: the stream holds {n} bytes, fewer than one window of context + 1 = {t + 1}")
    if count is not None:
        k = integer(fn, "count", count, lo=1)
        offsets = np.random.default_rng(integer(fn, "seed", seed)).integers(0, n - t, k)
        idx = offsets[:, None] + np.arange(t + 1)
        w = s[idx].astype(np.int32)
        return w[:, :-1], w[:, 1:]
    nw = -(-(n - 1) // t)
    x = np.zeros(nw * t, np.int32)
    y = np.full(nw * t, -1, np.int32)
    x[: n - 1] = s[:-1]
    y[: n - 1] = s[1:]
    return x.reshape(nw, t), y.reshape(nw, t)


def text_dataset(path: str | None, *, context: int, validation_fraction: float = 0.0, test_fraction: float = 0.1,
                 seed: int = 0, eval_windows_count: int | None = 256, max_bytes: int | None = None) -> Dataset:
    """A :class:`~lrjax.engine.Dataset` of a text corpus (:func:`load_text`): ``stream`` the training bytes
    (windows drawn on the device, :func:`text_batch`), the validation and test splits as fixed evaluation
    windows (:func:`eval_windows`: ``eval_windows_count`` seeded ones, or all strided when None), the training
    split's fixed sample of windows as ``x_train``/``y_train``, the vocabulary of 256 bytes, and the corpus's
    record (size, hash, files, Python version) as ``info``.

    >>> ds = text_dataset(None, context=32, validation_fraction=0.1, max_bytes=200_000)
    >>> ds.sequence, ds.num_classes, ds.input_shape, ds.x_val.shape, ds.stream.dtype
    (True, 256, (32,), (256, 32), dtype('uint8'))
    """
    corpus = load_text(path, context=context, validation_fraction=validation_fraction,
                       test_fraction=test_fraction, seed=seed, max_bytes=max_bytes)

    def windows(split: str, offset: int, count: int | None) -> tuple[np.ndarray, np.ndarray]:
        return eval_windows(corpus.split(split), context=context, count=count, seed=seed + offset)

    xtr, ytr = windows("train", 2, eval_windows_count or 256)  # a sample: the training stream may be long
    xte, yte = windows("test", 1, eval_windows_count)
    xva, yva = windows("val", 0, eval_windows_count) if corpus.has_validation else (None, None)
    return Dataset(corpus.name, xtr, ytr, xte, yte, VOCAB_SIZE, xva, yva, stream=corpus.train,
                   info=corpus.record())

