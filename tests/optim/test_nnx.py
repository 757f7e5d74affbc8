"""lrjax.inject inside Flax NNX's nnx.Optimizer: training, reading the rate, replacing the plan mid-run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax

X = jnp.linspace(-1.0, 1.0, 32, dtype=jnp.float32).reshape(8, 4)
Y = jnp.sin(X @ jnp.arange(1.0, 9.0, dtype=jnp.float32).reshape(4, 2))


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(4, 16, rngs=rngs)
        self.out = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def loss_fn(model):
    return jnp.mean((model(X) - Y) ** 2)


def _setup(tx):
    model = MLP(nnx.Rngs(0))
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def _step(model, optimizer):
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    updates = optimizer.update(model, grads)
    return loss, grads, updates


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_trains_end_to_end_bitwise_as_optax_and_reports_plain_arrays():
    sched = lrjax.Warmup(lrjax.CosineDecay(0.05, 20), warmup_steps=3)
    model, optimizer = _setup(lrjax.inject(optax.adamw, learning_rate=sched, weight_decay=1e-4))
    ref_model, ref_opt = _setup(optax.adamw(lambda count: sched(count), weight_decay=1e-4))
    losses = []
    for t in range(6):
        losses.append(float(_step(model, optimizer)[0]))
        _step(ref_model, ref_opt)
        hp = lrjax.current_hyperparams(optimizer)  # the optimizer itself, or its .opt_state
        assert set(hp) == {"learning_rate", "weight_decay"}
        assert all(type(v) is type(jnp.zeros(())) for v in hp.values()), {k: type(v) for k, v in hp.items()}
        assert float(hp["learning_rate"]) == float(sched(t))
        assert float(lrjax.current_hyperparams(optimizer.opt_state)["learning_rate"]) == float(sched(t))
    assert losses[-1] < losses[0]
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(nnx.state(model)), _leaves(nnx.state(ref_model))))


def _momentum_update(optimizer, grads, rate, momentum):
    """sgd with momentum: trace' = g + m trace, update = -rate trace' (from the trace held before the step)."""
    trace = _leaves(optimizer.opt_state.inner_state[0].trace)
    g = _leaves(nnx.state(grads, nnx.Param))
    return [-np.float32(rate) * (gi + np.float32(momentum) * ti) for gi, ti in zip(g, trace)]


def _close(a, b):
    return all(np.allclose(x, y, rtol=1e-5, atol=1e-8) for x, y in zip(_leaves(a), _leaves(b)))


def test_replacing_a_one_cycle_plan_mid_run_in_place():
    plan = lrjax.OneCycle(max_lr=0.05, total_steps=20)
    model, optimizer = _setup(lrjax.inject(optax.sgd, learning_rate=plan, momentum=plan.momentum))
    for _ in range(3):
        _step(model, optimizer)
    assert float(lrjax.current_hyperparams(optimizer)["learning_rate"]) == pytest.approx(float(plan(2)))

    longer = plan.replace(max_lr=0.2, total_steps=40, base_momentum=0.8)
    lrjax.set_hyperparams(optimizer, learning_rate=longer, momentum=longer.momentum)
    hp = lrjax.current_hyperparams(optimizer)  # re-evaluated at the last update's step
    assert float(hp["learning_rate"]) == pytest.approx(float(longer(2)))
    for t in (3, 4):  # the new plan is the one used, moments kept
        grads = nnx.grad(loss_fn)(model)
        want = _momentum_update(optimizer, grads, longer(t), longer.momentum(t))
        updates = optimizer.update(model, grads)
        assert _close(updates, want)
        assert float(lrjax.current_hyperparams(optimizer)["learning_rate"]) == float(longer(t))
        assert float(lrjax.current_hyperparams(optimizer)["momentum"]) == float(longer.momentum(t))
    assert int(optimizer.opt_state.count[...]) == 5


def test_assigning_with_hyperparams_back_keeps_the_nnx_wrappers():
    # what the issue tried: opt.opt_state = lrjax.with_hyperparams(opt.opt_state, ...) then a step
    plan = lrjax.OneCycle(max_lr=0.05, total_steps=20)
    model, optimizer = _setup(lrjax.inject(optax.sgd, learning_rate=plan, momentum=plan.momentum))
    _step(model, optimizer)
    before = jax.tree.structure(optimizer.opt_state)
    new = plan.replace(max_lr=0.1)
    optimizer.opt_state = lrjax.with_hyperparams(optimizer.opt_state, learning_rate=new)
    assert jax.tree.structure(optimizer.opt_state) == before  # still OptArray/OptVariable leaves
    grads = nnx.grad(loss_fn)(model)
    want = _momentum_update(optimizer, grads, new(1), plan.momentum(1))
    assert _close(optimizer.update(model, grads), want)
    optimizer.opt_state = lrjax.replace_schedule(optimizer.opt_state, plan)
    _step(model, optimizer)
    assert float(lrjax.current_hyperparams(optimizer)["learning_rate"]) == float(plan(2))


def test_under_nnx_jit_one_program_for_both_plans():
    plan = lrjax.OneCycle(max_lr=0.05, total_steps=20)
    model, optimizer = _setup(lrjax.inject(optax.sgd, learning_rate=plan, momentum=plan.momentum))
    traces = []

    @nnx.jit
    def train_step(model, optimizer):
        traces.append(1)
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss, lrjax.current_hyperparams(optimizer)

    @nnx.jit
    def replan(optimizer, new):
        lrjax.set_hyperparams(optimizer, learning_rate=new, momentum=new.momentum)

    losses = [float(train_step(model, optimizer)[0]) for _ in range(3)]
    new = plan.replace(max_lr=0.1, total_steps=30)
    replan(optimizer, new)
    for t in (3, 4, 5):
        loss, hp = train_step(model, optimizer)
        losses.append(float(loss))
        assert float(hp["learning_rate"]) == pytest.approx(float(new(t)), rel=1e-6)
        assert float(hp["momentum"]) == pytest.approx(float(new.momentum(t)), rel=1e-6)
    assert len(traces) == 1  # the new plan is data: the jitted step never retraced
    assert losses[-1] < losses[0]
    # the same run eagerly, replan included: same parameters
    model2, opt2 = _setup(lrjax.inject(optax.sgd, learning_rate=plan, momentum=plan.momentum))
    for _ in range(3):
        _step(model2, opt2)
    lrjax.set_hyperparams(opt2, learning_rate=new, momentum=new.momentum)
    for _ in range(3):
        _step(model2, opt2)
    assert _close(nnx.state(model), nnx.state(model2))


def test_plateau_fed_through_observe_metric_on_an_nnx_state():
    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.1), plateau=lrjax.reduce_on_plateau(patience=0))
    model, optimizer = _setup(tx)
    _step(model, optimizer)
    for loss in (1.0, 1.0):  # no improvement after the first: the rate drops tenfold
        optimizer.opt_state = lrjax.observe_metric(optimizer.opt_state, loss)
    hp = lrjax.current_hyperparams(optimizer)
    assert float(hp["learning_rate"]) == pytest.approx(0.01) and float(hp["plateau_scale"]) == pytest.approx(0.1)
    grads = nnx.grad(loss_fn)(model)
    assert _close(optimizer.update(model, grads), [-0.01 * g for g in _leaves(nnx.state(grads, nnx.Param))])


def test_wrong_objects_are_refused_with_the_way_to_do_it():
    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.1))
    model, optimizer = _setup(tx)
    with pytest.raises(TypeError, match=r"with_hyperparams: opt_state must be an optax state, got a Optimizer.*"
                                        r"\.opt_state.*lrjax\.set_hyperparams"):
        lrjax.with_hyperparams(optimizer, learning_rate=lrjax.Constant(0.2))
    with pytest.raises(TypeError, match=r"set_hyperparams: optimizer must be an optimizer object.*"
                                        r"state = lrjax\.with_hyperparams\(state, \.\.\.\)"):
        lrjax.set_hyperparams(tx.init({"w": jnp.ones(2)}), learning_rate=lrjax.Constant(0.2))
    with pytest.raises(ValueError, match=r"learning_rate is Constant in the state but Linear in the replacement"):
        lrjax.set_hyperparams(optimizer, learning_rate=lrjax.Linear(0.1, 0.0, 10))
    assert float(lrjax.current_hyperparams(optimizer)["learning_rate"]) == pytest.approx(0.1)  # untouched


def test_set_hyperparams_on_a_plain_holder_and_an_immutable_one():
    from flax.training import train_state

    class Holder:
        def __init__(self, opt_state):
            self.opt_state = opt_state

    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.1))
    params = {"w": jnp.ones(2)}
    h = Holder(tx.init(params))
    lrjax.set_hyperparams(h, learning_rate=lrjax.Constant(0.3))
    assert float(lrjax.current_hyperparams(h)["learning_rate"]) == pytest.approx(0.3)
    ts = train_state.TrainState.create(apply_fn=None, params=params, tx=tx)
    assert float(lrjax.current_hyperparams(ts)["learning_rate"]) == pytest.approx(0.1)
    with pytest.raises(TypeError, match=r"TrainState is immutable; use x = x\.replace\(opt_state=lrjax\.with_hyperparams"):
        lrjax.set_hyperparams(ts, learning_rate=lrjax.Constant(0.3))
