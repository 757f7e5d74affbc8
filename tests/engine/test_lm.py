"""Language models through the Experiment (issue 19): training windows drawn on the device from the uint8
stream (the batch of micro-step i is ``window_batch(stream, key, i)``), a compiled program whose memory grows
with the corpus's bytes and never with a materialized ``(N, T)`` copy, and durations counted in tokens."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax.engine import ConfigError, build_experiment, load_config
from lrjax.engine._program import Flags
from lrjax.engine._text import window_batch

T, B = 16, 8
MODEL = ["model.kind=transformer", "model.d_model=16", "model.layers=1", "model.heads=2"]


def _cfg(path, *extra):
    return load_config(None, ["data.source=text", f"data.path={path}", f"data.context={T}", f"data.batch_size={B}",
                              "train.steps=20", *MODEL, *extra])


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, make_lm_text):
    p = tmp_path_factory.mktemp("lm") / "small.txt"
    p.write_bytes(make_lm_text(64_000, 0))
    return p


def test_the_batches_are_windows_of_the_stream_drawn_on_the_device(text_file):
    exp = build_experiment(_cfg(text_file))
    stream = exp.data.stream
    assert stream.dtype == np.uint8 and stream.ndim == 1 and exp.data.num_train == (stream.size - 1) // T
    src = exp.source(exp.run_index(5))
    assert src.arrays.dtype == jnp.uint8 and src.arrays.shape == stream.shape   # the bytes, nothing else
    key = exp.data_key()
    for i in (0, 1, 7):
        got = exp.batch(src, jnp.int32(i))
        want = window_batch(jnp.asarray(stream), key, i, batch_size=B, context=T)
        np.testing.assert_array_equal(got["x"], want["x"])
        np.testing.assert_array_equal(got["y"], want["y"])
        x, y = np.asarray(got["x"]), np.asarray(got["y"])
        assert x.shape == y.shape == (B, T) and (x[:, 1:] == y[:, :-1]).all()
        for row_x, row_y in zip(x, y):   # a window of the training stream: y is x one byte later
            window = bytes(row_x.astype(np.uint8)) + bytes([row_y[-1]])
            assert window in stream.tobytes()
    assert not np.array_equal(exp.batch(src, jnp.int32(0))["x"], exp.batch(src, jnp.int32(1))["x"])
    # another seed, other windows; the same seed, the same windows (a resumed run needs no iterator state)
    other = exp.source(exp.run_index(5, seed=1))
    assert not np.array_equal(exp.batch(other, jnp.int32(0))["x"], exp.batch(src, jnp.int32(0))["x"])

    # the compiled segment trains on exactly those windows: the same as stepping by hand
    state = exp.initial_state(0)
    by_hand = exp.initial_state(0)
    step = jax.jit(exp.train_step)
    for i in range(5):
        by_hand, _ = step(by_hand, window_batch(jnp.asarray(stream), key, i, batch_size=B, context=T))
    state, table, n = exp.advance(state, src, 0, 5)
    assert int(n) == 5
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(by_hand.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)


def _program_memory(path):
    exp = build_experiment(_cfg(path))
    rows = 4
    lowered = exp.program(rows).lower(exp.initial_state(0), exp.source(exp.run_index(rows)), 0, rows,
                                      exp.eval_inputs(), Flags())
    mem = lowered.compile().memory_analysis()
    if mem is None:  # pragma: no cover - a backend without the analysis
        pytest.skip("this backend reports no memory analysis")
    return exp.data.stream.size, mem.argument_size_in_bytes, mem.temp_size_in_bytes


def test_memory_grows_with_the_corpus_bytes_not_with_a_materialized_copy(text_file, tmp_path, make_lm_text):
    """64 KB and 1 MB of text: the compiled training program's arguments grow by the training stream's bytes
    (one uint8 copy) and its temporaries not at all; a materialized (N, T) int32 copy would add 64 bytes per
    byte of text (N ~ L windows of T = 16 int32 tokens)."""
    big = tmp_path / "big.txt"
    big.write_bytes(make_lm_text(1_000_000, 1))
    n0, arg0, tmp0 = _program_memory(text_file)
    n1, arg1, tmp1 = _program_memory(big)
    grown = n1 - n0
    assert grown > 700_000
    assert abs((arg1 - arg0) - grown) <= 1024          # the stream's bytes, one for one
    assert abs(tmp1 - tmp0) <= 1024                    # nothing per window
    assert arg1 + tmp1 < 4 * n1 + (arg0 + tmp0)        # far below N x T x 4 = 64 bytes per byte


def test_durations_in_tokens_resolve_to_updates_through_the_experiment(text_file):
    """tokens = updates x batch x context (x accumulation): 128 tokens per update here."""
    cfg = _cfg(text_file, "train.steps=12800 tokens", "schedule.warmup_steps=1280 tokens",
               "schedule.schedule.decay_steps=100%", "train.eval_every=3200 tokens",
               "train.average={kind: swa, start: 6400 tokens}")
    exp = build_experiment(cfg)
    assert exp.steps == exp.config.train.steps == 100 and exp.config.train.eval_every == 25
    assert exp.averaging == ("swa", 50, None)
    peak = float(cfg.schedule["schedule"]["peak"])
    assert float(exp.schedule(9)) < peak and float(exp.schedule(10)) == pytest.approx(peak)  # 10 updates of warmup
    assert cfg.train.steps == "12800 tokens"   # the user's config keeps the text
    # with gradient accumulation an update is 2 micro-batches: 256 tokens
    acc = build_experiment(_cfg(text_file, "train.steps=12800 tokens", "optimizer.accumulation_steps=2"))
    assert acc.steps == 50
    # one epoch of a text stream is one pass over its bytes: the same length as its tokens
    ep = build_experiment(_cfg(text_file, "train.steps=1 epoch"))
    tok = build_experiment(_cfg(text_file, f"train.steps={ep.data.stream.size} tokens"))
    assert ep.steps == ep.data.num_train // B and abs(tok.steps - ep.steps) <= 1


def test_token_windows_in_a_npz_give_the_context(lm_npz):
    cfg = load_config(None, [f"data.source={lm_npz}", "data.batch_size=16", "train.steps=6400 tokens", *MODEL])
    assert cfg.data.context is None
    exp = build_experiment(cfg)
    assert exp.config.data.context == T and exp.steps == 25   # 6,400 / (16 x 16)
    with pytest.raises(ConfigError, match=r"data.context=8, but the token windows of 'windows' hold 16 tokens"):
        build_experiment(load_config(None, [f"data.source={lm_npz}", "data.context=8", *MODEL]))
    with pytest.raises(ConfigError, match=r"train.steps='6400 tokens': a duration in tokens needs the tokens per"):
        build_experiment(load_config(None, ["train.steps=6400 tokens"]))   # digits: no tokens
