"""Every horizon from one run: cooldown branches forked from a constant-rate trunk inside one compiled program."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import lrjax
import lrjax.train
from lrjax.sweep import SweepError, run_sweep, strategy_of, sweep_from_dict, train_many

BASE = {"train": {"steps": 40, "eval_every": 10, "log_every": 5, "compilation_cache": False, "checkpoint_every": 10},
        "model": {"hidden": [16]},
        "schedule": {"name": "warmup_stable_decay", "peak": 3e-3, "warmup_steps": 4, "stable_steps": 30,
                     "decay_steps": 6}}
COOLDOWNS = {"name": "cooldowns", "horizons": [20, 30, 40], "fraction": 0.25, "shapes": ["linear", "1-sqrt"],
             "compare": "cosine"}


def spec(strategy=COOLDOWNS, **config):
    return sweep_from_dict({"config": {**BASE, **config}, "strategy": strategy})


@pytest.fixture(scope="module")
def cooldowns():
    return run_sweep(spec(), write=False, verbose=False)


def _by_label(res):
    return {r.label: r for r in res.results}


def test_one_trunk_a_branch_per_horizon_and_shape_and_one_program(cooldowns):
    res = _by_label(cooldowns)
    assert list(res) == ["trunk", "20 linear", "20 1-sqrt", "30 linear", "30 1-sqrt", "40 linear", "40 1-sqrt",
                         "cosine to 20", "cosine to 30", "cosine to 40"]
    # fork points (1 - fraction) x H, rounded: 15, 30 - round(7.5) = 22, 30; the trunk trains to the last one
    forks = {lab: r.role["fork"] for lab, r in res.items() if r.role["run"] == "cooldown"}
    assert forks == {"20 linear": 15, "20 1-sqrt": 15, "30 linear": 22, "30 1-sqrt": 22, "40 linear": 30,
                     "40 1-sqrt": 30}
    assert res["trunk"].config.train.steps == 30 and res["trunk"].steps_trained == 30
    for r in cooldowns.results:
        assert r.status == "completed" and r.stopped_at is None
        assert r.config.train.steps == (r.role["horizon"] if r.role["run"] != "trunk" else 30)
        assert max(x["step"] for x in r.records) == r.config.train.steps  # evaluated at its own end
        assert len(r.rates) == r.config.train.steps
    # every update counted once: the trunk, each branch's cooldown, each cosine run
    assert cooldowns.config_steps == 30 + 2 * (5 + 8 + 10) + (20 + 30 + 40) == 166
    assert sum(r.steps_trained for r in cooldowns.results) == cooldowns.config_steps
    assert [g["sizes"] for g in cooldowns.groups] == [[1]]  # one group, one compiled chunk size: one program
    # an accelerator's chunks hold the most runs alive at once: from 15 to 20, the trunk, two 20s, three cosines
    assert cooldowns.configs and strategy_of(cooldowns.spec, cooldowns.configs).most_alive(10) == 6


def test_a_branch_follows_the_trunk_then_its_own_wsd_to_its_horizon(cooldowns):
    res = _by_label(cooldowns)
    trunk = res["trunk"]
    for r in cooldowns.results:
        if r.role["run"] != "cooldown":
            continue
        h, f, shape = r.role["horizon"], r.role["fork"], r.role["shape"]
        lone = lrjax.WarmupStableDecay(3e-3, 4, f - 4, h - f, decay_shape=shape)
        # the rate of every update is the lone WSD's (bit for bit in the lone run's program: see the next test;
        # evaluated eagerly here, where XLA may round a division differently), and the trunk's up to the fork
        np.testing.assert_allclose(r.rates, np.asarray(lone(np.arange(h))), rtol=2e-6, atol=1e-9)
        np.testing.assert_array_equal(r.rates[:f], trunk.rates[:f])
        assert r.schedule_spec == lrjax.to_spec(lone) | {"min_ratio": 0, "warmup_shape": "linear"}
        # its history up to the fork is the trunk's (the same state, copied on the device)
        assert [x for x in r.records if x["step"] <= f] == [x for x in trunk.records if x["step"] <= f]
        assert r.steps_trained == h - f
    cos = res["cosine to 30"]
    np.testing.assert_allclose(cos.rates, np.asarray(lrjax.WarmupStableDecay(3e-3, 4, 0, 26, decay_shape="cosine")(
        np.arange(30))), rtol=2e-6, atol=1e-9)


def _records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        return [json.loads(line) for line in fh]


@pytest.mark.parametrize("label", ["20 1-sqrt", "40 linear", "cosine to 30"])
def test_a_branch_is_its_lone_run(cooldowns, label, tmp_path):
    """The branch's written config, trained alone by `lrjax train`: the same records, every rate bit for bit,
    the metrics to float rounding (a vmapped and a lone program round differently: ~1e-7 relative here)."""
    r = _by_label(cooldowns)[label]
    lrjax.train.train(r.config, out_dir=str(tmp_path / "run"), progress=False, verbose=False, plot=False)
    lone = _records(tmp_path / "run")
    assert [x["step"] for x in lone] == [x["step"] for x in r.records]
    for a, b in zip(r.records, lone):
        assert set(a) <= set(b)
        assert a.get("lr") == b.get("lr")
        for k in a:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7), (label, a["step"], k)
    assert r.final_eval["val_accuracy"] == lone[-1]["val_accuracy"]


def test_the_fork_adds_no_rounding_where_the_program_is_the_same():
    """One shape and no comparison: the group is plain WSD (no Switch); the longest branch and a plain sweep
    of its own config run the same compiled program, and agree bit for bit: the fork is an exact copy."""
    res = run_sweep(spec({**COOLDOWNS, "shapes": ["linear"], "compare": None}), write=False, verbose=False)
    branch = _by_label(res)["40 linear"]
    (plain,), _ = train_many([branch.config])
    assert branch.records == plain.records
    np.testing.assert_array_equal(branch.rates, plain.rates)


def test_the_table_summary_and_figure(tmp_path):
    s = spec({**COOLDOWNS, "horizons": [20, "100%"], "fraction": "25%"}, schedule={
        "name": "warmup", "warmup_steps": 4, "schedule": {"name": "constant", "value": 3e-3}})
    res = run_sweep(s, out_dir=str(tmp_path / "run"), verbose=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = summary["table"]
    assert [(r["run"], r["horizon"], r["shape"]) for r in rows] == [
        ("trunk", 30, "constant"), ("cooldown", 20, "linear"), ("cooldown", 20, "1-sqrt"), ("cosine", 20, "cosine"),
        ("cooldown", 40, "linear"), ("cooldown", 40, "1-sqrt"), ("cosine", 40, "cosine")]
    for row in rows:
        assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy", "steps", "fork"} <= set(row)
    assert summary["config_steps"] == 30 + 2 * (5 + 10) + 60 == res.config_steps
    assert summary["compilations"] == 1 and summary["runs"] == 7 and summary["figures"] == ["horizons.png"]
    assert (tmp_path / "run" / "horizons.png").stat().st_size > 10_000
    # each member's effective schedule, and its config: `lrjax train configs/<label>.yaml` re-trains it alone
    spec40 = summary["schedules"]["40 1-sqrt"]
    assert spec40 == {"name": "warmup_stable_decay", "peak": 0.003, "warmup_steps": 4, "stable_steps": 26,
                      "decay_steps": 10, "min_ratio": 0, "warmup_shape": "linear", "decay_shape": "1-sqrt"}
    cfg = lrjax.train.load_config(str(tmp_path / "run" / "configs" / "40_1-sqrt.yaml"))
    assert cfg.train.steps == 40 and cfg.schedule["stable_steps"] == 26


SWEEP = textwrap.dedent("""
    name: horizons
    config:
      train: {steps: 80, eval_every: 10, log_every: 10, compilation_cache: false, checkpoint_every: 10}
      model: {hidden: [32]}
      schedule: {name: warmup_stable_decay, peak: 3.0e-3, warmup_steps: 4, stable_steps: 60, decay_steps: 16}
    strategy: {name: cooldowns, horizons: [40, 60, 80], fraction: 0.25, shapes: [linear, 1-sqrt], compare: cosine}
""")


@pytest.mark.slow
def test_a_killed_cooldown_study_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL after a checkpoint in the middle of the 60s' cooldowns (forked at 45): the resumed run directory
    holds what the uninterrupted one does, metrics byte for byte."""
    (tmp_path / "s.yaml").write_text(SWEEP)
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="1")
    full, part = tmp_path / "full", tmp_path / "part"
    cmd = [sys.executable, "-m", "lrjax.cli", "sweep"]
    r = subprocess.run(cmd + [str(tmp_path / "s.yaml"), "--out", str(full), "--no-plot"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    proc = subprocess.Popen(cmd + [str(tmp_path / "s.yaml"), "--out", str(part), "--no-plot"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = part / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline:
        steps = [int(p) for p in os.listdir(ckpts) if p.isdigit()] if ckpts.exists() else []
        if steps and max(steps) >= 50:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "summary.json").exists(), "the sweep finished before it could be killed"
    r = subprocess.run(cmd + ["--resume", str(part), "--no-plot"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, part))
    for key in ("winner", "config_steps", "strategy", "schedules", "compilations", "runs"):
        assert a[key] == b[key], key
    assert [{k: v for k, v in row.items() if k != "time_s"} for row in a["table"]] == \
        [{k: v for k, v in row.items() if k != "time_s"} for row in b["table"]]
    assert sorted(os.listdir(full / "metrics")) == sorted(os.listdir(part / "metrics")) and len(a["table"]) == 10
    for name in os.listdir(full / "metrics"):
        assert (full / "metrics" / name).read_bytes() == (part / "metrics" / name).read_bytes(), name


# ----------------------------------------------------------------------------- bad input, before anything

@pytest.mark.parametrize("strategy, config, match", [
    ({"horizons": [30, 20]}, {}, r"strategy.horizons must be sorted, shortest first: horizons\[1\]=20"),
    ({"horizons": [20, 20]}, {}, r"strategy.horizons repeats 20 updates"),
    ({"horizons": [20, 50]}, {}, r"strategy.horizons\[1\]=50 is 50 updates: a horizon must lie in \(0, train.steps=40\]"),
    ({"horizons": [4, 40]}, {}, r"strategy.horizons\[0\]=4 is 4 updates after the start: finer than the evaluation "
                                r"cadence \(train.eval_every=10\)"),
    ({"horizons": [30, 35]}, {}, r"strategy.horizons\[1\]=35 is 5 updates after the previous horizon: finer"),
    ({"horizons": [10, 40], "fraction": 0.8}, {}, r"strategy.horizons\[0\]=10: its cooldown would start at update 2, "
                                                  r"before the warmup ends \(schedule.warmup_steps = 4 updates\)"),
    ({"fraction": 1.0}, {}, r"strategy.fraction must be a fraction in \(0, 1\)"),
    ({"fraction": 0}, {}, r"strategy.fraction must be a fraction in \(0, 1\)"),
    ({"fraction": "120%"}, {}, r"strategy.fraction must be a fraction in \(0, 1\)"),
    ({"shapes": ["linear", "cosin"]}, {}, r"strategy.shapes\[1\] must be one of linear, 1-sqrt, cosine, got 'cosin' "
                                          r"\(did you mean 'cosine'\?\)"),
    ({"compare": "wsd"}, {}, r"strategy.compare must be cosine"),
    ({"horizons": ["20M tokens", 40]}, {}, r"strategy.horizons\[0\]='20M tokens': a duration in tokens needs"),
    ({}, {"schedule": {"name": "cosine_decay", "peak": 1e-3, "decay_steps": 40}},
     r"schedule must be a warmup_stable_decay, a warmup into a constant, or a constant; got "
     r"schedule.name='cosine_decay', which has no constant phase to fork from"),
    ({}, {"schedule": {"name": "warmup", "warmup_steps": 4, "schedule": {"name": "cosine_decay", "peak": 1e-3,
                                                                        "decay_steps": 40}}},
     r"got a warmup into 'cosine_decay'"),
])
def test_bad_cooldowns_are_one_line_errors_before_training(strategy, config, match):
    with pytest.raises(SweepError, match=match):
        run_sweep(spec({**COOLDOWNS, **strategy}, **config), write=False, verbose=False)


def test_the_command_line_refuses_it_with_exit_2_and_writes_nothing(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("config: {train: {steps: 40, eval_every: 10}, schedule: {name: constant, value: 0.01}}\n"
                     "strategy: {name: cooldowns, horizons: [30, 20]}\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "lrjax.cli", "sweep", str(sweep), "--out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "strategy.horizons must be sorted" in r.stderr
    assert not out.exists()
