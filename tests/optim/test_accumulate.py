"""Gradient accumulation counts optimizer updates; durations become optimizer steps in one place."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

K, B, UPDATES = 4, 8, 5


def _loss(w, x, y):
    return jnp.mean((x @ w - y) ** 2)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(UPDATES, K * B, 3)).astype(np.float32)
    y = rng.normal(size=(UPDATES, K * B)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def _train(tx, batches):
    w = jnp.zeros(3)
    state = tx.init(w)
    rates = []
    step = jax.jit(lambda w, s, x, y: (lambda g: tx.update(g, s, w))(jax.grad(_loss)(w, x, y)))
    for x, y in batches:
        u, state = step(w, state, x, y)
        w = optax.apply_updates(w, u)
        rates.append(lrjax.current_hyperparams(state)["learning_rate"])
    return w, np.asarray(rates), state


def test_k_micro_batches_equal_one_big_batch_and_same_rates():
    sched = lrjax.Warmup(lrjax.CosineDecay(0.3, 4), warmup_steps=2)
    x, y = _data()
    w_big, rates_big, _ = _train(lrjax.inject(optax.sgd, learning_rate=sched), zip(x, y))
    micro = [(x[u, i * B:(i + 1) * B], y[u, i * B:(i + 1) * B]) for u in range(UPDATES) for i in range(K)]
    w_acc, rates_acc, state = _train(lrjax.accumulate(lrjax.inject(optax.sgd, learning_rate=sched), K), micro)
    np.testing.assert_allclose(w_acc, w_big, rtol=1e-5, atol=1e-6)
    # the rate reported after each completed update is exactly the unaccumulated one
    np.testing.assert_array_equal(rates_acc[K - 1::K], rates_big)
    np.testing.assert_array_equal(rates_big, [sched(t) for t in range(UPDATES)])
    inner = state.inner_opt_state
    assert int(inner.count) == UPDATES and int(state.mini_step) == 0


def test_accumulate_bad_arguments():
    with pytest.raises(ValueError, match="every_k must be an integer >= 1, got every_k=0"):
        lrjax.accumulate(optax.sgd(0.1), 0)
    with pytest.raises(TypeError, match="every_k must be an integer >= 1, got every_k=2.5"):
        lrjax.accumulate(optax.sgd(0.1), 2.5)
    with pytest.raises(TypeError, match="tx must be an optax.GradientTransformation"):
        lrjax.accumulate(lambda g: g, 2)


def test_effective_batch_and_steps_per_epoch():
    assert lrjax.effective_batch_size(32, num_devices=8, accumulation_steps=4) == 1024
    assert lrjax.steps_per_epoch(1000, 32, num_devices=2, accumulation_steps=2) == 7
    assert lrjax.steps_per_epoch(1000, 32, num_devices=2, accumulation_steps=2, drop_remainder=False) == 8
    with pytest.raises(ValueError, match="num_examples=100 is smaller than one optimizer update of 128"):
        lrjax.steps_per_epoch(100, 64, accumulation_steps=2)


@pytest.mark.parametrize(
    "value, unit, kwargs, want",
    [
        (300, "steps", {}, 300),
        (12.5, "steps", {}, 13),  # halves round up
        (25_600, "examples", dict(accumulation_steps=2, num_devices=2), 400),  # 64 per update
        (3, "epochs", dict(num_examples=1000, accumulation_steps=2), 93),  # floor(1000/32)=31 per epoch
        (0.5, "epochs", dict(num_examples=1000, drop_remainder=False), 32),  # ceil(1000/16)=63 → 31.5 → 32
        (0.1, "fraction", dict(total_steps=30), 3),
        (0.0, "fraction", dict(total_steps=30), 0),
    ],
)
def test_to_steps(value, unit, kwargs, want):
    assert lrjax.to_steps(value, unit, batch_size=16, **kwargs) == want


def test_to_steps_bad_input():
    with pytest.raises(ValueError, match="unit must be one of .* got unit='epoch'.*did you mean 'epochs'"):
        lrjax.to_steps(1, "epoch", batch_size=16)
    with pytest.raises(ValueError, match="unit='epochs' needs num_examples"):
        lrjax.to_steps(1, "epochs", batch_size=16)
    with pytest.raises(ValueError, match="unit='fraction' needs total_steps"):
        lrjax.to_steps(0.1, "fraction", batch_size=16)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got value=1.5"):
        lrjax.to_steps(1.5, "fraction", batch_size=16, total_steps=100)
    with pytest.raises(ValueError, match="value must be a finite number >= 0, got value=-1"):
        lrjax.to_steps(-1, "steps", batch_size=16)
    with pytest.raises(ValueError, match="less than half an optimizer update of 64 examples"):
        lrjax.to_steps(20, "examples", batch_size=16, accumulation_steps=4)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got batch_size=0"):
        lrjax.to_steps(1, "steps", batch_size=0)
