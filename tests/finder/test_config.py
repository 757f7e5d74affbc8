"""Range tests on a training config (the engine's experiment and runner), and setting the schedule's peak."""

import numpy as np
import pytest

from lrjax.engine import load_config
from lrjax.finder._config import _held_momentum, _range_config, _schedule_max, range_test_config, with_peak

SMALL = ["train.steps=60", "model.hidden=[32]", "data.batch_size=32"]


@pytest.fixture(scope="module")
def digits_result():
    cfg = load_config(None, SMALL)
    return cfg, range_test_config(cfg, min_lr=1e-5, max_lr=10.0, num_steps=60, parallel_rates=4,
                                  parallel_steps=20, parallel_min_lr=1e-4, parallel_max_lr=10.0)


def test_sweep_on_digits_descends_then_diverges(digits_result):
    _, res = digits_result
    sw = res.sweep
    # adamw's normalised steps keep a diverging classifier's loss bounded: it need not reach 4x its best
    assert sw.stop_reason in ("diverged", "completed")
    best = int(np.argmin(sw.smoothed))
    assert sw.smoothed[best] < 0.8 * sw.smoothed[0]  # it learned...
    assert sw.smoothed[-1] > max(1.5 * sw.smoothed[best], sw.smoothed[0])  # ...then blew up, past untrained
    blowup = sw.lrs[best + int(np.argmax(sw.smoothed[best:] > 1.5 * sw.smoothed[best]))]
    for m in ("steepest", "minimum", "valley"):
        assert 1e-5 <= res.suggestion(m) < blowup
    assert res.settings["data"] == "digits" and res.settings["batch_size"] == 32
    assert res.settings["config_name"] == "digits-mlp-adamw-warmup-cosine_decay"  # the figure's title, never None
    assert sw.settings["smoothing"] == pytest.approx(60 / 70)  # the default for 60 updates


def test_saved_results_read_back_as_they_were(digits_result, tmp_path):
    import json

    from lrjax.finder import ParallelRangeResult, RangeTestResult

    _, res = digits_result
    paths = res.save(str(tmp_path), "steepest")
    assert paths["json"].endswith("range_test.json")
    d = json.load(open(paths["json"]))
    sweep, grid = RangeTestResult.from_dict(d["sweep"]), ParallelRangeResult.from_dict(d["parallel"])
    assert str(sweep) == str(res.sweep) and str(grid) == str(res.grid)
    np.testing.assert_array_equal(sweep.smoothed, res.sweep.smoothed)
    assert sweep.suggestion("steepest") == res.suggestion("steepest") and grid.best_lr == res.grid.best_lr


def test_parallel_grid_on_digits_ranks_on_the_validation_split(digits_result):
    _, res = digits_result
    g = res.grid
    # it chooses, so it looks at a validation split carved from the training data, never the test set
    assert g.metric == "eval" and g.settings["ranked_on"] == "val_accuracy"
    assert g.status[-1] == "diverged" and g.status[0] == "slow"
    assert res.suggestion("parallel") == g.best_lr and 1e-4 < g.best_lr < 10.0
    assert 0.0 <= g.initial <= 0.3  # an untrained 10-class classifier: about chance


def test_suggestion_method_errors(digits_result):
    _, res = digits_result
    with pytest.raises(ValueError, match=r"method must be one of .*got method='steep'.*did you mean 'steepest'"):
        res.suggestion("steep")


def test_cycle_momentum_is_held_and_plateau_dropped():
    cfg = load_config("configs/one_cycle.yaml", ["optimizer.accumulation_steps=2"])
    assert float(_held_momentum(cfg)(37)) == pytest.approx(0.95)  # the one-cycle momentum at step 0, held
    assert _range_config(load_config("configs/plateau.yaml")).plateau is None


def test_accumulation_counts_updates_and_momentum_follows_the_optimizer():
    """A config with accumulation: the curve has one point per optimizer update, and the range test takes
    the same optimizer-argument rule as training (adagrad has no momentum: one clear error for both)."""
    cfg = load_config("configs/one_cycle.yaml", ["optimizer.accumulation_steps=2", "train.steps=40",
                                                 "model.hidden=[16]", "data.batch_size=32"])
    res = range_test_config(cfg, min_lr=1e-4, max_lr=1.0, num_steps=15)
    assert res.sweep.num_steps_run == 15 and res.sweep.settings["accumulation_steps"] == 2
    np.testing.assert_allclose(res.sweep.lrs[:3], [1e-4, 1e-4 * (1e4 ** (1 / 14)), 1e-4 * (1e4 ** (2 / 14))],
                               rtol=1e-5)
    from lrjax.engine import ConfigError

    bad = load_config("configs/one_cycle.yaml", ["optimizer.name=adagrad", "optimizer.args={}"])
    with pytest.raises(ConfigError, match="optimizer 'adagrad' has no momentum argument"):
        range_test_config(bad, num_steps=10)


@pytest.mark.parametrize("path, key", [
    (None, ("schedule", "peak")),                # warmup + cosine: the inner peak
    ("configs/one_cycle.yaml", ("max_lr",)),
    ("configs/cyclic.yaml", ("max_lr",)),
    ("configs/step_decay.yaml", ("init_value",)),
    ("configs/plateau.yaml", ("value",)),
])
def test_with_peak_sets_the_peak_argument(path, key):
    cfg = load_config(path)
    new = with_peak(cfg, 0.0123, method="steepest", record={"stop_reason": "diverged"})
    node = new.schedule
    for k in key:
        node = node[k]
    assert node == pytest.approx(0.0123, rel=1e-5)
    assert _schedule_max(new) == pytest.approx(0.0123, rel=1e-5)
    assert new.find_lr == {"stop_reason": "diverged", "method": "steepest", "lr": 0.0123}
    assert new.optimizer == cfg.optimizer and new.train == cfg.train


def test_with_peak_wraps_other_schedules_in_scale_and_respects_batch_scaling():
    cfg = load_config(None, ["schedule={name: linear, init_value: 0.001, end_value: 0.004, steps: 100}",
                             "optimizer.batch_scaling=linear", "optimizer.base_batch_size=32"])
    assert _schedule_max(cfg) == pytest.approx(0.008)  # batch 64 vs 32: x2
    new = with_peak(cfg, 0.02)
    assert new.schedule["name"] == "scale" and new.schedule["schedule"] == cfg.schedule
    assert _schedule_max(new) == pytest.approx(0.02, rel=1e-5)
    with pytest.raises(ValueError, match="lr must be a finite rate > 0, got lr=-1"):
        with_peak(cfg, -1)


def test_the_function_api_and_the_config_give_the_same_curve():
    """`lrjax.lr_range_test` on the config's own model, loss, batches and ramp runs the same step as
    `range_test_config`: the same rates and losses, point for point."""
    import functools

    import optax

    import lrjax
    from lrjax.engine import BatchIterator, build_experiment, seed_key

    cfg = load_config(None, ["model.hidden=[32]", "data.batch_size=32", "optimizer.args={}"])
    res = range_test_config(cfg, min_lr=1e-4, max_lr=3.0, num_steps=40).sweep
    exp = build_experiment(cfg)
    params = exp.init_state(seed_key(cfg.train.seed)).params
    idx = BatchIterator(exp.data.num_train, 32, cfg.train.seed).take(40)
    batches = {"x": exp.data.x_train[idx], "y": exp.data.y_train[idx]}

    def loss(p, b):
        return exp.task.batch_loss(exp.model.apply(p, {}, b["x"])[0], b["y"])

    got = lrjax.lr_range_test(loss, params, functools.partial(optax.adamw), batches, min_lr=1e-4, max_lr=3.0,
                              num_steps=40)
    assert got.stop_reason == res.stop_reason and got.num_steps_run == res.num_steps_run > 10
    np.testing.assert_array_equal(got.lrs, res.lrs)
    np.testing.assert_allclose(got.losses, res.losses, rtol=1e-6)
    np.testing.assert_allclose(got.smoothed, res.smoothed, rtol=1e-6)


def test_one_min_lr_default_for_every_range_test():
    import inspect

    from lrjax.finder import lr_range_test, parallel_range_test
    from lrjax.finder._range import DEFAULT_MIN_LR

    for fn in (lr_range_test, parallel_range_test, range_test_config):
        assert inspect.signature(fn).parameters["min_lr"].default == DEFAULT_MIN_LR == 1e-6
