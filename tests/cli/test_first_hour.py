"""What a new user types in the first hour: each mistake is one line naming the fix, each shortcut works."""

import json
import sys

import pytest
import yaml

from lrjax.cli import main

TINY = ["--no-progress", "--set", "model.hidden=[8]", "--set", "data.batch_size=16",
        "--set", "train.compilation_cache=false"]


def _err_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_tensorboard_without_the_package_exits_2_before_a_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--set", "train.tensorboard=true", "--out", str(out)]) == 2
    assert _err_line(capsys) == ("lrjax train: train.tensorboard=true needs the tensorboard package, which is not "
                                 "installed: pip install 'lrjax[tensorboard]' (or set train.tensorboard=false)")
    assert not out.exists()


def test_the_first_override_points_to_the_wrapped_schedule(capsys):
    assert main(["train", "--set", "schedule.peak=1e-2", "--print-config"]) == 2
    assert "did you mean 'schedule.schedule.peak'?" in _err_line(capsys)
    assert main(["train", "--set", "schedule.schedule.peak=1e-2", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["schedule"]["schedule"]["peak"] == 0.01


def test_print_config_shows_the_name_the_run_would_take(capsys):
    assert main(["train", "--print-config", "--set", "optimizer.name=lion"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["name"] == "digits-mlp-lion-warmup-cosine_decay"
    assert main(["train", "--print-config", "--set", "name=mine"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["name"] == "mine"


def test_sgd_by_override_trains_after_a_one_line_note(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"--set optimizer.name=sgd: dropped optimizer.args.weight_decay=0.0001"):
        rc = main(["train", *TINY, "--set", "optimizer.name=sgd", "--set", "train.steps=10", "--out", str(out)])
    assert rc == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["optimizer"]["args"] == {}


def test_counts_in_epochs_run_end_to_end(tmp_path, npz_file, capsys):
    """80 training examples, batches of 16: an epoch is 5 updates."""
    out = tmp_path / "run"
    rc = main(["train", *TINY, "--data", str(npz_file), "--set", "train.steps=3 epochs", "--set",
               "train.eval_every=1 epoch", "--set", "train.log_every=50%", "--set",
               "train.checkpoint_every=160 examples",
               "--out", str(out)])
    assert rc == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == [8, 15]        # 50% of 15, and the last update
    assert [r["step"] for r in rows if "test_loss" in r] == [5, 10, 15]
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())[-1] == 15
    s = json.loads((out / "summary.json").read_text())
    assert (s["steps"], s["total_steps"]) == (15, 15)
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"] == "3 epochs"  # the text is kept


@pytest.fixture
def files(tmp_path):
    (tmp_path / "sweep.yaml").write_text("name: s\nbase: cfg.yaml\ngrid: {train.seed: [0, 1]}\n")
    (tmp_path / "spec.yaml").write_text("name: cosine_decay\npeak: 0.1\ndecay_steps: 100\n")
    (tmp_path / "cfg.yaml").write_text("train: {steps: 5}\nschedule: {name: constant, value: 0.01}\n")
    return tmp_path


@pytest.mark.parametrize("argv, expect", [
    (["train", "sweep.yaml"], "lrjax train: {d}/sweep.yaml is a sweep file (keys such as grid, configs, base), not a "
                              "training config; run it with: lrjax sweep {d}/sweep.yaml"),
    (["sweep.yaml"], "lrjax train: {d}/sweep.yaml is a sweep file"),
    (["find-lr", "sweep.yaml"], "lrjax find-lr: {d}/sweep.yaml is a sweep file"),
    (["plot", "sweep.yaml"], "lrjax plot: {d}/sweep.yaml is a sweep file, which lrjax plot does not draw; run it "
                             "with: lrjax sweep {d}/sweep.yaml"),
    (["train", "spec.yaml"], "lrjax train: {d}/spec.yaml is a schedule spec, not a training config; draw it with: "
                             "lrjax plot {d}/spec.yaml"),
    (["sweep", "spec.yaml"], "lrjax sweep: {d}/spec.yaml is a schedule spec, not a sweep file; draw it with: "
                             "lrjax plot {d}/spec.yaml"),
    (["sweep", "cfg.yaml"], "lrjax sweep: {d}/cfg.yaml is a training config, not a sweep file; train it with: "
                            "lrjax train {d}/cfg.yaml"),
])
def test_each_command_recognises_the_other_commands_files(files, argv, expect, capsys):
    argv = [str(files / a) if a.endswith(".yaml") else a for a in argv]
    assert main([*argv, "--out", str(files / "out.png" if argv[0] == "plot" else files / "out")]) == 2
    assert _err_line(capsys).startswith(expect.format(d=files))
    assert not (files / "out").exists() and not (files / "out.png").exists()


def test_the_sweep_prints_a_compact_table_with_its_ties_and_the_full_one_in_files(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(
        "config: {train: {steps: 8, log_every: 4, eval_every: 8, compilation_cache: false}, model: {hidden: [8]},"
        " data: {batch_size: 32}}\n"
        "configs: [{label: a, schedule: {name: constant, value: 0.01}}, {label: b, schedule: {name: constant, "
        "value: 0.01}}]\n")
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run"), "--no-plot"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = out.index(next(x for x in out if x.startswith("rank")))
    assert out[head].split() == ["rank", "label", "val_accuracy", "test_accuracy", "status", "steps"]
    assert [x.split()[:2] for x in out[head + 1: head + 3]] == [["1=", "a"], ["2=", "b"]]  # the same run twice
    assert out[head + 3].startswith("= tied on val_accuracy; ranked by the lower final val_loss")
    assert out[head + 4].startswith("warning: the validation split has 144 examples")
    assert "| best_step |" in (tmp_path / "run" / "results.md").read_text()  # the full table is in the files


def test_a_grid_sweep_counts_in_epochs_and_halving_asks_for_updates(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(
        "config: {train: {steps: 2 epochs, log_every: 10, eval_every: 1 epoch, compilation_cache: false}, "
        "model: {hidden: [8]}, data: {batch_size: 100}}\ngrid: {schedule.schedule.peak: [0.001, 0.01]}\n")
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run"), "--no-plot"]) == 0
    per_epoch = (1437 - round(0.1 * 1437)) // 100  # digits' training set less the validation split
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics" / "peak=0.001.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [per_epoch, 2 * per_epoch]
    capsys.readouterr()
    assert main(["sweep", str(tmp_path / "s.yaml"), "--set", "strategy={name: halving, rungs: [5], keep: 0.5}",
                 "--out", str(tmp_path / "halving")]) == 2
    err = _err_line(capsys)
    assert "strategy 'halving' places its decisions in updates before the data loads" in err
    assert "train.steps='2 epochs', eval_every='1 epoch'" in err
    assert not (tmp_path / "halving").exists()


def test_plot_draws_a_config_over_its_run_in_epochs(tmp_path):
    from lrjax.cli.plot import _load

    (tmp_path / "c.yaml").write_text("train: {steps: 2 epochs}\ndata: {batch_size: 100}\n")
    assert _load([str(tmp_path / "c.yaml")], momentum=True).lengths == [2 * (1437 // 100)]
