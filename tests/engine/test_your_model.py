"""Your own model, loss and data: through the config (a module next to it), the Python API, every command."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import yaml
from flax import nnx

from lrjax.engine import ConfigError, DataError, build_experiment, load_config, seed_key
from lrjax.train import read_metrics, train

MODEL_FILE = textwrap.dedent("""
    import jax.numpy as jnp
    from flax import nnx


    class SeqNet(nnx.Module):
        '''A 1-D convolution over (N, L) sequences, with BatchNorm and Dropout (state that is not a parameter).'''

        def __init__(self, width, *, input_shape, num_outputs, rngs):
            (length,) = input_shape
            self.conv = nnx.Conv(1, width, kernel_size=(3,), rngs=rngs)
            self.norm = nnx.BatchNorm(width, rngs=rngs)
            self.drop = nnx.Dropout(0.1, rngs=rngs)
            self.head = nnx.Linear(width * length, num_outputs, rngs=rngs)

        def __call__(self, x):
            h = nnx.relu(self.norm(self.conv(x[..., None])))
            return self.head(self.drop(h).reshape(x.shape[0], -1))


    def hinge(outputs, targets):
        '''A multi-class hinge loss, one value per example.'''
        true = jnp.take_along_axis(outputs, targets[:, None], axis=1)
        return jnp.sum(jnp.maximum(0.0, 1.0 + outputs - true), axis=1) - 1.0
""")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder with a model module, a sequence data set and a config naming both by relative names."""
    root = tmp_path_factory.mktemp("project")
    (root / "mymodel.py").write_text(MODEL_FILE)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    y = (x[:, :8].sum(1) > 0).astype(np.int64) + 2 * (x[:, 8:].sum(1) > 0)  # 4 classes
    np.savez(root / "seq.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    (root / "cfg.yaml").write_text(textwrap.dedent(f"""
        model: {{factory: "mymodel:SeqNet", args: {{width: 8}}}}
        loss: "mymodel:hinge"
        data: {{source: {root / 'seq.npz'}, batch_size: 32}}
        train: {{steps: 60, log_every: 20, eval_every: 30, checkpoint_every: 60, compilation_cache: false}}
    """))
    return root


def test_a_config_names_a_model_next_to_it_from_another_working_directory(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "lrjax.cli", "train", str(project / "cfg.yaml"), "--out", str(out),
                        "--no-progress"], cwd=elsewhere, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 0, r.stderr[-3000:]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    # the module is recorded by its file, so --resume finds it from anywhere
    assert saved["model"]["factory"] == f"{project / 'mymodel.py'}:SeqNet"
    assert saved["loss"] == f"{project / 'mymodel.py'}:hinge"
    assert saved["name"] == "seq-SeqNet-adamw-warmup-cosine_decay"  # named after the data, not 'digits'
    s = json.loads((out / "summary.json").read_text())
    assert s["final_eval"]["test_accuracy"] > 0.6  # chance is 0.25
    cols = read_metrics(str(out))
    assert cols["train"]["train_loss"][-1] < cols["train"]["train_loss"][0]


def test_batchnorm_statistics_and_dropout_streams_are_carried_and_checkpointed(project, tmp_path):
    cfg = load_config(project / "cfg.yaml")
    exp = build_experiment(cfg)
    state = exp.init_state(seed_key(0))
    assert set(state.extra) == {"norm", "drop"}  # BatchNorm mean/var, Dropout's RNG stream
    before = np.asarray(state.extra["norm"]["mean"]).copy()
    s = train(cfg, out_dir=str(tmp_path / "r"), progress=False, verbose=False, plot=False)
    assert s["status"] == "completed"
    from lrjax.train import load_checkpoint

    _, restored, _ = load_checkpoint(str(tmp_path / "r"))
    assert not np.allclose(restored.extra["norm"]["mean"], before)  # running statistics moved
    assert int(restored.extra["drop"]["rngs"]["count"]) == 60  # one dropout draw per step


def test_a_sweep_of_peaks_over_your_model_is_one_compilation(project):
    from lrjax.sweep import run_sweep, sweep_from_dict

    base = yaml.safe_load((project / "cfg.yaml").read_text())
    spec = sweep_from_dict({"base": str(project / "cfg.yaml"), "grid": {"schedule.schedule.peak": [1e-3, 3e-3, 1e-2]},
                            "config": {"train": {"steps": 30, "eval_every": 15}}}, root=str(project))
    del base
    res = run_sweep(spec, write=False, verbose=False)
    assert len(res.groups) == 1 and res.groups[0]["sizes"] == [3]
    assert {r.status for r in res.results} == {"completed"}
    assert all("val_accuracy" in r.final_eval and "test_accuracy" in r.final_eval for r in res.results)


def test_a_range_test_of_your_model(project):
    from lrjax.finder import range_test_config

    res = range_test_config(load_config(project / "cfg.yaml"), min_lr=1e-5, max_lr=10.0, num_steps=40,
                            parallel_rates=3, parallel_steps=10)
    assert res.sweep.num_steps_run >= 10 and res.grid.settings["ranked_on"] == "val_accuracy"
    assert res.sweep.lrs[0] == pytest.approx(1e-5)


def test_regression_with_mse_on_diabetes_beats_predicting_the_mean(tmp_path):
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    tr, te = perm[:350], perm[350:]
    arrays = {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}
    cfg = load_config(None, ["loss=mse", "model.hidden=[64]", "train.steps=400", "data.batch_size=32",
                             "schedule.schedule.peak=0.01", "train.eval_every=100"])
    s = train(cfg, data=arrays, out_dir=str(tmp_path / "r"), progress=False, verbose=False)
    mean_mse = float(np.mean((y[te] - y[tr].mean()) ** 2))
    fe = s["final_eval"]
    assert fe["test_loss"] < 0.7 * mean_mse and 0.3 < fe["test_r2"] < 1.0
    assert "train_accuracy" not in s["final_train"]
    # float targets with cross-entropy are a clear error, before anything trains
    with pytest.raises(ConfigError, match="loss='cross_entropy' needs integer class labels, but the targets are "
                                          "floats"):
        build_experiment(load_config(None, []), data=arrays)


def test_the_python_api_with_a_factory_a_loss_function_and_arrays(tmp_path):
    class Tiny(nnx.Module):
        def __init__(self, *, num_outputs, rngs):
            self.lin = nnx.Linear(6, num_outputs, rngs=rngs)

        def __call__(self, x):
            return self.lin(x)

    def mean_hinge(outputs, targets):  # returns the batch mean: applied per example in evaluations
        true = jax.numpy.take_along_axis(outputs, targets[:, None], axis=1)
        return jax.numpy.mean(jax.numpy.sum(jax.numpy.maximum(0.0, 1.0 + outputs - true), axis=1) - 1.0)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    arrays = {"x_train": x[:240], "y_train": y[:240], "x_test": x[240:], "y_test": y[240:]}
    cfg = load_config(None, ["train.steps=200", "data.batch_size=30", "train.eval_every=50",
                             "schedule.schedule.peak=0.03"])
    s = train(cfg, model=Tiny, loss=mean_hinge, data=arrays, out_dir=str(tmp_path / "r"), progress=False,
              verbose=False)
    assert s["final_eval"]["test_accuracy"] > 0.9 and s["name"].startswith("arrays-Tiny-")
    from lrjax.sweep import train_many

    cfgs = [load_config(None, ["train.steps=40", "data.batch_size=30", f"schedule.schedule.peak={p}"])
            for p in (1e-3, 1e-2)]
    results, groups = train_many(cfgs, model=Tiny, loss=mean_hinge, data=arrays)
    assert len(groups) == 1 and results[1].final_eval["test_loss"] < results[0].final_eval["test_loss"]


def test_bad_factories_and_losses_are_clear_errors(project, tmp_path):
    with pytest.raises(ConfigError, match=r"model.factory='.*mymodel.py:Nope': '.*mymodel.py' has no 'Nope'"):
        build_experiment(load_config(project / "cfg.yaml", ["model.factory=mymodel:Nope"]))
    with pytest.raises(ConfigError, match=r"model.factory='nomodule:Net': cannot import 'nomodule'"):
        build_experiment(load_config(None, ["model.factory=nomodule:Net"]))
    with pytest.raises(ConfigError, match=r"model.factory must be 'MODULE:NAME'"):
        load_config(None, ["model.factory=justaname"])
    with pytest.raises(ConfigError, match=r"model.args are the arguments of model.factory"):
        load_config(None, ["model.args={width: 3}"])
    with pytest.raises(ConfigError, match=r"loss 'mymodel.py:hinge'|loss .* must return per-example losses"):
        build_experiment(load_config(project / "cfg.yaml"), loss=lambda o, t: o)  # (B, C): not a loss
    (tmp_path / "notmod.py").write_text("def make(*, rngs):\n    return 3\n")
    with pytest.raises(ConfigError, match=r"returned a int, not a flax.nnx.Module"):
        build_experiment(load_config(None, [f"model.factory={tmp_path / 'notmod.py'}:make"]))
    # the built-in cnn refuses sequences clearly
    with pytest.raises(ConfigError, match=r"model.kind='cnn' needs image inputs"):
        build_experiment(load_config(project / "cfg.yaml", ["model.factory=null", "model.args={}",
                                                            "model.kind=cnn", "loss=cross_entropy"]))
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.ones((10, 3)), y_train=np.arange(10.0), x_test=np.ones((4, 3)), y_test=np.ones(4))
    with pytest.raises(ConfigError, match="loss='cross_entropy' needs integer class labels"):
        build_experiment(load_config(None, [f"data.source={bad}", "data.batch_size=4"]))
    with pytest.raises(DataError, match="x_val/y_val must match"):
        build_experiment(load_config(None, ["data.batch_size=4"]),
                         data={"x_train": np.ones((10, 3)), "y_train": np.zeros(10, int), "x_test": np.ones((4, 3)),
                               "y_test": np.zeros(4, int), "x_val": np.ones((4, 2)), "y_val": np.zeros(4, int)})
