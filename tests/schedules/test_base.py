"""Helpers of the schedule base: with_exponent's fast branches agree with pow, in value and gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax
from lrjax._checks import closest
from lrjax.schedules._base import as_step, with_exponent

X = jnp.linspace(0.0, 1.0, 33)


@pytest.mark.parametrize("e", [1.0, 2.0, 0.5, 3.0])
def test_with_exponent_matches_pow_and_its_gradients(e):
    f = jax.jit(lambda e, x: with_exponent(e, lambda pw: pw(x)))
    np.testing.assert_allclose(f(e, X), np.asarray(X, np.float64) ** e, rtol=1e-6, atol=1e-7)
    # d/de x**e = x**e log x, also on the fast branches (e == 1, e == 2); 0 at x = 0
    g = jax.jit(jax.vmap(jax.grad(lambda e, x: with_exponent(e, lambda pw: pw(x))), in_axes=(None, 0)))(e, X)
    x = np.asarray(X[1:], np.float64)
    np.testing.assert_allclose(g[1:], x**e * np.log(x), rtol=1e-5, atol=1e-6)
    assert float(g[0]) == 0.0
    gx = jax.vmap(jax.grad(lambda x: with_exponent(e, lambda pw: pw(x))))(X[1:])
    np.testing.assert_allclose(gx, e * x ** (e - 1), rtol=1e-5, atol=1e-6)


def test_exponent_values_do_not_retrace():
    traces = []

    @jax.jit
    def f(s, t):
        traces.append(1)
        return s(t)

    t = jnp.arange(0, 200)
    for e in (1.0, 2.0, 0.7):
        got = f(lrjax.CosineDecay(1.0, 100, exponent=e), t)
        want = (0.5 * (1 + np.cos(np.pi * np.minimum(np.arange(200), 100) / 100))) ** e
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert len(traces) == 1


def test_as_step_handles_huge_and_bad_steps():
    assert float(as_step(2**40)) == 2.0**40
    assert float(as_step(np.int64(2**31 + 1))) == pytest.approx(2.0**31)
    with pytest.raises(TypeError, match=r"step must be an integer"):
        as_step("3")


def test_closest_suggests_typos_and_abbreviations():
    assert closest("cosine_decy", ["cosine_decay", "linear"]) == " (did you mean 'cosine_decay'?)"
    assert closest("exp", ["linear", "cosine", "exponential"]) == " (did you mean 'exponential'?)"
    assert closest("zzz", ["linear"]) == ""


def test_eager_calls_do_not_compile_per_step(caplog):
    # A Python loop of eager calls (logging, PyTorch-style stepping) must reuse compiled ops:
    # with_exponent picks its branch in Python when the exponent is concrete.
    scheds = [lrjax.CosineDecay(1.0, 100, exponent=1.5), lrjax.Polynomial(1.0, 0.0, 100, 2.0),
              lrjax.CosineRestarts(1.0, 10, 2.0, k_decay=1.2)]
    for s in scheds:
        float(s(0))  # warm
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        vals = [float(s(t)) for t in range(1, 30) for s in scheds]
    assert all(np.isfinite(vals))
    assert not [r for r in caplog.records if "ompil" in r.getMessage()], caplog.records[:3]


def test_leaves_are_checked_as_the_float32_they_become():
    with pytest.raises(ValueError, match=r"CosineDecay: peak must be finite in float32 .*got peak=1e\+39"):
        lrjax.CosineDecay(peak=1e39, decay_steps=10)
    with pytest.raises(ValueError, match=r"decay_steps must be finite, got decay_steps=inf"):
        lrjax.CosineDecay(peak=1.0, decay_steps=float("inf"))
    # 1e-50 is 0 in float32: "> 0" is checked on what the schedule would divide by
    with pytest.raises(ValueError, match=r"decay_steps must be > 0, got decay_steps=1e-50 \(0 in float32\)"):
        lrjax.CosineDecay(peak=1.0, decay_steps=1e-50)
    with pytest.raises(ValueError, match=r"must not be NaN, got milestones=\[1, nan\]"):
        lrjax.MultiStep(1.0, [1.0, float("nan")])
    # leaves that take inf (never) read a float32 overflow as inf
    assert np.isinf(float(lrjax.CosineRestarts(1.0, 10, cycle_limit=1e39).cycle_limit))
    assert np.isinf(float(lrjax.Clamp(lrjax.Constant(1.0), ceiling=1e40).ceiling))


def test_lists_of_numbers_hold_numbers_only():
    with pytest.raises(TypeError, match=r"MultiStep: milestones must be a number or a list of numbers, got "
                                        r"milestones=\[True, 20\] \(milestones\[0\] is True, a bool\)"):
        lrjax.MultiStep(1.0, milestones=[True, 20])
    with pytest.raises(TypeError, match=r"boundaries\[1\] is None"):
        lrjax.PiecewiseConstant([1, None], [1.0, 0.5, 0.1])
    with pytest.raises(TypeError, match=r"values\[0\]\[1\] is '0.5', a str"):
        lrjax.PiecewiseConstant([[1, 2]], [[1.0, "0.5", 0.1]])
    with pytest.raises(TypeError, match=r"peak='1e-3' \(str\); it is text that looks like a number: write it "
                                        r"without quotes"):
        lrjax.CosineDecay("1e-3", 10)
    # numpy integer and float elements are numbers
    assert float(lrjax.MultiStep(1.0, [np.int64(3), np.float32(5.0)], 0.5)(5)) == 0.25


def test_flags_are_bools_and_children_have_their_shape():
    with pytest.raises(ValueError, match=r"CosineDecay: periodic must be one of False, True, got periodic=1"):
        lrjax.CosineDecay(1.0, 10, periodic=1)
    assert lrjax.CosineDecay(1.0, 10, periodic=np.bool_(True)).periodic is True
    with pytest.raises(TypeError, match=r"Product: schedules must be a list of lrjax schedules, got dict"):
        lrjax.Product({"a": lrjax.Constant(1.0)})
    with pytest.raises(TypeError, match=r"Product: schedules must be a list of lrjax schedules, got Constant"):
        lrjax.Product(lrjax.Constant(1.0))
    with pytest.raises(TypeError, match=r"Warmup: schedule must be one lrjax schedule, got a list of 1"):
        lrjax.Warmup([lrjax.Constant(1.0)], 10)
