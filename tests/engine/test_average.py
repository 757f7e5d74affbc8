"""Averaged weights (``train.average``): SWA is the arithmetic mean, EMA the recursion, both in the state
(compiled, checkpointed bitwise, vmapped by a sweep) and evaluated beside the raw weights."""

import json

import jax
import numpy as np
import pytest

from lrjax.engine import ConfigError, build_experiment, load_config, load_dataset, update_count
from lrjax.train import load_checkpoint, read_metrics, train

DATA = load_dataset("digits", seed=0)
SMALL = ["model.hidden=[16]", "data.batch_size=32", "train.steps=12", "train.progress=false"]


def cfg(*extra):
    return load_config(None, SMALL + list(extra))


def host(tree):
    return [np.asarray(x, np.float32) for x in jax.tree.leaves(jax.device_get(tree))]


def trajectory(c, micro_steps):
    """The state after every micro-step of ``c`` (one jitted train_step), and the experiment."""
    exp = build_experiment(c, data=DATA)
    step = jax.jit(exp.train_step)
    state = exp.init_state(np.asarray([0, 0], np.uint32))
    rng = np.random.default_rng(0)
    states = [state]
    for _ in range(micro_steps):
        idx = rng.integers(0, exp.data.num_train, 32)
        state, _ = step(state, {"x": exp.data.x_train[idx], "y": exp.data.y_train[idx]})
        states.append(state)
    return exp, states


def test_swa_is_the_arithmetic_mean_of_the_parameters_after_each_update_past_start():
    exp, states = trajectory(cfg("train.average={kind: swa, start: 3}"), 8)
    assert exp.averaging == ("swa", 3, None)
    for u, st in enumerate(states):
        assert int(st.average.count) == max(0, u - 3)
        if u <= 3:  # not started: follows the parameters, and no averaged metrics
            for a, p in zip(host(st.average.params), host(st.params)):
                np.testing.assert_array_equal(a, p)
            continue
        want = [np.mean(np.stack(xs), axis=0) for xs in zip(*[host(s.params) for s in states[4:u + 1]])]
        for a, w in zip(host(st.average.params), want):
            np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-7)
    # the last state's average differs from its parameters (5 updates averaged)
    assert max(np.abs(a - p).max() for a, p in zip(host(states[-1].average.params), host(states[-1].params))) > 1e-4


def test_ema_is_the_recursion_started_from_a_copy():
    d = 0.7
    exp, states = trajectory(cfg(f"train.average={{kind: ema, decay: {d}, start: 2}}"), 7)
    assert exp.averaging == ("ema", 2, d)
    avg = None
    for u, st in enumerate(states):
        if u <= 2:
            continue
        p = host(st.params)
        avg = p if avg is None else [a + np.float32(1 - np.float32(d)) * (x - a) for a, x in zip(avg, p)]
        assert int(st.average.count) == u - 2
        for got, want in zip(host(st.average.params), avg):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_ema_default_start_and_decay():
    exp = build_experiment(cfg("train.average={kind: ema}"), data=DATA)
    assert exp.averaging == ("ema", 0, 0.999)
    state = exp.init_state(np.asarray([0, 0], np.uint32))
    assert float(state.average.decay) == np.float32(0.999) and bool(state.average.ema)
    assert build_experiment(cfg("train.average={kind: swa}"), data=DATA).averaging == ("swa", 9, None)  # 75% of 12


def test_accumulation_averages_optimizer_updates_not_micro_steps():
    exp, states = trajectory(cfg("train.average={kind: swa, start: 1}", "optimizer.accumulation_steps=3"), 12)
    updates = [int(update_count(s.opt_state)) for s in states]
    assert updates == [m // 3 for m in range(13)]
    assert [int(s.average.count) for s in states] == [max(0, u - 1) for u in updates]
    applied = [s for m, s in enumerate(states) if m % 3 == 0 and m >= 6]  # after updates 2, 3, 4
    want = [np.mean(np.stack(xs), axis=0) for xs in zip(*[host(s.params) for s in applied])]
    for a, w in zip(host(states[-1].average.params), want):
        np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-7)


def test_skipped_steps_leave_the_average_alone():
    c = cfg("schedule={name: sequence, schedules: [{name: constant, value: 1.0e-3}, {name: constant, value: 1.0e+30}],"
            " boundaries: [4]}", "train.on_nonfinite=skip", "train.average={kind: swa, start: 1}",
            "optimizer.name=sgd", "optimizer.args={}")
    exp, states = trajectory(c, 10)
    # update 5 (rate 1e30) sends the parameters to ~1e30: every later loss is non-finite and skipped
    assert [int(s.skipped) for s in states] == [0] * 6 + [1, 2, 3, 4, 5]
    assert [int(s.average.count) for s in states] == [0, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4]
    for a, b in zip(host(states[-1].average), host(states[5].average)):
        np.testing.assert_array_equal(a, b)


def test_evaluation_reports_the_average_beside_the_raw_weights():
    exp, states = trajectory(cfg("train.average={kind: swa, start: 3}"), 6)
    early = {k: float(v) for k, v in exp.evaluate(states[2], "test").items()}
    assert sorted(early) == ["accuracy", "avg_accuracy", "avg_loss", "loss"]
    assert np.isnan(early["avg_loss"]) and np.isnan(early["avg_accuracy"])  # nothing averaged yet
    last = states[-1]
    late = exp.evaluate(last, "test")
    # the averaged metrics are the metrics of a state whose parameters are the average
    direct = exp.evaluate(last._replace(params=last.average.params, average=None), "test")
    assert float(late["avg_loss"]) == float(direct["loss"]) and float(late["avg_accuracy"]) == float(direct["accuracy"])
    assert float(late["avg_loss"]) != float(late["loss"])
    plain = build_experiment(cfg(), data=DATA)
    assert sorted(plain.evaluate(plain.initial_state(0), "test")) == ["accuracy", "loss"]
    assert plain.init_state(np.asarray([0, 0], np.uint32)).average is None  # the default state is unchanged




RUN = ["train.steps=40", "train.log_every=5", "train.eval_every=10", "train.checkpoint_every=20",
       "data.validation_fraction=0.1", "train.average={kind: ema, decay: 0.9, start: 15%}"]


def test_records_summary_and_a_bitwise_resume(tmp_path, sigterm_once):
    c = cfg(*RUN)
    full = tmp_path / "full"
    s = train(c, out_dir=str(full), data=DATA, progress=False, verbose=False, plot=False)
    ev = read_metrics(str(full))["eval"]
    assert ev["step"] == [10, 20, 30, 40]
    for split in ("val", "test"):
        assert ev[f"{split}_avg_loss"][0] is not None  # 15% of 40 = 6 < 10
        assert all(v is not None for v in ev[f"{split}_avg_accuracy"])
        assert ev[f"{split}_avg_loss"] != ev[f"{split}_loss"]
    assert s["final_eval"]["test_avg_accuracy"] == ev["test_avg_accuracy"][-1]
    assert json.loads((full / "summary.json").read_text())["final_eval"]["val_avg_loss"] == ev["val_avg_loss"][-1]
    _, state, _ = load_checkpoint(str(full), data=DATA)
    assert int(state.average.count) == 34 and float(state.average.decay) == np.float32(0.9)

    part = tmp_path / "part"
    s1 = train(c, out_dir=str(part), data=DATA, progress=False, verbose=False, plot=False, hooks=[sigterm_once(13)])
    assert s1["status"] == "interrupted" and s1["steps"] == 13
    train(None, resume=str(part), data=DATA, progress=False, verbose=False, plot=False)
    assert (part / "metrics.jsonl").read_bytes() == (full / "metrics.jsonl").read_bytes()
    _, other, _ = load_checkpoint(str(part), data=DATA)
    for x, y in zip(host(state), host(other)):
        np.testing.assert_array_equal(x, y)


def test_a_sweep_member_with_averaging_equals_training_it_alone(tmp_path):
    from lrjax.sweep import train_many

    base = ["train.steps=24", "train.log_every=4", "train.eval_every=8", "train.checkpoint_every=1000",
            "data.validation_fraction=0.1"]
    cfgs = {"swa": cfg(*base, "train.average={kind: swa, start: 12}"),
            "ema": cfg(*base, "train.average={kind: ema, decay: 0.8, start: 4}", "schedule.schedule.peak=0.01"),
            "plain": cfg(*base)}
    labels = list(cfgs)
    results, groups = train_many([cfgs[k] for k in labels], labels=labels, data=DATA, keep_states=True)
    by = dict(zip(labels, results))
    # swa and ema share one program (kind, start and decay are state leaves); no averaging is another structure
    assert sorted(map(sorted, (g["members"] for g in groups))) == [["ema", "swa"], ["plain"]]
    for key in ("swa", "ema"):
        out = tmp_path / key
        train(cfgs[key], out_dir=str(out), data=DATA, progress=False, verbose=False, plot=False)
        with open(out / "metrics.jsonl") as fh:
            want = [json.loads(line) for line in fh]
        got = by[key].records
        assert [sorted(r) for r in got] == [sorted(r) for r in want]
        assert "val_avg_accuracy" in got[-1] and "test_avg_loss" in got[-1]
        for g, w in zip(got, want):
            for k in g:
                if w[k] is None:  # an averaged metric before the average starts
                    assert g[k] is None and k.split("_")[1] == "avg", (key, k, g["step"])
                    continue
                np.testing.assert_allclose(g[k], w[k], rtol=2e-5, atol=2e-6, err_msg=f"{key}: {k} at {g['step']}")
        _, state, _ = load_checkpoint(str(out), data=DATA)
        for x, y in zip(host(by[key].state.average), host(state.average)):
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
    assert by["swa"].records[2]["val_avg_loss"] is None and by["swa"].records[-1]["val_avg_loss"] is not None
    assert "val_avg_loss" not in by["plain"].records[-1]


@pytest.mark.parametrize("override, match", [
    ("train.average={kind: sma}", r"train\.average\.kind must be one of 'swa', 'ema', got train\.average\.kind='sma' "
                                  r"\(did you mean 'swa'\?\)"),
    ("train.average={kind: ema, decay: 1.0}", r"train\.average\.decay must be in \(0, 1\) \(e\.g\. 0\.999\), got "
                                              r"train\.average\.decay=1\.0"),
    ("train.average={kind: ema, decay: 0}", r"train\.average\.decay must be in \(0, 1\)"),
    ("train.average={kind: swa, decay: 0.9}", r"train\.average\.decay is the decay of kind: ema"),
    ("train.average={start: 100%}", r"train\.average\.start='100%' \(12 updates\) must be below train\.steps=12"),
    ("train.average={start: 12}", r"train\.average\.start=12 \(12 updates\) must be below train\.steps=12"),
    ("train.average={start: -1}", r"train\.average\.start must be >= 0 updates, got train\.average\.start=-1"),
    ("train.average={start: soon}", r"train\.average\.start must be a number of updates or a duration like '75%'"),
    ("train.average={start: 2.5}", r"train\.average\.start must be an integer or a string"),
    ("train.average={every: 3}", r"unknown key 'train\.average\.every'; valid keys in 'train\.average': kind, start, "
                                 r"decay"),
    ("train.average=swa", r"train\.average must be a mapping, got train\.average='swa' \(str\)"),
])
def test_bad_average_configs_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        cfg(override)


def test_a_start_in_epochs_is_checked_against_the_run_once_the_data_is_known():
    c = cfg("train.average={start: 40 epochs}")  # cannot be checked before the data: 40 epochs of digits
    with pytest.raises(ConfigError, match=r"train\.average\.start='40 epochs' \(\d+ updates\) must be below"):
        build_experiment(c, data=DATA)
    assert build_experiment(cfg("train.steps=100", "train.average={start: 1 epoch}"), data=DATA).averaging[1] == 44  # 1437 // 32
