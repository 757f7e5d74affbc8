"""lrjax.compat.timm against timm's own numbers (tests/golden/timm.json, made by
tests/golden/generate.py): every step, rtol 1e-5 + atol 1e-6 x peak."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_vectors import load

import lrjax
from lrjax.compat import timm as compat

GOLDEN, CASES, PLATEAU, ERRORS = load("timm", is_plateau=lambda c: c["class"] == "PlateauLRScheduler")


def build(case, **extra):
    return getattr(compat, case["class"])(case["lr"], **case["kwargs"], **extra)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_at_every_step(name, assert_matches):
    case = CASES[name]
    sched = build(case)
    assert isinstance(sched, lrjax.Schedule)
    assert_matches(sched(np.arange(len(case["lr_values"]))), case["lr_values"], name)


def test_every_class_is_covered():
    assert {c["class"] for c in GOLDEN["cases"]} == set(compat.__all__)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_raises_where_the_original_raises(name):
    with pytest.raises(ValueError, match=r"\w+: "):
        build(ERRORS[name])


# ------------------------------------------------------------------ PlateauLRScheduler (by epoch, metric-driven)

STEPS_PER_EPOCH = 3


def _epoch_rates(case, observe_in_warmup=False):
    """The rate of every update of each epoch, training as timm's train.py: STEPS_PER_EPOCH updates, then
    ``scheduler.step(epoch + 1, metric)`` (with a ``step_update`` after each update, a no-op)."""
    sched = build(case, steps_per_epoch=STEPS_PER_EPOCH)
    if observe_in_warmup:  # what timm does NOT do
        sched.warmup_t = 0
    tx = lrjax.inject(optax.sgd, learning_rate=sched.schedule, plateau=sched.plateau)
    state = tx.init(jnp.zeros(1))
    update = jax.jit(tx.update)
    rates = []
    for epoch in range(len(case["lr_values"])):
        per_update = []
        for _ in range(STEPS_PER_EPOCH):
            _, state = update(jnp.zeros(1), state)
            state = sched.step_update(state, int(state.count))
            per_update.append(float(lrjax.current_hyperparams(state)["learning_rate"]))
        rates.append(per_update)
        if epoch < len(case["metrics"]):
            state = sched.step(state, epoch + 1, case["metrics"][epoch])
    return np.asarray(rates)


@pytest.mark.parametrize("name", sorted(PLATEAU))
def test_plateau_matches_timm_every_epoch(name, assert_matches):
    case = PLATEAU[name]
    rates = _epoch_rates(case)
    np.testing.assert_array_equal(rates, rates[:, :1].repeat(STEPS_PER_EPOCH, axis=1))  # one rate per epoch
    assert_matches(rates[:, 0], case["lr_values"], name)


def test_plateau_ignores_the_metric_during_warmup_like_timm():
    case = PLATEAU["plateau_warmup"]  # good losses in the warmup (3 epochs), worse ones after: timm starts afresh
    rates = _epoch_rates(case)[:, 0]
    assert rates[5] == pytest.approx(0.1) and rates[6] == pytest.approx(0.05)  # first cut 3 epochs after the warmup
    counted = _epoch_rates(case, observe_in_warmup=True)[:, 0]
    assert counted[3] == pytest.approx(0.05)  # had the warmup losses counted, the cut would come at its end


def test_plateau_step_takes_a_traced_epoch():
    sched = compat.PlateauLRScheduler(0.1, decay_rate=0.5, patience_t=0, mode="min", warmup_t=2, steps_per_epoch=1)
    tx = lrjax.inject(optax.sgd, learning_rate=sched.schedule, plateau=sched.plateau)
    step = jax.jit(sched.step)
    state = tx.init(jnp.zeros(1))
    for epoch, loss in enumerate([5.0, 5.0, 1.0, 1.0], start=1):
        _, state = tx.update(jnp.zeros(1), state)
        state = step(state, jnp.int32(epoch), loss)
    assert int(state.plateau.num_observed) == 2  # epochs 3 and 4
    assert float(lrjax.current_hyperparams(state)["plateau_scale"]) == pytest.approx(0.5)


def test_plateau_schedule_is_timm_warmup_by_epoch():
    s = compat.PlateauLRScheduler(1.0, warmup_t=4, warmup_lr_init=0.2, steps_per_epoch=2)
    np.testing.assert_allclose(s.schedule(np.arange(11)), [0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1, 1, 1], rtol=1e-6)
    assert isinstance(compat.PlateauLRScheduler(0.1).schedule, lrjax.Constant)


def test_plateau_refusals_say_why():
    with pytest.raises(ValueError, match="warmup_t=3 needs steps_per_epoch"):
        compat.PlateauLRScheduler(0.1, warmup_t=3)
    with pytest.raises(ValueError, match="PlateauLRScheduler: noise is not supported"):
        compat.PlateauLRScheduler(0.1, noise_range_t=5)
    with pytest.raises(ValueError, match="PlateauLRScheduler: decay_rate must be < 1"):
        compat.PlateauLRScheduler(0.1, decay_rate=1.0)
    with pytest.raises(ValueError, match="PlateauLRScheduler: mode must be one of 'min', 'max'"):
        compat.PlateauLRScheduler(0.1, mode="foo")
    with pytest.raises(ValueError, match="PlateauLRScheduler: patience_t must be an integer >= 0"):
        compat.PlateauLRScheduler(0.1, patience_t=-1)
    with pytest.raises(TypeError, match="PlateauLRScheduler: steps_per_epoch must be an integer >= 1"):
        compat.PlateauLRScheduler(0.1, warmup_t=2, steps_per_epoch=2.5)
