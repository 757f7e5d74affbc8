"""What a step is, for every family: negative steps, NaN steps, huge steps, and periodic phase.

The cross-family checks (every registered family at a negative or NaN step) are in
test_battery.py; here are the definitions' details: the exact phase of periodic families at any
integer step (Python ints of any size, int32/int64 arrays, traced int32 counts), shifts, and the
step representation itself.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax
from lrjax.schedules._base import Step, _to_step

L = lrjax


# -- negative steps and shifts ------------------------------------------------------------------------

def test_a_negative_shift_holds_the_step_zero_value():
    # the two examples: read before its start, a schedule holds its step-0 value
    s = L.Shift(L.InverseSqrt(1e-3, 100), -50)
    assert float(s(0)) == 0.0 and float(s(49)) == 0.0
    np.testing.assert_allclose(float(s(75)), float(L.InverseSqrt(1e-3, 100)(25)), rtol=1e-6)
    e = L.Shift(L.Exponential(0.1, 0.5, 10), -100)
    np.testing.assert_allclose([float(e(0)), float(e(99)), float(e(100)), float(e(110))], [0.1, 0.1, 0.1, 0.05],
                               rtol=1e-6)
    assert float(s.horizon) == pytest.approx(float(L.InverseSqrt(1e-3, 100).horizon) + 50)


def test_shift_by_a_fraction_moves_the_exact_step_too():
    base = L.Cyclic(0.0, 1.0, 5)  # period 10
    s = L.Shift(base, 2.5)
    ts = np.arange(0, 40)
    np.testing.assert_allclose(s(ts), base(ts.astype(np.float32) + 2.5), rtol=1e-6, atol=1e-7)
    # and far away, where only the exact step keeps the phase
    k = 10 * (2**31 // 10 - 10)
    np.testing.assert_allclose(s(np.array([k + 3], np.int32)), s(3), rtol=1e-6)
    twice = L.Shift(L.Shift(base, 0.75), 0.75)  # fractions add up and carry into the integer part
    np.testing.assert_allclose(twice(ts), base(ts.astype(np.float32) + 1.5), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(twice(np.array([k + 3], np.int32)), twice(3), rtol=1e-6)


@pytest.mark.parametrize("step", [-1, -7, -(2**31), -(2**40), -(2**70)])
def test_negative_python_ints_of_any_size(step):
    s = L.CosineRestarts(1.0, 10)
    assert float(s(step)) == float(s(0)) == 1.0


def test_negative_steps_in_arrays_and_traced():
    s = L.Warmup(L.CosineDecay(1.0, 100), 10, init_value=0.1)
    want = float(s(0))
    steps = [-5, -1, 0]
    for form in (np.array(steps, np.int32), np.array(steps, np.int64), jnp.array(steps, jnp.int32),
                 np.array(steps, np.float32), np.array([-(2**40), -1, 0], np.int64)):
        np.testing.assert_array_equal(s(form), [want] * 3)
    np.testing.assert_array_equal(jax.jit(lambda t: s(t))(jnp.array(steps, jnp.int32)), [want] * 3)
    np.testing.assert_array_equal(jax.jit(lambda t: s(t))(jnp.array([-2.5, -0.0], jnp.float32)), [want] * 2)


# -- NaN and infinite steps -----------------------------------------------------------------------------

def test_nan_and_infinite_float_steps_give_nan():
    s = L.MultiStep(1.0, [10, 20], 0.5)  # one of the families that used to give a number for NaN
    for bad in (math.nan, np.float32("nan"), math.inf, -math.inf, np.float64(1e300)):
        assert math.isnan(float(s(bad))), bad
    got = np.asarray(s(jnp.array([0.0, np.nan, 15.0, np.inf], jnp.float32)))
    assert got[0] == 1.0 and math.isnan(got[1]) and got[2] == 0.5 and math.isnan(got[3])
    traced = jax.jit(lambda s, t: s(t))(s, jnp.array([np.nan, 25.0], jnp.float32))
    assert math.isnan(float(traced[0])) and float(traced[1]) == 0.25
    # the gradient with respect to the leaves at a NaN step is finite (zero): a NaN step poisons no optimizer
    g = jax.grad(lambda s, t: s(t))(s, jnp.float32(np.nan))
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g))


# -- periodic families: the phase from the integer step ----------------------------------------------

def _cos_restarts_ref(n: int, period: int, peak: float = 1.0) -> float:
    return peak * 0.5 * (1.0 + math.cos(math.pi * (n % period) / period))


PERIODIC = {
    # name -> (schedule, period in steps); each value depends on the step only through n mod period
    "cosine_restarts": (L.CosineRestarts(1.0, 1000), 1000),
    "cosine_restarts_7": (L.CosineRestarts(0.3, 7, floor=0.01), 7),
    "cosine_restarts_tanh": (L.CosineRestarts(1.0, 37, shape="tanh"), 37),
    "cosine_restarts_big": (L.CosineRestarts(1.0, 123_457), 123_457),
    "cyclic": (L.Cyclic(0.1, 1.0, 300, 700), 1000),
    "cyclic_3": (L.Cyclic(0.0, 1.0, 1, 2), 3),
    "cyclic_momentum": (L.Cyclic(0.1, 1.0, 10).momentum, 20),
    "cosine_periodic": (L.CosineDecay(1.0, 500, floor=0.1, periodic=True), 1000),
    "cosine_periodic_odd": (L.CosineDecay(1.0, 2.5, periodic=True), 5),
    "warmup_restarts": (L.Warmup(L.CosineRestarts(1.0, 1000), 100), 1000),
    "sequence_cyclic": (L.Sequence([L.Constant(0.5), L.Cyclic(0.1, 1.0, 500)], [250]), 1000),
    "shift_restarts": (L.Shift(L.CosineRestarts(1.0, 1000), 7), 1000),
    "switch_restarts": (L.Switch([L.Constant(1.0), L.CosineRestarts(1.0, 1000)], index=1), 1000),
    "product_restarts": (L.Product([L.CosineRestarts(1.0, 1000), L.Cyclic(0.5, 1.0, 250)]), 1000),
}
OFFSET = 300  # past every warmup/first segment above, so that r and k*period + r are on the same piece
RS = np.array([0, 1, 2, 3, 123, 249, 250, 499, 500, 501, 998, 999])


def _far(period: int, near: int) -> int:
    """A multiple of ``period`` just below ``near``."""
    return (near // period - 1) * period


@pytest.mark.parametrize("name", sorted(PERIODIC))
def test_phase_is_exact_at_any_integer_step(name):
    s, period = PERIODIC[name]
    rs = OFFSET + RS
    want = np.asarray(s(rs))
    for near in (2**24 + 3, 2**25, 2**31 - 1):
        k = _far(period, near - OFFSET - int(RS.max()))
        steps = k + rs
        assert steps.max() < 2**31
        for form in (steps.astype(np.int32), steps.astype(np.int64), jnp.asarray(steps, jnp.int32)):
            np.testing.assert_allclose(s(form), want, rtol=2e-6, atol=1e-7, err_msg=f"{name} near {near}")
        np.testing.assert_allclose([float(s(int(t))) for t in steps[:3]], want[:3], rtol=2e-6, atol=1e-7)
        # a traced int32 count, as inside an optimizer update
        np.testing.assert_allclose(jax.jit(lambda s, t: s(t))(s, jnp.asarray(steps, jnp.int32)), want,
                                   rtol=2e-6, atol=1e-7, err_msg=f"{name} near {near}, jitted")
        np.testing.assert_allclose(jax.jit(jax.vmap(lambda t: s(t)))(jnp.asarray(steps, jnp.int32)), want,
                                   rtol=2e-6, atol=1e-7)
    for near in (2**31 + 5_000, 2**40, 2**52):  # beyond int32: Python ints and int64 arrays, split on the host
        steps = _far(period, near) + rs
        np.testing.assert_allclose([float(s(int(t))) for t in steps], want, rtol=2e-6, atol=1e-7,
                                   err_msg=f"{name} near {near}")
        np.testing.assert_allclose(s(steps.astype(np.int64)), want, rtol=2e-6, atol=1e-7)


def test_phase_matches_exact_integer_arithmetic():
    rng = np.random.default_rng(0)
    for period in (1, 2, 7, 1000, 4096, 99_991, 2**20 + 1, 10**7):
        s = L.CosineRestarts(1.0, period)
        ns = np.concatenate([rng.integers(0, 2**31 - 1, 200), [2**31 - 1, 2**31 - 2, 2**24, 2**24 + 1, 0]])
        want = [_cos_restarts_ref(int(n), period) for n in ns]
        np.testing.assert_allclose(s(ns.astype(np.int32)), want, rtol=1e-5, atol=2e-6, err_msg=str(period))
        np.testing.assert_allclose(jax.jit(lambda t: s(t))(jnp.asarray(ns, jnp.int32)), want, rtol=1e-5,
                                   atol=2e-6)
        big = [int(n) * 977 + 2**33 for n in ns[:20]]  # int64 steps beyond 2**31
        np.testing.assert_allclose(s(np.array(big, np.int64)), [_cos_restarts_ref(n, period) for n in big],
                                   rtol=1e-5, atol=2e-6)


def test_cycle_count_is_exact_where_it_matters():
    # triangular2 halves every cycle and cycle_limit stops after n cycles: both read the exact cycle index
    tri2 = L.Cyclic(0.0, 1.0, 5, mode="triangular2")  # period 10
    np.testing.assert_allclose([float(tri2(t)) for t in (5, 15, 25, 35)], [1.0, 0.5, 0.25, 0.125])
    lim = L.CosineRestarts(1.0, 10, cycle_limit=3, floor=0.1)
    assert [round(float(lim(t)), 4) for t in (29, 30, 31)] == [round(float(lim(29)), 4), 0.1, 0.1]
    assert float(lim(20)) == 1.0


def test_a_fractional_period_restarts_where_float32_puts_it():
    # 1000/6 is not a float32 number: 3 periods end at step 500 as float32 computes 3 * (1000/6), like
    # Hugging Face's cosine_with_hard_restarts (progress * cycles % 1 in float64)
    s = L.CosineRestarts(1.0, 1000 / 6)
    assert float(s(500)) == 1.0 and float(s(499)) < 1e-3
    assert float(s(np.float32(500))) == 1.0
    assert float(jax.jit(lambda t: s(t))(jnp.int32(500))) == 1.0
    c = L.Cyclic(0.0, 1.0, 1000 / 12)  # cycle 1000/6
    np.testing.assert_allclose(c(np.array([0, 500, 1000])), [0.0, 0.0, 0.0], atol=1e-6)


def test_grads_at_huge_integer_steps_are_finite_and_right():
    # d/dT of the position n mod T is -k (the number of whole periods): the exact path keeps it
    s = L.CosineRestarts(1.0, 1000.0)
    n = jnp.asarray(1000 * 3 + 250, jnp.int32)
    g = jax.grad(lambda s: s(n))(s)
    gf = jax.grad(lambda s: s(jnp.float32(3250.0)))(s)
    np.testing.assert_allclose(float(g.first_period), float(gf.first_period), rtol=1e-5)
    big = jnp.asarray(2**31 - 1, jnp.int32)
    assert all(np.isfinite(np.asarray(x)) for x in jax.tree.leaves(jax.grad(lambda s: s(big))(s)))


# -- the step itself ------------------------------------------------------------------------------------

def test_steps_are_read_exactly():
    def exact(s):
        return [int(a) + int(b) + int(c) for a, b, c in zip(*(np.atleast_1d(np.asarray(x, np.float64))
                                                               for x in (s.top, s.hi, s.lo)))]

    s, raw = _to_step(2**40 + 3)
    assert raw is None and s.n is None and exact(s) == [2**40 + 3]
    s, _ = _to_step(np.array([5, 2**35 + 7, 2**62 - 1], np.int64))
    assert exact(s) == [5, 2**35 + 7, 2**62 - 1]
    s, _ = _to_step(2**90)
    assert exact(s) == [2**62]
    s, _ = _to_step(7)
    assert s.n.dtype == jnp.int32 and int(s.n) == 7 and s.hi is None
    s, raw = _to_step(np.float32(2.5))
    assert s.n is None and float(s.t) == 2.5 and float(raw) == 2.5
    s, _ = _to_step(jnp.asarray([3, -4], jnp.int16))
    np.testing.assert_array_equal(s.n, [3, 0])
    with pytest.raises(TypeError, match="step must be an integer"):
        _to_step("3")


def test_step_mod_by_hand():
    r, k = Step(jnp.float32(2**31 - 1), jnp.int32(2**31 - 1)).mod(1000.0)
    assert float(r) == (2**31 - 1) % 1000 and float(k) == pytest.approx((2**31 - 1) // 1000)
    r, k = Step(jnp.float32(2**40), hi=jnp.float32(0), lo=jnp.float32(999), top=jnp.float32(2**40)).mod(1000.0)
    assert float(r) == (2**40 + 999) % 1000
    r, k = Step.at(7.5).mod(2.0)  # float steps keep their fraction
    assert float(r) == 1.5 and float(k) == 3.0
    r, _ = Step(jnp.float32(5), jnp.int32(5)).shift(-7).clamp0().mod(3.0)
    assert float(r) == 0.0
