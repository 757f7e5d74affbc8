"""Sweeps that decide: a validation split chooses; successive halving; population-based training; resume."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax.engine import SelectionOnTestSetWarning, load_config
from lrjax.sweep import SweepError, expand, parse_strategy, run_sweep, strategy_of, sweep_from_dict, train_many
from lrjax.sweep._population import explore_leaves as _explore_leaves
from lrjax.sweep._population import rebuild as _exploit

PEAKS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3]
BASE = {"train": {"steps": 40, "eval_every": 10, "log_every": 10, "compilation_cache": False},
        "model": {"hidden": [32]}}


def spec(strategy=None, peaks=PEAKS, **extra):
    d = {"config": BASE, "grid": {"schedule.schedule.peak": peaks}, **extra}
    if strategy is not None:
        d["strategy"] = strategy
    return sweep_from_dict(d)


@pytest.fixture(scope="module")
def halving():
    return run_sweep(spec({"name": "halving", "rungs": [10, 20], "keep": 0.5}), write=False, verbose=False)


def _val(r, step, key="val_accuracy"):
    (rec,) = [x for x in r.records if x["step"] == step and key in x]
    return rec[key]


def test_a_sweep_holds_out_a_validation_split_and_ranks_on_it(halving):
    for c in halving.configs:
        assert c.config.data.validation_fraction == 0.1
    rows = halving.rows
    assert {"val_accuracy", "val_loss", "test_accuracy", "test_loss"} <= set(rows[0])
    finished = [r for r in rows if r["status"] == "completed"]
    assert [r["val_accuracy"] for r in finished] == sorted((r["val_accuracy"] for r in finished), reverse=True)
    assert halving.winner == finished[0]["label"]


def test_halving_keeps_exactly_the_best_fraction_at_each_rung_on_the_validation_metric(halving):
    res = {r.label: r for r in halving.results}
    at10 = sorted(res, key=lambda k: -_val(res[k], 10))
    survivors10 = {k for k in res if res[k].stopped_at != 10}
    assert survivors10 == set(at10[:4])  # 8 -> 4: the best half by val_accuracy at update 10
    at20 = sorted(survivors10, key=lambda k: -_val(res[k], 20))
    assert {k for k in res if res[k].stopped_at is None} == set(at20[:2])  # 4 -> 2
    for r in halving.results:
        last = max(x["step"] for x in r.records)
        assert last == (r.stopped_at or 40)  # a pruned configuration's rows stop at its rung
        assert r.status == ("pruned" if r.stopped_at else "completed") and len(r.rates) == last
    assert halving.config_steps == 8 * 10 + 4 * 10 + 2 * 20
    # on CPUs every stage runs chunks of the last survivors' size (here 2): 4 chunks, then 2, then 1 — the
    # pruned rows are gone and the one compiled program serves every stage
    assert halving.groups[0]["sizes"] == [2]


def test_a_survivor_ends_as_it_would_alone(halving):
    res = {r.label: r for r in halving.results}
    winner = next(c for c in halving.configs if c.label == halving.winner)
    (alone,), _ = train_many([winner.config], keep_states=True)
    kept, _ = train_many([c.config for c in halving.configs], labels=[c.label for c in halving.configs],
                         strategy=strategy_of(halving.spec, halving.configs), keep_states=True)
    w = next(r for r in kept if r.label == halving.winner)
    for x, y in zip(jax.tree.leaves(w.state.params), jax.tree.leaves(alone.state.params)):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
    assert res[halving.winner].final_eval["val_accuracy"] == pytest.approx(alone.final_eval["val_accuracy"], abs=1e-6)


def test_pruned_rows_stop_costing_compute_and_the_table_says_where():
    res = run_sweep(spec({"name": "halving", "rungs": ["25%"], "eta": 4}), write=False, verbose=False)
    rows = {r["label"]: r for r in res.rows}
    assert sorted(r["stopped_at"] for r in rows.values() if r["stopped_at"]) == [10] * 6
    assert sum(r["steps"] for r in rows.values()) == res.config_steps == 8 * 10 + 2 * 30


# ----------------------------------------------------------------------------- population-based training

PBT = {"name": "pbt", "interval": 10, "quantile": 0.25,
       "explore": {"schedule.schedule.peak": [0.8, 1.25], "optimizer.args.weight_decay": [0.5, 2.0]}}


@pytest.fixture(scope="module")
def pbt():
    return run_sweep(spec(PBT, peaks=[1e-4, 1e-3, 1e-2, 1e-1]), write=False, verbose=False)


def test_exploit_copies_the_exact_state_and_explore_changes_only_the_named_leaves():
    cfgs = [load_config(None, ["model.hidden=[8]", f"schedule.schedule.peak={p}", f"train.seed={i}"])
            for i, p in enumerate((1e-3, 2e-3, 3e-3))]
    from lrjax.engine import build_experiment, seed_key

    states = [build_experiment(c).init_state(seed_key(c.train.seed)) for c in cfgs]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    out = _exploit(stacked, np.array([0, 0, 2]), {"schedule.schedule.peak": np.array([1.0, 1.25, 1.0], np.float32)})
    for a, b in zip(jax.tree.leaves(out.params), jax.tree.leaves(stacked.params)):
        np.testing.assert_array_equal(a[1], b[0])  # row 1 is row 0's parameters, bit for bit
        np.testing.assert_array_equal(a[2], b[2])
    flat_new = dict((jax.tree_util.keystr(p), v) for p, v in jax.tree_util.tree_flatten_with_path(out.opt_state)[0])
    flat_old = dict((jax.tree_util.keystr(p), v) for p, v in jax.tree_util.tree_flatten_with_path(stacked.opt_state)[0])
    (peak_key,) = _explore_leaves(out.opt_state, "schedule.schedule.peak")
    for k in flat_old:
        want = np.asarray(flat_old[k])[[0, 0, 2]]
        if k == peak_key:
            want = want * np.array([1.0, 1.25, 1.0], np.float32)
        np.testing.assert_array_equal(np.asarray(flat_new[k]), want, err_msg=k)
    assert float(np.asarray(flat_new[peak_key])[1]) == pytest.approx(1e-3 * 1.25)
    np.testing.assert_array_equal(out.rng, stacked.rng)  # each member keeps its own key


def test_pbt_lineage_schedules_and_determinism(pbt):
    lineage = [e for r in pbt.results for e in r.lineage]
    assert lineage and all(e["step"] in (10, 20, 30) for e in lineage)
    assert len(lineage) == 3  # one bottom member of four at each of the 3 intervals
    for r in pbt.results:
        # the rate a member followed is its effective schedule, an lrjax spec that re-trains it alone
        import lrjax

        sched = lrjax.from_spec(r.schedule_spec)
        np.testing.assert_allclose(r.rates, np.asarray(sched(np.arange(40))), rtol=2e-6)
    again = run_sweep(spec(PBT, peaks=[1e-4, 1e-3, 1e-2, 1e-1]), write=False, verbose=False)
    assert [r.lineage for r in again.results] == [r.lineage for r in pbt.results]
    assert [r.final_eval for r in again.results] == [r.final_eval for r in pbt.results]
    assert pbt.config_steps == 4 * 40 and pbt.groups[0]["sizes"] == [4]  # the grid's budget, one compilation


def test_the_lineage_replays_to_the_final_hyperparameters(pbt):
    """Each exploit's recorded values are the leaves the member trains with afterwards."""
    kept, _ = train_many([c.config for c in pbt.configs], labels=[c.label for c in pbt.configs],
                         strategy=strategy_of(pbt.spec, pbt.configs), keep_states=True)
    for r in kept:
        if not r.lineage:
            continue
        last = r.lineage[-1]["values"]
        for key, value in last.items():
            (leaf,) = _explore_leaves(r.state.opt_state, key)
            flat = dict((jax.tree_util.keystr(p), v) for p, v in jax.tree_util.tree_flatten_with_path(
                r.state.opt_state)[0])
            assert float(np.asarray(flat[leaf])) == value


# ----------------------------------------------------------------------------- bad input, before training

@pytest.mark.parametrize("strategy, match", [
    ({"name": "halving", "rungs": [40]}, r"strategy.rungs\[0\]=40 is 40 updates: a rung must lie inside the run"),
    ({"name": "halving", "rungs": [10], "keep": 1.5}, r"strategy.keep must be a number in \(0, 1\)"),
    ({"name": "halving", "rungs": [20, 10]}, r"strategy.rungs must be strictly increasing"),
    ({"name": "halving"}, r"strategy.rungs must be a non-empty list"),
    ({"name": "halvng"}, r"strategy.name must be one of cooldowns, grid, halving, pbt.*did you mean 'halving'"),
    ({"name": "pbt", "interval": 10, "quantile": 0.1, "explore": {"schedule.schedule.peak": [2.0]}},
     r"strategy.quantile=0.1 of 8 configurations leaves nobody to copy"),
    ({"name": "pbt", "interval": 10, "explore": {"train.steps": [2.0]}}, r"strategy.explore.train.steps: explore keys"),
    ({"name": "pbt", "interval": 10, "explore": {"schedule.schedule.peek": [2.0]}},
     r"strategy.explore.schedule.schedule.peek: not a numeric leaf of the train state"),
    ({"name": "pbt", "interval": 10, "explore": {"schedule.schedule.peak": [-1.0]}},
     r"strategy.explore.schedule.schedule.peak must be a non-empty list of finite positive factors"),
    # an infinite factor would copy a member whose rate is inf: non-finite state, Infinity in summary.json
    ({"name": "pbt", "interval": 10, "explore": {"schedule.schedule.peak": [0.8, float("inf")]}},
     r"finite positive factors \(e.g. \[0.8, 1.25\]\), got strategy.explore.schedule.schedule.peak=\[0.8, inf\]"),
    ({"name": "pbt", "interval": 10, "explore": {"optimizer.args.weight_decay": [float("nan")]}},
     r"strategy.explore.optimizer.args.weight_decay must be a non-empty list of finite positive factors"),
    ({"name": "pbt", "interval": 10, "explore": {"schedule.schedule.peak": [2.0]}, "seeed": 1},
     r"unknown key strategy.seeed for strategy 'pbt'.*did you mean 'seed'"),
])
def test_bad_strategies_are_clear_errors_before_training(strategy, match):
    with pytest.raises(SweepError, match=match):
        run_sweep(spec(strategy), write=False, verbose=False)


def test_the_test_set_chooses_only_when_asked_and_then_it_warns():
    s = spec(None, peaks=[1e-3, 1e-2])
    s = sweep_from_dict({"config": {**BASE, "data": {"validation_fraction": 0}},
                         "grid": {"schedule.schedule.peak": [1e-3, 1e-2]}})
    with pytest.warns(SelectionOnTestSetWarning, match="the selection looks at the test set"):
        cfgs = expand(s)
    assert cfgs[0].config.data.validation_fraction == 0.0
    assert strategy_of(spec({"name": "halving", "rungs": [10]}), expand(spec())) == parse_strategy({"name": "halving", "rungs": [10]}, 40, 8)


# ----------------------------------------------------------------------------- resume after a kill

SWEEP = textwrap.dedent("""
    name: resumable
    config:
      train: {steps: 60, eval_every: 10, log_every: 10, compilation_cache: false, checkpoint_every: 10}
      model: {hidden: [32]}
    grid:
      schedule.schedule.peak: [1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2]
    strategy: {name: halving, rungs: [20, 40], keep: 0.5}
""")


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP)
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="1")
    full, part = tmp_path / "full", tmp_path / "part"
    r = subprocess.run([sys.executable, "-m", "lrjax.cli", "sweep", str(tmp_path / "s.yaml"), "--out", str(full),
                        "--no-plot"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    proc = subprocess.Popen([sys.executable, "-m", "lrjax.cli", "sweep", str(tmp_path / "s.yaml"), "--out", str(part),
                             "--no-plot"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = part / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline:  # past the first rung: a checkpoint after update 20 or later
        steps = [int(p) for p in os.listdir(ckpts) if p.isdigit()] if ckpts.exists() else []
        if steps and max(steps) >= 20:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "summary.json").exists(), "the sweep finished before it could be killed"
    r = subprocess.run([sys.executable, "-m", "lrjax.cli", "sweep", "--resume", str(part), "--no-plot"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, part))
    for key in ("winner", "config_steps", "strategy", "lineage"):
        assert a[key] == b[key], key
    assert [{k: v for k, v in row.items() if k != "time_s"} for row in a["table"]] == \
        [{k: v for k, v in row.items() if k != "time_s"} for row in b["table"]]
    for name in os.listdir(full / "metrics"):
        assert (full / "metrics" / name).read_bytes() == (part / "metrics" / name).read_bytes(), name


def test_exploit_copies_the_averaged_weights_too():
    from lrjax.engine import build_experiment, seed_key

    cfgs = [load_config(None, ["model.hidden=[8]", "train.average={kind: ema, start: 0, decay: 0.9}",
                               f"train.seed={i}"]) for i in range(2)]
    states = [build_experiment(c).init_state(seed_key(c.train.seed)) for c in cfgs]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    out = _exploit(stacked, np.array([0, 0]), {})
    for a, b in zip(jax.tree.leaves(out.average), jax.tree.leaves(stacked.average)):
        np.testing.assert_array_equal(a[1], b[0])


def test_checkpoints_of_a_written_sweep_do_not_feed_the_plateau(tmp_path):
    # a written sweep stops at every checkpoint; reduce-on-plateau must still see only lrjax train's
    # evaluations (every eval_every), or its rates would fall at checkpoints a lone run never observes
    base = {"train": {"steps": 60, "eval_every": 30, "log_every": 10, "checkpoint_every": 10,
                      "compilation_cache": False},
            "model": {"hidden": [16]}, "schedule": {"name": "constant", "value": 0.05},
            "plateau": {"factor": 0.5, "patience": 0}}
    s = sweep_from_dict({"config": base, "grid": {"train.seed": [0, 1]}})
    written = run_sweep(s, out_dir=str(tmp_path / "sweep"), plot=False, verbose=False)
    alone, _ = train_many([c.config for c in written.configs], labels=[c.label for c in written.configs])
    for w, a in zip(written.results, alone):
        np.testing.assert_array_equal(w.rates, a.rates)
    # and the lone runs' plateau decides only at updates 30 and 60: the rate is one value up to update 31
    assert all(np.all(r.rates[:31] == np.float32(0.05)) for r in alone)


# ----------------------------------------------------------------------------- the console table

def test_the_console_table_fits_a_terminal_and_names_ties_and_a_small_split():
    from lrjax.sweep._report import console_table

    def row(rank, label, val, test, status="completed", stopped=None):
        return {"rank": rank, "label": label, "peak": 0.01, "group": 0, "status": status, "stopped_at": stopped,
                "val_accuracy": val, "val_loss": 0.5, "test_accuracy": test, "test_loss": 0.6,
                "best_val_accuracy": val, "best_step": 16, "final_train_loss": 0.4, "steps": 16, "time_s": 1.0}

    rows = [row(1, "cosine", 0.625, 0.6072), row(2, "a label far too long for a narrow terminal " * 3, 0.625, 0.6),
            row(3, "slow", 0.1458, 0.1783, "pruned", 8)]
    text = console_table([], rows, "accuracy", num_selection=144, width=80)
    lines = text.splitlines()
    assert lines[0].split() == ["rank", "label", "val_accuracy", "test_accuracy", "status", "steps"]
    assert all(len(x) <= 80 for x in lines[:4]) and "best_step" not in text and "time_s" not in text
    assert lines[1].split() == ["1=", "cosine", "0.6250", "0.6072", "completed", "16"]
    assert lines[2].startswith("  2=  a label far too long") and "…" in lines[2]
    assert lines[3].split() == ["3", "slow", "0.1458", "0.1783", "pruned@8", "16"]
    assert lines[4] == ("= tied on val_accuracy; ranked by the lower final val_loss, then the lower final train loss, "
                        "then the order of the sweep file")
    assert lines[5].startswith("warning: the validation split has 144 examples (one point of accuracy is 1.44 of "
                               "them): the winner leads the runner-up by 0 examples, too few to tell them apart")
    rows[1]["val_accuracy"] = 0.625 - 3 / 144  # three examples apart: no tie, no warning
    assert "tied" not in console_table([], rows, "accuracy", num_selection=144) and "warning" not in \
        console_table([], rows, "accuracy", num_selection=144)


def test_pbt_rows_show_final_hyperparameters_and_where_they_were_copied_from(pbt):
    from lrjax.sweep._report import console_table

    text = console_table(pbt.results, pbt.rows, "accuracy", explore=["schedule.schedule.peak",
                                                                     "optimizer.args.weight_decay"], width=100)
    notes = [x.strip() for x in text.splitlines() if "↳" in x]
    assert len(notes) == 4
    by_label = {r.label: r for r in pbt.results}
    for line, row in zip(notes, pbt.rows):
        r = by_label[row["label"]]
        if r.lineage:
            last = r.lineage[-1]
            peak = float(f"{last['values']['schedule.schedule.peak']:.6g}")
            assert line.startswith(f"↳ peak {peak:.3g}, weight_decay ")
            assert f"copied from {last['copied']!r} at step {last['step']}" in line
        else:
            assert line == f"↳ peak {row['schedule.schedule.peak']:.3g}, weight_decay 0.0001; never copied"
    assert any("copied from" in x for x in notes)


def test_the_rate_panel_is_logarithmic_when_the_peaks_span_decades(halving):
    from lrjax.sweep._report import sweep_figure

    fig = sweep_figure(halving.results, winner=0, title="t")
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_ylabel() == "learning rate (log)"
