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


# ----------------------------------------------------------------------------- what a referenced module may do

SHADOWS = ("tqdm", "optax", "yaml", "matplotlib", "orbax", "platformdirs", "tensorboardX", "filelock")
SHADOW_FILE = "open({marker!r} + '/' + __name__, 'w').close()\n"  # leaves a trace if it ever runs
NET_FILE = textwrap.dedent("""
    import tqdm, optax, yaml                 # the installed packages, not the files beside this one
    from helpers import width                # a sibling module that is not installed: found beside it
    from flax import nnx

    assert hasattr(tqdm, "tqdm") and hasattr(optax, "adamw") and hasattr(yaml, "safe_load")


    def Net(*, input_shape, num_outputs, rngs):
        return nnx.Linear(input_shape[0], num_outputs, rngs=rngs)


    def Scalar(*, input_shape, num_outputs, rngs):
        class M(nnx.Module):
            def __init__(self):
                self.lin = nnx.Linear(input_shape[0], num_outputs, rngs=rngs)

            def __call__(self, x):
                return self.lin(x).mean()  # one number per batch: no batch axis, no class axis
        return M()


    def Wide(*, input_shape, num_outputs, rngs):
        return nnx.Linear(input_shape[0], num_outputs + width, rngs=rngs)


    def Broken(*, input_shape, num_outputs, rngs):
        raise RuntimeError("the factory broke\\nover two lines")
""")


@pytest.fixture
def shadowed(tmp_path):
    """A config folder holding the model module, a sibling it imports, and files named like lrjax's own
    dependencies that leave a marker in ``ran/`` if they are ever imported."""
    root = tmp_path / "cfgdir"
    root.mkdir()
    (tmp_path / "ran").mkdir()
    (root / "mm.py").write_text(NET_FILE)
    (root / "helpers.py").write_text("width = 3\n")
    for name in SHADOWS:
        (root / f"{name}.py").write_text(SHADOW_FILE.format(marker=str(tmp_path / "ran")))
    np.savez(root / "d.npz", x_train=np.random.default_rng(0).normal(size=(64, 5)), y_train=np.arange(64) % 4,
             x_test=np.ones((8, 5)), y_test=np.arange(8) % 4)
    (root / "cfg.yaml").write_text(textwrap.dedent("""
        model: {factory: "mm:Net"}
        data: {source: d.npz, batch_size: 16}
        schedule: {name: constant, value: 0.01}
        train: {steps: 4, log_every: 2, eval_every: 2, checkpoint_every: 4, compilation_cache: false}
    """).replace("d.npz", str(root / "d.npz")))
    return root


def test_a_model_module_loads_by_its_file_and_leaves_sys_path_alone(shadowed):
    import importlib.util

    from lrjax.engine._models import load_reference

    path_before, optax_before = list(sys.path), sys.modules["optax"]
    net = load_reference(f"{shadowed / 'mm.py'}:Net")
    assert net.__module__ in sys.modules and sys.modules[net.__module__].__file__ == str(shadowed / "mm.py")
    assert sys.path == path_before and sys.modules["optax"] is optax_before
    assert importlib.util.find_spec("tensorboardX") is None  # the folder's files are not importable afterwards
    assert load_reference(f"{shadowed / 'mm.py'}:Net") is net  # loaded once: the same classes every time
    assert os.listdir(shadowed.parent / "ran") == []


def test_files_beside_a_config_named_like_lrjax_dependencies_never_run(shadowed, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "lrjax.cli", "train", str(shadowed / "cfg.yaml"), "--out", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert "4/4" in r.stderr  # the real tqdm drew the progress bar, after the model was loaded
    assert os.listdir(tmp_path / "ran") == []  # none of tqdm.py, optax.py, yaml.py, ... beside it ran


@pytest.mark.parametrize("factory, match", [
    ("Broken", r"model 'Broken' failed on inputs of shape \(5,\) with 4 outputs: RuntimeError: the factory broke "
               r"over two lines"),
    ("Scalar", r"model 'Scalar' returned an output of shape \(\) for a batch of 3 examples; it must keep the batch "
               r"axis first: \(B, 4\)"),
    ("Wide", r"model 'Wide' outputs 7 values per example \(shape \(B, 7\)\), but the data has 4 outputs per example "
             r"\(classes 0 \.\. 3"),
])
def test_a_model_that_raises_or_has_the_wrong_outputs_is_one_line_before_training(shadowed, factory, match):
    cfg = load_config(shadowed / "cfg.yaml", [f"model.factory=mm:{factory}"])
    with pytest.raises(ConfigError, match=match) as e:
        build_experiment(cfg)
    assert "\n" not in str(e.value)


def test_a_module_that_fails_to_import_is_one_line(tmp_path):
    (tmp_path / "typo.py").write_text("import jax\n\nNet = undefined_name\n")
    (tmp_path / "syntax.py").write_text("def Net(:\n")
    with pytest.raises(ConfigError, match=r"model.factory='.*typo.py:Net': importing '.*typo.py' raised NameError: "
                                          r"name 'undefined_name' is not defined"):
        build_experiment(load_config(None, [f"model.factory={tmp_path / 'typo.py'}:Net"]))
    with pytest.raises(ConfigError, match=r"importing '.*syntax.py' raised SyntaxError: .*\(.*syntax.py, line 1\)"):
        build_experiment(load_config(None, [f"model.factory={tmp_path / 'syntax.py'}:Net"]))


def test_model_output_checks_name_the_shapes():
    from lrjax.engine import ModelConfig, model_structure
    from lrjax.engine._models import check_model_outputs

    s = model_structure(ModelConfig(hidden=(8,)), (4,), 6)
    assert check_model_outputs(s, (4,), 6, classification=True) == (6,)
    assert check_model_outputs(s, (4,), 6) == (6,)
    reg = model_structure(lambda rngs, input_shape, num_outputs: nnx.Linear(4, 6, rngs=rngs), (4,), 6)
    with pytest.raises(ConfigError, match=r"outputs 6 values per example \(shape \(B, 6\)\), but the data has 5"):
        check_model_outputs(reg, (4,), 5)
    with pytest.raises(ConfigError, match=r"failed on a batch of 3 examples of shape \(7,\): TypeError"):
        check_model_outputs(reg, (7,), 6)  # the model cannot take these inputs

    class Grid(nnx.Module):  # (B, 2, 3): six values per example, the right size, but no single class axis
        def __init__(self, rngs):
            self.lin = nnx.Linear(4, 6, rngs=rngs)

        def __call__(self, x):
            return self.lin(x).reshape(x.shape[0], 2, 3)

    grid = model_structure(lambda rngs: Grid(rngs), (4,), 6)
    assert check_model_outputs(grid, (4,), 6) == (2, 3)  # a regression of (2, 3) targets may
    with pytest.raises(ConfigError, match=r"returned scores of shape \(B, 2, 3\); classification needs \(B, 6\)"):
        check_model_outputs(grid, (4,), 6, classification=True)


def test_a_module_in_a_package_and_a_module_named_like_a_dependency(tmp_path):
    import optax

    from lrjax.engine._models import load_reference

    pkg = tmp_path / "proj" / "nets"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "common.py").write_text("WIDTH = 7\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "net.py").write_text("from ..common import WIDTH\nfrom . import layers\n\n"
                                        "def make():\n    return WIDTH + layers.EXTRA\n")
    (pkg / "sub" / "layers.py").write_text("EXTRA = 1\n")
    make = load_reference(f"{pkg / 'sub' / 'net.py'}:make")
    assert make() == 8 and make.__module__.endswith("nets.sub.net")  # relative imports inside the package work
    # a model file called optax.py is the module named: it runs, under a private name; optax stays optax
    (tmp_path / "optax.py").write_text("def Net():\n    return 'mine'\n")
    net = load_reference(f"{tmp_path / 'optax.py'}:Net")
    assert net() == "mine" and net.__module__.startswith("_lrjax_ref_") and sys.modules["optax"] is optax
