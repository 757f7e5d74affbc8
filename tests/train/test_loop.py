"""The loop end to end (in process): run directory, metrics, non-finite stop, interrupt + resume."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from lrjax.train import (
    Checkpointer,
    NonFiniteLossError,
    build_experiment,
    load_checkpoint,
    load_config,
    load_dataset,
    read_metrics,
    train,
)

DATA = load_dataset("digits", seed=0)
SMALL = ["model.hidden=[32]", "train.steps=60", "train.log_every=10", "train.eval_every=20",
         "train.checkpoint_every=20", "data.batch_size=32"]


def cfg(*extra):
    return load_config(None, SMALL + list(extra))


def final_params(run_dir):
    _, state, meta = load_checkpoint(run_dir, data=DATA)
    return state, meta


def test_run_directory_and_metrics(tmp_path):
    out = tmp_path / "run"
    s = train(cfg(), out_dir=str(out), data=DATA, progress=False, verbose=False)
    assert s["status"] == "completed" and s["steps"] == 60
    assert sorted(os.listdir(out)) == ["checkpoints", "config.yaml", "curves.png", "metrics.jsonl", "summary.json"]
    cols = read_metrics(str(out))
    assert cols["train"]["step"] == [10, 20, 30, 40, 50, 60]
    assert cols["eval"]["step"] == [20, 40, 60]
    exp = build_experiment(cfg(), data=DATA)
    # the rate logged at step k is the one used by update k (schedule at k - 1)
    np.testing.assert_allclose(cols["train"]["lr"], [float(exp.schedule(k - 1)) for k in cols["train"]["step"]],
                               rtol=1e-6)
    assert all(m == pytest.approx(0.9) for m in cols["train"]["momentum"])
    assert cols["train"]["train_loss"][-1] < cols["train"]["train_loss"][0]
    assert all(g > 0 for g in cols["train"]["grad_norm"])
    summary = json.loads((out / "summary.json").read_text())
    # 60 steps of a 32-unit MLP reach 0.67-0.85 depending on the seed; chance is 0.1
    assert summary["final_eval"]["test_accuracy"] == cols["eval"]["test_accuracy"][-1] > 0.6
    assert summary["best_eval"]["test_accuracy"] == max(cols["eval"]["test_accuracy"])
    assert summary["selection"] == "test" and "val_loss" not in cols["eval"]  # no validation split by default
    assert Checkpointer(out / "checkpoints").all_steps() == [20, 40, 60]
    saved = load_config(out / "config.yaml")
    assert saved == dataclasses.replace(cfg(), name=s["name"], data=dataclasses.replace(cfg().data,
                                                                                     validation_fraction=0.0))
    assert s["name"] == "digits-mlp-adamw-warmup-cosine_decay"
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(cfg(), out_dir=str(out), data=DATA, progress=False, verbose=False)


def test_nonfinite_stops_naming_step_and_rate_and_keeps_the_last_good_checkpoint(tmp_path):
    # a sane rate, then a huge one from update 25 on
    c = cfg("schedule={name: sequence, schedules: [{name: constant, value: 1.0e-3}, {name: constant, "
            "value: 1.0e+30}], boundaries: [25]}", "optimizer.name=sgd", "optimizer.args={}")
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step (\d+) \(learning rate [0-9.e+]+\); "
                                                 r"stopping: the last good checkpoint \(step (\d+)\) is intact") as ei:
        train(c, out_dir=str(out), data=DATA, progress=False, verbose=False)
    e = ei.value
    exp = build_experiment(c, data=DATA)
    assert e.lr == pytest.approx(float(exp.schedule(e.step - 1)), rel=1e-5)
    steps = Checkpointer(out / "checkpoints").all_steps()
    assert 26 <= e.step <= 28 and e.lr == pytest.approx(1e30, rel=1e-6)
    assert steps == [20] and e.checkpoint == 20
    state, _ = final_params(str(out))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "nonfinite" and "non-finite loss at step" in summary["error"]


def test_skip_mode_counts_skipped_steps(tmp_path):
    c = cfg("schedule={name: sequence, schedules: [{name: constant, value: 1.0e-3}, {name: constant, value: 1.0e+30},"
            " {name: constant, value: 1.0e-3}], boundaries: [25, 27]}", "train.on_nonfinite=skip")
    # the update at 1e30 sends the parameters to ~1e30; every later loss is inf and skipped (the count, and so
    # the schedule, stays where it is): most steps skipped is worth a warning
    with pytest.warns(RuntimeWarning, match=r"(\d+) of 60 steps were skipped as non-finite"):
        s = train(c, out_dir=str(tmp_path / "skip"), data=DATA, progress=False, verbose=False)
    assert s["status"] == "completed"
    cols = read_metrics(str(tmp_path / "skip"))["train"]
    assert cols["skipped"][0] == 0 and cols["skipped"][-1] == s["skipped"] > 30
    # a window in which every step was skipped has no loss (not 0.0): it is logged as skipped
    assert cols["train_loss"][-1] is None and all(v > 0 for v in cols["train_loss"][:2])




def test_sigterm_saves_then_resume_matches_an_uninterrupted_run_bitwise(tmp_path, sigterm_once):
    c = cfg("train.checkpoint_every=40", "train.log_every=7")  # interrupt between checkpoints and logs
    full = tmp_path / "full"
    train(c, out_dir=str(full), data=DATA, progress=False, verbose=False)
    part = tmp_path / "part"
    s = train(c, out_dir=str(part), data=DATA, progress=False, verbose=False, hooks=[sigterm_once(25)])
    assert s["status"] == "interrupted" and s["steps"] == 25 and s["last_checkpoint"] == 25
    s2 = train(None, resume=str(part), data=DATA, progress=False, verbose=False)
    assert s2["status"] == "completed" and s2["resumed_from"] == 25
    assert (part / "metrics.jsonl").read_bytes() == (full / "metrics.jsonl").read_bytes()
    a, _ = final_params(str(full))
    b, _ = final_params(str(part))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_tensorboard_hook_writes_every_logged_scalar(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    out = tmp_path / "run"
    train(cfg("train.tensorboard=true"), out_dir=str(out), data=DATA, progress=False, verbose=False, plot=False)
    ea = EventAccumulator(str(out / "tensorboard"))
    ea.Reload()
    cols = read_metrics(str(out))
    for split, keys in (("train", ("lr", "train_loss", "grad_norm")), ("eval", ("test_loss", "test_accuracy"))):
        for key in keys:
            events = ea.Tensors(key)
            assert [e.step for e in events] == cols[split]["step"]
            got = [float(tensor_util.make_ndarray(e.tensor_proto)) for e in events]
            np.testing.assert_allclose(got, cols[split][key], rtol=1e-6)


def test_a_resume_that_moves_the_rate_says_so_and_records_it(tmp_path):
    """20 updates, then resumed to 40: the 10 % warmup and 90 % cosine stretch, so the rate of update 20 jumps
    from the cosine's floor to the middle of the new cosine."""
    out = str(tmp_path / "run")
    short = cfg("train.steps=20", "train.checkpoint_every=20")
    train(short, out_dir=out, data=DATA, progress=False, verbose=False, plot=False)
    longer = cfg("train.steps=40", "train.checkpoint_every=20")
    old, new = (float(build_experiment(c, data=DATA).schedule(20)) for c in (short, longer))
    assert new > 10 * old
    with pytest.warns(UserWarning, match=rf"--resume re-plans the schedule: the learning rate at step 20 moves "
                                         rf"from {old:.4g} to {new:.4g}; its durations in % follow train.steps from "
                                         rf"20 to 40"):
        s = train(longer, resume=out, data=DATA, progress=False, verbose=False, plot=False)
    assert s["replanned"] == {"step": 20, "lr_before": pytest.approx(old), "lr_after": pytest.approx(new)}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["replanned"]["lr_after"] == pytest.approx(new)
    logged = read_metrics(out)["train"]
    rate_29 = float(build_experiment(longer, data=DATA).schedule(29))
    assert logged["lr"][logged["step"].index(30)] == pytest.approx(rate_29)
