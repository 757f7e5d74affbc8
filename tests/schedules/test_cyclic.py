"""Cosine restarts, cyclic and one-cycle (with their momentum) against the PyTorch/timm
formulas of schedule-semantics.md, written here independently (step-by-step loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lrjax

T = np.arange(0, 400, dtype=np.int64)


def close(got, want, rtol=2e-5, atol=2e-6):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


def restarts_ref(t, peak, t0, mult, decay=1.0, floor=0.0, limit=math.inf):
    """Walk the cycles one by one (SGDR / timm CosineLRScheduler with k=1)."""
    start, ti, i = 0.0, float(t0), 0
    while t >= start + ti:
        start += ti
        ti *= mult
        i += 1
    if i >= limit:
        return floor
    top = peak * decay**i
    return floor + (top - floor) * (1 + math.cos(math.pi * (t - start) / ti)) / 2


@pytest.mark.parametrize(
    "t0,mult,decay,floor,limit",
    [(10, 1.0, 1.0, 0.0, math.inf), (10, 2.0, 1.0, 0.01, math.inf), (8, 1.5, 0.7, 0.0, math.inf),
     (12, 1.3, 0.9, 0.05, 3), (7, 3.0, 0.5, 0.0, 2)],
)
def test_cosine_restarts_matches_cycle_walk(t0, mult, decay, floor, limit):
    s = lrjax.CosineRestarts(1.0, t0, mult, decay, floor, limit)
    close(s(T), [restarts_ref(t, 1.0, t0, mult, decay, floor, limit) for t in T])


def test_cosine_restarts_torch_closed_form_integer_mult():
    # CosineAnnealingWarmRestarts(T_0=5, T_mult=2, eta_min=0.1): n = floor(log2(t/5 + 1))
    s = lrjax.CosineRestarts(1.0, 5, 2.0, floor=0.1)
    for t in range(5, 300):
        n = math.floor(math.log(t / 5 + 1, 2))
        tcur, ti = t - 5 * (2**n - 1), 5 * 2**n
        assert float(s(t)) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * tcur / ti)) / 2, abs=2e-6)


def test_cosine_restarts_real_mult_at_float_steps():
    s = lrjax.CosineRestarts(2.0, 10, 1.37, 0.8)
    ts = np.linspace(0, 200, 1001)
    close(s(ts.astype(np.float32)), [restarts_ref(float(np.float32(t)), 2.0, 10, 1.37, 0.8) for t in ts], atol=2e-5)


def test_cosine_restarts_tanh_shape():
    s = lrjax.CosineRestarts(1.0, 20, 1.0, shape="tanh", floor=0.1)
    tau = (T % 20) / 20
    close(s(T), 0.1 + 0.9 * (1 - np.tanh(-7 * (1 - tau) + 3 * tau)) / 2)


def cyclic_ref(t, base, mx, up, down, mode, gamma, bm=0.8, mm=0.9):
    total = up + down
    r = up / total
    c = math.floor(1 + t / total)
    x = 1 + t / total - c
    h = x / r if x <= r else (x - 1) / (r - 1)
    sc = {"triangular": 1.0, "triangular2": 2.0 ** -(c - 1), "exp_range": gamma**t}[mode]
    return base + (mx - base) * h * sc, mm - (mm - bm) * h * sc


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("up,down", [(10, None), (7, 13), (20, 3)])
def test_cyclic_matches_torch_cycliclr(mode, up, down):
    s = lrjax.Cyclic(0.01, 0.1, up, down if down is not None else -1.0, mode=mode, gamma=0.995)
    ref = np.array([cyclic_ref(t, 0.01, 0.1, up, down or up, mode, 0.995) for t in T])
    close(s(T), ref[:, 0])
    close(s.momentum(T), ref[:, 1])


def onecycle_ref(t, mx, n, pct, div, fdiv, strategy, three, bm=0.85, mm=0.95):
    """PyTorch OneCycleLR's phase loop; holds the final value past n - 1."""
    init = mx / div
    low = init / fdiv
    if three:
        phases = [(pct * n - 1, init, mx, mm, bm), (2 * pct * n - 2, mx, init, bm, mm), (n - 1, init, low, mm, mm)]
    else:
        phases = [(pct * n - 1, init, mx, mm, bm), (n - 1, mx, low, bm, mm)]
    t = min(t, n - 1)
    start = 0.0
    for i, (end, a, b, ma, mb) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            p = (t - start) / (end - start)
            if strategy == "cos":
                f = lambda u, v: v + (u - v) * (1 + math.cos(math.pi * p)) / 2  # noqa: E731
            else:
                f = lambda u, v: u + p * (v - u)  # noqa: E731
            return f(a, b), f(ma, mb)
        start = end


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three", [False, True])
@pytest.mark.parametrize("n,pct", [(100, 0.3), (257, 0.25), (40, 0.45)])
def test_one_cycle_matches_torch_onecyclelr(strategy, three, n, pct):
    s = lrjax.OneCycle(0.5, n, pct, 25.0, 1e4, anneal_strategy=strategy, three_phase=three)
    ref = np.array([onecycle_ref(t, 0.5, n, pct, 25.0, 1e4, strategy, three) for t in T])
    close(s(T), ref[:, 0], atol=1e-6)
    close(s.momentum(T), ref[:, 1], atol=1e-6)


def test_one_cycle_landmarks():
    s = lrjax.OneCycle(1.0, 100)  # peak at pct*N - 1 = 29 (PyTorch; optax peaks one step later)
    assert float(s(0)) == pytest.approx(0.04)
    assert float(s(29)) == pytest.approx(1.0)
    assert float(s(99)) == pytest.approx(0.04 / 1e4, rel=1e-4)
    assert float(s(10**9)) == pytest.approx(0.04 / 1e4, rel=1e-4)
    assert float(s.momentum(0)) == pytest.approx(0.95) and float(s.momentum(29)) == pytest.approx(0.85)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: lrjax.CosineRestarts(1.0, 10, 0.9), r"CosineRestarts: period_mult must be >= 1, got period_mult=0\.9"),
        (lambda: lrjax.CosineRestarts(1.0, 0), r"first_period must be > 0, got first_period=0"),
        (lambda: lrjax.CosineRestarts(1.0, 10, cycle_limit=0), r"cycle_limit must be > 0"),
        (lambda: lrjax.CosineRestarts(1.0, 10, shape="sine"), r"shape must be one of 'cosine', 'tanh'"),
        (lambda: lrjax.CosineRestarts(-1.0, 10), r"peak must be >= 0, got peak=-1"),
        (lambda: lrjax.Cyclic(0.1, 1.0, 0), r"step_size_up must be > 0, got step_size_up=0"),
        (lambda: lrjax.Cyclic(0.1, 1.0, 10, 0), r"step_size_down must be > 0"),
        (lambda: lrjax.Cyclic(0.1, 1.0, 10, gamma=1.5), r"gamma must be in \(0, 1\], got gamma=1\.5"),
        (lambda: lrjax.Cyclic(0.1, 1.0, mode="triangle"), r"mode must be one of .*got mode='triangle' \(did you mean 'triangular'\?\)"),
        (lambda: lrjax.OneCycle(1.0, 100, pct_start=1.5), r"pct_start must be in [\(\[]0, 1[\)\]], got pct_start=1\.5"),
        (lambda: lrjax.OneCycle(1.0, 100, pct_start=-0.1), r"pct_start must be in [\(\[]0, 1[\)\]], got pct_start=-0\.1"),
        (lambda: lrjax.OneCycle(1.0, 0), r"total_steps must be > 0, got total_steps=0"),
        (lambda: lrjax.OneCycle(1.0, 100, 0.7, three_phase=True), r"three_phase=True .* got pct_start=0\.7"),
        (lambda: lrjax.OneCycle(1.0, 100, anneal_strategy="cosine"), r"anneal_strategy must be one of 'cos', 'linear'.*did you mean 'cos'"),
        (lambda: lrjax.OneCycle(1.0, 100, base_momentum=0.99), r"base_momentum must be <= max_momentum"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_momentum_of_needs_a_cyclic_schedule():
    with pytest.raises(TypeError, match=r"MomentumOf: schedule must be a Cyclic or OneCycle.*got CosineDecay"):
        lrjax.MomentumOf(lrjax.CosineDecay(1.0, 10))
