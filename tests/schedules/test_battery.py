"""One battery that every registered schedule family goes through.

Each family has three instances of one structure that differ in their numeric
hyperparameters (values AND step counts). The battery checks: jit == eager,
vmap over steps, vmap over a stacked batch of the three, one trace for the
three, finite float32 values everywhere (step 0, horizon, 10x horizon, 2**31 and
2**40 as Python int and np.int64, int32 arrays, vectors), finite gradients
w.r.t. every leaf, and an exact spec round trip through YAML. The step's definition
for every family: a negative step holds the step-0 value, a NaN or infinite float step
gives NaN; every leaf refuses a value that is not finite in float32; gradients stay
finite at edge values of the leaves (zero factors, zero lengths, equal bounds).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import lrjax
from lrjax.schedules._base import LEAF, field_kind

L = lrjax


def _cos(p=1.0, d=100, f=0.0):
    return L.CosineDecay(peak=p, decay_steps=d, floor=f)


# family name -> three instances of one tree structure, different leaf values.
CASES: dict[str, tuple[lrjax.Schedule, ...]] = {
    "constant": (L.Constant(0.1), L.Constant(0.3), L.Constant(1.0)),
    "linear": (L.Linear(0.0, 1.0, 10), L.Linear(0.5, 0.1, 100), L.Linear(1e-4, 1e-2, 7)),
    "step_decay": (L.StepDecay(1.0, 10, 0.5), L.StepDecay(0.1, 3, 0.1), L.StepDecay(2.0, 50, 0.9)),
    "multi_step": (
        L.MultiStep(1.0, [10, 30], 0.1),
        L.MultiStep(0.5, [5, 6], 0.5),
        L.MultiStep(2.0, [100, 400], 0.3),
    ),
    "exponential": (
        L.Exponential(1.0, 0.5, 10),
        L.Exponential(0.1, 0.9, 3, end_value=0.01),
        L.Exponential(2.0, 0.99, 1),
    ),
    "inverse_time": (L.InverseTime(1.0, 0.5), L.InverseTime(0.1, 2.0, 10), L.InverseTime(3.0, 0.0, 5)),
    "polynomial": (
        L.Polynomial(1.0, 0.0, 100, 2.0),
        L.Polynomial(0.1, 0.01, 10, 0.5),
        L.Polynomial(1.0, 0.2, 37, 1.0),
    ),
    "cosine_decay": (_cos(), _cos(0.3, 10, 0.01), _cos(2.0, 1000, 1.0)),
    "tanh_decay": (L.TanhDecay(1.0, 100), L.TanhDecay(0.3, 10, 0.1), L.TanhDecay(2.0, 50, 0.0, -5.0, 5.0)),
    "cosine_restarts": (
        L.CosineRestarts(1.0, 10, 1.0),
        L.CosineRestarts(0.5, 7, 1.5, 0.8, 0.01, 3),
        L.CosineRestarts(2.0, 20, 2.0, 0.5, 0.1, 2),
    ),
    "cyclic": (
        L.Cyclic(0.1, 1.0, 10),
        L.Cyclic(0.01, 0.1, 5, 15, gamma=0.9),
        L.Cyclic(0.0, 2.0, 20, 3, base_momentum=0.5, max_momentum=0.99),
    ),
    "one_cycle": (
        L.OneCycle(1.0, 100),
        L.OneCycle(0.1, 37, 0.25, 10.0, 100.0),
        L.OneCycle(3.0, 1000, 0.5, 5.0, 1e3, base_momentum=0.8, max_momentum=0.9),
    ),
    "momentum_of": (
        L.OneCycle(1.0, 100, three_phase=True).momentum,
        L.OneCycle(0.1, 50, 0.2, three_phase=True).momentum,
        L.OneCycle(3.0, 1000, 0.4, base_momentum=0.8, max_momentum=0.9, three_phase=True).momentum,
    ),
    "inverse_sqrt": (L.InverseSqrt(1.0, 100), L.InverseSqrt(0.1, 10, 50.0), L.InverseSqrt(2.0, 0.0, 1e4)),
    "warmup_stable_decay": (
        L.WarmupStableDecay(1.0, 10, 80, 10),
        L.WarmupStableDecay(0.1, 0, 5, 20, 0.1),
        L.WarmupStableDecay(3.0, 100, 0, 1, 0.5),
    ),
    "warmup": (
        L.Warmup(_cos(), 10),
        L.Warmup(_cos(0.1, 50, 0.01), 5, init_value=0.01),
        L.Warmup(_cos(3.0, 7, 3.0), 100, init_value=1.0),
    ),
    "sequence": (
        L.Sequence([L.Linear(0.0, 1.0, 10), _cos(1.0, 90), L.Constant(0.0)], [10, 100]),
        L.Sequence([L.Linear(0.1, 0.5, 3), _cos(0.5, 5), L.Constant(0.1)], [5, 6]),
        L.Sequence([L.Linear(1.0, 1.0, 100), _cos(0.3, 900, 0.1), L.Constant(0.2)], [0, 1000]),
    ),
    "product": (
        L.Product([_cos(), L.StepDecay(1.0, 10, 0.5)]),
        L.Product([_cos(0.2, 30, 0.1), L.StepDecay(2.0, 7, 0.9)]),
        L.Product([_cos(1.0, 3), L.StepDecay(0.5, 1, 1.0)]),
    ),
    "scale": (L.Scale(_cos(), 2.0), L.Scale(_cos(0.1, 5), 0.0), L.Scale(_cos(0.5, 1000, 0.1), 10.0)),
    "clamp": (
        L.Clamp(L.Linear(0.0, 1.0, 10), 0.2, 0.8),
        L.Clamp(L.Linear(1.0, 0.0, 100), 0.0, 0.5),
        L.Clamp(L.Linear(0.5, 0.6, 3), 0.1, 10.0),
    ),
}

CASES["piecewise_constant"] = (
    L.PiecewiseConstant([10, 20], [1.0, 0.5, 0.1]),
    L.PiecewiseConstant([1, 2], [0.3, 0.2, 0.0]),
    L.PiecewiseConstant([100, 1000], [2.0, 2.0, 1.0]),
)
CASES["shift"] = (
    L.Shift(L.Linear(0.0, 1.0, 10), 1),
    L.Shift(L.Linear(0.5, 0.1, 100), 0),
    L.Shift(L.Linear(1e-4, 1e-2, 7), 30),
)



def _lambda_fn(t, rate, floor):
    """A module-level function (its spec is its 'module:qualname' reference): floor + (1 - floor) rate^t."""
    return floor + (1.0 - floor) * rate**t


CASES["lambda"] = (
    L.Lambda(_lambda_fn, 0.1, rate=0.9, floor=0.0),
    L.Lambda(_lambda_fn, 1.0, rate=0.5, floor=0.1),
    L.Lambda(_lambda_fn, 3.0, rate=1.0, floor=1.0),
)
CASES["table"] = (
    L.Table([1.0, 0.5, 0.25, 0.125, 0.0], 0.1),
    L.Table([0.0, 1.0, 1.0, 0.3, 0.2], 1.0),
    L.Table([2.0, 2.0, 2.0, 2.0, 2.0], 3.0),
)

CASES["switch"] = (
    L.Switch([L.Constant(0.5), L.CosineDecay(1.0, 100)], index=1),
    L.Switch([L.Constant(2.0), L.CosineDecay(0.3, 7, floor=0.1)], index=0),
    L.Switch([L.Constant(1e-3), L.CosineDecay(1e-2, 1000)], index=1),
)

CASES["anneal"] = (
    L.Anneal(L.CosineDecay(1.0, 100)),  # off: the wrapped schedule's rates
    L.Anneal(L.CosineDecay(0.3, 500, floor=0.1), anneal_at=40, anneal_steps=60),
    L.Anneal(L.CosineDecay(1e-2, 30), anneal_at=75, anneal_steps=7, min_ratio=0.1),
)

from lrjax.schedules._optax_families import Affine  # noqa: E402 - the family lrjax.compat.optax needs

CASES["affine"] = (Affine(L.Linear(0.0, 1.0, 10), scale=-1.0, offset=0.5),
                   Affine(L.Linear(0.5, 0.1, 100), scale=2.0, offset=-0.1),
                   Affine(L.Linear(1e-4, 1e-2, 7), scale=0.5, offset=0.0))

NAMES = sorted(CASES)
HUGE = [2**31, 2**31 + 7, 2**40]
PROBES = 32


def _core_families() -> set[str]:
    return {
        name
        for name, cls in lrjax.registered_schedules().items()
        if cls.__module__.startswith("lrjax.schedules")
    }


def test_battery_covers_every_family():
    missing = _core_families() - set(CASES)
    assert not missing, f"families without a battery entry: {sorted(missing)}"
    for name, insts in CASES.items():
        assert all(type(s).name == name for s in insts), name
        structs = {jax.tree.structure(s) for s in insts}
        assert len(structs) == 1, f"{name}: the three instances must share one tree structure"


def _probe_steps(s: lrjax.Schedule) -> np.ndarray:
    """Integer steps around the start, the horizon and every boundary we know of."""
    h = int(np.ceil(float(s.horizon)))
    pts = {0, 1, 2, 3, max(h // 2, 0), max(h - 1, 0), h, h + 1, 10 * h, 10 * h + 1, 12_345}
    for leaf in jax.tree.leaves(s):  # step-like leaves (lengths, milestones, boundaries)
        for v in np.atleast_1d(np.asarray(leaf)):
            if np.isfinite(v) and 1 <= v <= 1e5 and float(v).is_integer():
                v = int(v)
                pts |= {v - 1, v, v + 1, 2 * v, 3 * v}
    pts = sorted(p for p in pts if p >= 0)[:PROBES]
    # A fixed length: eager ops compile once per shape, so every family reuses them.
    return np.array(pts + [pts[-1]] * (PROBES - len(pts)), dtype=np.int32)


# One jitted evaluator for the whole battery: jit caches one program per tree structure.
TRACES: list = []


@jax.jit
def _eval(s, t):
    TRACES.append(jax.tree.structure(s))
    return s(t)


_grad_fn = jax.jit(jax.vmap(jax.grad(lambda s, t: s(t)), in_axes=(None, 0)))
_vmap_steps = jax.jit(jax.vmap(lambda s, t: s(t), in_axes=(None, 0)))
_vmap_scheds = jax.jit(jax.vmap(lambda s, t: s(t), in_axes=(0, None)))


def _stack(insts):
    return jax.tree.map(lambda *x: jnp.stack(x), *insts)


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager_and_float32(name):
    for s in CASES[name]:
        ts = _probe_steps(s)
        eager = np.asarray(s(ts))
        assert s(ts).dtype == jnp.float32
        assert s(5).dtype == jnp.float32 and s(5).shape == ()
        jitted = np.asarray(_eval(s, jnp.asarray(ts)))
        np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
        # one scalar at a time (eager) agrees with the vector
        for i in (0, len(ts) // 2, len(ts) - 1):
            np.testing.assert_allclose(float(s(int(ts[i]))), eager[i], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_steps(name):
    s = CASES[name][1]
    ts = _probe_steps(s)
    np.testing.assert_allclose(_vmap_steps(s, jnp.asarray(ts)), s(ts), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_stacked_hyperparameters(name):
    insts = CASES[name]
    ts = np.concatenate([_probe_steps(s) for s in insts])
    got = np.asarray(_vmap_scheds(_stack(insts), jnp.asarray(ts)))
    assert got.shape == (3, len(ts))
    for row, s in zip(got, insts):
        np.testing.assert_allclose(row, s(ts), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_one_trace_for_three_values(name):
    a, b, c = CASES[name]
    t = jnp.asarray(_probe_steps(b))
    _eval(a, t)
    n = len(TRACES)
    vb, vc = _eval(b, t), _eval(c, t)
    assert len(TRACES) == n, f"{name}: new hyperparameter values retraced"
    np.testing.assert_allclose(vb, b(t), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(vc, c(t), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_finite_everywhere_and_step_types(name):
    for s in CASES[name]:
        h = float(s.horizon)
        assert np.isfinite(h) and h >= 0
        steps = [0, int(np.ceil(h)), int(np.ceil(10 * h)), *HUGE]
        for t in steps:
            for form in (t, np.int64(t)):
                v = s(form)
                assert v.dtype == jnp.float32 and v.shape == ()
                assert np.isfinite(float(v)), f"{name} at step {form!r}: {v}"
        vec = s(np.array(steps, dtype=np.int64))
        assert vec.dtype == jnp.float32 and vec.shape == (len(steps),)
        assert np.all(np.isfinite(vec))
        # int32 arrays (numpy and jax) give the same values as Python ints
        small = np.array([0, 1, 7, int(h)], dtype=np.int32)
        ref = np.array([float(s(int(t))) for t in small])
        np.testing.assert_allclose(s(small), ref, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(s(jnp.asarray(small)), ref, rtol=1e-6, atol=1e-7)
        # huge steps: Python int and int64 agree
        np.testing.assert_allclose(s(np.array(HUGE, dtype=np.int64)), np.array([s(t) for t in HUGE]), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_grad_finite_for_every_leaf(name):
    for s in CASES[name]:
        ts = np.concatenate([_probe_steps(s), [2**31]]).astype(np.float32)
        g = _grad_fn(s, jnp.asarray(ts))
        for path, leaf in jax.tree_util.tree_leaves_with_path(g):
            bad = ~np.isfinite(np.asarray(leaf))
            assert not bad.any(), f"{name}: d/d{jax.tree_util.keystr(path)} not finite at steps {ts[bad.any(axis=tuple(range(1, bad.ndim))) if bad.ndim > 1 else bad]}"


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip_through_yaml(name):
    for s in CASES[name]:
        spec = lrjax.to_spec(s)
        assert spec["name"] == name
        text = yaml.safe_dump(spec)
        back = lrjax.from_spec(yaml.safe_load(text))
        assert type(back) is type(s)
        assert jax.tree.structure(back) == jax.tree.structure(s)
        for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(s)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        ts = _probe_steps(s)
        np.testing.assert_array_equal(back(ts), s(ts))
        assert lrjax.to_spec(back) == spec


# -- the step's definition, for every family ----------------------------------------------------------

_call = jax.jit(lambda s, t: s(t))


@pytest.mark.parametrize("name", NAMES)
def test_negative_steps_hold_the_step_zero_value(name):
    for s in CASES[name]:
        v0 = float(s(0))
        for t in (-1, -3, -(2**31), -(2**40), np.int64(-5), np.float32(-0.5), -2.5):
            np.testing.assert_allclose(float(s(t)), v0, rtol=1e-6, atol=1e-7, err_msg=f"{name} at {t!r}")
        for form in (np.array([-7, -1, 0], np.int32), jnp.array([-7, -1, 0], jnp.int32)):
            np.testing.assert_allclose(s(form), [v0] * 3, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(_call(s, jnp.asarray(form)), [v0] * 3, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_nan_and_infinite_steps_give_nan(name):
    for s in CASES[name]:
        for t in (np.nan, np.float32(np.nan), np.inf, -np.inf):
            assert np.isnan(float(s(t))), f"{name} at {t!r}: {s(t)}"
        got = np.asarray(_call(s, jnp.array([np.nan, 0.0, np.inf, 3.0], jnp.float32)))
        assert np.isnan(got[0]) and np.isnan(got[2]), got
        np.testing.assert_allclose(got[[1, 3]], [float(s(0)), float(s(3))], rtol=1e-6, atol=1e-7)
        g = _grad_fn(s, jnp.array([np.nan, np.inf], jnp.float32))
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g)), name


@pytest.mark.parametrize("name", NAMES)
def test_every_leaf_refuses_a_value_not_finite_in_float32(name):
    s = CASES[name][0]
    for f in dataclasses.fields(s):
        cur = np.asarray(getattr(s, f.name)) if field_kind(f) == LEAF else None
        if cur is None or cur.size == 0:
            continue
        huge = np.full(cur.shape, 1e39).tolist() if cur.ndim else 1e39  # finite in float64, inf in float32
        if f.metadata.get("allow_inf"):  # cycle_limit, ceiling: 1e39 reads as "never", like inf
            assert np.all(np.isinf(np.asarray(getattr(s.replace(**{f.name: huge}), f.name))))
            continue
        with pytest.raises(ValueError, match=rf"{type(s).__name__}: {f.name} must be finite in float32.*"
                                             rf"got {f.name}=.*1\.?e\+39"):
            s.replace(**{f.name: huge})


# Edge values of the leaves: zero factors, zero lengths, equal bounds, tiny rates.
EDGES: dict[str, lrjax.Schedule] = {
    "step_decay gamma=0": L.StepDecay(1.0, 10, 0.0),
    "step_decay init=0": L.StepDecay(0.0, 10, 0.5),
    "multi_step gamma=0": L.MultiStep(1.0, [5, 10], 0.0),
    "multi_step no milestones": L.MultiStep(1.0, [], 0.5),
    "exponential tiny rate": L.Exponential(1.0, 1e-30, 10),
    "exponential staircase tiny rate": L.Exponential(1.0, 1e-30, 10, staircase=True),
    "exponential rate=1": L.Exponential(1.0, 1.0, 10, end_value=0.5),
    "inverse_time rate=0": L.InverseTime(1.0, 0.0),
    "polynomial power=0.5 end=init": L.Polynomial(1.0, 1.0, 10, 0.5),
    "polynomial cycle": L.Polynomial(1.0, 0.0, 10, 2.0, cycle=True),
    "cosine_decay floor=peak": L.CosineDecay(1.0, 10, floor=1.0),
    "cosine_decay peak=0": L.CosineDecay(0.0, 10),
    "cosine_decay periodic exponent=0.5": L.CosineDecay(1.0, 10, exponent=0.5, periodic=True),
    "tanh_decay floor=peak": L.TanhDecay(1.0, 10, 1.0),
    "cosine_restarts peak_decay=0": L.CosineRestarts(1.0, 10, 1.0, 0.0),
    "cosine_restarts peak_decay=0 mult=2": L.CosineRestarts(1.0, 10, 2.0, 0.0),
    "cosine_restarts amplitude decay=0": L.CosineRestarts(1.0, 10, 1.5, 0.0, 0.1, decay_mode="amplitude"),
    "cosine_restarts polynomial k_decay=0.5": L.CosineRestarts(1.0, 10, shape="polynomial", power=0.5, k_decay=0.5),
    "cosine_restarts cycle_limit=1": L.CosineRestarts(1.0, 10, cycle_limit=1),
    "cyclic triangular2 period 2": L.Cyclic(0.0, 1.0, 1, 1, mode="triangular2"),
    "cyclic exp_range tiny gamma": L.Cyclic(0.0, 1.0, 5, mode="exp_range", gamma=1e-30),
    "cyclic base=max": L.Cyclic(1.0, 1.0, 5),
    "one_cycle pct_start=0": L.OneCycle(1.0, 100, 0.0),
    "one_cycle pct_start=1": L.OneCycle(1.0, 100, 1.0),
    "one_cycle three phases linear": L.OneCycle(1.0, 10, 0.5, three_phase=True, anneal_strategy="linear"),
    "one_cycle momentum equal": L.OneCycle(1.0, 10, base_momentum=0.9, max_momentum=0.9).momentum,
    "inverse_sqrt no warmup peak=0": L.InverseSqrt(0.0, 0.0),
    "warmup_stable_decay no warmup min_ratio=0": L.WarmupStableDecay(1.0, 0, 0, 1, 0.0, "1-sqrt", "1-sqrt"),
    "warmup zero steps": L.Warmup(L.Constant(1.0), 0),
    "warmup exponential from tiny": L.Warmup(L.CosineDecay(1.0, 10), 5, init_value=1e-30, shape="exponential"),
    "warmup exponential to 0": L.Warmup(L.Constant(0.0), 5, init_value=1e-3, shape="exponential"),
    "sequence boundary 0": L.Sequence([L.Constant(1.0), L.Linear(0.0, 1.0, 1)], [0]),
    "product with zeros": L.Product([L.Constant(0.0), L.StepDecay(1.0, 1, 0.0)]),
    "scale factor=0": L.Scale(L.StepDecay(1.0, 1, 0.0), 0.0),
    "clamp floor=ceiling": L.Clamp(L.Linear(0.0, 1.0, 10), 0.5, 0.5),
    "piecewise_constant no boundaries": L.PiecewiseConstant([], [1.0]),
    "piecewise_constant repeated boundary": L.PiecewiseConstant([5, 5], [1.0, 0.0, 0.5], side="right"),
    "shift negative": L.Shift(L.InverseSqrt(1.0, 10), -5),
    "shift fraction": L.Shift(L.CosineRestarts(1.0, 10, peak_decay=0.0), 0.5),
    "anneal at 0 over 1 step": L.Anneal(L.StepDecay(1.0, 1, 0.0), anneal_at=0, anneal_steps=1),
    "anneal 1-sqrt": L.Anneal(L.Constant(0.3), anneal_at=40, anneal_steps=60, shape="1-sqrt"),
    "anneal cosine to min_ratio=1": L.Anneal(L.CosineRestarts(1.0, 30), anneal_at=7, anneal_steps=3, min_ratio=1.0,
                                             shape="cosine"),
    "switch gamma=0": L.Switch([L.StepDecay(1.0, 3, 0.0), L.Constant(0.0)], index=0),
}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_grad_finite_at_edge_values(case):
    s = EDGES[case]
    steps = np.unique(np.concatenate([_probe_steps(s), [0, 1, 2, 3, 4, 5, 9, 10, 11, 20, 99, 100, 2**31 - 1]]))
    for ts in (jnp.asarray(steps, jnp.int32), jnp.asarray(steps, jnp.float32)):
        v = np.asarray(_vmap_steps(s, ts))
        assert np.all(np.isfinite(v)), f"{case}: values {v}"
        g = _grad_fn(s, ts)
        for path, leaf in jax.tree_util.tree_leaves_with_path(g):
            bad = ~np.isfinite(np.asarray(leaf))
            assert not bad.any(), f"{case}: d/d{jax.tree_util.keystr(path)} not finite at steps {steps[bad]}"
