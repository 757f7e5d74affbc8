"""current_hyperparams / with_hyperparams / replace_schedule across nested optax states."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
G = {"w": jnp.full((2, 3), 0.5), "b": jnp.full(3, 0.5)}


def test_found_inside_chain_multisteps_and_masked():
    sched = lrjax.Linear(1.0, 0.0, 10)
    tx = optax.MultiSteps(
        optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.masked(lrjax.inject(optax.adam, learning_rate=sched, b1=0.8), {"w": True, "b": False}),
        ),
        every_k_schedule=2,
    )
    state = tx.init(PARAMS)
    hp = lrjax.current_hyperparams(state)
    assert set(hp) == {"learning_rate", "b1"}
    assert float(hp["learning_rate"]) == 1.0 and float(hp["b1"]) == np.float32(0.8)
    for _ in range(6):  # 3 optimizer updates: the last used s(2)
        _, state = tx.update(G, state, PARAMS)
    assert float(lrjax.current_hyperparams(state)["learning_rate"]) == pytest.approx(0.8)


def test_duplicate_names_are_keyed_by_path():
    tx = optax.multi_transform(
        {"a": lrjax.inject(optax.sgd, learning_rate=0.1), "b": lrjax.inject(optax.sgd, learning_rate=0.01)},
        {"w": "a", "b": "b"},
    )
    hp = lrjax.current_hyperparams(tx.init(PARAMS))
    assert len(hp) == 2 and all(k.endswith("/learning_rate") for k in hp)
    assert sorted(np.float32(v).item() for v in hp.values()) == pytest.approx([0.01, 0.1])
    assert any("a" in k.split("/") for k in hp) and any("b" in k.split("/") for k in hp)


def test_reports_optax_inject_hyperparams_and_scale_by_schedule():
    tx = optax.chain(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.3),
        lrjax.scale_by_schedule(lrjax.Constant(2.0)),
    )
    hp = lrjax.current_hyperparams(tx.init(PARAMS))
    assert float(hp["learning_rate"]) == pytest.approx(0.3) and float(hp["scale"]) == 2.0


def test_with_hyperparams_swaps_plan_without_recompiling():
    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.CosineDecay(0.1, 100), momentum=0.9)

    @jax.jit
    def step(params, state):
        u, state = tx.update(G, state, params)
        return optax.apply_updates(params, u), state

    params, state = step(PARAMS, tx.init(PARAMS))
    longer = lrjax.CosineDecay(0.2, 400)
    state2 = lrjax.with_hyperparams(state, learning_rate=longer, momentum=0.5)
    # counts and moments kept; reported values re-evaluated at the last update's step (0)
    assert int(state2.count) == 1
    np.testing.assert_array_equal(state2.inner_state[0].trace["w"], state.inner_state[0].trace["w"])
    assert float(lrjax.current_hyperparams(state2)["learning_rate"]) == pytest.approx(0.2)
    _, state3 = step(params, state2)
    assert float(lrjax.current_hyperparams(state3)["learning_rate"]) == pytest.approx(float(longer(1)))
    assert float(lrjax.current_hyperparams(state3)["momentum"]) == 0.5
    assert step._cache_size() == 1
    swapped = lrjax.replace_schedule(state, longer).hyperparams["learning_rate"]
    assert lrjax.to_spec(swapped) == lrjax.to_spec(longer)
    assert swapped.peak is not longer.peak  # the state owns its buffers: donating it spares `longer`


def test_with_hyperparams_refuses_structural_changes():
    tx = lrjax.inject(optax.sgd, learning_rate=lrjax.CosineDecay(0.1, 100), momentum=0.9)
    state = tx.init(PARAMS)
    with pytest.raises(ValueError, match=r"learning_rate is CosineDecay in the state but Warmup in the replacement"):
        lrjax.with_hyperparams(state, learning_rate=lrjax.Warmup(lrjax.CosineDecay(0.1, 100), warmup_steps=5))
    with pytest.raises(ValueError, match=r"learning_rate.floor_mode is 'absolute' in the state but 'relative'"):
        lrjax.with_hyperparams(state, learning_rate=lrjax.CosineDecay(0.1, 100, floor_mode="relative"))
    with pytest.raises(ValueError, match=r"learning_rate is CosineDecay in the state but a number"):
        lrjax.with_hyperparams(state, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"no lrjax state holds 'b1'; the state holds learning_rate, momentum"):
        lrjax.with_hyperparams(state, b1=0.9)
    with pytest.raises(ValueError, match=r"momentum has shape \(\) in the state but \(2,\)"):
        lrjax.with_hyperparams(state, momentum=jnp.ones(2))
    seq = lrjax.inject(optax.sgd, learning_rate=lrjax.Sequence([lrjax.Constant(1.0), lrjax.Constant(0.5)], [10]))
    with pytest.raises(ValueError, match=r"schedules holds 2 schedule\(s\) in the state but 3"):
        lrjax.with_hyperparams(
            seq.init(PARAMS),
            learning_rate=lrjax.Sequence([lrjax.Constant(1.0)] * 3, [10, 20]),
        )


def test_with_hyperparams_on_scale_by_schedule_state():
    tx = lrjax.scale_by_schedule(lrjax.Linear(1.0, 0.0, 10))
    state = lrjax.with_hyperparams(tx.init(None), scale=lrjax.Linear(2.0, 0.0, 10))
    assert float(lrjax.current_hyperparams(state)["scale"]) == 2.0


def test_observe_metric_and_current_hyperparams_under_jit_inside_accumulate():
    tx = lrjax.accumulate(
        lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.1), plateau=lrjax.reduce_on_plateau(patience=0)), 2
    )
    state = tx.init(PARAMS)

    @jax.jit
    def eval_hook(state, loss):
        state = lrjax.observe_metric(state, loss)
        return state, lrjax.current_hyperparams(state)

    for loss in (1.0, 1.0):
        state, hp = eval_hook(state, loss)
    assert float(hp["learning_rate"]) == pytest.approx(0.01) and float(hp["plateau_scale"]) == pytest.approx(0.1)
    u, state = tx.update(G, state, PARAMS)  # a micro-step: no update, counters untouched
    u, state = tx.update(G, state, PARAMS)
    np.testing.assert_allclose(u["b"], -0.01 * 0.5, rtol=1e-6)
    assert int(state.inner_opt_state.plateau.num_observed) == 2
