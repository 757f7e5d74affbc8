"""The parallel range test: K rates in one vmapped program, ranked, divergence located."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax.finder import parallel_range_test

L = 10.0
CURV = jnp.array([L / 4, L / 2, L])
B = (0.1 * np.random.default_rng(0).normal(size=(40, 3))).astype(np.float32)


def quad_loss(p, b):
    return 0.5 * jnp.sum(CURV * (p - b) ** 2)


def eval_loss(p, _):
    return 0.5 * jnp.sum(CURV * p**2)


@pytest.fixture(scope="module")
def grid():
    p0 = jnp.ones(3)
    return p0, parallel_range_test(quad_loss, p0, optax.sgd, B, min_lr=1e-3, max_lr=1.0, num_rates=10,
                                   num_steps=40)


def test_gd_grid_diverges_exactly_above_two_over_L(grid):
    _, res = grid
    lrs = res.lrs
    np.testing.assert_allclose(lrs, np.logspace(-3, 0, 10), rtol=1e-6)
    stable = lrs < 2 / L
    assert all(s == "diverged" for s in np.array(res.status)[~stable])
    assert all(s != "diverged" for s in np.array(res.status)[stable])
    assert res.diverged_from == pytest.approx(lrs[~stable][0])
    assert lrs[stable][-1] < 2 / L <= res.diverged_from


def test_ranking_best_and_slow(grid):
    _, res = grid
    # one of the two largest stable rates wins (the very largest amplifies the batch noise)
    assert lrs_below(res, 2 / L)[-2] <= res.best_lr < 2 / L
    finite = np.array([s != "diverged" for s in res.status])
    # ranked by final smoothed loss among the stable runs, then diverged ones
    order_final = res.final[res.order[: finite.sum()]]
    assert np.all(np.diff(order_final) >= 0)
    assert set(res.order[finite.sum():]) == set(np.flatnonzero(~finite))
    assert res.status[0] == "slow" and res.good_range[1] == pytest.approx(lrs_below(res, 2 / L)[-1])
    # slow: improved (in log loss) less than half as much as the best
    gain = np.log(res.initial / res.final)
    for i, s in enumerate(res.status):
        if s != "diverged":
            assert (s == "slow") == (gain[i] < 0.5 * gain.max(where=finite, initial=-np.inf))


def lrs_below(res, x):
    return res.lrs[res.lrs < x]


def test_each_run_equals_plain_training_at_its_rate(grid):
    p0, res = grid
    i = 5
    lr = float(res.lrs[i])
    tx = optax.sgd(lr)
    p, s, losses = p0, tx.init(p0), []
    for b in B:
        loss, g = jax.value_and_grad(quad_loss)(p, b)
        losses.append(float(loss))
        u, s = tx.update(g, s, p)
        p = optax.apply_updates(p, u)
    np.testing.assert_allclose(res.losses[i], losses, rtol=1e-5)
    assert res.stopped_at[i] == 40


def test_params_untouched(grid):
    p0, _ = grid
    assert not p0.is_deleted()
    np.testing.assert_array_equal(np.asarray(p0), np.ones(3))


def test_diverged_runs_freeze_and_pad_with_nan(grid):
    _, res = grid
    j = int(np.flatnonzero(np.array(res.status) == "diverged")[-1])
    k = int(res.stopped_at[j])
    assert k < 40 and np.all(np.isnan(res.losses[j, k:])) and np.all(np.isfinite(res.losses[j, :k - 1]))


def test_eval_metric_ranks_and_higher_is_better():
    kw = dict(min_lr=1e-3, max_lr=0.1, num_rates=4, num_steps=20)
    res = parallel_range_test(quad_loss, jnp.ones(3), optax.sgd, B, eval_fn=eval_loss, eval_data=None, **kw)
    assert res.metric == "eval" and res.initial == pytest.approx(0.5 * float(jnp.sum(CURV)))
    assert list(res.order) == [3, 2, 1, 0]  # larger stable rate -> lower eval loss
    neg = parallel_range_test(quad_loss, jnp.ones(3), optax.sgd, B, eval_fn=lambda p, d: -eval_loss(p, d),
                              higher_is_better=True, **kw)
    assert list(neg.order) == [3, 2, 1, 0] and neg.status[3] == "good"


def test_schedule_shape_and_iterator_data():
    res = parallel_range_test(quad_loss, jnp.ones(3), optax.sgd, iter(list(B)), min_lr=1e-2, max_lr=0.1,
                              num_rates=3, num_steps=20,
                              schedule=lambda lr: lrjax.Warmup(lrjax.Constant(lr), warmup_steps=10))
    assert res.settings["schedule"] == "warmup" and res.losses.shape == (3, 20)
    # warmup from 0: the first update does nothing, so the second loss sees the same params
    assert np.all(np.isfinite(res.final))


def test_all_diverged_has_no_best_lr():
    res = parallel_range_test(quad_loss, jnp.ones(3), optax.sgd, B, min_lr=0.5, max_lr=2.0, num_rates=3,
                              num_steps=40)
    assert res.status == ("diverged",) * 3
    with pytest.raises(ValueError, match=r"every rate in \[0.5, 2\] diverged; lower min_lr"):
        _ = res.best_lr
    assert res.to_dict()["best_lr"] is None


def test_json_and_png(tmp_path, grid):
    _, res = grid
    d = json.load(open(res.save_json(tmp_path / "g.json")))
    assert d["best_lr"] == res.best_lr and d["status"] == list(res.status) and len(d["curves"]["loss"]) == 10
    fig = res.plot(tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "diverged" in labels and any(t.startswith("best: ") for t in labels)
    assert "rank" in res.table() and str(res).startswith("parallel range test: best lr=")


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(num_rates=1), ValueError, "num_rates must be an integer >= 2, got num_rates=1"),
        (dict(num_steps=0), ValueError, "num_steps must be an integer >= 1, got num_steps=0"),
        (dict(slow_fraction=2.0), ValueError, r"slow_fraction must be a number in \[0, 1\], got slow_fraction=2.0"),
        (dict(eval_data=B), ValueError, "eval_data was given without eval_fn"),
        (dict(schedule=lambda lr: lr), TypeError, "schedule\\(lr\\) must return an lrjax schedule, got float"),
        (dict(max_lr=1e-9), ValueError, "max_lr must be finite and > min_lr"),
    ],
)
def test_bad_arguments(kw, err, match):
    with pytest.raises(err, match=match):
        parallel_range_test(quad_loss, jnp.ones(3), optax.sgd, B, **kw)
