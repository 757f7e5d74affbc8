"""Hypothesis properties across families: warmups never decrease, decays never increase,
values stay within [floor, peak], sequences switch exactly at their boundaries, and cosine
restarts with a real period multiplier start every cycle at peak * decay**i."""

from __future__ import annotations

from fractions import Fraction

import jax
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import lrjax

rates = st.floats(1e-4, 10.0)
lengths = st.integers(1, 400)
fracs = st.floats(0.0, 1.0)
TOL = 1e-6  # float32 rounding, relative to the peak
N = 256  # every evaluation uses this many steps: one compile per structure, not per example

# One jitted evaluator: new hyperparameter values and new step values never recompile.
EV = jax.jit(lambda s, t: s(t))


def grid(end: int) -> np.ndarray:
    """N sorted integer steps from 0 to ``end`` (repeats allowed)."""
    return np.round(np.linspace(0, end, N)).astype(np.int32)


def ev(s, t) -> np.ndarray:
    return np.asarray(EV(s, np.asarray(t, np.float32)), np.float64)


def _nondecreasing(v, scale):
    assert np.all(np.diff(np.asarray(v, np.float64)) >= -TOL * scale), np.asarray(v)


def _nonincreasing(v, scale):
    assert np.all(np.diff(np.asarray(v, np.float64)) <= TOL * scale), np.asarray(v)


def _within(v, lo, hi):
    v = np.asarray(v, np.float64)
    span = max(abs(hi), 1e-12)
    assert np.all(v >= lo - TOL * span) and np.all(v <= hi + TOL * span), (v.min(), v.max(), lo, hi)


@given(peak=rates, w=lengths, init=fracs, shape=st.sampled_from(["linear", "cosine", "exponential"]),
       inner=st.sampled_from(["constant", "cosine", "step"]), prefix=st.booleans())
def test_warmup_never_decreases(peak, w, init, shape, inner, prefix):
    sched = {"constant": lrjax.Constant(peak), "cosine": lrjax.CosineDecay(peak, 10 * w, floor=0.1 * peak),
             "step": lrjax.StepDecay(peak, 5 * w, 0.5)}[inner]
    target = float(sched(0 if prefix else w))
    s = lrjax.Warmup(sched, w, init_value=max(init * target, 1e-6), shape=shape, prefix=prefix)
    _nondecreasing(ev(s, grid(w)), peak)


@given(peak=rates, w=lengths, s_=st.integers(0, 100), d=lengths, m=fracs,
       shape=st.sampled_from(["linear", "cosine", "1-sqrt"]))
def test_wsd_rises_then_never_increases_and_stays_within(peak, w, s_, d, m, shape):
    s = lrjax.WarmupStableDecay(peak, w, s_, d, m, warmup_shape=shape, decay_shape=shape)
    t = grid(w + s_ + d + 20)
    v = ev(s, t)
    _nondecreasing(v[t <= w], peak)
    _nonincreasing(v[t >= w], peak)
    _within(v, 0.0, peak)
    _within(v[t >= w], peak * m, peak)


@given(peak=rates, n=st.integers(10, 2000), pct=st.floats(0.05, 0.45), three=st.booleans(),
       strategy=st.sampled_from(["cos", "linear"]))
def test_one_cycle_up_then_down_within_bounds(peak, n, pct, three, strategy):
    s = lrjax.OneCycle(peak, n, pct, anneal_strategy=strategy, three_phase=three)
    t = grid(n + 10)
    v = ev(s, t)
    top = int(np.argmax(v))
    _nondecreasing(v[: top + 1], peak)
    _nonincreasing(v[top:], peak)
    _within(v, peak / 25 / 1e4, peak)
    _within(ev(s.momentum, t), 0.85, 0.95)


@given(peak=rates, steps=st.lists(st.integers(0, 10**7), min_size=N, max_size=N),
       fam=st.sampled_from(["step", "multi", "exp", "exp_stair", "inv", "inv_stair", "poly", "cos", "tanh", "isqrt"]),
       k=st.floats(0.01, 0.99), n=lengths)
def test_decay_never_increases(peak, steps, fam, k, n):
    s = {
        "step": lrjax.StepDecay(peak, n, k),
        "multi": lrjax.MultiStep(peak, [n, 2 * n, 5 * n], k),
        "exp": lrjax.Exponential(peak, k, n),
        "exp_stair": lrjax.Exponential(peak, k, n, end_value=peak * k / 10, staircase=True),
        "inv": lrjax.InverseTime(peak, 1 / k, n),
        "inv_stair": lrjax.InverseTime(peak, k, n, staircase=True),
        "poly": lrjax.Polynomial(peak, peak * k / 2, n, 4 * k),
        "cos": lrjax.CosineDecay(peak, n, floor=k, floor_mode="relative", exponent=3 * k),
        "tanh": lrjax.TanhDecay(peak, n, peak * k),
        "isqrt": lrjax.InverseSqrt(peak, 0, float(n)),
    }[fam]
    v = ev(s, sorted(steps))
    _nonincreasing(v, peak)
    _within(v, 0.0, peak)


@given(peak=rates, floor=fracs, t0=lengths, mult=st.floats(1.0, 3.0), decay=st.floats(0.1, 1.0),
       shape=st.sampled_from(["cosine", "tanh"]))
def test_restarts_within_floor_and_peak(peak, floor, t0, mult, decay, shape):
    s = lrjax.CosineRestarts(peak, t0, mult, decay, floor * peak, shape=shape)
    _within(ev(s, grid(3000)), floor * peak, peak)
    _within(ev(s, np.arange(N) * 11), floor * peak, peak)


@given(base=fracs, top=rates, up=lengths, down=lengths, mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
       gamma=st.floats(0.99, 1.0))
def test_cyclic_within_base_and_max(base, top, up, down, mode, gamma):
    lo = base * top
    s = lrjax.Cyclic(lo, top, up, down, mode=mode, gamma=gamma)
    t = np.arange(N) * 7
    _within(ev(s, t), lo, top)
    _within(ev(s.momentum, t), 0.8, 0.9)


@given(st.lists(st.integers(1, 60), min_size=1, max_size=4), st.data())
def test_sequence_is_right_at_each_boundary(gaps, data):
    bounds = np.cumsum(gaps)
    segs = [
        data.draw(st.sampled_from([lrjax.Linear(0.0, 1.0, 7), lrjax.CosineDecay(2.0, 30, floor=0.1),
                                   lrjax.StepDecay(1.5, 4, 0.5), lrjax.Constant(0.3)]))
        for _ in range(len(gaps) + 1)
    ]
    s = lrjax.Sequence(segs, [int(b) for b in bounds])
    starts = np.array([0, *bounds.tolist()])
    # each boundary, the step before it, and a grid over the whole sequence
    t = np.concatenate([bounds, bounds - 1, grid(int(bounds[-1]) + 50)])[:N]
    t = np.pad(t, (0, N - len(t)))
    seg = np.searchsorted(bounds, t, side="right")  # which segment holds step t
    want = np.zeros(N)
    for j, sj in enumerate(segs):  # segment j counts from its own start
        want = np.where(seg == j, ev(sj, np.maximum(t - starts[j], 0)), want)
    np.testing.assert_allclose(ev(s, t), want, rtol=1e-6, atol=1e-7)
    k = len(bounds)
    np.testing.assert_allclose(ev(s, t)[:k], [ev(segs[i + 1], np.zeros(N))[0] for i in range(k)], rtol=1e-6)


@given(t16=st.integers(1, 8), mult=st.sampled_from([1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0]),
       decay=st.floats(0.2, 1.0), peak=rates, floor=st.floats(0.0, 0.1))
def test_restarts_start_each_cycle_at_decayed_peak(t16, mult, decay, peak, floor):
    t0 = 16 * t16
    s = lrjax.CosineRestarts(peak, t0, mult, decay, floor * peak)
    m = Fraction(mult)
    start, ti, starts, lens = Fraction(0), Fraction(t0), [], []
    for _ in range(6):
        if start.denominator != 1:  # only exact integer cycle starts (float32 holds them exactly)
            break
        starts.append(int(start))
        lens.append(float(ti))
        start, ti = start + ti, ti * m
    k = len(starts)
    t = np.zeros(N)
    t[:k] = starts
    t[8 : 8 + k] = np.array(starts) - 1
    v = ev(s, t)
    f = floor * peak
    top = np.maximum(peak * decay ** np.arange(k), f)
    np.testing.assert_allclose(v[:k], top, rtol=2e-6)
    # the step before each restart is the last step of the previous cycle, one step short of the floor
    last = f + (top[:-1] - f) * (1 + np.cos(np.pi * (np.array(lens[:-1]) - 1) / np.array(lens[:-1]))) / 2
    np.testing.assert_allclose(v[9 : 8 + k], last, rtol=1e-5, atol=1e-6 * peak)
