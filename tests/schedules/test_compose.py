"""Warmup-based families and combinators against their formulas (Hugging Face's
inverse_sqrt and warmup_stable_decay, PyTorch's SequentialLR / ChainedScheduler)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lrjax

T = np.arange(0, 300, dtype=np.int64)


def close(got, want, rtol=2e-5, atol=2e-6):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


@pytest.mark.parametrize("w,tau", [(50, None), (50, 20.0), (0, None), (0, 7.0)])
def test_inverse_sqrt_matches_hf(w, tau):
    s = lrjax.InverseSqrt(2.0, w, tau)
    ts = tau if tau is not None else (w if w > 0 else 1e4)
    want = [2.0 * (t / w if t < w else 1 / math.sqrt((t + ts - w) / ts)) for t in T]
    close(s(T), want)


def test_inverse_sqrt_default_timescale_follows_replace():
    s = lrjax.InverseSqrt(1.0, 100).replace(warmup_steps=25)
    assert float(s(100)) == pytest.approx(0.5)  # sqrt(25/100): the timescale moved with the warmup
    assert float(lrjax.InverseSqrt(1.0, 100, 400.0).replace(warmup_steps=25)(25 + 3 * 400)) == pytest.approx(0.5)


def _f_warm(kind, p):
    return {"linear": p, "cosine": (1 - math.cos(math.pi * p)) / 2, "1-sqrt": 1 - math.sqrt(1 - p)}[kind]


def _g_decay(kind, p):
    return {"linear": 1 - p, "cosine": (1 + math.cos(math.pi * p)) / 2, "1-sqrt": 1 - math.sqrt(p)}[kind]


@pytest.mark.parametrize("wk", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("dk", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("m", [0.0, 0.1])
def test_warmup_stable_decay_matches_hf(wk, dk, m):
    W, S, D = 20, 150, 60
    s = lrjax.WarmupStableDecay(3.0, W, S, D, m, warmup_shape=wk, decay_shape=dk)

    def ref(t):
        if t < W:
            return m + (1 - m) * _f_warm(wk, t / W)
        if t < W + S:
            return 1.0
        if t < W + S + D:
            return m + (1 - m) * _g_decay(dk, (t - W - S) / D)
        return m

    close(s(T), [3.0 * ref(t) for t in T], atol=1e-5)


def _ramp(kind, a, b, p):
    return {"linear": a + (b - a) * p, "cosine": a + (b - a) * (1 - math.cos(math.pi * p)) / 2,
            "exponential": a * (b / a) ** p}[kind]


@pytest.mark.parametrize("shape", ["linear", "cosine", "exponential"])
def test_warmup_prefix_restarts_the_inner_clock(shape):
    inner = lrjax.CosineDecay(1.0, 200, floor=0.01)
    s = lrjax.Warmup(inner, 40, init_value=1e-3, shape=shape)
    want = [_ramp(shape, 1e-3, 1.0, t / 40) if t < 40 else float(inner(int(t) - 40)) for t in T]
    close(s(T), want)


@pytest.mark.parametrize("shape", ["linear", "cosine", "exponential"])
def test_warmup_overlay_keeps_the_inner_clock(shape):
    inner = lrjax.CosineDecay(1.0, 200, floor=0.01)
    s = lrjax.Warmup(inner, 40, init_value=1e-3, shape=shape, prefix=False)
    target = float(inner(40))
    want = [_ramp(shape, 1e-3, target, t / 40) if t < 40 else float(inner(int(t))) for t in T]
    close(s(T), want)


def test_warmup_wraps_any_schedule():
    for inner in (lrjax.StepDecay(1.0, 10, 0.5), lrjax.OneCycle(1.0, 100), lrjax.Cyclic(0.1, 1.0, 5)):
        s = lrjax.Warmup(inner, 10, init_value=0.0)
        assert float(s(0)) == 0.0
        assert float(s(5)) == pytest.approx(0.5 * float(inner(0)))
        close(s(np.arange(10, 60)), inner(np.arange(0, 50)))


def test_sequence_restarts_each_segment_at_its_boundary():
    a, b, c = lrjax.Linear(0.0, 1.0, 10), lrjax.CosineDecay(1.0, 50), lrjax.Constant(0.05)
    s = lrjax.Sequence([a, b, c], boundaries=[10, 60])
    want = [float(a(t)) if t < 10 else float(b(t - 10)) if t < 60 else float(c(t - 60)) for t in T]
    close(s(T), want)
    assert float(s(9)) == pytest.approx(0.9) and float(s(10)) == 1.0 and float(s(60)) == pytest.approx(0.05)


def test_product_scale_clamp():
    a, b = lrjax.CosineDecay(1.0, 100), lrjax.StepDecay(1.0, 30, 0.5)
    close(lrjax.Product([a, b])(T), np.asarray(a(T)) * np.asarray(b(T)))
    close(lrjax.Scale(a, 3.0)(T), 3.0 * np.asarray(a(T)))
    close(lrjax.Clamp(a, 0.2, 0.7)(T), np.clip(np.asarray(a(T)), 0.2, 0.7))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: lrjax.InverseSqrt(-1.0, 10), r"InverseSqrt: peak must be >= 0, got peak=-1"),
        (lambda: lrjax.InverseSqrt(1.0, 10, -5.0), r"timescale must be >= 0, got timescale=-5"),
        (lambda: lrjax.WarmupStableDecay(1.0, 10, 10, 0), r"decay_steps must be > 0, got decay_steps=0"),
        (lambda: lrjax.WarmupStableDecay(1.0, 10, 10, 10, 1.5), r"min_ratio must be in \[0, 1\], got min_ratio=1\.5"),
        (lambda: lrjax.WarmupStableDecay(1.0, 10, 10, 10, decay_shape="sqrt"), r"decay_shape must be one of .*did you mean '1-sqrt'"),
        (lambda: lrjax.Warmup(lrjax.CosineDecay(1.0, 100), 200, prefix=False),
         r"Warmup: warmup_steps must be <= the total length of the wrapped CosineDecay \(100 steps\).*got warmup_steps=200"),
        (lambda: lrjax.Warmup(lrjax.OneCycle(1.0, 50), 60, prefix=False), r"warmup_steps must be <= the total length"),
        (lambda: lrjax.Warmup(lrjax.Constant(1.0), -1), r"warmup_steps must be >= 0, got warmup_steps=-1"),
        (lambda: lrjax.Warmup(lrjax.Constant(1.0), 10, shape="exponential"), r"init_value must be > 0"),
        (lambda: lrjax.Warmup(lrjax.Constant(1.0), 10, shape="exp"), r"shape must be one of .*did you mean 'exponential'"),
        (lambda: lrjax.Sequence([lrjax.Constant(1.0), lrjax.Constant(0.5)], [10, 20]),
         r"boundaries must hold len\(schedules\) - 1 = 1 steps, got boundaries=\[10\.0, 20\.0\]"),
        (lambda: lrjax.Sequence([lrjax.Constant(1.0)] * 3, [20, 10]), r"boundaries must be strictly increasing"),
        (lambda: lrjax.Product([]), r"Product: schedules must hold at least one schedule"),
        (lambda: lrjax.Scale(lrjax.Constant(1.0), -2.0), r"factor must be >= 0, got factor=-2"),
        (lambda: lrjax.Clamp(lrjax.Constant(1.0), 0.5, 0.1), r"floor must be <= ceiling, got floor=0\.5 and ceiling=0\.1"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_warmup_longer_than_an_open_ended_schedule_is_fine():
    # prefix warmups have no limit; schedules without a total (constant, step decay) neither
    assert float(lrjax.Warmup(lrjax.CosineDecay(1.0, 100), 200)(200)) == 1.0
    assert float(lrjax.Warmup(lrjax.Constant(0.5), 200, prefix=False)(100)) == pytest.approx(0.25)


def test_children_must_be_schedules():
    with pytest.raises(TypeError, match=r"Warmup: schedule must hold lrjax schedules, got float"):
        lrjax.Warmup(0.1, 10)
    with pytest.raises(TypeError, match=r"Sequence: schedules must hold lrjax schedules.*position 1"):
        lrjax.Sequence([lrjax.Constant(1.0), lambda t: t], [5])


def test_switch_picks_a_family_by_index_and_vmaps_over_families():
    import jax
    import jax.numpy as jnp

    branches = (lrjax.Constant(0.25), lrjax.StepDecay(1.0, 10, 0.5), lrjax.CosineDecay(1.0, 100))
    steps = np.arange(0, 120, 7)
    for i, b in enumerate(branches):
        np.testing.assert_array_equal(lrjax.Switch(branches, index=i)(steps), b(steps))
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[lrjax.Switch(branches, index=i) for i in range(3)])
    got = jax.jit(jax.vmap(lambda s: s(steps)))(stacked)       # three families, one program
    np.testing.assert_array_equal(got, np.stack([b(steps) for b in branches]))
    for i, b in enumerate(branches):
        assert float(lrjax.Switch(branches, index=i).horizon) == float(b.horizon)
    one_cycle, cyclic = lrjax.OneCycle(1.0, 100), lrjax.Cyclic(0.1, 1.0, 10)
    mom = lrjax.Switch([one_cycle, cyclic], index=1).momentum
    np.testing.assert_array_equal(mom(steps), cyclic.momentum(steps))
    assert lrjax.Switch([one_cycle, lrjax.Constant(1.0)]).momentum is None
    assert lrjax.from_spec(lrjax.to_spec(lrjax.Switch(branches, index=2)))(50) == branches[2](50)


@pytest.mark.parametrize("kwargs, match", [
    ({"branches": ()}, r"Switch: branches must hold at least one schedule, got branches=\(\)"),
    ({"index": 3}, r"Switch: index must be an integer in \[0, 2\] \(one per branch\), got index=3.0"),
    ({"index": 1.5}, r"Switch: index must be an integer in \[0, 2\] \(one per branch\), got index=1.5"),
    ({"index": [0, 1]}, r"Switch: index must be an integer in \[0, 2\] \(one per branch\), got index=\[0.0, 1.0\]"),
    ({"branches": (lrjax.Constant(1.0), 0.5)}, r"Switch: branches must hold lrjax schedules, got float at position 1"),
])
def test_switch_rejects_bad_arguments(kwargs, match):
    args = {"branches": (lrjax.Constant(0.25), lrjax.StepDecay(1.0, 10, 0.5), lrjax.CosineDecay(1.0, 100)), "index": 0}
    with pytest.raises((ValueError, TypeError), match=match):
        lrjax.Switch(**{**args, **kwargs})
