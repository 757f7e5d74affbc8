"""The experiment: pure steps, hyperparameters in the state, vmap over differing schedules, one advance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax.engine import COLUMNS, BatchIterator, ConfigError, build_experiment, load_config, load_dataset, seed_key

DATA = load_dataset("digits", seed=0)
BASE = ["model.hidden=[16]", "train.steps=100", "data.batch_size=32"]


def exp_with(*overrides, data=DATA):
    return build_experiment(load_config(None, BASE + list(overrides)), data=data)


@pytest.fixture(scope="module")
def exps():
    a = exp_with("schedule={name: warmup, warmup_steps: 10, schedule: {name: cosine_decay, peak: 0.003, decay_steps: 90}}")
    b = exp_with("schedule={name: warmup, warmup_steps: 30, schedule: {name: cosine_decay, peak: 0.01, decay_steps: 70}}")
    return a, b


def batch(i=0, bs=32):
    return {"x": DATA.x_train[i * bs:(i + 1) * bs], "y": DATA.y_train[i * bs:(i + 1) * bs]}


def test_state_holds_the_schedule_and_step_reports_the_rate_used(exps):
    a, b = exps
    step = jax.jit(a.train_step)
    sb = b.init_state(seed_key(0))
    lrs = []
    for i in range(3):
        sb, m = step(sb, batch(i))  # a's step, b's state: b's plan is followed
        lrs.append(float(m["lr"]))
    np.testing.assert_allclose(lrs, [float(b.schedule(t)) for t in range(3)], rtol=1e-6)
    assert lrs[1] == pytest.approx(0.01 / 30)
    assert int(sb.step) == 3 and sb.rng.shape == (2,) and sb.extra == {}
    assert step._cache_size() == 1  # a's state would reuse the same executable
    sa = a.init_state(seed_key(0))
    sa, m = step(sa, batch(0))
    assert step._cache_size() == 1
    assert float(m["lr"]) == float(a.schedule(0)) == 0.0
    assert float(m["momentum"]) == pytest.approx(0.9)
    assert set(m) == set(COLUMNS)


def test_vmap_over_states_with_different_schedules(exps):
    a, b = exps
    key = seed_key(1)
    states = jax.tree.map(lambda x, y: jnp.stack([x, y]), a.init_state(key), b.init_state(key))
    vstep = jax.jit(jax.vmap(a.train_step, in_axes=(0, None)))
    sa, sb = a.init_state(key), b.init_state(key)
    step = jax.jit(a.train_step)
    for i in range(12):
        states, vm = vstep(states, batch(i))
        sa, ma = step(sa, batch(i))
        sb, mb = step(sb, batch(i))
    np.testing.assert_allclose(vm["lr"], [ma["lr"], mb["lr"]], rtol=1e-6)
    np.testing.assert_allclose(vm["loss"], [ma["loss"], mb["loss"]], rtol=1e-5)
    for x, y, z in zip(jax.tree.leaves(states.params), jax.tree.leaves(sa.params), jax.tree.leaves(sb.params)):
        np.testing.assert_allclose(x[0], y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x[1], z, rtol=1e-5, atol=1e-6)
    assert not np.allclose(jax.tree.leaves(states.params)[0][0], jax.tree.leaves(states.params)[0][1])


def test_advance_is_the_step_loop_with_device_batches(exps):
    """One compiled span equals calling the step on the iterator's batches; rows hold its metrics."""
    a, _ = exps
    it = BatchIterator(DATA.num_train, 32, 0)
    index = np.stack([it.next_indices() for _ in range(7)])
    state, table, n = a.advance(a.initial_state(0), a.source(index), 0, 7, rows=10)
    ref = a.init_state(seed_key(0))
    step = jax.jit(a.train_step)
    losses = []
    for rows in index:
        ref, m = step(ref, {"x": DATA.x_train[rows], "y": DATA.y_train[rows]})
        losses.append(float(m["loss"]))
    table = np.asarray(table)
    assert int(n) == 7 and table.shape == (10, len(COLUMNS)) and np.isnan(table[7:]).all()
    np.testing.assert_allclose(table[:7, COLUMNS.index("loss")], losses, rtol=1e-5)
    np.testing.assert_allclose(table[:7, COLUMNS.index("lr")], [float(a.schedule(t)) for t in range(7)], rtol=1e-6)
    for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # a later span continues from its offset, with the same compiled program
    state, table2, _ = a.advance(state, a.source(index[3:], offset=7), 7, 10, rows=10)
    assert len(a._programs) == 1 and np.isfinite(np.asarray(table2)[:3]).all()


def test_evaluation_sums_with_a_mask(exps):
    a, _ = exps
    s = a.init_state(seed_key(0))
    full = a.evaluate(s, "test")
    b = {"x": DATA.x_test[:10], "y": DATA.y_test[:10], "mask": np.ones(10, np.float32)}
    m = a.eval_sums(s, b)
    b2 = {k: np.concatenate([v, v[:3]]) for k, v in b.items()}
    b2["mask"][10:] = 0
    m2 = a.eval_sums(s, b2)
    for k in m:
        np.testing.assert_allclose(m[k], m2[k], rtol=1e-6)
    assert float(m["count"]) == 10
    # the whole test set, padded to eval_batch_size batches, equals a direct computation
    logits = a.model.apply(s.params, s.extra, DATA.x_test, train=False)[0]
    np.testing.assert_allclose(float(full["accuracy"]), np.mean(np.argmax(logits, -1) == DATA.y_test), rtol=1e-6)
    assert set(full) == {"loss", "accuracy"} and float(full["loss"]) > 0


@pytest.mark.parametrize("source_first", [True, False])
def test_the_training_split_evaluates_whether_or_not_batches_were_drawn_first(source_first):
    # the training arrays a Source reads and the padded "train" evaluation batches are two different
    # things on the devices: neither may be served for the other, whichever is asked for first
    e = exp_with()
    s = e.init_state(seed_key(0))
    index = np.arange(64).reshape(2, 32)
    if source_first:
        src = e.source(index)
    ev = e.evaluate(s, "train")
    if not source_first:
        src = e.source(index)
    assert src.arrays["x"].shape == DATA.x_train.shape
    logits = e.model.apply(s.params, s.extra, DATA.x_train, train=False)[0]
    np.testing.assert_allclose(float(ev["accuracy"]), np.mean(np.argmax(logits, -1) == DATA.y_train), rtol=1e-6)

def test_donated_advance_and_nonfinite_flag():
    e = exp_with("schedule={name: constant, value: 1.0e+30}", "optimizer.name=sgd", "optimizer.args={}")
    s = e.initial_state(0)
    old = s
    s, table, _ = e.advance(s, e.source(np.arange(96).reshape(3, 32)), 0, 3)
    assert old.params["head"]["kernel"].is_deleted()  # donated
    assert not np.asarray(table)[:, COLUMNS.index("finite")].all()


def test_skip_mode_keeps_the_state():
    e = exp_with("schedule={name: constant, value: 1.0e+30}", "optimizer.name=sgd", "optimizer.args={}",
                 "train.on_nonfinite=skip")
    s = e.init_state(seed_key(0))
    step = jax.jit(e.train_step)
    for i in range(4):
        s, m = step(s, batch(i))
    assert int(s.skipped) >= 1
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(s.params))


def test_impossible_for_this_data():
    with pytest.raises(ConfigError, match=r"data.batch_size=5000 is larger than the training set of 'digits' "
                                          r"\(1438 examples\)"):
        exp_with("data.batch_size=5000")
    with pytest.raises(ConfigError, match=r"optimizer.cycle_momentum needs a schedule with a momentum companion"):
        exp_with("optimizer.cycle_momentum=true")
    with pytest.raises(ConfigError, match=r"plateau: .*factor must be a number in \(0, 1\), got factor=2"):
        exp_with("plateau={factor: 2}")
    with pytest.raises(ConfigError, match=r"optimizer.args.beta1: optax.adamw takes no argument 'beta1'; its "
                                          r"arguments are b1, b2, eps"):  # refused by the config, before any data
        exp_with("optimizer.args={beta1: 0.9}")
    # one rule for the momentum argument, from the optimizer's signature: adagrad has none
    with pytest.raises(ConfigError, match=r"optimizer 'adagrad' has no momentum argument"):
        exp_with("schedule={name: one_cycle, max_lr: 0.01, total_steps: 100}", "optimizer.cycle_momentum=true",
                 "optimizer.name=adagrad", "optimizer.args={}")


def test_momentum_argument_follows_the_signature():
    from lrjax.engine import momentum_arg

    assert [momentum_arg(n) for n in ("adamw", "sgd", "rmsprop", "adagrad", "lion", "novograd")] == \
        ["b1", "momentum", "momentum", None, "b1", "b1"]


@pytest.mark.parametrize("seed", [0, 1, 7, 12345, 2**31 - 1, 2**31, -3])
def test_seed_key_is_jax_key_data(seed):
    np.testing.assert_array_equal(seed_key(seed), jax.random.key_data(jax.random.key(seed)))


def test_init_concrete_traced_and_vmapped_agree(exps):
    a, _ = exps
    key = seed_key(4)
    eager = a.init_state(key).params              # the compiled program
    traced = jax.jit(a.init_state)(key).params    # traced into another program
    vmapped = jax.vmap(a.init_state)(jnp.stack([key, key])).params
    for x, y, z in zip(jax.tree.leaves(eager), jax.tree.leaves(traced), jax.tree.leaves(vmapped)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(x, z[1], rtol=1e-6, atol=1e-7)


def test_experiments_of_one_model_share_their_init_programs():
    # a sweep builds one experiment per configuration: only the first one's initialisation compiles
    compiles = []

    def listen(name, *_, **__):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)

    first = exp_with("schedule.schedule.peak=0.004", "train.seed=5")
    jax.block_until_ready(first.init_state(seed_key(5)))
    others = [exp_with(f"schedule.schedule.peak={p}", f"schedule.warmup_steps={w}", "train.seed=5")
              for p, w in ((0.01, 3), (0.02, 7))]
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        states = [jax.block_until_ready(e.init_state(seed_key(5))) for e in others]
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []
    a, b = (s.params for s in states)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_frozen_heap_freezes_for_the_run_and_leaves_a_callers_freeze_alone():
    import gc

    from lrjax.engine._util import frozen_heap

    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == frozen  # the caller's freeze survives
    finally:
        gc.unfreeze()
