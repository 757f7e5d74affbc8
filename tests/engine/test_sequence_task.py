"""Sequence tasks (integer targets (B, T), outputs (B, T, V)): per-token loss and metrics, padding, your loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax.engine._config import ConfigError
from lrjax.engine._evaluate import eval_batches, evaluate
from lrjax.engine._task import make_task

B, T, V = 5, 6, 7


def _data(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, T, V)).astype(np.float32) * 2
    targets = rng.integers(0, V, (B, T)).astype(np.int32)
    targets[1, 4:] = -1  # padded tail
    targets[3, :] = -1   # a row of padding only
    return logits, targets


def _np_token_ce(logits, targets):
    """Hand computation: -log softmax at the target, per token (float64)."""
    z = logits.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, np.maximum(targets, 0)[..., None], -1)[..., 0]


def _task(loss="cross_entropy"):
    return make_task(loss, targets_dtype=np.int32, targets_shape=(T,), num_outputs=V)


def test_integer_targets_with_a_time_axis_make_a_sequence_task():
    t = _task()
    assert t.sequence and not t.classification and not t.regression and t.num_outputs == V
    assert t.metrics == ("loss", "bits_per_token", "accuracy")
    # one label per example stays what it was
    c = make_task("cross_entropy", targets_dtype=np.int32, targets_shape=(), num_outputs=V)
    assert not c.sequence and c.classification and c.metrics == ("loss", "accuracy")
    r = make_task("mse", targets_dtype=np.float32, targets_shape=(T,), num_outputs=T)
    assert not r.sequence and r.regression and r.metrics == ("loss", "r2")


def test_the_batch_loss_is_the_mean_over_tokens_that_are_not_padding():
    logits, targets = _data()
    t = _task()
    valid = targets >= 0
    ce = _np_token_ce(logits, targets)
    expect = ce[valid].mean()  # token-weighted: not the mean of per-row means
    assert valid.sum() == 22 and abs(expect - np.mean([ce[r][valid[r]].mean() for r in (0, 1, 2, 4)])) > 1e-3
    np.testing.assert_allclose(float(t.batch_loss(jnp.asarray(logits), jnp.asarray(targets))), expect, rtol=1e-5)
    acc = ((logits.argmax(-1) == targets) & valid).sum() / valid.sum()
    np.testing.assert_allclose(float(t.train_metrics(jnp.asarray(logits), jnp.asarray(targets))["accuracy"]), acc,
                               rtol=1e-6)
    # per-sequence losses: each row's mean over its real tokens (0 for a row of padding)
    rows = t.example_losses(jnp.asarray(logits), jnp.asarray(targets))
    np.testing.assert_allclose(rows, [ce[r][valid[r]].mean() if valid[r].any() else 0.0 for r in range(B)],
                               rtol=1e-5)
    # padding's values do not matter, even non-finite scores
    bad = logits.copy()
    bad[~valid] = np.nan
    np.testing.assert_allclose(float(t.batch_loss(jnp.asarray(bad), jnp.asarray(targets))), expect, rtol=1e-5)
    g = jax.grad(lambda o: t.batch_loss(o, jnp.asarray(targets)))(jnp.asarray(logits))
    assert float(jnp.abs(g[3]).max()) == 0.0 and float(jnp.abs(g[1, 4:]).max()) == 0.0


def test_evaluation_sums_count_real_rows_and_real_tokens_only():
    logits, targets = _data(1)
    mask = np.array([1, 1, 1, 1, 0], np.float32)  # the last row is a padded example
    t = _task()
    bad = logits.copy()
    bad[4] = np.inf  # a padded row may be anything
    sums = t.eval_sums(jnp.asarray(bad), jnp.asarray(targets), jnp.asarray(mask))
    valid = (targets >= 0) & (mask[:, None] > 0)
    ce = _np_token_ce(logits, targets)
    assert float(sums["tokens"]) == float(sums["count"]) == valid.sum() == 16
    np.testing.assert_allclose(float(sums["loss_sum"]), ce[valid].sum(), rtol=1e-5)
    correct = ((logits.argmax(-1) == targets) & valid).sum()
    assert float(sums["correct"]) == correct
    m = t.summarize(jax.device_get(sums))
    np.testing.assert_allclose(m["loss"], ce[valid].mean(), rtol=1e-5)
    np.testing.assert_allclose(m["bits_per_token"], ce[valid].mean() / math.log(2), rtol=1e-5)
    np.testing.assert_allclose(m["accuracy"], correct / 16, rtol=1e-6)
    assert set(m) == set(t.metrics)


def test_an_exact_evaluation_over_padded_batches_equals_the_whole_split_at_once():
    logits, targets = _data(2)
    t = _task()
    whole = t.summarize(t.eval_sums(jnp.asarray(logits), jnp.asarray(targets), jnp.ones(B)))
    # batches of 2 over 5 sequences: the last batch holds one real row and one of zeros (targets 0, mask 0)
    batches = jax.tree.map(jnp.asarray, eval_batches(logits, targets, batch_size=2))
    sums = evaluate(lambda _, b: t.eval_sums(b["x"], b["y"], b["mask"]), None, batches)
    got = t.summarize(sums)
    for k in t.metrics:
        np.testing.assert_allclose(float(got[k]), float(whole[k]), rtol=1e-5)


def _per_seq_sum(outputs, targets):
    """A user's loss: summed token cross-entropy per sequence (padding left out)."""
    logp = jax.nn.log_softmax(outputs, -1)
    valid = targets >= 0
    picked = jnp.take_along_axis(logp, jnp.maximum(targets, 0)[..., None], -1)[..., 0]
    return -jnp.sum(jnp.where(valid, picked, 0.0), axis=1)


def test_your_sequence_loss_gets_outputs_and_targets_and_reports_loss_and_token_accuracy():
    logits, targets = _data(3)
    t = _task(_per_seq_sum)
    assert t.sequence and t.per_example and t.token_loss is None and t.metrics == ("loss", "accuracy")
    ce = _np_token_ce(logits, targets)
    valid = targets >= 0
    rows = [ce[r][valid[r]].sum() for r in range(B)]
    np.testing.assert_allclose(float(t.batch_loss(jnp.asarray(logits), jnp.asarray(targets))), np.mean(rows),
                               rtol=1e-5)
    mask = np.array([1, 0, 1, 1, 1], np.float32)
    m = t.summarize(t.eval_sums(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask)))
    np.testing.assert_allclose(float(m["loss"]), np.mean([rows[r] for r in (0, 2, 3, 4)]), rtol=1e-5)
    real = valid & (mask[:, None] > 0)
    np.testing.assert_allclose(float(m["accuracy"]), ((logits.argmax(-1) == targets) & real).sum() / real.sum(),
                               rtol=1e-6)
    # a loss returning the mean is applied one sequence at a time in evaluations: padded rows never enter it
    mean_t = _task(lambda o, y: jnp.mean(_per_seq_sum(o, y)))
    assert not mean_t.per_example
    bad = logits.copy()
    bad[1] = np.nan
    m2 = mean_t.summarize(mean_t.eval_sums(jnp.asarray(bad), jnp.asarray(targets), jnp.asarray(mask)))
    np.testing.assert_allclose(float(m2["loss"]), float(m["loss"]), rtol=1e-5)


def test_a_sequence_loss_of_the_wrong_shape_is_a_config_error():
    def per_token(o, y):
        return jnp.zeros(y.shape)

    with pytest.raises(ConfigError, match=r"loss 'per_token' must return per-sequence losses \(B,\) or their mean "
                                          r"\(a scalar\); on outputs \(4, 6, 7\) and targets \(4, 6\) it returned "
                                          r".* of shape \(4, 6\)"):
        _task(per_token)
    with pytest.raises(ConfigError, match=r"loss 'broken' failed on outputs \(4, 6, 7\) and targets \(4, 6\)"):
        def broken(o, y):
            return o @ y
        _task(broken)


def test_outputs_that_do_not_fit_the_tokens_are_a_config_error():
    t = _task()
    t.check_outputs((8, T, V), (8, T))
    with pytest.raises(ConfigError, match=r"on token targets \(8, 6\) needs outputs \(B, T, V\) = \(8, 6, 7\) .* "
                                          r"the model gives \(8, 7\)"):
        t.check_outputs((8, V), (8, T))
    make_task("cross_entropy", targets_dtype=np.int32, targets_shape=(), num_outputs=V).check_outputs((8, 3), (8,))
