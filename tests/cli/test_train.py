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

from lrjax.cli.train import main
from lrjax.train import load_checkpoint, read_metrics

TINY = ["--no-progress", "--set", "model.hidden=[16]", "--set", "train.steps=30", "--set", "train.log_every=10",
        "--set", "train.eval_every=15", "--set", "train.checkpoint_every=15", "--set", "data.batch_size=16",
        "--set", "train.compilation_cache=false"]


def run_cli(*args, env=None, timeout=300):
    e = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    return subprocess.run([sys.executable, "-m", "lrjax.cli", "train", *args], capture_output=True, text=True,
                          env=e, timeout=timeout)


def _load_data_forwards(key):
    """Whether lrjax.engine.load_data hands ``data.<key>`` to load_dataset: the one line engine/_build.py
    needs (``trust_pickle=d.trust_pickle, num_classes=d.num_classes``); until then the config key is read and
    validated but not used, and these tests are skipped."""
    import inspect

    from lrjax.engine import load_data

    return key in inspect.getsource(load_data)


WIRED = pytest.mark.skipif(not _load_data_forwards("trust_pickle") or not _load_data_forwards("num_classes"),
                           reason="engine/_build.py load_data does not forward data.trust_pickle/num_classes yet")


@pytest.mark.parametrize("fmt", ["npz", "idx_gz", "idx_raw", pytest.param("cifar", marks=WIRED)])
def test_each_data_format(tmp_path, fmt, npz_file, idx_dir, cifar_dir, capsys):
    src = {"npz": lambda: npz_file, "idx_gz": lambda: idx_dir(True), "idx_raw": lambda: idx_dir(False),
           "cifar": lambda: cifar_dir}[fmt]()
    # the test's CIFAR folder is not the official release: it is unpickled only when trusted explicitly
    extra = {"cifar": ["--set", "model.kind=cnn", "--set", "model.channels=[4]", "--set", "data.trust_pickle=true"],
             "npz": ["--set", "schedule.schedule.peak=0.03"]}.get(fmt, [])
    out = tmp_path / "run"
    assert main([*TINY, *extra, "--data", str(src), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["steps"] == 30
    # the tiny sets are separable (conftest): each format trains, not just runs
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in logs if "train_loss" in r]
    assert losses[-1] < 0.5 * losses[0], losses
    assert s["final_eval"]["test_accuracy"] >= 0.8  # chance: 0.5 (npz), 0.25 (IDX), 0.33 (CIFAR)
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
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "*-digits-mlp-adamw-warmup-cosine_decay"))
    s = json.loads(open(os.path.join(run_dir, "summary.json")).read())
    assert s["final_eval"]["test_accuracy"] >= 0.97
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
    np.testing.assert_allclose(m4["eval"]["test_loss"], m1["eval"]["test_loss"], rtol=1e-4)


# ----------------------------------------------------------------------------- failures (one line, exit 2)

def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.mark.parametrize("args, expect", [
    (["--set", "train.seed=-1"], "train.seed must be >= 0, got train.seed=-1"),
    (["--set", "data.validation_fraction=1.5"], "data.validation_fraction must be in [0, 1)"),
    (["--set", "loss=hinge"], "loss must be one of 'cross_entropy', 'mse' or 'MODULE:NAME'"),
])
def test_bad_values_are_one_line_exit_2(args, expect, tmp_path):
    r = run_cli(*TINY, *args, "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and expect in _one_line(r.stderr)
    assert not (tmp_path / "r").exists()


def test_impossible_out_is_one_line_before_training(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli(*TINY, "--out", str(f / "run"))
    assert r.returncode == 2 and "cannot write to" in _one_line(r.stderr) and "Not a directory" in r.stderr


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "r"
    slow = [*TINY, "--set", "train.steps=4000", "--set", "train.checkpoint_every=4000", "--out", str(out)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    first = subprocess.Popen([sys.executable, "-m", "lrjax.cli", "train", *slow], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 240
        while not (out / "config.yaml").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = run_cli(*TINY, "--resume", str(out))
        assert second.returncode == 2
        line = _one_line(second.stderr)
        assert f"{out} is in use by another process (pid {first.pid}" in line
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(x) for x in lines)  # one writer: whole, ordered lines
    steps = [json.loads(x)["step"] for x in lines if "train_loss" in x]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("done") / "r"
    r = run_cli(*TINY, "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_resume_below_the_checkpoint_and_a_structural_change_are_refused(finished, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(finished, run)
    r = run_cli("--resume", str(run), "--set", "train.steps=20")
    assert r.returncode == 2 and "train.steps=20 is below the checkpoint's step 30" in _one_line(r.stderr)
    r = run_cli("--resume", str(run), "--set", "train.steps=40", "--set", "model.hidden=[8]")
    assert r.returncode == 2 and "--resume cannot change model" in _one_line(r.stderr)
    r = run_cli("--resume", str(run), "--set", "train.steps=40", "--set", "schedule={name: constant, value: 0.1}")
    assert r.returncode == 2 and "changes the plan's structure" in _one_line(r.stderr)


def test_resume_applies_new_hyperparameters_and_keeps_the_config_history(finished, tmp_path):
    import shutil

    import yaml

    run = tmp_path / "r"
    shutil.copytree(finished, run)
    r = run_cli("--resume", str(run), "--no-progress", "--set", "train.steps=40",
                "--set", "schedule.schedule.peak=0.02", "--set", "optimizer.args.weight_decay=0.5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert yaml.safe_load((run / "config.step30.yaml").read_text())["train"]["steps"] == 30
    new = yaml.safe_load((run / "config.yaml").read_text())
    assert new["train"]["steps"] == 40 and new["schedule"]["schedule"]["peak"] == 0.02
    _, state, _ = load_checkpoint(str(run))
    from lrjax import current_hyperparams

    hp = current_hyperparams(state.opt_state)
    assert float(hp["weight_decay"]) == pytest.approx(0.5)
    lrs = read_metrics(str(run))["train"]["lr"]
    assert max(lrs[-1:]) > 0 and len(lrs) == 4


def test_resume_recovers_from_a_truncated_log_and_a_corrupt_config_is_one_line(finished, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(finished, run)
    text = (run / "metrics.jsonl").read_bytes()
    (run / "metrics.jsonl").write_bytes(text[: len(text) // 2])  # cut in the middle of a line
    r = run_cli("--resume", str(run), "--no-progress", "--set", "train.steps=45")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "was shorter than at step 30" in r.stderr
    assert all(json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines())
    (run / "config.yaml").write_text("train: {steps: [\n")
    r = run_cli("--resume", str(run))
    assert r.returncode == 2 and "config.yaml: not valid YAML" in _one_line(r.stderr)


def test_resume_with_data_of_another_shape_is_one_line(finished, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(finished, run)
    rng = np.random.default_rng(0)
    p = tmp_path / "other.npz"
    np.savez(p, x_train=rng.normal(size=(60, 5)), y_train=rng.integers(0, 3, 60), x_test=rng.normal(size=(9, 5)),
             y_test=rng.integers(0, 3, 9))
    r = run_cli("--resume", str(run), "--data", str(p))
    assert r.returncode == 2 and "--resume cannot change data" in _one_line(r.stderr)


def test_a_full_disk_during_a_checkpoint_fails_cleanly_and_resume_continues(tmp_path):
    """After update 25 a file-size limit makes writes fail with EFBIG, as a full disk fails them: the save at
    30 fails, the run ends `failed` with the error, the checkpoint at 15 stays and --resume finishes."""
    out = tmp_path / "r"
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "import lrjax.train._loop as loop\n"
            "class Full:\n"
            "    every = 25\n"
            "    def __call__(self, run, state):\n"
            "        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
            "hooks = loop.default_hooks\n"
            "loop.default_hooks = lambda *a, **k: hooks(*a, **k) + [Full()]\n"
            "from lrjax.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    args = ["train", *TINY, "--set", "model.hidden=[128]", "--set", "train.steps=60", "--out", str(out)]
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "lrjax: RuntimeWarning: lrjax train: could not draw" in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "checkpoint step 30 not saved in" in line and "File too large" in line and "step 15 is the last good" in line
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "failed" and "File too large" in s["error"] and s["last_checkpoint"] == 15
    r = run_cli("--resume", str(out), "--no-progress")  # room again: the run finishes from step 15
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["resumed_from"] == 15 and s["steps"] == 60


# ----------------------------------------------------------------------------- what a config may do

def test_a_run_name_cannot_leave_the_runs_folder(tmp_path, monkeypatch, capsys):
    from lrjax._rundir import UnsafeNameWarning

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.warns(UnsafeNameWarning, match=r"run name '\.\./\.\./\.\./escaped' is not a safe file name .*using "
                                               r"'escaped' \(choose the place with --out\)"):
        assert main([*TINY, "--set", "name=../../../escaped"]) == 0
    (run,) = os.listdir(work / "runs")
    assert run.endswith("-escaped") and (work / "runs" / run / "summary.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["work"]  # nothing written beside or above the working directory


def test_a_cifar_folder_that_is_not_the_official_release_is_refused_unread(cifar_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--data", str(cifar_dir), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("lrjax train: ") and "data_batch_1: not the official CIFAR-10 release (MD5 " in line
    assert "data.trust_pickle: true" in line and not out.exists()


BAD_NET = "def Net(*, rngs, num_outputs):\n    raise KeyError('width')\n"
SCALAR_NET = ("from flax import nnx\n\nclass Net(nnx.Module):\n    def __init__(self, *, rngs):\n"
              "        self.lin = nnx.Linear(6, 2, rngs=rngs)\n\n    def __call__(self, x):\n"
              "        return self.lin(x).sum()\n")


@pytest.mark.parametrize("case, expect", [
    ("empty x_train", "empty.npz: x_train is empty (shape (0, 6))"),
    ("empty x_test", "empty.npz: x_test is empty (shape (0, 6))"),
    ("label gap", "gap.npz: y_train's labels are 0, 1, 2, 10, but classes are 0 .. C-1 as stored and 3, 4, 5, 6, "
                  "7, 8, 9 never occur"),
    ("unseen test label", "unseen.npz: y_test holds labels 5 that y_train never has (its classes are 0 .. 1)"),
    ("factory raises KeyError", "model 'Net' failed on inputs of shape (6,) with 2 outputs: KeyError: 'width'"),
    ("output without a batch or class axis", "model 'Net' returned an output of shape () for a batch of 3 examples"),
    ("more outputs than classes", "model 'Net' outputs 5 values per example (shape (B, 5)), but the data has 2 "
                                  "outputs per example"),
    ("num_classes 1", "data.num_classes must be an integer >= 2"),
    ("trust_pickle maybe", "data.trust_pickle must be true/false, got data.trust_pickle='maybe'"),
])
def test_bad_data_and_models_are_one_line_exit_2_and_write_nothing(case, expect, tmp_path, npz_file, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    args = ["--data", str(npz_file)]
    if case.startswith("empty"):
        which = case.split()[1]
        arrays = {"x_train": x, "y_train": y, "x_test": x[:8], "y_test": y[:8]}
        arrays[which], arrays["y" + which[1:]] = x[:0], y[:0]
        np.savez(tmp_path / "empty.npz", **arrays)
        args = ["--data", str(tmp_path / "empty.npz")]
    elif case == "label gap":
        g = np.array([0, 1, 2, 10] * 10)
        np.savez(tmp_path / "gap.npz", x_train=x, y_train=g, x_test=x[:8], y_test=g[:8])
        args = ["--data", str(tmp_path / "gap.npz")]
    elif case == "unseen test label":
        np.savez(tmp_path / "unseen.npz", x_train=x, y_train=y, x_test=x[:3], y_test=np.array([0, 5, 1]))
        args = ["--data", str(tmp_path / "unseen.npz")]
    elif case.startswith("factory") or case.startswith("output"):
        (tmp_path / "net.py").write_text(BAD_NET if case.startswith("factory") else SCALAR_NET)
        args += ["--set", f"model.factory={tmp_path / 'net.py'}:Net"]
    elif case == "more outputs than classes":
        # the built-in models take their width from the data; a mismatch needs a model of one's own
        (tmp_path / "wide.py").write_text("from flax import nnx\n\ndef Net(*, rngs):\n"
                                          "    return nnx.Linear(6, 5, rngs=rngs)\n")
        args += ["--set", f"model.factory={tmp_path / 'wide.py'}:Net"]
    elif case == "num_classes 1":
        args += ["--set", "data.num_classes=1"]
    else:
        args += ["--set", "data.trust_pickle=maybe"]
    out = tmp_path / "r"
    assert main([*TINY, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("lrjax train: ") and expect in line, line
    assert not out.exists()


@WIRED
def test_data_num_classes_allows_classes_absent_from_the_data(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    g = np.array([0, 1, 2, 10] * 10)
    np.savez(tmp_path / "gap.npz", x_train=x, y_train=g, x_test=x[:8], y_test=g[:8])
    out = tmp_path / "r"
    assert main([*TINY, "--data", str(tmp_path / "gap.npz"), "--set", "data.num_classes=11", "--out", str(out)]) == 0
    exp, state, _ = load_checkpoint(str(out))
    assert exp.data.num_classes == 11 and state.params["head"]["kernel"].shape == (16, 11)
