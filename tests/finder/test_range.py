"""The sequential range test: known answers, exact rate logging, data sources, stopping, errors."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax.finder import _range, _result, lr_range_test, range_schedule

# A noisy quadratic: 0.5 * sum_i c_i (p_i - b_i)^2 with curvatures up to L. Gradient descent
# converges for lr < 2/L and diverges above; the batch noise keeps every direction excited,
# so the blow-up shows in the loss as soon as it starts.
L = 10.0
CURV = jnp.array([L / 4, L / 2, L])
KEY = jax.random.key(0)


def quad_loss(p, b):
    return 0.5 * jnp.sum(CURV * (p - b) ** 2)


def quad_batch(i):
    return 0.1 * jax.random.normal(jax.random.fold_in(KEY, i), (3,))


def linear_loss(p, b):
    return jnp.sum(p * b)


@pytest.fixture(scope="module")
def quad_result():
    p0 = jnp.ones(3)
    res = lr_range_test(quad_loss, p0, optax.sgd, quad_batch, min_lr=1e-4, max_lr=10.0, num_steps=200)
    return p0, res


def test_gd_on_a_quadratic_stops_just_above_two_over_L(quad_result):
    _, res = quad_result
    assert res.stop_reason == "diverged"
    assert 2 / L <= res.stop_lr <= 3 * (2 / L)
    # the smoothed loss blew past diverge_factor x its best at the last point, and not before
    assert res.smoothed[-1] > 4 * np.min(res.smoothed[:-1])
    assert np.all(res.smoothed[:-1] <= 4 * np.minimum.accumulate(res.smoothed[:-1]) + 1e-6)


def test_suggestions_lie_below_the_divergence_point(quad_result):
    _, res = quad_result
    for name in ("steepest", "minimum", "valley"):
        lr = res.suggestion(name)
        assert (2 / L) / 100 <= lr < 2 / L, (name, lr)
    assert (2 / L) / 10 <= res.suggestion("minimum") < 2 / L


def test_callers_params_are_untouched_and_alive(quad_result):
    p0, _ = quad_result
    assert not p0.is_deleted()
    np.testing.assert_array_equal(np.asarray(p0), np.ones(3))


def test_curve_is_the_ramp_and_the_smoothing_is_bias_corrected(quad_result):
    _, res = quad_result
    n = res.num_steps_run
    sched = range_schedule(1e-4, 10.0, 200)
    # the logged rate is read back from the optimizer state; XLA may round the ramp's pow one
    # ulp differently inside the loop than in this eager, vectorised call
    np.testing.assert_allclose(res.lrs, np.asarray(sched(jnp.arange(n)), np.float64), rtol=2e-6)
    assert res.lrs[0] == np.float32(1e-4)
    beta, avg, ref = 200 / 210, 0.0, []  # the default: num_steps / (num_steps + 10)
    assert res.settings["smoothing"] == beta
    for i, l in enumerate(res.losses):
        avg = beta * avg + (1 - beta) * l
        ref.append(avg / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(res.smoothed, ref, rtol=2e-5)


def test_logged_rate_is_the_rate_applied_at_that_update():
    # loss_i = p_i . e0 and sgd: p_{i+1} = p_i - lr_i e0, so loss_i - loss_{i+1} = lr_i exactly
    # up to float rounding; an off-by-one log would be off by the ramp's ratio (~1.2).
    e0 = np.array([1.0, 0.0], np.float32)
    res = lr_range_test(linear_loss, jnp.zeros(2), optax.sgd, lambda i: jnp.asarray(e0),
                        min_lr=1e-3, max_lr=1.0, num_steps=40, smoothing=0.0, diverge_factor=None)
    assert res.stop_reason == "completed" and res.num_steps_run == 40
    applied = res.losses[:-1] - res.losses[1:]
    np.testing.assert_allclose(applied, res.lrs[:-1], rtol=1e-4)
    assert res.losses[0] == 0.0


def test_linear_mode_and_negative_losses_do_not_stop_early():
    e0 = np.array([1.0, 0.0], np.float32)
    res = lr_range_test(linear_loss, jnp.zeros(2), optax.sgd, lambda i: jnp.asarray(e0),
                        min_lr=1e-3, max_lr=1.0, num_steps=40, mode="linear")
    assert res.stop_reason == "completed"  # the loss goes negative: k x best must not misfire
    assert res.losses[-1] < 0
    np.testing.assert_allclose(np.diff(res.lrs), (1.0 - 1e-3) / 39, rtol=1e-4)


B = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)


def test_stacked_function_and_iterator_data_give_the_same_curve():
    kw = dict(min_lr=1e-3, max_lr=3.0, num_steps=50)
    a = lr_range_test(quad_loss, jnp.ones(3), optax.sgd, B, **kw)
    b = lr_range_test(quad_loss, jnp.ones(3), optax.sgd, lambda i: jnp.asarray(B)[i], **kw)
    c = lr_range_test(quad_loss, jnp.ones(3), optax.sgd, iter(list(B)), chunk_size=16, **kw)
    assert a.num_steps_run == b.num_steps_run == c.num_steps_run
    for r in (b, c):
        np.testing.assert_allclose(r.losses, a.losses, rtol=1e-6)
        np.testing.assert_array_equal(r.lrs, a.lrs)
    assert a.stop_reason == c.stop_reason


def test_iterator_that_runs_out_stops_with_data_exhausted():
    # smoothing 0.98: B moves this loss by factors of ten, which a lighter EMA would call divergence
    res = lr_range_test(quad_loss, jnp.ones(3), optax.sgd, list(B[:20]), min_lr=1e-4, max_lr=1e-3,
                        num_steps=50, chunk_size=16, smoothing=0.98)
    assert res.stop_reason == "data exhausted" and res.num_steps_run == 20


def test_stacked_data_shorter_than_the_sweep_is_cycled():
    res = lr_range_test(quad_loss, jnp.ones(3), optax.sgd, B[:7], min_lr=1e-4, max_lr=1e-3, num_steps=50)
    ref = lr_range_test(quad_loss, jnp.ones(3), optax.sgd, np.concatenate([B[:7]] * 8)[:50],
                        min_lr=1e-4, max_lr=1e-3, num_steps=50)
    np.testing.assert_allclose(res.losses, ref.losses, rtol=1e-6)


def mean_loss(p, batch):
    x, y = batch
    return jnp.mean((x @ p - y) ** 2)


def test_accumulation_counts_optimizer_updates():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8, 3)).astype(np.float32)
    y = rng.normal(size=(40, 8)).astype(np.float32)
    kw = dict(min_lr=1e-3, max_lr=1.0, num_steps=20)
    full = lr_range_test(mean_loss, jnp.zeros(3), optax.adam, (x.reshape(20, 16, 3), y.reshape(20, 16)), **kw)
    acc = lr_range_test(mean_loss, jnp.zeros(3), optax.adam, (x, y), accumulation_steps=2, **kw)
    assert acc.num_steps_run == full.num_steps_run
    np.testing.assert_array_equal(acc.lrs, full.lrs)  # the ramp advanced once per update
    np.testing.assert_allclose(acc.losses, full.losses, rtol=1e-5)


def test_any_optimizer_chain_with_aux_and_adamw():
    def chained(learning_rate):
        return optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(learning_rate, momentum=0.9))

    def with_aux(p, b):
        return quad_loss(p, b), {"norm": jnp.sum(p**2)}

    res = lr_range_test(with_aux, jnp.ones(3), chained, B, min_lr=1e-4, max_lr=10.0, num_steps=60, has_aux=True,
                        smoothing=0.98)  # B moves this loss by factors of ten: a lighter EMA stops on that noise
    assert res.num_steps_run >= 10 and np.all(np.isfinite(res.losses[:-1]))
    res2 = lr_range_test(lambda p, b: quad_loss(p["w"], b), {"w": jnp.ones(3)},
                         functools.partial(optax.adamw, weight_decay=1e-2), B, min_lr=1e-4, max_lr=1.0, num_steps=30,
                         smoothing=0.98)
    assert res2.stop_reason == "completed" and np.all(np.isfinite(res2.smoothed)) and res2.lrs[-1] == np.float32(1.0)


def nan_after_10(p, b):
    return jnp.where(b > 10, jnp.nan, jnp.sum(p**2))


def test_non_finite_loss_stops_the_sweep_and_is_dropped_by_suggestions():
    res = lr_range_test(nan_after_10, jnp.ones(2), optax.sgd, jnp.arange(40.0), min_lr=1e-4, max_lr=1e-2,
                        num_steps=40)
    assert res.stop_reason == "non-finite" and res.num_steps_run == 12 and np.isnan(res.losses[-1])
    d = res.to_dict()
    assert d["curve"]["loss"][-1] is None and json.loads(json.dumps(d))["stop_reason"] == "non-finite"


def test_new_rates_reuse_the_compiled_sweep():
    kw = dict(num_steps=50)
    lr_range_test(quad_loss, jnp.ones(3), optax.sgd, B, min_lr=1e-3, max_lr=3.0, **kw)
    before = len(_range._PROGRAMS)
    lr_range_test(quad_loss, jnp.asarray(np.full(3, 2.0, np.float32)), optax.sgd, B + 1, min_lr=1e-5, max_lr=0.1, smoothing=0.9,
                  diverge_factor=8, **kw)
    assert len(_range._PROGRAMS) == before


def test_iterator_chunks_donate_their_own_state_never_the_callers():
    p0 = {"a": jnp.ones(3)}
    res = lr_range_test(lambda p, b: quad_loss(p["a"], b), p0, optax.sgd, iter(list(B)), min_lr=1e-4,
                        max_lr=1e-3, num_steps=40, chunk_size=8, smoothing=0.98)  # see the test above
    assert res.num_steps_run == 40 and not p0["a"].is_deleted()


def test_result_json_and_png(tmp_path, quad_result):
    _, res = quad_result
    path = res.save_json(tmp_path / "r.json")
    d = json.load(open(path))
    assert d["suggestions"]["valley"]["lr"] == res.suggestion("valley")
    assert len(d["curve"]["lr"]) == res.num_steps_run and d["settings"]["num_steps"] == 200
    fig = res.plot(tmp_path / "r.png", title="quadratic")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "quadratic"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("valley: ") for t in labels) and any(t.startswith("stopped (diverged)") for t in labels)


def test_missing_suggestion_raises_with_the_reason():
    res = lr_range_test(quad_loss, jnp.ones(3), optax.sgd, B, min_lr=1e-3, max_lr=3.0, num_steps=50)
    flat = _result.RangeTestResult(res.lrs, res.losses, np.full(res.lrs.size, 1.0), "completed",
                                  lrjax.finder.suggest(res.lrs, np.full(res.lrs.size, 1.0)), res.settings)
    with pytest.raises(ValueError, match="no 'valley' suggestion: the curve is too flat"):
        flat.suggestion("valley")
    assert "no suggestion" in str(flat)


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(min_lr=0.0), ValueError, r"min_lr must be a finite number > 0, got min_lr=0.0"),
        (dict(min_lr=1.0, max_lr=0.5), ValueError, r"max_lr must be finite and > min_lr, got min_lr=1.0 and max_lr=0.5"),
        (dict(num_steps=1), ValueError, r"num_steps must be an integer >= 2, got num_steps=1"),
        (dict(num_steps=10.5), TypeError, r"num_steps must be an integer >= 2, got num_steps=10.5"),
        (dict(mode="exponential"), ValueError, r"mode must be one of 'exp', 'linear', got mode='exponential'"),
        (dict(smoothing=1.0), ValueError, r"smoothing must be in \[0, 1\), got smoothing=1.0"),
        (dict(diverge_factor=1.0), ValueError, r"diverge_factor must be > 1 .*got diverge_factor=1.0"),
        (dict(accumulation_steps=0), ValueError, r"accumulation_steps must be an integer >= 1, got accumulation_steps=0"),
        (dict(chunk_size=0), ValueError, r"chunk_size must be an integer >= 1, got chunk_size=0"),
    ],
)
def test_bad_arguments_are_rejected_before_compiling(kw, err, match):
    args = dict(min_lr=1e-4, max_lr=1.0, num_steps=10)
    args.update(kw)
    data = list(B) if "chunk_size" in kw else B
    with pytest.raises(err, match=match):
        lr_range_test(quad_loss, jnp.ones(3), optax.sgd, data, **args)


def test_bad_callables_and_data_are_rejected():
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        lr_range_test(3.0, jnp.ones(3), optax.sgd, B)
    with pytest.raises(TypeError, match="optimizer_factory must be a function"):
        lr_range_test(quad_loss, jnp.ones(3), optax.sgd(0.1), B)
    with pytest.raises(ValueError, match=r"must share a leading axis.*\[\(60,\), \(5,\)\]"):
        lr_range_test(quad_loss, jnp.ones(3), optax.sgd, (B, np.zeros(5)))
    with pytest.raises(ValueError, match="data yielded no batches"):
        lr_range_test(quad_loss, jnp.ones(3), optax.sgd, [])
