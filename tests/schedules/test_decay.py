"""Values of the monotone decay families against the formulas in schedule-semantics.md
(independent numpy implementations), and their argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lrjax

T = np.arange(0, 260, dtype=np.int64)


def close(got, want, rtol=2e-6, atol=1e-7):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


def test_constant():
    close(lrjax.Constant(0.3)(T), np.full(T.shape, 0.3))


@pytest.mark.parametrize("a,b,n", [(0.0, 1.0, 10), (1.0, 0.25, 100), (0.1, 0.1, 3)])
def test_linear(a, b, n):
    close(lrjax.Linear(a, b, n)(T), a + (b - a) * np.minimum(T, n) / n)


@pytest.mark.parametrize("n,g", [(10, 0.5), (3, 0.1), (1, 0.9)])
def test_step_decay(n, g):
    close(lrjax.StepDecay(2.0, n, g)(T), 2.0 * g ** np.floor(T / n), rtol=1e-5)


@pytest.mark.parametrize("ms", [[10, 30, 31], [1], [0, 200]])
def test_multi_step_drops_at_the_milestone(ms):
    want = 1.5 * 0.3 ** np.array([sum(m <= t for m in ms) for t in T])
    close(lrjax.MultiStep(1.5, ms, 0.3)(T), want, rtol=1e-5)
    s = lrjax.MultiStep(1.0, [10], 0.1)
    assert float(s(9)) == 1.0 and float(s(10)) == pytest.approx(0.1)


@pytest.mark.parametrize("stair", [False, True])
def test_exponential(stair):
    e = np.floor(T / 7) if stair else T / 7
    close(lrjax.Exponential(2.0, 0.8, 7, staircase=stair)(T), 2.0 * 0.8**e, rtol=1e-5)
    # end_value bounds the decay from below (and growth from above)
    close(lrjax.Exponential(2.0, 0.8, 7, end_value=0.5, staircase=stair)(T), np.maximum(2.0 * 0.8**e, 0.5), rtol=1e-5)
    close(lrjax.Exponential(0.1, 1.1, 7, end_value=0.5, staircase=stair)(T), np.minimum(0.1 * 1.1**e, 0.5), rtol=1e-5)


@pytest.mark.parametrize("stair", [False, True])
def test_inverse_time(stair):
    e = np.floor(T / 5) if stair else T / 5
    close(lrjax.InverseTime(1.0, 0.5, 5, staircase=stair)(T), 1.0 / (1.0 + 0.5 * e))
    # the classic time-based decay lr0 / (1 + k t)
    close(lrjax.InverseTime(0.1, 0.01)(T), 0.1 / (1.0 + 0.01 * T))


@pytest.mark.parametrize("p,end", [(1.0, 0.0), (2.0, 0.1), (0.5, 0.0)])
def test_polynomial(p, end):
    want = (1.0 - end) * (1.0 - np.minimum(T, 100) / 100) ** p + end
    close(lrjax.Polynomial(1.0, end, 100, p)(T), want, rtol=1e-5, atol=1e-6)


def _cos(t, peak, T_, floor):
    return floor + (peak - floor) * (1 + np.cos(np.pi * t / T_)) / 2


def test_cosine_decay_absolute_and_relative_floor():
    close(lrjax.CosineDecay(2.0, 100, floor=0.1)(T), _cos(np.minimum(T, 100), 2.0, 100, 0.1), atol=1e-6)
    # relative floor = Keras' alpha: a fraction of the peak
    close(lrjax.CosineDecay(2.0, 100, floor=0.1, floor_mode="relative")(T), _cos(np.minimum(T, 100), 2.0, 100, 0.2), atol=1e-6)
    assert float(lrjax.CosineDecay(2.0, 100, floor=0.1)(10**6)) == pytest.approx(0.1)


def test_cosine_decay_periodic_is_torch_closed_form():
    # CosineAnnealingLR's closed form keeps following the cosine: back at the peak at 2*T_max
    close(lrjax.CosineDecay(1.0, 50, floor=0.01, periodic=True)(T), _cos(T, 1.0, 50, 0.01), atol=2e-6)
    assert float(lrjax.CosineDecay(1.0, 50, periodic=True)(100)) == pytest.approx(1.0)


def test_cosine_decay_exponent_matches_optax():
    want = 0.1 + (1.0 - 0.1) * ((1 + np.cos(np.pi * np.minimum(T, 100) / 100)) / 2) ** 2.0
    close(lrjax.CosineDecay(1.0, 100, floor=0.1, exponent=2.0, floor_mode="relative")(T), want, atol=1e-6)


def test_tanh_decay_is_timm_formula():
    tau = np.minimum(T, 120) / 120
    want = 0.01 + (1.0 - 0.01) * (1 - np.tanh(-7 * (1 - tau) + 3 * tau)) / 2
    close(lrjax.TanhDecay(1.0, 120, 0.01)(T), want, atol=1e-6)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: lrjax.Constant(-0.1), r"Constant: value must be >= 0, got value=-0.1"),
        (lambda: lrjax.Linear(0.0, 1.0, 0), r"Linear: steps must be > 0, got steps=0"),
        (lambda: lrjax.Linear(-1.0, 1.0, 5), r"init_value must be >= 0, got init_value=-1"),
        (lambda: lrjax.StepDecay(1.0, -3), r"step_size must be > 0, got step_size=-3"),
        (lambda: lrjax.MultiStep(1.0, [30, 10]), r"milestones must be (strictly increasing|non-decreasing), got milestones=\[30, 10\]"),
        (lambda: lrjax.MultiStep(1.0, 10), r"milestones must be a list of steps"),
        (lambda: lrjax.Exponential(1.0, 0.0), r"decay_rate must be > 0, got decay_rate=0"),
        (lambda: lrjax.Exponential(1.0, 0.5, staircase="yes"), r"staircase must be one of False, True"),
        (lambda: lrjax.InverseTime(1.0, -0.5), r"decay_rate must be >= 0"),
        (lambda: lrjax.Polynomial(1.0, 0.0, 0), r"decay_steps must be > 0, got decay_steps=0"),
        (lambda: lrjax.CosineDecay(1.0, 100, floor=2.0), r"floor must be <= peak, got floor=2 and peak=1"),
        (lambda: lrjax.CosineDecay(1.0, 100, floor=2.0, floor_mode="relative"), r"floor must be in \[0, 1\]"),
        (lambda: lrjax.CosineDecay(1.0, 100, floor_mode="relativ"), r"floor_mode must be one of 'absolute', 'relative', got floor_mode='relativ' \(did you mean 'relative'\?\)"),
        (lambda: lrjax.CosineDecay(1.0, float("nan")), r"decay_steps must not be NaN"),
        (lambda: lrjax.CosineDecay(1.0, float("inf")), r"decay_steps must be finite"),
        (lambda: lrjax.TanhDecay(1.0, 10, lower=3.0, upper=-7.0), r"lower must be < upper"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match=r"Constant: value must be a number.*got value='0.1'"):
        lrjax.Constant("0.1")
    with pytest.raises(TypeError, match=r"init_value must be a number.*got init_value=True"):
        lrjax.Linear(True, 1.0, 10)
    with pytest.raises(TypeError, match=r"step must be an integer"):
        lrjax.Constant(1.0)("3")


def test_traced_arguments_skip_the_checks():
    import jax

    # a negative value inside jit is not checked (and does not break construction)
    out = jax.jit(lambda v: lrjax.Linear(v, 1.0, 10)(5))(-1.0)
    assert float(out) == pytest.approx(0.0)
    assert math.isfinite(float(jax.jit(lambda n: lrjax.CosineDecay(1.0, n)(5))(10.0)))
