"""`lrjax train` end to end: default run, data formats, bad input, SIGKILL + resume, cache, data parallel."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lrjax.train import load_checkpoint, read_metrics
from lrjax.train._cli import main

TINY = ["--no-progress", "--set", "model.hidden=[16]", "--set", "train.steps=30", "--set", "train.log_every=10",
        "--set", "train.eval_every=15", "--set", "train.checkpoint_every=15", "--set", "data.batch_size=16",
        "--set", "train.compilation_cache=false"]


def run_cli(*args, env=None, timeout=300):
    e = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    return subprocess.run([sys.executable, "-m", "lrjax.cli", "train", *args], capture_output=True, text=True,
                          env=e, timeout=timeout)


@pytest.mark.parametrize("fmt", ["npz", "idx_gz", "idx_raw", "cifar"])
def test_each_data_format(tmp_path, fmt, npz_file, idx_dir, cifar_dir, capsys):
    src = {"npz": lambda: npz_file, "idx_gz": lambda: idx_dir(True), "idx_raw": lambda: idx_dir(False),
           "cifar": lambda: cifar_dir}[fmt]()
    extra = ["--set", "model.kind=cnn", "--set", "model.channels=[4]"] if fmt == "cifar" else []
    out = tmp_path / "run"
    assert main([*TINY, *extra, "--data", str(src), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["steps"] == 30
    assert 0.0 <= s["final_eval"]["eval_accuracy"] <= 1.0
    assert "lrjax train:" in capsys.readouterr().out


def test_bad_input_exits_2_with_the_key(tmp_path, capsys):
    assert main(["--set", "train.stepz=3"]) == 2
    assert "unknown key 'train.stepz' (did you mean 'steps'?)" in capsys.readouterr().err
    bad = tmp_path / "c.yaml"
    bad.write_text("schedule: {name: warmup, warmup_steps: 900, schedule: {name: constant}}\n")
    assert main([str(bad)]) == 2
    assert "schedule.warmup_steps=900 is longer than the run (train.steps=600)" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r")]) == 2
    assert "none.npz: no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["--set", "data.batch_size=4000", "--out", str(tmp_path / "r")]) == 2
    assert "data.batch_size=4000 is larger than the training set" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path)]) == 2
    assert "not a run directory (no config.yaml)" in capsys.readouterr().err


def test_print_config(capsys):
    assert main(["--print-config", "--set", "train.steps=7"]) == 0
    out = capsys.readouterr().out
    assert "steps: 7" in out and "warmup_steps: 10%" in out


@pytest.mark.slow
def test_default_run_reaches_97_percent(tmp_path):
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lrjax.cli"], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "cache")),
                       timeout=300)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-2000:]
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "*-digits-mlp-adamw-warmup-cosine"))
    s = json.loads(open(os.path.join(run_dir, "summary.json")).read())
    assert s["final_eval"]["eval_accuracy"] >= 0.97
    assert wall < 60
    assert "best eval" in r.stdout and "run dir" in r.stdout
    assert "600/600" in r.stderr  # the tqdm bar
    for f in ("config.yaml", "metrics.jsonl", "curves.png", "summary.json", "checkpoints"):
        assert os.path.exists(os.path.join(run_dir, f))
    assert os.listdir(tmp_path / "cache" / "lrjax" / "jax")  # persistent compilation cache filled


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    args = ["--no-progress", "--set", "model.hidden=[64]", "--set", "train.steps=3000", "--set",
            "train.log_every=50", "--set", "train.eval_every=250", "--set", "train.checkpoint_every=250",
            "--set", "data.batch_size=32", "--set", "train.compilation_cache=false"]
    full, part = tmp_path / "full", tmp_path / "part"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen([sys.executable, "-m", "lrjax.cli", "train", *args, "--out", str(part)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ckpts = part / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline:  # wait for a finished checkpoint (orbax renames it into place)
        if ckpts.exists() and any(p.isdigit() for p in os.listdir(ckpts)):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("no checkpoint appeared")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "summary.json").exists()  # it really died mid-run
    r = run_cli(*args, "--out", str(full))
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("--resume", str(part), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((part / "summary.json").read_text())
    assert s["resumed_from"] is not None and 0 < s["resumed_from"] < 3000 and s["steps"] == 3000
    assert (part / "metrics.jsonl").read_bytes() == (full / "metrics.jsonl").read_bytes()
    _, a, _ = load_checkpoint(str(full))
    _, b, _ = load_checkpoint(str(part))
    import jax

    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_second_run_with_new_hyperparameters_compiles_nothing_new(tmp_path):
    cache = tmp_path / "cache"
    base = ["--no-progress", "--set", "model.hidden=[16]", "--set", "train.steps=40",
            "--set", f"train.compilation_cache_dir={cache}"]
    r = run_cli(*base, "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr[-2000:]
    first = sorted(os.listdir(cache))
    assert first
    r = run_cli(*base, "--set", "schedule.schedule.peak=0.01", "--set", "schedule.warmup_steps=25%",
                "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(os.listdir(cache)) == first  # every program came from the cache
    lr_a = read_metrics(str(tmp_path / "a"))["train"]["lr"]
    lr_b = read_metrics(str(tmp_path / "b"))["train"]["lr"]
    assert lr_a != lr_b  # ... and the new values were used


@pytest.mark.slow
def test_data_parallel_over_4_devices_matches_one(tmp_path):
    args = [*TINY, "--set", "train.steps=40"]
    r1 = run_cli(*args, "--out", str(tmp_path / "one"))
    r4 = run_cli(*args, "--out", str(tmp_path / "four"),
                 env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert r1.returncode == 0 and r4.returncode == 0, (r1.stderr[-2000:], r4.stderr[-2000:])
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s4 = json.loads((tmp_path / "four" / "summary.json").read_text())
    assert (s1["devices"], s4["devices"]) == (1, 4)
    m1, m4 = read_metrics(str(tmp_path / "one")), read_metrics(str(tmp_path / "four"))
    np.testing.assert_allclose(m4["train"]["train_loss"], m1["train"]["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(m4["eval"]["eval_loss"], m1["eval"]["eval_loss"], rtol=1e-4)
