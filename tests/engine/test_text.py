"""Text corpora as byte streams, training windows drawn on the device, fixed evaluation windows."""

import hashlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lrjax.engine._data import DataError
from lrjax.engine._evaluate import eval_batches, evaluate
from lrjax.engine._runner import advance
from lrjax.engine._task import make_task
from lrjax.engine._text import (
    SEPARATOR,
    STDLIB_MAX_BYTES,
    check_token_windows,
    eval_windows,
    is_text,
    load_text,
    text_batch,
    text_source,
    window_batch,
)
from lrjax.engine._transformer import transformer

KEY = jax.random.key_data(jax.random.key(0))


def _folder(tmp_path, sizes, *, seed=0):
    """Text files of the given sizes (distinct, recognisable contents) under a folder with a subfolder."""
    rng = np.random.default_rng(seed)
    (tmp_path / "sub").mkdir()
    paths = {}
    for i, n in enumerate(sizes):
        rel = f"sub/f{i:02d}.txt" if i % 2 else f"f{i:02d}.txt"
        data = bytes(rng.integers(97, 123, n, dtype=np.uint8))  # a..z
        (tmp_path / rel).write_bytes(data)
        paths[rel] = data
    return paths


# ----------------------------------------------------------------------------- load_text

def test_a_file_splits_in_contiguous_blocks_and_hashes_like_sha256sum(tmp_path):
    data = bytes(range(256)) * 40  # 10,240 bytes
    p = tmp_path / "corpus.bin"
    p.write_bytes(data)
    c = load_text(str(p), context=16, validation_fraction=0.1, test_fraction=0.2)
    assert c.name == "corpus.bin" and c.python is None and c.num_bytes == len(data) and c.context == 16
    assert c.sha256 == hashlib.sha256(data).hexdigest()
    n_val, n_test = round(0.1 * len(data)), round(0.2 * len(data))
    n_train = len(data) - n_val - n_test
    assert c.train.dtype == np.uint8 and c.train.tobytes() == data[:n_train]
    assert c.val.tobytes() == data[n_train:n_train + n_val] and c.test.tobytes() == data[n_train + n_val:]
    assert c.files == {"train": [("corpus.bin", 0, n_train)], "val": [("corpus.bin", n_train, n_train + n_val)],
                       "test": [("corpus.bin", n_train + n_val, len(data))]}
    rec = c.record()
    assert rec["split_bytes"] == {"train": n_train, "val": n_val, "test": n_test}
    assert rec["files"]["val"] == [["corpus.bin", n_train, n_train + n_val]]
    # max_bytes reads the file's beginning; no validation split with validation_fraction=0
    c2 = load_text(str(p), context=16, validation_fraction=0.0, test_fraction=0.5, max_bytes=1000)
    assert c2.val is None and not c2.has_validation and c2.files["val"] == []
    assert c2.num_bytes == 1000 and c2.train.tobytes() + c2.test.tobytes() == data[:1000]
    with pytest.raises(ValueError, match="no validation split"):
        c2.split("val")


def test_a_folder_splits_by_file_with_a_seeded_assignment(tmp_path):
    paths = _folder(tmp_path, [300 + 37 * i for i in range(20)])
    (tmp_path / "binary.dat").write_bytes(b"\x00\x01\x02" * 100)  # not text: NUL bytes
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1") * 100)  # not UTF-8
    (tmp_path / ".hidden.txt").write_text("x" * 500)
    (tmp_path / "empty.txt").write_text("")
    c = load_text(str(tmp_path), context=32, validation_fraction=0.15, test_fraction=0.15, seed=3)
    names = [f for split in ("train", "val", "test") for f in c.files[split]]
    assert sorted(names) == sorted(paths)  # every text file once; the rest skipped
    assert all(c.files[s] == sorted(c.files[s]) for s in c.files)  # sorted within a split
    for split in ("train", "val", "test"):  # each stream: its files in order, each followed by the separator
        expect = b"".join(paths[f] + bytes([SEPARATOR]) for f in c.files[split])
        assert c.split(split).tobytes() == expect
    total = sum(map(len, paths.values()))
    assert c.num_bytes == total
    for split in ("val", "test"):  # roughly its fraction of bytes
        got = sum(len(paths[f]) for f in c.files[split])
        assert 0.15 * total - 700 <= got <= 0.15 * total + 700, (split, got, total)
    digest = hashlib.sha256(b"".join(paths[f] + b"\0" for f in sorted(paths))).hexdigest()
    assert c.sha256 == digest  # the corpus before it is split
    again = load_text(str(tmp_path), context=32, validation_fraction=0.15, test_fraction=0.15, seed=3)
    other = load_text(str(tmp_path), context=32, validation_fraction=0.15, test_fraction=0.15, seed=4)
    assert again.files == c.files and other.files != c.files and other.sha256 == c.sha256


def test_every_split_gets_a_file_even_when_one_file_dominates(tmp_path):
    paths = _folder(tmp_path, [5000, 100, 100])
    for seed in range(6):
        c = load_text(str(tmp_path), context=8, seed=seed)
        assert all(len(c.files[s]) == 1 for s in ("train", "val", "test"))
        assert sorted(sum(c.files.values(), [])) == sorted(paths)
        assert c.files["train"] == ["f00.txt"]  # the big file trains: it fits train's share best


def test_a_folder_with_one_text_file_is_split_as_that_file(tmp_path):
    (tmp_path / "only.txt").write_bytes(b"abcdefghij" * 100)
    (tmp_path / "junk.bin").write_bytes(b"\0" * 10)
    c = load_text(str(tmp_path), context=8)
    assert c.files["test"] == [("only.txt", 900, 1000)]
    assert c.sha256 == hashlib.sha256(b"abcdefghij" * 100).hexdigest()


def test_bad_corpora_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope: no such file or folder"):
        load_text(str(tmp_path / "nope"), context=8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.bin").write_bytes(b"\0\1")
    with pytest.raises(DataError, match=r"empty: no readable text file"):
        load_text(str(tmp_path / "empty"), context=8)
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 100)
    with pytest.raises(DataError, match=r"small.txt: the val split holds 10 bytes, fewer than one window of "
                                        r"context \+ 1 = 33 bytes \(100 bytes read; splits: train 80, val 10, test 10\)"):
        load_text(str(small), context=32)
    two = tmp_path / "two"
    two.mkdir()
    (two / "a.txt").write_text("a" * 100)
    (two / "b.txt").write_text("b" * 100)
    with pytest.raises(DataError, match=r"two: 2 text files for 3 splits"):
        load_text(str(two), context=8)
    assert load_text(str(two), context=8, validation_fraction=0).val is None  # two splits: fine
    for kw, match in (({"context": 0}, r"context must be an integer >= 1, got context=0"),
                      ({"context": 8, "test_fraction": 0}, r"test_fraction must be a number in \(0, 1\)"),
                      ({"context": 8, "validation_fraction": 0.5, "test_fraction": 0.5},
                       r"validation_fraction \+ test_fraction must be < 1"),
                      ({"context": 8, "max_bytes": 0}, r"max_bytes must be an integer >= 1")):
        with pytest.raises(ValueError, match=match):
            load_text(str(small), **kw)


def test_the_default_corpus_is_the_running_pythons_standard_library():
    c = load_text(None, context=128, max_bytes=300_000)
    assert c.name == "python-stdlib" and c.python == ".".join(map(str, sys.version_info[:3]))
    assert 200_000 < c.num_bytes <= 300_000  # whole files under the cap
    files = sum(c.files.values(), [])
    assert all(f.endswith(".py") and "site-packages" not in f and not f.startswith("test/") for f in files)
    assert all(len(c.files[s]) > 0 for s in ("train", "val", "test"))
    text = c.train.tobytes().split(bytes([SEPARATOR]))
    assert all(is_text(t) for t in text) and b"def " in c.train.tobytes()  # real Python source
    assert load_text(None, context=128, max_bytes=300_000).sha256 == c.sha256  # deterministic
    assert STDLIB_MAX_BYTES == 8 * 2**20


# ----------------------------------------------------------------------------- training windows

def test_windows_are_the_stream_at_drawn_offsets():
    stream = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint8)
    b = jax.jit(lambda s, k, i: window_batch(s, k, i, batch_size=16, context=24))(jnp.asarray(stream), KEY, 7)
    x, y = np.asarray(b["x"]), np.asarray(b["y"])
    assert x.shape == y.shape == (16, 24) and x.dtype == y.dtype == np.int32
    offsets = np.asarray(jax.random.randint(jax.random.fold_in(jax.random.wrap_key_data(KEY), 7), (16,), 0,
                                            5000 - 24, jnp.int32))
    for r, o in enumerate(offsets):
        np.testing.assert_array_equal(x[r], stream[o:o + 24])
        np.testing.assert_array_equal(y[r], stream[o + 1:o + 25])
    # i changes the windows, deterministically; a typed key gives the same as its raw data
    again = window_batch(jnp.asarray(stream), KEY, 7, batch_size=16, context=24)
    other = window_batch(jnp.asarray(stream), KEY, 8, batch_size=16, context=24)
    typed = window_batch(jnp.asarray(stream), jax.random.key(0), 7, batch_size=16, context=24)
    np.testing.assert_array_equal(again["x"], x)
    np.testing.assert_array_equal(typed["x"], x)
    assert not np.array_equal(np.asarray(other["x"]), x)


def test_windows_reach_both_ends_of_the_stream_and_never_past_them():
    stream = jnp.arange(12, dtype=jnp.uint8)  # offsets 0..3 for context 8
    xs = np.concatenate([np.asarray(window_batch(stream, KEY, i, batch_size=64, context=8)["x"])
                         for i in range(4)])
    assert set(xs[:, 0].tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(xs - xs[:, :1], np.broadcast_to(np.arange(8), xs.shape))
    with pytest.raises(ValueError, match="holds 8 bytes, fewer than one window of context \\+ 1 = 9"):
        window_batch(jnp.arange(8, dtype=jnp.uint8), KEY, 0, batch_size=2, context=8)


def test_windows_build_nothing_of_the_streams_size_times_the_context():
    """The compiled step's buffers do not grow with N x T: only the stream (an argument) scales."""
    def step(s, k, i):
        b = window_batch(s, k, i, batch_size=8, context=64)
        return jnp.sum(b["x"]) + jnp.sum(b["y"])

    sizes = {}
    for n in (10_000, 1_000_000):
        s = jax.ShapeDtypeStruct((n,), jnp.uint8)
        jaxpr = jax.make_jaxpr(step)(s, KEY, jnp.int32(0))
        biggest = max(int(np.prod(v.aval.shape)) for e in jaxpr.eqns for v in e.outvars)
        assert biggest <= 8 * 65, biggest  # a batch of windows, nothing of the stream's length
        mem = jax.jit(step).lower(s, KEY, jnp.int32(0)).compile().memory_analysis()
        if mem is not None:
            sizes[n] = (mem.temp_size_in_bytes, mem.argument_size_in_bytes)
    if sizes:  # the backend reports memory: a 100x longer stream adds its bytes as an argument, no temporaries
        assert sizes[10_000][0] < 16_384 and sizes[1_000_000][0] < 16_384  # (N, T) int32 would be 256 MB
        assert sizes[1_000_000][1] - sizes[10_000][1] == 990_000


def test_text_batch_is_the_runners_batch_and_vmaps_over_keys():
    stream = jnp.asarray(np.arange(3000) % 251, jnp.uint8)
    fetch = text_batch(batch_size=4, context=16)
    src = text_source(stream, KEY)
    step = lambda s, b: (s + jnp.sum(b["x"][:, 0]), {"first": jnp.sum(b["x"][:, 0])})  # noqa: E731
    total, table, n = advance(step, ("first",), jnp.int32(0), src, 0, 5, rows=5, batch=fetch)
    firsts = [int(jnp.sum(window_batch(stream, KEY, i, batch_size=4, context=16)["x"][:, 0])) for i in range(5)]
    assert int(n) == 5 and table[:, 0].tolist() == firsts and int(total) == sum(firsts)
    keys = jnp.stack([KEY, jax.random.key_data(jax.random.key(1))])
    both = jax.vmap(lambda k: fetch(text_source(stream, k), jnp.int32(3)))(keys)
    np.testing.assert_array_equal(both["x"][0], fetch(src, jnp.int32(3))["x"])
    assert not np.array_equal(np.asarray(both["x"][0]), np.asarray(both["x"][1]))


# ----------------------------------------------------------------------------- evaluation windows

def test_strided_eval_windows_predict_every_byte_once():
    s = np.random.default_rng(1).integers(0, 256, 1001).astype(np.uint8)
    x, y = eval_windows(s, context=64, count=None, seed=0)
    assert x.shape == y.shape == (16, 64) and x.dtype == y.dtype == np.int32  # ceil(1000 / 64)
    valid = y >= 0
    assert valid.sum() == 1000
    np.testing.assert_array_equal(y[valid], s[1:])
    np.testing.assert_array_equal(x[valid], s[:-1])
    assert (x[~valid] == 0).all() and (y[~valid] == -1).all() and not valid[-1, 1000 - 15 * 64:].any()
    x2, y2 = eval_windows(s[:129], context=64, count=None, seed=0)  # 128 targets: two full windows
    assert x2.shape == (2, 64) and (y2 >= 0).all()


def test_seeded_eval_windows_are_fixed_windows_of_the_stream():
    s = np.arange(500) % 256
    x, y = eval_windows(s.astype(np.uint8), context=10, count=7, seed=5)
    assert x.shape == (7, 10)
    offsets = np.random.default_rng(5).integers(0, 490, 7)
    for r, o in enumerate(offsets):
        np.testing.assert_array_equal(x[r], s[o:o + 10])
        np.testing.assert_array_equal(y[r], s[o + 1:o + 11])
    x2, _ = eval_windows(s.astype(np.uint8), context=10, count=7, seed=5)
    x3, _ = eval_windows(s.astype(np.uint8), context=10, count=7, seed=6)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, x3)
    with pytest.raises(ValueError, match="count must be an integer >= 1, got count=0"):
        eval_windows(s.astype(np.uint8), context=10, count=0, seed=0)
    with pytest.raises(ValueError, match="holds 10 bytes, fewer than one window"):
        eval_windows(s[:10].astype(np.uint8), context=10, count=None, seed=0)


def test_token_windows_from_npz_are_checked_against_the_vocabulary():
    x = np.array([[1, 2, 3], [4, 5, 6]], np.int64)
    y = np.array([[2, 3, 4], [5, 6, -1]], np.int64)
    cx, cy = check_token_windows(x, y, vocab_size=7, where="d.npz")
    assert cx.dtype == cy.dtype == np.int32 and cy[1, 2] == -1
    with pytest.raises(DataError, match=r"d.npz: y_train\[1, 1\] = 7 is not a token of the vocabulary of 7"):
        check_token_windows(x, np.where(y == 6, 7, y), vocab_size=7, where="d.npz")
    with pytest.raises(DataError, match=r"d.npz: x_train\[1, 2\] = 6 is not a token of the vocabulary of 6"):
        check_token_windows(x, y, vocab_size=6, where="d.npz")
    with pytest.raises(DataError, match=r"d.npz: x_test\[0, 0\] = -1"):
        check_token_windows(-x, y, vocab_size=7, where="d.npz", name="test")
    with pytest.raises(DataError, match=r"x_train \(2, 3\) and y_train \(2, 2\)"):
        check_token_windows(x, y[:, :2], vocab_size=7, where="d.npz")
    with pytest.raises(DataError, match=r"must be integers \(N, T\), got float64"):
        check_token_windows(x.astype(float), y, vocab_size=7, where="d.npz")


def test_the_pieces_train_a_byte_model_through_the_runner(tmp_path):
    """Corpus -> on-device windows in the runner's loop -> transformer -> sequence task -> exact evaluation."""
    (tmp_path / "t.txt").write_bytes(b"the cat sat on the mat. " * 200)
    corpus = load_text(str(tmp_path / "t.txt"), context=16)
    task = make_task("cross_entropy", targets_dtype=np.int32, targets_shape=(16,), num_outputs=256)
    model = transformer(rngs=nnx.Rngs(0), d_model=32, layers=1, heads=2, input_shape=(16,))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(3e-3)
    apply = lambda p, x: nnx.merge(graphdef, p)(x)  # noqa: E731

    def step(state, batch):
        p, o = state
        loss, g = jax.value_and_grad(lambda p: task.batch_loss(apply(p, batch["x"]), batch["y"]))(p)
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), {"loss": loss, **task.train_metrics(apply(p, batch["x"]), batch["y"])}

    x, y = eval_windows(corpus.val, context=16, count=None, seed=0)
    batches = jax.tree.map(jnp.asarray, eval_batches(x, y, batch_size=8))

    @jax.jit
    def run(state, stream):
        state, table, _ = advance(step, ("loss", "accuracy"), state, text_source(stream, KEY), 0, 60, rows=60,
                                  batch=text_batch(batch_size=8, context=16))
        sums = evaluate(lambda p, b: task.eval_sums(apply(p, b["x"]), b["y"], b["mask"]), state[0], batches)
        return state, table, task.summarize(sums)

    before = task.summarize(evaluate(lambda p, b: task.eval_sums(apply(p, b["x"]), b["y"], b["mask"]), params,
                                     batches))
    _, table, after = run((params, tx.init(params)), jnp.asarray(corpus.train))
    assert float(before["loss"]) > 5.0
    assert float(after["loss"]) < 1.2 and float(table[-1, 0]) < 1.2 and float(after["accuracy"]) > 0.7
    assert float(after["bits_per_token"]) == pytest.approx(float(after["loss"]) / np.log(2), rel=1e-5)
