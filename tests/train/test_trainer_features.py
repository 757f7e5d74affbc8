"""What people bring from the HF Trainer, Keras and timm: early stopping, bf16 compute, loggers (report_to)."""

import glob
import json
import os
import struct

import jax
import numpy as np
import pytest

from lrjax.engine import ConfigError, build_experiment, load_config
from lrjax.train import load_checkpoint, load_dataset, read_metrics, train

DATA = load_dataset("digits", seed=0)
SMALL = ["model.hidden=[32]", "train.log_every=10", "train.eval_every=10", "train.checkpoint_every=1000",
         "data.batch_size=32", "train.progress=false"]


def cfg(*extra):
    return load_config(None, SMALL + list(extra))


def run(tmp_path, *extra, name="run", **kw):
    out = tmp_path / name
    summary = train(cfg(*extra), out_dir=str(out), data=DATA, progress=False, verbose=False, plot=False, **kw)
    return out, summary


# ----------------------------------------------------------------------------- early stopping

def test_early_stopping_ends_after_patience_evaluations_without_improvement(tmp_path):
    # a constant rate far too high: the validation loss stops improving early on
    out, s = run(tmp_path, "train.steps=400", "schedule={name: constant, value: 0.05}",
                 "data.validation_fraction=0.1", "train.early_stop={metric: loss, patience: 3}")
    assert s["status"] == "early_stopped" and s["steps"] < 400
    evals = [r for r in read_metrics(str(out))["eval"]["val_loss"]]
    steps = read_metrics(str(out))["eval"]["step"]
    best = int(np.argmin(evals))
    # it stopped exactly `patience` evaluations after the best one, and none of those beat it
    assert steps[-1] == steps[best] + 3 * 10 and s["steps"] == steps[-1]
    assert all(v >= evals[best] for v in evals[best + 1:])
    assert s["last_checkpoint"] == s["steps"]


def test_min_delta_counts_small_improvements_as_misses(tmp_path):
    _, strict = run(tmp_path, "train.steps=300", "data.validation_fraction=0.1",
                    "train.early_stop={metric: accuracy, patience: 2, min_delta: 0.5}", name="strict")
    # no accuracy can improve by 0.5 twice: the third evaluation ends it
    assert strict["status"] == "early_stopped" and strict["steps"] == 30


def test_early_stopping_resumes_with_its_count(tmp_path):
    """Killed before the stop (a shorter run), resumed: it stops where an uninterrupted run stops."""
    args = ["schedule={name: constant, value: 0.05}", "data.validation_fraction=0.1",
            "train.early_stop={patience: 3}", "train.checkpoint_every=10"]
    _, whole = run(tmp_path, "train.steps=400", *args, name="whole")
    stop = whole["steps"]
    part, first = run(tmp_path, f"train.steps={stop - 10}", *args, name="part")
    assert first["status"] == "completed"
    resumed = train(load_config(None, SMALL + ["train.steps=400"] + args), resume=str(part), data=DATA,
                    progress=False, verbose=False, plot=False)
    assert resumed["status"] == "early_stopped" and resumed["steps"] == stop


def test_early_stop_keys_are_checked():
    with pytest.raises(ConfigError, match=r"train.early_stop.metric must be one of loss, accuracy.*did you mean "
                                          r"'accuracy'"):
        cfg("train.early_stop={metric: acuracy}")
    with pytest.raises(ConfigError, match=r"train.early_stop.patience must be > 0, got train.early_stop.patience=0"):
        cfg("train.early_stop={patience: 0}")
    assert cfg("train.early_stop={patience: 2}").data.validation_fraction is None  # 0.1 once it chooses:
    from lrjax.engine import with_validation

    assert with_validation(cfg("train.early_stop={patience: 2}")).data.validation_fraction == 0.1


# ----------------------------------------------------------------------------- bf16

def test_bf16_compute_agrees_with_float32_and_keeps_float32_state(tmp_path):
    _, f32 = run(tmp_path, "train.steps=200", name="f32")
    out, bf16 = run(tmp_path, "train.steps=200", "train.precision=bf16", name="bf16")
    e32, e16 = f32["final_eval"], bf16["final_eval"]
    # the tolerance: bfloat16 keeps 8 bits of mantissa; on the digits the runs end within these
    assert abs(e32["test_accuracy"] - e16["test_accuracy"]) <= 0.02
    assert abs(e32["test_loss"] - e16["test_loss"]) <= 0.03
    assert e16["test_accuracy"] > 0.9
    _, state, _ = load_checkpoint(str(out), data=DATA)
    for leaf in jax.tree.leaves((state.params, state.opt_state)):
        if np.issubdtype(np.asarray(leaf).dtype, np.floating):
            assert np.asarray(leaf).dtype == np.float32
    # the step does compute in bfloat16: the loss differs from float32's in the last bits
    exp16 = build_experiment(cfg("train.precision=bf16"), data=DATA)
    exp32 = build_experiment(cfg(), data=DATA)
    st = exp32.init_state(np.array([0, 0], np.uint32))
    batch = {"x": DATA.x_train[:32], "y": DATA.y_train[:32]}
    l32 = float(exp32.loss(st.params, st.extra, batch)[0])
    l16 = float(exp16.loss(st.params, st.extra, batch)[0])
    assert l16 != l32 and abs(l16 - l32) < 0.02 * l32


# ----------------------------------------------------------------------------- loggers

def _wandb_history(run_dir):
    """The history rows of an offline W&B run, read from its .wandb file (LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb"))
    data = open(path, "rb").read()
    pos, block, chunks, buf = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            break
        buf = part if kind in (1, 2) else buf + part
        if kind in (1, 4):
            chunks.append(buf)
    rows = []
    for c in chunks:
        rec = pb.Record()
        rec.ParseFromString(c)
        if rec.WhichOneof("record_type") == "history":
            items = {i.nested_key[0] if i.nested_key else i.key: json.loads(i.value_json) for i in rec.history.item}
            rows.append({k: v for k, v in items.items() if not k.startswith("_")} | {"step": items["_step"]})
    return rows


def test_report_to_wandb_and_mlflow_log_the_rows_of_metrics_jsonl(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out, _ = run(tmp_path, "train.steps=30", "train.report_to=[wandb, mlflow]")
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    # wandb: every record at its step, every numeric value (rate and momentum included)
    got = {}
    for row in _wandb_history(str(out)):
        got.setdefault(row["step"], {}).update(row)
    for rec in records:
        for k, v in rec.items():
            if k != "step" and v is not None:
                assert got[rec["step"]][k] == pytest.approx(v, rel=1e-9), (rec["step"], k)
    # mlflow: the same metrics, at the same steps, in the run's local store
    import mlflow

    client = mlflow.tracking.MlflowClient(f"file:{out / 'mlruns'}")
    run_id = open(out / "mlruns" / "lrjax-run-id").read().strip()
    for key in ("lr", "momentum", "train_loss", "test_accuracy"):
        hist = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        want = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        assert [s for s, _ in hist] == [s for s, _ in want]
        np.testing.assert_allclose([v for _, v in hist], [v for _, v in want], rtol=1e-9)
    assert client.get_run(run_id).data.params["optimizer.name"] == "adamw"


def test_a_logger_that_is_not_installed_is_refused_before_any_run_directory(tmp_path, monkeypatch):
    import lrjax.engine._config as config

    monkeypatch.setattr(config, "_installed", lambda module: module != "wandb")
    with pytest.raises(ConfigError, match=r"train.report_to: wandb needs the wandb package, which is not installed: "
                                          r"pip install 'lrjax\[wandb\]'"):
        cfg("train.report_to=[wandb]")
    with pytest.raises(ConfigError, match=r"train.report_to\[0\] must be one of tensorboard, wandb, mlflow, got "
                                          r"'wandbb' \(did you mean 'wandb'\?\)"):
        cfg("train.report_to=[wandbb]")
