"""lrjax.compat.optax against optax's own numbers (tests/golden/optax.json, made by tests/golden/generate.py):
every step, rtol 1e-5 + atol 1e-6 x peak. optax is imported only to compare signatures, never to compute values."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_vectors import load

import lrjax
from lrjax.compat import optax as lro

golden, CASES, _, ERRORS = load("optax")


def build(spec: dict) -> lrjax.Schedule:
    kw = dict(spec["kwargs"])
    if kw.get("boundaries_and_scales") is not None:  # stored as [[step, scale], ...]
        kw["boundaries_and_scales"] = {b: s for b, s in kw["boundaries_and_scales"]}
    if "schedules" in kw:
        kw["schedules"] = [build(s) for s in kw["schedules"]]
    return getattr(lro, spec["function"])(**kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_at_every_step(name, assert_matches):
    case = CASES[name]
    sched = build(case)
    assert isinstance(sched, lrjax.Schedule)
    assert_matches(sched(np.arange(len(case["lr_values"]))), case["lr_values"], name)


def _functions(spec: dict) -> set[str]:
    return {spec["function"]} | {f for s in spec["kwargs"].get("schedules", []) for f in _functions(s)}


def test_every_function_is_covered_with_degenerate_cases():
    covered = set().union(*(_functions(c) for c in CASES.values()))
    assert covered == set(lro.__all__)
    assert len(CASES) >= 120 and golden["versions"]["optax"] == "0.2.8"
    negative = [n for n, c in CASES.items() if min(c["lr_values"]) < 0]
    assert len(negative) >= 10, negative  # negative values, as optax gives them
    # every run goes past the schedule's end: its last value is held over the last steps
    held = [n for n, c in CASES.items() if c["lr_values"][-1] == c["lr_values"][-2]]
    assert len(held) >= 0.85 * len(CASES)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_refuses_where_optax_raises_or_goes_non_finite(name):
    """optax raises (construct/call), gives inf/NaN (nonfinite), or gives numbers lrjax refuses (accepted)."""
    err = ERRORS[name]
    with pytest.raises((ValueError, TypeError)) as info:
        build(err)
    assert any(f in str(info.value) for f in lro.__all__), str(info.value)


def test_signatures_are_optaxs():
    for name in lro.__all__:
        ours = inspect.signature(getattr(lro, name)).parameters
        theirs = inspect.signature(getattr(optax.schedules, name)).parameters
        assert [(p.name, p.default) for p in ours.values()] == [(p.name, p.default) for p in theirs.values()], name


def test_native_compositions():
    def name(s):
        return lrjax.to_spec(s)["name"]

    assert name(lro.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000)) == "warmup"
    assert lrjax.to_spec(lro.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000, 1e-5))["schedule"] == {
        "name": "cosine_decay", "peak": 1e-3, "decay_steps": 900, "floor": 1e-5, "exponent": 1, "floor_mode": "absolute",
        "periodic": False}
    assert name(lro.cosine_onecycle_schedule(1000, 1e-3)) == "one_cycle"
    assert name(lro.exponential_decay(1.0, 10, 0.5)) == "exponential"
    assert name(lro.exponential_decay(1.0, 10, 0.5, transition_begin=5)) == "sequence"
    assert name(lro.linear_schedule(1.0, 0.0, 10, transition_begin=5)) == "shift"
    assert name(lro.piecewise_constant_schedule(1.0, {10: 0.1})) == "piecewise_constant"
    assert name(lro.cosine_decay_schedule(1.0, 100, alpha=0.1)) == "cosine_decay"
    assert name(lro.constant_schedule(-0.5)) == "affine"
    assert name(lro.polynomial_schedule(1.0, 0.0, 0, 10)) == "constant"  # power 0
    for s in (lro.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=10)] * 3),
              lro.linear_onecycle_schedule(100, 0.1), lro.linear_schedule(1.0, -1.0, 10)):
        again = lrjax.from_spec(lrjax.to_spec(s))  # exact spec round trip, Affine included
        np.testing.assert_array_equal(again(np.arange(60)), s(np.arange(60)))


def test_finite_where_optax_jitted_gives_nan():
    # optax's polynomial_schedule with a fractional power is NaN under jit from the end of the transition on
    # (XLA computes 1 - count/T a hair below 0); lrjax's jitted value is the end value
    cases = [c for c in CASES.values() if "optax_jit_nonfinite_steps" in c]
    assert {c["name"] for c in cases} >= {"poly_sqrt"}
    for c in cases:
        sched = build(c)
        steps = jnp.asarray(c["optax_jit_nonfinite_steps"], jnp.int32)
        got = np.asarray(jax.jit(lambda s, t: s(t))(sched, steps))
        want = np.asarray(c["lr_values"])[np.asarray(steps)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert np.isfinite(np.asarray(jax.jit(lambda t: sched(t))(steps))).all()  # closed over too


def test_in_the_optimizer_state_sweepable_and_replaceable():
    case = CASES["wcos_end"]
    sched = build(case)
    tx = lrjax.inject(optax.sgd, learning_rate=sched)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    step = jax.jit(lambda s: tx.update({"w": jnp.ones(3)}, s, params))
    rates = []
    for _ in range(30):
        updates, state = step(state)
        rates.append(float(lrjax.current_hyperparams(state)["learning_rate"]))
        np.testing.assert_allclose(updates["w"], -rates[-1] * np.ones(3), rtol=1e-6)
    np.testing.assert_allclose(rates, case["lr_values"][:30], rtol=1e-5, atol=1e-9)
    # another plan of the same structure: no recompilation, vmap over peaks
    other = lro.warmup_cosine_decay_schedule(1e-5, 3e-3, warmup_steps=10, decay_steps=200, end_value=1e-5)
    step(lrjax.with_hyperparams(state, learning_rate=other))
    assert step._cache_size() == 1
    peaks = [lro.warmup_cosine_decay_schedule(0.0, p, 20, 100) for p in (1e-3, 2e-3, 4e-3)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *peaks)
    np.testing.assert_allclose(jax.vmap(lambda s: s(20))(stacked), [1e-3, 2e-3, 4e-3], rtol=1e-6)


def test_arguments_are_checked_naming_them():
    with pytest.raises(TypeError, match=r"linear_schedule: init_value must be a number, got init_value='1'"):
        lro.linear_schedule("1", 0.0, 10)
    with pytest.raises(ValueError, match=r"exponential_decay: end_value must be a finite number, got end_value=nan"):
        lro.exponential_decay(1.0, 10, 0.5, end_value=float("nan"))
    with pytest.raises(ValueError, match=r"polynomial_schedule: power must be >= 0 in lrjax, got power=-1"):
        lro.polynomial_schedule(1.0, 0.0, -1, 10)
    with pytest.raises(ValueError, match=r"exponential_decay: decay_rate must be >= 0 in lrjax"):
        lro.exponential_decay(1.0, 10, -0.5, staircase=True)
    with pytest.raises(TypeError, match=r"join_schedules: schedules must hold lrjax schedules, got function at "
                                        r"position 1.*build it with lrjax.compat.optax"):
        lro.join_schedules([lro.constant_schedule(1.0), lambda t: 0.5], [10])
    with pytest.raises(ValueError, match=r"piecewise_interpolate_schedule: interpolate_type must be one of 'linear', "
                                         r"'cosine', got interpolate_type='cos'"):
        lro.piecewise_interpolate_schedule("cos", 1.0)
    with pytest.raises(TypeError, match=r"piecewise_constant_schedule: boundaries_and_scales must be a dict"):
        lro.piecewise_constant_schedule(1.0, [(10, 0.1)])
