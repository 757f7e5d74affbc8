"""``lrjax sweep`` end to end: the run directory, the table, the winner, the figure; and bad input."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest

from lrjax.cli import main

SWEEP = textwrap.dedent("""
    name: tiny
    config:
      train: {steps: 16, log_every: 4, eval_every: 8, compilation_cache: false}  # in-process: leave jax's config
      model: {hidden: [16]}
      data: {batch_size: 32}
    configs:
      - label: slow
        schedule: {name: constant, value: 1.0e-4}
      - label: fast
        schedule: {name: constant, value: 1.0e-2}
      - label: cosine
        schedule: {name: cosine_decay, peak: 1.0e-2, decay_steps: 100%}
    target: {metric: eval_accuracy, value: 0.5}
""")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "tiny.yaml").write_text(SWEEP)
    out = d / "run"
    assert main(["sweep", str(d / "tiny.yaml"), "--out", str(out), "--max-parallel", "1"]) == 0
    return out


def test_run_dir_contents(run_dir):
    names = sorted(os.listdir(run_dir))
    assert names == ["checkpoints", "configs", "metrics", "results.csv", "results.md", "summary.json", "sweep.png",
                     "sweep.yaml"]
    assert sorted(os.listdir(run_dir / "configs")) == ["cosine.yaml", "fast.yaml", "slow.yaml"]
    assert os.path.getsize(run_dir / "sweep.png") > 20_000


def test_table_and_winner(run_dir):
    with open(run_dir / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows][-1] == "slow"   # 1e-4 for 16 steps learns least
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    accs = [float(r["val_accuracy"]) for r in rows]
    assert accs == sorted(accs, reverse=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["winner"] == rows[0]["label"] and summary["compilations"] == 1  # constant x2 and cosine: one Switch
    assert summary["winner_config"] == f"configs/{rows[0]['label']}.yaml"
    slow = next(r for r in rows if r["label"] == "slow")
    assert slow["steps_to_accuracy_0.5"] == "" and slow["status"] == "completed"
    fast = next(r for r in rows if r["label"] == "fast")
    assert int(fast["steps_to_accuracy_0.5"]) in (8, 16)
    md = (run_dir / "results.md").read_text()
    assert f"Winner: **{rows[0]['label']}**" in md and "| rank | label |" in md
    metrics = [json.loads(x) for x in (run_dir / "metrics" / "fast.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [4, 8, 8, 12, 16, 16]
    assert all(m["lr"] == pytest.approx(1e-2) for m in metrics if "lr" in m)


def test_saved_config_reproduces_the_row(run_dir, tmp_path):
    """`lrjax train` on a saved configuration gives the sweep's numbers."""
    from lrjax.train import load_config, train

    cfg = load_config(str(run_dir / "configs" / "cosine.yaml"), ["train.checkpoint_every=1000"])
    s = train(cfg, out_dir=str(tmp_path / "alone"), progress=False, plot=False, verbose=False)
    rows = {r["label"]: r for r in csv.DictReader(open(run_dir / "results.csv"))}
    assert float(rows["cosine"]["val_loss"]) == pytest.approx(s["final_eval"]["val_loss"], rel=1e-4)
    assert float(rows["cosine"]["test_loss"]) == pytest.approx(s["final_eval"]["test_loss"], rel=1e-4)


def test_bad_input_exit_codes(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("grid: {schedule.peak: 1}\n")
    assert main(["sweep", str(tmp_path / "bad.yaml")]) == 2
    assert "grid.schedule.peak must be a non-empty list" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "bad.yaml"), "--max-parallel", "0"]) == 2
    (tmp_path / "ok.yaml").write_text("grid: {train.seed: [0, 1]}\n")
    assert main(["sweep", str(tmp_path / "ok.yaml"), "--list"]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["seed=0", "seed=1"]


@pytest.mark.slow
def test_configs_sharded_over_two_devices_match_one_device():
    """The configuration axis split over 2 (forced CPU) devices gives the one-device results."""
    code = textwrap.dedent("""
        import jax, numpy as np
        from lrjax.sweep import train_many
        from lrjax.train import load_config
        assert jax.device_count() == 2
        cfgs = [load_config(None, ["train.steps=12", "train.eval_every=6", "model.hidden=[16]",
                                   f"schedule.schedule.peak={p}", f"train.seed={s}"])
                for p, s in ((1e-3, 0), (3e-3, 0), (1e-2, 1))]
        two, g2 = train_many(cfgs, keep_states=True)
        one, g1 = train_many(cfgs, keep_states=True, devices=jax.devices()[:1])
        assert g2[0]["chunk_size"] == 4 and g1[0]["chunk_size"] == 3, (g2, g1)
        # max_parallel below the device count: one config per call, on one device
        each, ge = train_many(cfgs, keep_states=True, max_parallel=1)
        assert (ge[0]["chunks"], ge[0]["chunk_size"]) == (3, 1), ge
        for a, b in zip(each, one):
            for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        for a, b in zip(two, one):
            for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
            assert a.records == b.records or all(
                abs((ra.get("test_loss") or 0) - (rb.get("test_loss") or 0)) < 1e-5 for ra, rb in zip(a.records, b.records))
        print("OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


@pytest.mark.slow
def test_command_gives_each_core_a_device_and_the_same_table(run_dir, tmp_path):
    """`lrjax sweep` as a command: one CPU device per core (the configurations split over them), same numbers."""
    (tmp_path / "tiny.yaml").write_text(SWEEP)
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    cache = tmp_path / "jax-cache"
    out = subprocess.run([sys.executable, "-m", "lrjax.cli", "sweep", str(tmp_path / "tiny.yaml"), "--out",
                          str(tmp_path / "run"), "--no-plot", "--set", "config.train.compilation_cache=true",
                          "--set", f"config.train.compilation_cache_dir={cache}"],
                         env={**env, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(os.listdir(cache)) >= 2  # the persistent compilation cache, as lrjax train uses it
    cores = len(os.sched_getaffinity(0))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["devices"] == cores and f"{cores} cpu device(s)" in out.stdout
    (group,) = summary["groups"]  # the three configs (two families) in one program
    assert group["devices"] == min(cores, 3)
    rows = {r["label"]: r for r in csv.DictReader(open(tmp_path / "run" / "results.csv"))}
    want = {r["label"]: r for r in csv.DictReader(open(run_dir / "results.csv"))}  # one device, one at a time
    for label, r in want.items():
        assert float(rows[label]["val_loss"]) == pytest.approx(float(r["val_loss"]), rel=1e-4)


def test_a_sweep_refuses_a_directory_that_holds_one(run_dir, capsys, tmp_path):
    (tmp_path / "tiny.yaml").write_text(SWEEP)
    before = (run_dir / "results.csv").read_bytes()
    assert main(["sweep", str(tmp_path / "tiny.yaml"), "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a sweep; use --resume" in err[0]
    assert (run_dir / "results.csv").read_bytes() == before  # nothing overwritten


def test_ctrl_c_while_starting_exits_130_without_a_traceback(tmp_path):
    """SIGINT during imports and compilation: one line, exit 130, nothing half-written."""
    (tmp_path / "tiny.yaml").write_text(SWEEP)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for delay, cmd in ((0.4, ["train", "--set", "train.compilation_cache=false", "--out", str(tmp_path / "t")]),
                       (1.5, ["train", "--set", "train.compilation_cache=false", "--out", str(tmp_path / "t2")]),
                       (1.5, ["sweep", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "s")])):
        p = subprocess.Popen([sys.executable, "-m", "lrjax.cli", *cmd], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        import signal
        import time

        time.sleep(delay)  # inside the imports, the data loading or the first compilation
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=300)
        assert "Traceback" not in err, err[-2000:]
        assert p.returncode == 130, (p.returncode, err[-2000:])
        assert err.strip().splitlines()[-1].endswith("interrupted (signal 2); files written so far are complete")


# ----------------------------------------------------------------------------- resume past damage, bad sweep.yaml

RESUMABLE = textwrap.dedent("""
    name: resumable
    config:
      train: {steps: 20, log_every: 5, eval_every: 10, checkpoint_every: 5, compilation_cache: false}
      model: {hidden: [16]}
      data: {batch_size: 32}
    grid:
      schedule.schedule.peak: [1.0e-3, 1.0e-2]
    strategy: {name: halving, rungs: [10], keep: 0.5}
""")


def _garble_meta(step_dir):
    p = os.path.join(step_dir, "meta", "metadata")
    text = open(p).read()
    json.loads(text)  # it was JSON
    open(p, "w").write(text[: len(text) // 2])


def _truncate_arrays(step_dir):
    files = [os.path.join(r, n) for r, _, ns in os.walk(step_dir) for n in ns]
    largest = max(files, key=os.path.getsize)
    os.truncate(largest, os.path.getsize(largest) // 2)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("resumable")
    (d / "s.yaml").write_text(RESUMABLE)
    assert main(["sweep", str(d / "s.yaml"), "--out", str(d / "full"), "--no-plot"]) == 0
    return d / "full"


def _table(run):
    return [{k: v for k, v in row.items() if k != "time_s"}
            for row in json.loads((run / "summary.json").read_text())["table"]]


@pytest.mark.parametrize("damage", [_garble_meta, _truncate_arrays], ids=["garbled metadata", "truncated arrays"])
def test_sweep_resume_falls_back_past_an_unreadable_newest_checkpoint(finished_sweep, tmp_path, damage, capsys):
    import shutil

    from lrjax.engine._checkpoint import CheckpointFallbackWarning

    run = tmp_path / "run"
    shutil.copytree(finished_sweep, run)
    assert sorted(os.listdir(run / "checkpoints")) == ["15", "20"]
    (run / "summary.json").unlink()
    damage(str(run / "checkpoints" / "20"))
    capsys.readouterr()
    with pytest.warns(CheckpointFallbackWarning, match=r"checkpoint step 20 in .* is unreadable \(.*\); restoring "
                                                       r"step 15 instead"):
        assert main(["sweep", "--resume", str(run), "--no-plot"]) == 0
    assert "lrjax sweep: resuming from the checkpoint at update 15" in capsys.readouterr().out
    assert _table(run) == _table(finished_sweep)  # the uninterrupted sweep's results
    for name in os.listdir(finished_sweep / "metrics"):
        assert (run / "metrics" / name).read_bytes() == (finished_sweep / "metrics" / name).read_bytes(), name
    assert sorted(os.listdir(run / "checkpoints")) == ["15", "20", "20.unreadable"]  # kept for inspection


@pytest.mark.parametrize("text, match", [
    ("", r"sweep.yaml is empty: not the sweep that `lrjax sweep` saved"),
    ("name: x\n", r"sweep.yaml lacks config: not the sweep that `lrjax sweep` saved"),
    ("name: x\nconfig: 3\n", r"sweep.yaml has no config mapping"),
    ("name: x\nconfig: {}\ngrid: {train.seed: 3}\n", r"sweep.yaml: grid.train.seed must be a non-empty list"),
    ("name: [unclosed\n", r"sweep.yaml: not valid YAML"),
    ("- a list\n", r"sweep.yaml: a sweep must be a mapping"),
])
def test_an_empty_or_invalid_saved_sweep_is_one_line_on_resume(finished_sweep, tmp_path, text, match, capsys):
    import re
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_sweep, run)
    (run / "sweep.yaml").write_text(text)
    before = sorted(os.listdir(run / "checkpoints"))
    assert main(["sweep", "--resume", str(run), "--no-plot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrjax sweep: ") and not err[0].startswith("lrjax sweep: lrjax sweep")
    assert re.search(match, err[0]) and len(err[0]) < 400, err[0]
    assert sorted(os.listdir(run / "checkpoints")) == before


def test_a_sweep_name_cannot_leave_the_runs_folder(tmp_path, monkeypatch):
    from lrjax._rundir import UnsafeNameWarning
    from lrjax.sweep import run_sweep, sweep_from_dict

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = sweep_from_dict({"name": "../../up", "config": {"train": {"steps": 4, "log_every": 2, "eval_every": 2,
                                                                     "compilation_cache": False},
                                                           "schedule": {"name": "constant", "value": 0.01},
                                                           "model": {"hidden": [8]}},
                            "grid": {"train.seed": [0, 1]}})
    with pytest.warns(UnsafeNameWarning, match=r"sweep name '../../up' is not a safe file name .*using 'up'"):
        res = run_sweep(spec, plot=False, verbose=False)
    assert os.path.dirname(res.run_dir) == "runs" and res.run_dir.endswith("-sweep-up")
    assert sorted(os.listdir(tmp_path)) == ["work"] and (work / res.run_dir / "summary.json").is_file()
