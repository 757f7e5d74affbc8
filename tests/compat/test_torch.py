"""lrjax.compat.torch against PyTorch's own numbers (tests/golden/torch.json, made by
tests/golden/generate.py from torch itself): every step, rtol 1e-5 + atol 1e-6 x peak."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_vectors import load

import lrjax
from lrjax.compat import torch as lrt

GOLDEN, CASES, PLATEAU, ERRORS = load("torch", is_plateau=lambda c: c["class"] == "ReduceLROnPlateau")


def _lambda(src):
    """The generator's lr_lambda, from the source text kept in the JSON."""
    return eval(src, {"math": math})  # noqa: S307 - the committed golden file's own text


def build(cls, lr, kwargs, lrjax_kwargs=None):
    kw = {**kwargs, **(lrjax_kwargs or {})}
    if "schedulers" in kw:
        kw["schedulers"] = [build(s["class"], lr, s["kwargs"]) for s in kw["schedulers"]]
    if "lr_lambda" in kw:
        f = kw["lr_lambda"]
        kw["lr_lambda"] = [_lambda(x) for x in f] if isinstance(f, list) else _lambda(f)
    if "after" in kw:  # SWALR after another scheduler
        kw["after"] = build(kw["after"]["class"], lr, kw["after"]["kwargs"], kw["after"].get("lrjax_kwargs"))
        lr = None
    if cls == "ChainedScheduler":
        return lrt.ChainedScheduler(kw["schedulers"], lr=lr)
    return getattr(lrt, cls)(lr, **kw)


def build_case(case):
    """The case's schedule; a tabulated lr_lambda's TabulatedWarning is expected (tested on its own below)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lrt.TabulatedWarning)
        return build(case["class"], case["lr"], case["kwargs"], case.get("lrjax_kwargs"))



@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch_at_every_step(name, assert_matches):
    case = CASES[name]
    sched = build_case(case)
    assert isinstance(sched, lrjax.Schedule)
    steps = np.arange(len(case["lr_values"]))
    assert_matches(sched(steps), case["lr_values"], name)
    if "momentum" in case:
        assert_matches(sched.momentum(steps), case["momentum"], name + " momentum")


def shape_length(s):
    """One length of the schedule's shape: a cycle, a period, a step interval, else its horizon."""
    if isinstance(s, lrjax.Table):
        return 0.0  # a tabulated lr_lambda: checked over its whole table below
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
        sched = build_case(case)
        n = len(case["lr_values"])
        if isinstance(sched, lrjax.Table):  # exact up to its last entry, held after it (PyTorch goes on)
            assert n >= sched.values.shape[-1], name
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


# ------------------------------------------------------------------ LambdaLR, MultiplicativeLR, SWALR

def test_lambda_lr_traces_to_a_lambda_without_warning_or_total_steps():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no TabulatedWarning
        s = lrt.LambdaLR(0.1, lambda epoch: 0.95**epoch)
    assert isinstance(s, lrjax.Lambda) and float(s.scale) == pytest.approx(0.1)
    np.testing.assert_allclose(s(np.arange(500)), 0.1 * 0.95 ** np.arange(500.0), rtol=2e-5, atol=1e-30)
    # lr is a leaf: one compiled program sweeps it
    batch = jax.tree.map(lambda *x: jnp.stack(x), s, s.replace(scale=0.3))
    np.testing.assert_allclose(jax.vmap(lambda b: b(3))(batch), [0.1 * 0.95**3, 0.3 * 0.95**3], rtol=1e-6)


def test_lambda_lr_tabulates_python_and_says_so():
    with pytest.raises(ValueError, match=r"LambdaLR: JAX cannot trace it \(TracerBoolConversionError.*pass total_steps="):
        lrt.LambdaLR(0.1, lambda e: 1.0 if e < 3 else 0.1)
    with pytest.warns(lrt.TabulatedWarning, match=r"LambdaLR: lr_lambda was evaluated on the host for steps 0\.\.10 "
                                                  r"into an lrjax\.Table: JAX cannot trace it.*holds its step-10 value after step 10"):
        s = lrt.LambdaLR(0.1, lambda e: 1.0 if e < 3 else 0.1, total_steps=10)
    assert isinstance(s, lrjax.Table) and s.values.shape == (11,)
    np.testing.assert_allclose(s([0, 2, 3, 10, 1000]), [0.1, 0.1, 0.01, 0.01, 0.01], rtol=1e-6)


def test_lambda_lr_whose_traced_value_differs_from_python_is_tabulated():
    odd = lambda e: 0.5 if isinstance(e, int) else 1.0  # noqa: E731 - traces to a constant 1.0, PyTorch sees 0.5
    with pytest.raises(ValueError, match=r"traced value .* differs from Python's"):
        lrt.LambdaLR(0.1, odd)
    with pytest.warns(lrt.TabulatedWarning):
        s = lrt.LambdaLR(0.1, odd, total_steps=3)
    np.testing.assert_allclose(s([0, 5]), [0.05, 0.05], rtol=1e-6)


def test_lambda_lr_errors():
    with pytest.raises(TypeError, match="LambdaLR: lr_lambda must be a function"):
        lrt.LambdaLR(0.1, 0.5)
    with pytest.raises(ValueError, match="LambdaLR: lr_lambda must be one function"):
        lrt.LambdaLR(0.1, [lambda e: 1.0, lambda e: 0.5])
    with pytest.raises(ValueError, match=r"LambdaLR: lr_lambda\(2\) must be a finite number >= 0"):
        lrt.LambdaLR(0.1, lambda e: math.cos(e), total_steps=5)  # a negative rate: refused before any table
    with pytest.raises(ValueError, match="LambdaLR: total_steps must be an integer >= 0"):
        lrt.LambdaLR(0.1, lambda e: math.exp(-e), total_steps=-1)
    with pytest.raises(ValueError, match="last_epoch"):
        lrt.LambdaLR(0.1, lambda e: 1.0, last_epoch=3)


def test_multiplicative_lr_constant_factor_is_exponential():
    s = lrt.MultiplicativeLR(0.1, lambda epoch: 0.9)
    assert isinstance(s, lrjax.Exponential) and lrjax.to_spec(s)["decay_rate"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match=r"MultiplicativeLR: the rate is a running product .* pass total_steps="):
        lrt.MultiplicativeLR(0.1, lambda epoch: 0.99**epoch)
    with pytest.warns(lrt.TabulatedWarning, match="MultiplicativeLR"):
        s = lrt.MultiplicativeLR(1.0, lambda epoch: 0.99**epoch, total_steps=4)
    want = np.cumprod([1.0] + [0.99**i for i in range(1, 5)])
    np.testing.assert_allclose(s(np.arange(6)), [*want, want[-1]], rtol=1e-6)


def test_swalr_native_forms():
    s = lrt.SWALR(0.1, swa_lr=0.01, anneal_epochs=4, anneal_strategy="linear")
    assert lrjax.to_spec(s)["name"] == "warmup" and lrjax.to_spec(s)["shape"] == "linear"
    assert isinstance(lrt.SWALR(0.1, 0.01, anneal_epochs=0), lrjax.Constant)
    s = lrt.SWALR(None, 0.01, anneal_epochs=4, after=lrt.ExponentialLR(0.1, 0.5), start=3)
    spec = lrjax.to_spec(s)
    assert spec["name"] == "sequence" and spec["boundaries"] == [3]
    assert spec["schedules"][1]["init_value"] == pytest.approx(0.1 * 0.5**3)


def test_swalr_refusals_say_why():
    after = lrt.ExponentialLR(0.1, 0.9)
    with pytest.raises(ValueError, match="anneal_epochs=0 with after= is refused"):
        lrt.SWALR(None, 0.01, anneal_epochs=0, after=after, start=5)
    with pytest.raises(ValueError, match="after= needs start="):
        lrt.SWALR(None, 0.01, after=after)
    with pytest.raises(TypeError, match="SWALR: after must be an lrjax schedule"):
        lrt.SWALR(None, 0.01, after="exp", start=3)
    with pytest.raises(ValueError, match="SWALR: swa_lr must be one number"):
        lrt.SWALR(0.1, swa_lr=[0.01, 0.02])
    with pytest.raises(ValueError, match="SWALR: anneal_epochs must be an integer >= 0, got anneal_epochs=1.7"):
        lrt.SWALR(0.1, 0.01, anneal_epochs=1.7)
    with pytest.warns(lrt.TabulatedWarning):
        short = lrt.MultiplicativeLR(0.1, lambda e: 0.5 if e % 2 else 1.0, total_steps=3)
    with pytest.raises(ValueError, match="after is a Table of 4 steps, shorter than start=5"):
        lrt.SWALR(None, 0.01, after=short, start=5)
