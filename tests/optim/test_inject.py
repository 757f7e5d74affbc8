"""lrjax.inject and lrjax.scale_by_schedule: state-held plans, bitwise parity with optax, one compile."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 24, dtype=jnp.float32).reshape(4, 6), "b": jnp.ones(6, jnp.float32)}


def _grads(i, params):
    return jax.tree.map(lambda x: jnp.sin(x * (i + 1)) * 0.3, params)


def _run(tx, n=8, params=PARAMS):
    state = tx.init(params)
    for i in range(n):
        updates, state = tx.update(_grads(i, params), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        (optax.adamw, dict(learning_rate=1e-3, weight_decay=1e-4)),
        (optax.sgd, dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
        (optax.lion, dict(learning_rate=3e-4, weight_decay=1e-3)),
        (optax.adafactor, dict(learning_rate=1e-2)),
        (optax.rprop, dict(learning_rate=1e-2)),  # takes no schedule: the rate goes in as an array
        (optax.sm3, dict(learning_rate=1e-2)),
    ],
)
def test_inject_numbers_bitwise_equal_optax_direct(factory, kwargs):
    direct, _ = _run(factory(**kwargs))
    injected, state = _run(lrjax.inject(factory, **kwargs))
    assert _same(direct, injected)
    assert float(state.hyperparams["learning_rate"]) == np.float32(kwargs["learning_rate"])


def test_inject_schedule_bitwise_equal_optax_with_same_formula():
    sched = lrjax.Warmup(lrjax.CosineDecay(1e-2, 90), warmup_steps=3)
    direct, _ = _run(optax.adamw(lambda count: sched(count), weight_decay=1e-4))
    injected, _ = _run(lrjax.inject(optax.adamw, learning_rate=sched, weight_decay=1e-4))
    assert _same(direct, injected)
    # optax's own constant schedule and lrjax.Constant compute the same number
    a, _ = _run(optax.sgd(optax.constant_schedule(0.05), momentum=0.9))
    b, _ = _run(lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.05), momentum=0.9))
    assert _same(a, b)


def test_defaults_not_injected_and_static_args_keep_exact_constants():
    # b1/b2 left at their defaults stay optax's Python constants: bitwise equal (optax #1532).
    assert _same(_run(optax.adam(3e-3))[0], _run(lrjax.inject(optax.adam, learning_rate=3e-3))[0])
    # optax.inject_hyperparams injects the defaults too, and is not bitwise equal.
    assert not _same(_run(optax.adam(3e-3))[0], _run(optax.inject_hyperparams(optax.adam)(3e-3))[0])
    # An explicit b1 as a float32 leaf differs by float32 rounding of 1 - b1 ...
    direct, _ = _run(optax.adam(3e-3, b1=0.9))
    leaf, _ = _run(lrjax.inject(optax.adam, learning_rate=3e-3, b1=0.9))
    assert not _same(direct, leaf)
    assert all(np.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(jax.tree.leaves(direct), jax.tree.leaves(leaf)))
    # ... and static_args keeps optax's exact double-precision constant.
    exact, state = _run(lrjax.inject(optax.adam, learning_rate=3e-3, b1=0.9, static_args=("b1",)))
    assert _same(direct, exact)
    assert set(state.hyperparams) == {"learning_rate"}


def test_inject_classifies_arguments():
    mask = {"w": True, "b": False}
    tx = lrjax.inject(optax.adamw, learning_rate=lrjax.Constant(1e-3), b1=0.8, weight_decay=1e-2, mask=mask)
    state = tx.init(PARAMS)
    assert set(state.hyperparams) == {"learning_rate", "b1", "weight_decay"}
    assert state.hyperparams["b1"].dtype == jnp.float32
    assert isinstance(state.hyperparams["learning_rate"], lrjax.Constant)
    # the mask is static and applied: b gets no weight decay
    g = jax.tree.map(jnp.zeros_like, PARAMS)
    u, _ = tx.update(g, state, PARAMS)
    assert np.all(np.asarray(u["b"]) == 0.0) and np.all(np.asarray(u["w"]) != 0.0)


def test_inject_values_count_and_step_alignment():
    sched = lrjax.Linear(1.0, 0.0, 10)
    tx = lrjax.inject(optax.sgd, learning_rate=sched)
    state = tx.init(PARAMS)
    assert float(lrjax.current_hyperparams(state)["learning_rate"]) == 1.0  # step 0 before any update
    seen = []
    for i in range(4):
        u, state = tx.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
        seen.append(float(lrjax.current_hyperparams(state)["learning_rate"]))
        np.testing.assert_array_equal(u["b"], -np.float32(sched(i)) * np.ones(6, np.float32))
    assert seen == pytest.approx([1.0, 0.9, 0.8, 0.7])
    assert int(state.count) == 4


def test_count_saturates():
    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.1))
    state = tx.init(PARAMS)._replace(count=jnp.int32(2**31 - 1))
    _, state = tx.update(_grads(0, PARAMS), state, PARAMS)
    assert int(state.count) == 2**31 - 1


def test_update_follows_the_state_not_the_closure():
    tx_a = lrjax.inject(optax.sgd, learning_rate=lrjax.CosineDecay(0.1, 10), momentum=0.9)
    tx_b = lrjax.inject(optax.sgd, learning_rate=lrjax.CosineDecay(0.5, 30), momentum=0.5)
    state = tx_b.init(PARAMS)
    params = PARAMS
    for i in range(3):
        u, state = tx_a.update(_grads(i, params), state, params)
        params = optax.apply_updates(params, u)
    assert _same(params, _run(tx_b, 3)[0])


@pytest.fixture(scope="module")
def jitted_step():
    """One jitted SGD step built from one transformation; plans come in through the state."""
    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.Warmup(lrjax.CosineDecay(0.1, 20), warmup_steps=2), momentum=0.9)

    def step(params, state, grads):
        u, state = tx.update(grads, state, params)
        return optax.apply_updates(params, u), state

    return jax.jit(step)


def _plan(peak, steps, warm):
    return lrjax.inject(
        optax.sgd, learning_rate=lrjax.Warmup(lrjax.CosineDecay(peak, steps), warmup_steps=warm), momentum=0.9
    )


def test_three_schedules_one_compilation(jitted_step):
    plans = [_plan(0.1, 20, 2), _plan(0.3, 50, 5), _plan(0.02, 7, 0)]
    before = jitted_step._cache_size()
    for tx in plans:
        params, state = PARAMS, tx.init(PARAMS)
        for i in range(4):
            params, state = jitted_step(params, state, _grads(i, PARAMS))
        # same trajectory as the plan's own (eager) optimizer, fed the same gradients
        p_ref, s_ref = PARAMS, tx.init(PARAMS)
        for i in range(4):
            u, s_ref = tx.update(_grads(i, PARAMS), s_ref, p_ref)
            p_ref = optax.apply_updates(p_ref, u)
        assert all(np.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p_ref)))
    assert jitted_step._cache_size() - before == 1


def test_vmap_over_stacked_schedules_equals_each_alone(jitted_step):
    plans = [_plan(0.1, 20, 2), _plan(0.3, 50, 5), _plan(0.02, 7, 1)]
    states = [tx.init(PARAMS) for tx in plans]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    params = jax.tree.map(lambda x: jnp.stack([x] * 3), PARAMS)
    step = jax.vmap(jitted_step, in_axes=(0, 0, None))
    alone = []
    for _tx, s in zip(plans, states):
        p = PARAMS
        for i in range(4):
            p, s = jitted_step(p, s, _grads(i, PARAMS))
        alone.append(p)
    for i in range(4):
        params, stacked = step(params, stacked, _grads(i, PARAMS))
    for j in range(3):
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[j], params)), jax.tree.leaves(alone[j])):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    lr = lrjax.current_hyperparams(stacked)["learning_rate"]
    np.testing.assert_allclose(lr, [float(tx.init(PARAMS).hyperparams["learning_rate"](3)) for tx in plans], rtol=1e-6)


def test_inject_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"has no argument 'learnig_rate'.*did you mean 'learning_rate'"):
        lrjax.inject(optax.adamw, learnig_rate=1e-3)
    with pytest.raises(TypeError, match="optimizer_factory must be an optax optimizer factory"):
        lrjax.inject("adamw", learning_rate=1e-3)
    with pytest.raises(ValueError, match="plateau needs the learning rate"):
        lrjax.inject(optax.adamw, plateau=lrjax.reduce_on_plateau(), weight_decay=1e-4)
    with pytest.raises(TypeError, match="plateau must come from lrjax.reduce_on_plateau"):
        lrjax.inject(optax.adamw, learning_rate=1e-3, plateau=optax.sgd(0.1))
    with pytest.raises(ValueError, match="static_args names 'b2'"):
        lrjax.inject(optax.adam, learning_rate=1e-3, static_args=("b2",))


def test_scale_by_schedule_state_and_sign():
    sched = lrjax.Linear(1.0, 0.0, 4)
    tx = optax.chain(optax.scale(-1.0), lrjax.scale_by_schedule(sched))
    state = tx.init(PARAMS)
    assert float(lrjax.current_hyperparams(state)["scale"]) == 1.0
    for i in range(3):
        u, state = tx.update(jax.tree.map(jnp.ones_like, PARAMS), state)
        np.testing.assert_array_equal(u["b"], np.full(6, -float(sched(i)), np.float32))
    inner = state[1]
    assert isinstance(inner, lrjax.ScaleByScheduleState) and int(inner.count) == 3
    assert float(inner.value) == float(sched(2))
    # bitwise equal to optax.scale_by_schedule with the same formula
    ref = optax.chain(optax.scale(-1.0), optax.scale_by_schedule(lambda c: sched(c)))
    assert _same(_run(tx, 4)[0], _run(ref, 4)[0])


def test_scale_by_schedule_follows_state_and_refuses_plain_functions():
    a = lrjax.scale_by_schedule(lrjax.Constant(1.0))
    b = lrjax.scale_by_schedule(lrjax.Constant(0.25))
    u, _ = a.update(jnp.ones(2), b.init(None))
    np.testing.assert_array_equal(u, [0.25, 0.25])
    with pytest.raises(TypeError, match="schedule must be an lrjax.Schedule.*recompile"):
        lrjax.scale_by_schedule(lambda t: 0.1)


def test_bfloat16_params_keep_their_dtype_under_the_rate():
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.5))
    u, _ = tx.update({"w": jnp.ones(3, jnp.bfloat16)}, tx.init(params), params)
    assert u["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(u["w"], np.float32), [-0.5] * 3)


def test_donated_steps_never_consume_the_users_schedule_or_shared_leaves():
    sched = lrjax.OneCycle(0.1, total_steps=20)  # its .momentum shares sched's leaves
    tx = lrjax.inject(
        optax.sgd, learning_rate=sched, momentum=sched.momentum,
        plateau=lrjax.reduce_on_plateau(patience=0),
    )

    def step(params, state):
        u, state = tx.update(_grads(0, params), state, params, value=1.0)
        return optax.apply_updates(params, u), state

    step = jax.jit(step, donate_argnums=(0, 1))
    for _ in range(2):  # a second init after donation still finds live buffers
        params, state = jax.tree.map(jnp.copy, PARAMS), tx.init(PARAMS)
        _, state = tx.update(_grads(0, PARAMS), state, PARAMS)  # eager: values must not alias leaves
        for _ in range(2):
            params, state = step(params, state)
        state = lrjax.with_hyperparams(state, learning_rate=sched)
        params, state = step(params, state)
    assert float(sched(0)) == pytest.approx(0.004)  # the user's schedule is still alive
    assert int(state.count) == 4


def test_init_is_one_program_for_any_values_and_never_bakes_them():
    # init evaluates every schedule at step 0 in one compiled program (not one eager dispatch per
    # operation) with the schedules as arguments: a new plan of the same structure compiles nothing.
    compiles = []

    def listen(name, *_, **__):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)

    _plan(0.5, 10, 1).init(PARAMS)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        states = [_plan(peak, 50, warm).init(PARAMS) for peak, warm in ((0.1, 2), (0.3, 5), (0.02, 9))]
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []
    assert [float(s.values["learning_rate"]) for s in states] == [0.0, 0.0, 0.0]
    assert [float(s.hyperparams["learning_rate"](w)) for s, w in zip(states, (2, 5, 9))] == pytest.approx(
        [0.1, 0.3, 0.02])


def test_init_with_an_unhashable_static_argument_still_works():
    mask = {"w": True, "b": False}  # a dict: unhashable, so this optimizer gets a program of its own
    tx = lrjax.inject(optax.adamw, learning_rate=lrjax.Constant(0.1), mask=mask)
    u, _ = tx.update(_grads(0, PARAMS), tx.init(PARAMS), PARAMS)
    ref, _ = optax.adamw(0.1, mask=mask).update(_grads(0, PARAMS), optax.adamw(0.1, mask=mask).init(PARAMS), PARAMS)
    assert _same(u, ref)


def test_a_typed_prng_key_passes_through_as_static():
    key = jax.random.key(0)  # dtype key<fry>: not a number, never a float32 leaf
    tx = lrjax.inject(optax.noisy_sgd, learning_rate=0.1, key=key)
    state = tx.init(PARAMS)
    assert set(state.hyperparams) == {"learning_rate"}
    direct = optax.noisy_sgd(0.1, key=key)
    u, _ = tx.update(_grads(0, PARAMS), state, PARAMS)
    ref, _ = direct.update(_grads(0, PARAMS), direct.init(PARAMS), PARAMS)
    assert _same(u, ref)
    # a raw uint32 key is not a float hyperparameter either
    raw = jax.random.PRNGKey(3)
    tx = lrjax.inject(lambda learning_rate, key: optax.sgd(learning_rate), learning_rate=0.1, key=raw)
    assert set(tx.init(PARAMS).hyperparams) == {"learning_rate"}


def _negating_sgd(learning_rate, momentum=0.0):
    """A custom factory that needs its rate as a number: -learning_rate of a function fails."""
    return optax.chain(optax.trace(decay=momentum), optax.scale(-learning_rate))


def test_a_factory_that_needs_a_number_is_detected_not_listed():
    sched = lrjax.Linear(1.0, 0.0, 10)
    tx = lrjax.inject(_negating_sgd, learning_rate=sched, momentum=0.5)
    state = tx.init(PARAMS)
    g = jax.tree.map(jnp.ones_like, PARAMS)
    trace = 0.0
    for i in range(4):
        u, state = tx.update(g, state, PARAMS)
        trace = 1.0 + 0.5 * trace
        np.testing.assert_allclose(u["b"], -np.float32(sched(i)) * trace * np.ones(6), rtol=1e-6)
        assert float(lrjax.current_hyperparams(state)["learning_rate"]) == pytest.approx(float(sched(i)))
    # optax's own number-only factories under another name (the old name list missed these)
    def my_sm3(learning_rate):
        return optax.sm3(learning_rate)

    assert _same(_run(optax.sm3(1e-2))[0], _run(lrjax.inject(my_sm3, learning_rate=1e-2))[0])
    # and jitted, with a state from init: one decision, one structure
    tx = lrjax.inject(_negating_sgd, learning_rate=lrjax.Constant(0.5))
    step = jax.jit(lambda s, g: tx.update(g, s, PARAMS))
    u, _ = step(tx.init(PARAMS), g)
    np.testing.assert_array_equal(u["w"], np.full((4, 6), -0.5, np.float32))


def test_factories_that_take_a_schedule_keep_the_function_form():
    # sgd takes a schedule function: the rate reaches optax through scale_by_schedule (its count in the state)
    state = lrjax.inject(optax.sgd, learning_rate=0.1).init(PARAMS)
    assert isinstance(state.inner_state[-1], optax.ScaleByScheduleState)
    state = lrjax.inject(_negating_sgd, learning_rate=0.1).init(PARAMS)
    assert not any(isinstance(s, optax.ScaleByScheduleState) for s in state.inner_state)


def test_an_update_that_needs_extra_arguments_keeps_the_function_form():
    # lbfgs's update needs value/grad/value_fn: the probe fails both ways, which is not the rate's doing
    def f(p):
        return jnp.sum((p["w"] - 2.0) ** 2)

    params = {"w": jnp.ones(3)}
    tx, ref = lrjax.inject(optax.lbfgs, learning_rate=lrjax.Constant(1.0)), optax.lbfgs(learning_rate=1.0)
    a, sa, b, sb = params, tx.init(params), params, ref.init(params)
    for _ in range(2):
        v, g = jax.value_and_grad(f)(a)
        u, sa = tx.update(g, sa, a, value=v, grad=g, value_fn=f)
        a = optax.apply_updates(a, u)
        v, g = jax.value_and_grad(f)(b)
        u, sb = ref.update(g, sb, b, value=v, grad=g, value_fn=f)
        b = optax.apply_updates(b, u)
    assert _same(a, b)


@pytest.mark.parametrize("rate", ["1e-3", [1e-3], (1e-3,), True, {"lr": 1e-3}])
def test_a_rate_of_the_wrong_kind_is_refused_naming_the_argument(rate):
    with pytest.raises(TypeError, match=r"inject: learning_rate must be a number, an lrjax schedule or a schedule "
                                        r"function \(step -> rate\), got learning_rate="):
        lrjax.inject(optax.adamw, learning_rate=rate)


@pytest.mark.parametrize("rate", [-1e-3, float("nan"), float("inf"), np.float32(-1.0), np.array([1e-3, -1e-3])])
def test_a_negative_or_nan_rate_is_refused_as_the_families_refuse_it(rate):
    with pytest.raises(ValueError, match=r"inject: learning_rate must be a finite number >= 0, got learning_rate="):
        lrjax.inject(optax.adamw, learning_rate=rate)
    with pytest.raises(ValueError, match=r"Constant: value must (be|not be NaN)"):  # the family's own refusal
        lrjax.Constant(float(np.min(rate)))


def test_a_nan_hyperparameter_is_refused_and_zero_rate_is_fine():
    with pytest.raises(ValueError, match=r"inject: weight_decay must be a number, not NaN, got weight_decay=nan"):
        lrjax.inject(optax.adamw, learning_rate=1e-3, weight_decay=float("nan"))
    u, _ = lrjax.inject(optax.sgd, learning_rate=0.0).update(_grads(0, PARAMS), lrjax.inject(
        optax.sgd, learning_rate=0.0).init(PARAMS), PARAMS)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))
    # a rate computed inside jit (a tracer) is not checked, and works
    out = jax.jit(lambda lr: lrjax.inject(optax.sgd, learning_rate=lr).init(PARAMS).values["learning_rate"])(0.25)
    assert float(out) == 0.25
