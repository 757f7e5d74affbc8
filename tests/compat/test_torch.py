"""lrjax.compat.torch against PyTorch's own numbers (tests/golden/torch.json, made by
tests/golden/generate.py from torch itself): every step, rtol 1e-5 + atol 1e-6 x peak."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_vectors import load

import lrjax
from lrjax.compat import torch as lrt

GOLDEN, CASES, PLATEAU, ERRORS = load("torch", is_plateau=lambda c: c["class"] == "ReduceLROnPlateau")


def build(cls, lr, kwargs):
    kw = dict(kwargs)
    if "schedulers" in kw:
        kw["schedulers"] = [build(s["class"], lr, s["kwargs"]) for s in kw["schedulers"]]
    if cls == "ChainedScheduler":
        return lrt.ChainedScheduler(kw["schedulers"], lr=lr)
    return getattr(lrt, cls)(lr, **kw)



@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch_at_every_step(name, assert_matches):
    case = CASES[name]
    sched = build(case["class"], case["lr"], case["kwargs"])
    assert isinstance(sched, lrjax.Schedule)
    steps = np.arange(len(case["lr_values"]))
    assert_matches(sched(steps), case["lr_values"], name)
    if "momentum" in case:
        assert_matches(sched.momentum(steps), case["momentum"], name + " momentum")


def shape_length(s):
    """One length of the schedule's shape: a cycle, a period, a step interval, else its horizon."""
    if isinstance(s, lrjax.Sequence):
        return float(s.boundaries[-1]) + shape_length(s.schedules[-1])
    if isinstance(s, (lrjax.Scale, lrjax.Product)):
        kids = s.schedules if isinstance(s, lrjax.Product) else (s.schedule,)
        return max(shape_length(k) for k in kids)
    if isinstance(s, (lrjax.Cyclic, lrjax.CosineRestarts, lrjax.StepDecay)):
        return float(s.horizon) / 3  # their horizon is three cycles / periods / intervals
    return float(s.horizon)


def test_golden_covers_three_horizons_or_the_end():
    for name, case in CASES.items():
        sched = build(case["class"], case["lr"], case["kwargs"])
        n = len(case["lr_values"])
        if "stops" in case:  # OneCycleLR refuses to step past total_steps: all it allows
            assert n == float(sched.total_steps) + 1, name
        elif name != "chain_linear_cos_to_tmax":  # documented: chained cosine matches up to T_max only
            assert n >= 3 * shape_length(sched), (name, n, shape_length(sched))


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_raises_where_pytorch_raises(name):
    err = ERRORS[name]
    with pytest.raises(ValueError, match=r"\w+: "):
        if err["class"] == "ReduceLROnPlateau":
            build(err["class"], err["lr"], {k: v for k, v in err["kwargs"].items()})
        else:
            build(err["class"], err["lr"], err["kwargs"])


def test_native_equivalents_show_in_the_spec():
    assert lrjax.to_spec(lrt.CosineAnnealingLR(0.1, T_max=10))["periodic"] is True
    spec = lrjax.to_spec(lrt.OneCycleLR(None, max_lr=0.1, total_steps=100))
    assert spec["name"] == "one_cycle" and spec["extend_last_phase"] is True
    assert lrjax.to_spec(lrt.MultiStepLR(0.1, milestones=[3, 1]))["milestones"] == [1, 3]
    s = lrt.SequentialLR(0.1, [lrt.LinearLR(0.1, total_iters=2), lrt.ExponentialLR(0.1, 0.9)], [2])
    assert lrjax.to_spec(s)["name"] == "sequence"


def test_unsupported_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="scale_fn"):
        lrt.CyclicLR(None, 0.01, 0.1, scale_fn=lambda x: 1.0)
    with pytest.raises(ValueError, match="last_epoch"):
        lrt.StepLR(0.1, step_size=3, last_epoch=5)
    with pytest.raises(ValueError, match="sets the rate outright"):
        lrt.ChainedScheduler([lrt.CyclicLR(None, 0.01, 0.1), lrt.ExponentialLR(0.1, 0.9)], lr=0.1)
    with pytest.raises(TypeError, match="lrjax schedules"):
        lrt.SequentialLR(0.1, [lrt.ExponentialLR(0.1, 0.9), "cosine"], [3])


def _plateau_rates(case):
    tx = lrjax.inject(optax.sgd, learning_rate=case["lr"], plateau=lrt.ReduceLROnPlateau(case["lr"], **case["kwargs"]))
    state = tx.init(jnp.zeros(1))

    def one(state, metric):
        state = lrjax.observe_metric(state, metric)
        return state, lrjax.current_hyperparams(state)["learning_rate"]

    _, rates = jax.lax.scan(one, state, jnp.asarray(case["metrics"], jnp.float32))
    return rates


@pytest.mark.parametrize("name", sorted(PLATEAU))
def test_plateau_matches_pytorch_after_every_metric(name, assert_matches):
    case = PLATEAU[name]
    assert_matches(_plateau_rates(case), case["lr_values"], name)


def test_native_plateau_is_the_corrected_one_for_negative_metrics():
    case = PLATEAU["plateau_negative_rel"]  # a negative loss that gets WORSE every evaluation
    # PyTorch (and the compat class) count each worse value as better (a < best * 0.9 for best < 0) ...
    assert case["lr_values"][-1] == case["lr"]
    tx = lrjax.inject(optax.sgd, learning_rate=case["lr"], plateau=lrjax.reduce_on_plateau(**case["kwargs"]))
    state = tx.init(jnp.zeros(1))
    for m in case["metrics"]:
        state = lrjax.observe_metric(state, m)
    # ... the native rule sees no improvement and reduces (patience=2, factor=0.5, 11 bad evaluations: 3 cuts).
    assert float(lrjax.current_hyperparams(state)["learning_rate"]) == pytest.approx(case["lr"] * 0.5**3)
