"""Rankings that anneal before they judge: `anneal` on halving and PBT ranks each member on a cooled copy."""

import dataclasses

import numpy as np
import pytest

import lrjax
from lrjax.engine._checkpoint import Checkpointer
from lrjax.plot import gallery_schedules
from lrjax.sweep import SweepError, run_sweep, sweep_from_dict, train_many

BASE = {"train": {"steps": 40, "eval_every": 10, "log_every": 10, "compilation_cache": False, "checkpoint_every": 10},
        "model": {"hidden": [32]}}
PEAKS = [1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.3]
HALVING = {"name": "halving", "rungs": [10, 30], "keep": 0.5}


def spec(strategy, peaks=PEAKS):
    return sweep_from_dict({"config": BASE, "grid": {"schedule.schedule.peak": peaks}, "strategy": strategy})


@pytest.fixture(scope="module")
def annealed():
    return run_sweep(spec({**HALVING, "anneal": 0.5}), write=False, verbose=False)


@pytest.fixture(scope="module")
def plain():
    return run_sweep(spec(HALVING), write=False, verbose=False)


def test_an_anneal_that_is_off_changes_no_rate_bit():
    t = np.arange(0, 1100, 3)
    for name, s in gallery_schedules().items():
        a = lrjax.Anneal(s)
        assert np.array_equal(np.asarray(a(t)).view(np.int32), np.asarray(s(t)).view(np.int32)), name


def test_anneal_cools_from_the_value_where_it_starts():
    s = lrjax.Anneal(lrjax.CosineDecay(1.0, 100), anneal_at=40, anneal_steps=20, min_ratio=0.1, shape="1-sqrt")
    at = float(lrjax.CosineDecay(1.0, 100)(40))
    np.testing.assert_allclose(np.asarray(s([39, 40, 45, 60, 99])),
                               [float(lrjax.CosineDecay(1.0, 100)(39)), at, at * (0.1 + 0.9 * (1 - 0.5)), 0.1 * at,
                                0.1 * at], rtol=1e-6)


def test_annealed_halving_counts_its_copies_and_keeps_the_raw_ranking(annealed):
    # 6 -> 3 -> 1 as without annealing; copies: 6 cooled over 5 updates before rung 10, 3 over 10 before rung 30
    assert sorted(r.steps_trained for r in annealed.results) == [10, 10, 10, 30, 30, 40]
    assert annealed.config_steps == 3 * 10 + 2 * 30 + 40 + 6 * 5 + 3 * 10
    assert sum(r.scratch_steps for r in annealed.results) == 6 * 5 + 3 * 10
    assert [g["sizes"] for g in annealed.groups] == [[1]]  # copies beside the members: still one program
    assert len(annealed.results) == len(PEAKS)  # the copies are never reported
    for rung in (10, 30):
        rows = [r for r in annealed.rows if r[f"rank@{rung}"] is not None]
        assert len(rows) == (6 if rung == 10 else 3)
        # what decided: the copies' validation accuracy, best first (ties by member order)
        by_annealed = sorted(rows, key=lambda r: (-r[f"annealed_val@{rung}"], PEAKS.index(r["schedule.schedule.peak"])))
        assert [r[f"rank@{rung}"] for r in by_annealed] == list(range(1, len(rows) + 1))
        by_raw = sorted(rows, key=lambda r: (-r[f"raw_val@{rung}"], PEAKS.index(r["schedule.schedule.peak"])))
        assert [r[f"raw_rank@{rung}"] for r in by_raw] == list(range(1, len(rows) + 1))
        survivors = {r["label"] for r in rows if r["stopped_at"] != rung}
        assert survivors == {r["label"] for r in rows if r[f"rank@{rung}"] <= len(rows) // 2}


def test_an_annealed_copy_is_the_member_cooled(annealed):
    """A copy's validation accuracy at a rung equals training the member's schedule wrapped in an Anneal that
    starts at the fork (rung 30: 30 - 0.5 x 20 = 20) and cools to zero over 10 updates, alone."""
    row = next(r for r in annealed.rows if r["rank@30"] is not None)
    member = next(r for r in annealed.results if r.label == row["label"])
    cfg = member.config
    wrapped = {"name": "anneal", "annealed": cfg.schedule, "anneal_at": 20, "anneal_steps": 10}
    cooled = dataclasses.replace(cfg, schedule=wrapped)  # same run length: its durations ("10%") read the same
    (alone,), _ = train_many([cooled])
    np.testing.assert_array_equal(alone.rates[:21], member.rates[:21])  # count 20: s(20), then cooled
    assert alone.rates[29] == pytest.approx(alone.rates[20] / 10, rel=1e-5) and alone.rates[30] == 0
    (at30,) = [x for x in alone.records if x["step"] == 30 and "val_accuracy" in x]
    assert at30["val_accuracy"] == pytest.approx(row["annealed_val@30"], abs=1e-6)


def test_the_members_train_as_without_annealing(annealed, plain):
    """The wrapper that is off and the copies beside them leave every member's rates and records as they were
    (here the annealed and raw rankings keep the same survivors at rung 10)."""
    same = {r.label for r in plain.results if r.stopped_at != 10} == \
        {r.label for r in annealed.results if r.stopped_at != 10}
    assert same
    for a, b in zip(annealed.results, plain.results):
        np.testing.assert_array_equal(a.rates[:30], b.rates[:30])
        assert [x for x in a.records if x["step"] <= 30] == [x for x in b.records if x["step"] <= 30]


def test_annealed_pbt_ranks_on_cooled_copies_of_the_current_plan():
    pbt = {"name": "pbt", "interval": 10, "quantile": 0.25, "explore": {"schedule.schedule.peak": [0.8, 1.25]},
           "anneal": 0.3}
    a = run_sweep(spec(pbt, peaks=[1e-4, 1e-3, 1e-2, 1e-1]), write=False, verbose=False)
    b = run_sweep(spec(pbt, peaks=[1e-4, 1e-3, 1e-2, 1e-1]), write=False, verbose=False)
    assert [r.lineage for r in a.results] == [r.lineage for r in b.results] and len(a.results) == 4
    assert sum(len(r.lineage) for r in a.results) == 3  # one exploit per interval, as without annealing
    assert a.config_steps == 4 * 40 + 3 * 4 * 3  # 4 copies cooled over 3 updates before each of 3 exploits
    for r in a.results:  # the effective schedule is the member's own plan (the wrapper, off, left out)
        np.testing.assert_allclose(r.rates, np.asarray(lrjax.from_spec(r.schedule_spec)(np.arange(40))), rtol=2e-6)
        assert "anneal" not in str(r.schedule_spec)
    assert all(f"rank@{s}" in a.rows[0] for s in (10, 20, 30))


def test_resume_after_a_crash_gives_the_uninterrupted_result(annealed, tmp_path, monkeypatch):
    save = Checkpointer.save

    def crashing(self, at, *args, **kwargs):
        save(self, at, *args, **kwargs)
        if at == 20:  # the copies for rung 30 forked here
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec({**HALVING, "anneal": 0.5}), out_dir=str(tmp_path / "run"), verbose=False, plot=False)
    monkeypatch.undo()
    res = run_sweep(resume=str(tmp_path / "run"), verbose=False, plot=False)
    assert [r.records for r in res.results] == [r.records for r in annealed.results]
    assert res.config_steps == annealed.config_steps
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in res.rows] == \
        [{k: v for k, v in r.items() if k != "time_s"} for r in annealed.rows]


@pytest.mark.parametrize("strategy", [{**HALVING, "anneal": 0}, {**HALVING, "anneal": 1.5},
                                      {**HALVING, "anneal": True},
                                      {"name": "pbt", "interval": 10, "explore": {"schedule.schedule.peak": [2.0]},
                                       "anneal": -0.1}])
def test_anneal_outside_0_1_is_refused(strategy):
    with pytest.raises(SweepError, match=r"strategy.anneal must be a number( in \(0, 1\])?, got strategy.anneal="):
        run_sweep(spec(strategy), write=False, verbose=False)


def test_a_rebuild_in_host_memory_equals_the_compiled_one():
    """CPUs rebuild rows with numpy, accelerators in one compiled program: the same rows, bit for bit — copies,
    factors, set leaves, a fork's own plan, a starting member's update count and its own key."""
    import jax

    from lrjax.engine import build_experiment, load_config, seed_key
    from lrjax.sweep._population import plans, rebuild

    cfgs = [load_config(None, ["model.hidden=[8]", f"schedule.schedule.peak={p}", f"train.seed={i}"])
            for i, p in enumerate((1e-3, 2e-3, 3e-3))]
    exps = [build_experiment(c, schedule=lrjax.Anneal(build_experiment(c).schedule)) for c in cfgs]
    states = [e.init_state(seed_key(i)) for i, e in enumerate(exps)]
    states[0] = states[0]._replace(step=states[0].step + 7)  # the source has trained
    stacked = jax.tree.map(lambda *x: np.stack([np.asarray(v) for v in x]), *states)
    src, keep = np.array([0, 0, 2, 0]), np.array([0, 0, 2, 0])
    rng = np.stack([np.asarray(states[i].rng) for i in (0, 1, 2, 1)])
    own = (np.array([False, True, False, False]),
           jax.tree.map(lambda *x: np.stack([np.asarray(v) for v in x]), *[plans(states[i].opt_state) for i in (0, 1, 2, 1)]))
    factors = {"schedule.schedule.peak": np.array([1.0, 1.0, 1.25, 1.0], np.float32)}
    values = {"schedule.anneal_at": np.array([np.nan, np.nan, np.nan, 5.0], np.float32)}
    a = rebuild(stacked, src, factors, own, keep=keep, rng=rng, values=values, host=True)
    b = rebuild(stacked, src, factors, own, keep=keep, rng=rng, values=values, host=False)
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
    assert a.step.tolist() == [7, 7, 0, 7]  # row 3 starts from row 0: its update count
    sched = [jax.tree.map(lambda v, r=r: np.asarray(v)[r], plans(a.opt_state)[0]["learning_rate"]) for r in range(4)]
    assert [float(s.anneal_at) for s in sched] == [np.inf, np.inf, np.inf, 5.0]
    assert float(sched[1].annealed.schedule.peak) == pytest.approx(2e-3)  # a fork keeps its own plan
    assert float(sched[2].annealed.schedule.peak) == pytest.approx(3e-3 * 1.25)
