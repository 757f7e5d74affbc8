"""Schedule-free optimizers (optax.contrib) in the engine: their rate an lrjax schedule in the state, their
evaluation at the averaged point, in train, sweep and the range test."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrjax.engine import ConfigError, build_experiment, load_config, load_dataset, momentum_arg, schedule_free_state
from lrjax.engine._config import SCHEDULE_FREE
from lrjax.train import train

DATA = load_dataset("digits", seed=0)
SF = ["optimizer.name=schedule_free_adamw", "optimizer.args={weight_decay: 1.0e-4}",
      "schedule={name: warmup, warmup_steps: 10%, schedule: {name: constant, value: 0.003}}"]
SMALL = ["model.hidden=[32]", "data.batch_size=32", "train.steps=40", "train.progress=false"]


def cfg(*extra):
    return load_config(None, SMALL + SF + list(extra))


def run(exp, steps, state=None):
    """``steps`` micro-steps from the initial state (one compiled span); the state and the metric table."""
    state = exp.initial_state(0) if state is None else state
    idx = np.random.default_rng(0).integers(0, exp.data.num_train, (steps, exp.config.data.batch_size))
    state, table, _ = exp.advance(state, exp.source(idx), 0, steps)
    return state, np.asarray(table)


def test_both_names_exist_in_the_installed_optax():
    import optax.contrib

    assert SCHEDULE_FREE == ("schedule_free_adamw", "schedule_free_sgd")
    assert all(callable(getattr(optax.contrib, n)) for n in SCHEDULE_FREE)
    # b1 (the interpolation between the averaged and the gradient point) is the momentum argument
    assert [momentum_arg(n) for n in SCHEDULE_FREE] == ["b1", "b1"]


def test_evaluation_is_at_schedule_free_eval_params():
    exp = build_experiment(cfg(), data=DATA)
    state, _ = run(exp, 30)
    x = optax.contrib.schedule_free_eval_params(state.opt_state.inner_state, state.params)
    for a, b in zip(jax.tree.leaves(exp.eval_params(state)), jax.tree.leaves(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the evaluation equals evaluating those parameters directly (the whole test split at once)
    xt, yt = DATA.x_test, DATA.y_test
    out, _ = exp.model.apply(x, state.extra, jnp.asarray(xt), train=False)
    loss = float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, jnp.asarray(yt))))
    acc = float(jnp.mean(jnp.argmax(out, -1) == jnp.asarray(yt)))
    got = {k: float(v) for k, v in exp.evaluate(state, "test").items()}
    assert got["loss"] == pytest.approx(loss, rel=1e-5) and got["accuracy"] == pytest.approx(acc, abs=1e-6)
    # ... and not the gradient point y (the trained params)
    out_y, _ = exp.model.apply(state.params, state.extra, jnp.asarray(xt), train=False)
    loss_y = float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out_y, jnp.asarray(yt))))
    assert abs(loss_y - loss) > 1e-4


def test_the_state_is_found_through_clipping_and_accumulation():
    exp = build_experiment(cfg("optimizer.clip_norm=1.0", "optimizer.accumulation_steps=2"), data=DATA)
    state, _ = run(exp, 8)
    sf = schedule_free_state(state.opt_state)
    assert isinstance(sf, optax.contrib.ScheduleFreeState) and int(sf.step_count) == 1 + 4  # 4 updates applied
    x = optax.contrib.schedule_free_eval_params(sf, state.params)
    for a, b in zip(jax.tree.leaves(exp.eval_params(state)), jax.tree.leaves(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="no optax.contrib.ScheduleFreeState"):
        schedule_free_state(optax.adam(1e-3).init(jnp.zeros(2)))


def test_the_injected_rate_is_the_rate_used():
    exp = build_experiment(cfg(), data=DATA)
    state, table = run(exp, 12)
    rates = np.asarray([float(exp.schedule(k)) for k in range(12)], np.float32)
    np.testing.assert_allclose(table[:, 3], rates, rtol=1e-6)  # the lr column (COLUMNS[3]) is the schedule
    sf = state.opt_state.inner_state
    # schedule-free weighs its average with the largest rate seen so far, squared (weight_lr_power=2): the
    # state holds what the injected rates imply
    assert float(sf.max_lr) == pytest.approx(rates.max(), rel=1e-6)
    np.testing.assert_allclose(float(sf.weight_sum), np.sum(np.maximum.accumulate(rates) ** 2), rtol=1e-5)
    np.testing.assert_allclose(table[:, 4], 0.9)  # momentum: b1, the factory's default
    assert float(sf.b1) == pytest.approx(0.9)
    b = build_experiment(cfg("optimizer.args={b1: 0.95}"), data=DATA)
    st, tb = run(b, 3)
    np.testing.assert_allclose(tb[:, 4], 0.95)
    assert float(st.opt_state.inner_state.b1) == pytest.approx(0.95)


@pytest.mark.parametrize("name, extra", [("schedule_free_adamw", []),
                                         ("schedule_free_sgd", ["optimizer.args={}",
                                                                "schedule.schedule.value=0.3"])])
def test_trains_digits_to_a_sensible_accuracy(tmp_path, name, extra):
    c = cfg(f"optimizer.name={name}", "train.steps=300", "train.eval_every=100", "train.log_every=50",
            "model.hidden=[64]", *extra)
    s = train(c, out_dir=str(tmp_path / "run"), data=DATA, progress=False, verbose=False, plot=False)
    assert s["status"] == "completed"
    assert s["final_eval"]["test_accuracy"] > 0.93, s["final_eval"]


def test_a_sweep_member_equals_training_it_alone(tmp_path):
    from lrjax.sweep import train_many

    base = ["train.steps=24", "train.log_every=4", "train.eval_every=8", "train.checkpoint_every=1000"]
    # an explicit b1 is a state leaf (a default one is not): both give it, so they share one program
    cfgs = {"sf": cfg(*base, "optimizer.args.b1=0.9"),
            "sf_fast": cfg(*base, "schedule.schedule.value=0.01", "optimizer.args.b1=0.95"),
            "adamw": load_config(None, SMALL + base)}
    labels = list(cfgs)
    results, groups = train_many([cfgs[k] for k in labels], labels=labels, data=DATA)
    assert sorted(map(sorted, (g["members"] for g in groups))) == [["adamw"], ["sf", "sf_fast"]]
    by = dict(zip(labels, results))
    for key in ("sf", "sf_fast"):
        out = tmp_path / key
        train(cfgs[key], out_dir=str(out), data=DATA, progress=False, verbose=False, plot=False)
        with open(out / "metrics.jsonl") as fh:
            want = [json.loads(line) for line in fh]
        got = by[key].records
        assert [sorted(r) for r in got] == [sorted(r) for r in want]
        for g, w in zip(got, want):
            for k in g:
                np.testing.assert_allclose(g[k], w[k], rtol=2e-5, atol=2e-6, err_msg=f"{key}: {k} at {g['step']}")
    assert by["sf_fast"].records[-1]["test_loss"] != by["sf"].records[-1]["test_loss"]


def test_the_range_test_drives_its_rate():
    from lrjax.finder import range_test_config
    from lrjax.finder._range import range_schedule

    res = range_test_config(cfg(), min_lr=1e-4, max_lr=10.0, num_steps=60, parallel_rates=3, parallel_steps=10,
                            parallel_min_lr=1e-4, parallel_max_lr=1.0)
    sw = res.sweep
    ramp = range_schedule(1e-4, 10.0, 60)
    np.testing.assert_allclose(sw.lrs, [float(ramp(k)) for k in range(len(sw.lrs))], rtol=1e-5)
    best = int(np.argmin(sw.smoothed))
    assert sw.smoothed[best] < 0.8 * sw.smoothed[0]  # it learned at moderate rates...
    assert sw.smoothed[-1] > sw.smoothed[best]       # ...and not at 10
    assert res.settings["optimizer"] == "schedule_free_adamw"
    assert res.grid is not None and 1e-4 <= res.grid.best_lr <= 1.0


@pytest.mark.parametrize("override, match", [
    ("optimizer.args={warmup_steps: 20}", r"optimizer\.args\.warmup_steps: schedule_free_adamw's own warmup would "
                                          r"hide the rate it uses from lrjax .*warm up in the top-level schedule"),
    ("optimizer.cycle_momentum=true", r"optimizer\.cycle_momentum: schedule_free_adamw needs a constant b1"),
    ("optimizer.args={b1: {name: constant, value: 0.9}}", r"optimizer\.args\.b1: schedule_free_adamw needs a "
                                                           r"constant b1 in \(0, 1\]"),
    ("optimizer.args={b1: 0}", r"optimizer\.args\.b1 must be a number in \(0, 1\] for schedule_free_adamw, got "
                               r"optimizer\.args\.b1=0"),
    ("optimizer.args={b1: 1.5}", r"optimizer\.args\.b1 must be a number in \(0, 1\]"),
    ("optimizer.name=schedule_free_adam", r"optimizer\.name must be an optax optimizer, got optimizer\.name="
                                          r"'schedule_free_adam' \(did you mean 'schedule_free_adamw'\?\); choices: "
                                          r"adabelief, .*, yogi, schedule_free_adamw, schedule_free_sgd \(the "
                                          r"schedule-free ones from optax\.contrib\)$"),
    ("optimizer.name=schedule_free", r"optimizer\.name must be an optax optimizer"),
])
def test_bad_schedule_free_configs_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        cfg(override)
