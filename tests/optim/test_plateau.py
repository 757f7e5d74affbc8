"""reduce_on_plateau: PyTorch's timing, right for negative metrics, NaN-safe, min_lr floor, state-held."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

PARAMS = jnp.zeros(3)


class TorchPlateau:
    """PyTorch's ReduceLROnPlateau.step, in float64, with the two documented fixes:
    the relative threshold uses |best| (right for negative metrics) and a non-finite metric
    is never better."""

    def __init__(self, lr, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        self.__dict__.update(locals())
        self.best = math.inf if mode == "min" else -math.inf
        self.bad = 0
        self.cooldown_counter = 0

    def better(self, a):
        if not math.isfinite(a):
            return False
        if math.isinf(self.best):
            return True
        margin = self.threshold * abs(self.best) if self.threshold_mode == "rel" else self.threshold
        return a < self.best - margin if self.mode == "min" else a > self.best + margin

    def step(self, a):
        if self.better(a):
            self.best, self.bad = a, 0
        else:
            self.bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.bad = 0
        if self.bad > self.patience:
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > self.eps:
                self.lr = new
            self.cooldown_counter = self.cooldown
            self.bad = 0


observe = jax.jit(lrjax.observe_metric)


def _rates(kwargs, metrics, lr=0.5):
    tx = lrjax.inject(optax.sgd, learning_rate=lr, plateau=lrjax.reduce_on_plateau(**kwargs))
    state = tx.init(PARAMS)
    out = []
    for m in metrics:
        state = observe(state, m)
        out.append(float(lrjax.current_hyperparams(state)["learning_rate"]))
    return out, state


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pytorch_rule_on_random_metrics(mode, threshold_mode, seed):
    rng = np.random.default_rng(seed)
    # a random walk on a 0.25 grid in [-4, 4]: negative metrics included, never on a threshold boundary
    metrics = np.clip(np.cumsum(rng.choice([-0.25, 0.0, 0.25], size=40)), -4, 4)
    metrics[rng.integers(0, 40, 3)] = np.nan
    kwargs = dict(mode=mode, threshold_mode=threshold_mode, factor=0.5, patience=int(rng.integers(0, 4)),
                  threshold=0.05 if threshold_mode == "rel" else 0.1, cooldown=int(rng.integers(0, 3)),
                  min_lr=0.01)
    got, _ = _rates(kwargs, metrics.tolist())
    ref = TorchPlateau(0.5, **kwargs)
    want = []
    for m in metrics:
        ref.step(float(m))
        want.append(ref.lr)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(set(want)) > 1  # the sequence does exercise reductions


def test_reduces_when_bad_count_exceeds_patience():
    got, state = _rates(dict(patience=2), [1.0, 1.0, 1.0, 1.0, 1.0], lr=1.0)
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1])
    assert int(state.plateau.num_bad_epochs) == 1 and int(state.plateau.num_observed) == 5


def test_negative_metrics_in_rel_mode():
    # PyTorch's best*(1 - threshold) would call a flat -10 an improvement forever and never reduce
    got, state = _rates(dict(patience=1, threshold=0.01), [-10.0, -10.0, -10.0], lr=1.0)
    assert got[-1] == pytest.approx(0.1)
    got, state = _rates(dict(patience=1, threshold=0.01), [-10.0, -10.05, -10.2], lr=1.0)
    assert got[-1] == 1.0 and float(state.plateau.best) == pytest.approx(-10.2)  # 2% better counts
    got, _ = _rates(dict(mode="max", patience=1, threshold=0.01), [-10.0, -9.95, -9.95], lr=1.0)
    assert got[-1] == pytest.approx(0.1)  # +0.5% is below the 1% threshold


def test_nan_and_inf_never_improve():
    got, state = _rates(dict(patience=2), [1.0, float("nan"), float("-inf"), float("inf")], lr=1.0)
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.1])
    assert float(state.plateau.best) == 1.0


def test_min_lr_is_an_absolute_floor_on_the_rate():
    got, _ = _rates(dict(patience=0, min_lr=0.005), [1.0] * 5, lr=0.1)
    assert got == pytest.approx([0.1, 0.01, 0.005, 0.005, 0.005])
    # with a decaying schedule: the plateau never takes the rate below min_lr, nor raises it
    sched = lrjax.Linear(0.1, 0.001, 10)
    tx = lrjax.inject(optax.sgd, learning_rate=sched, plateau=lrjax.reduce_on_plateau(patience=0, factor=0.01, min_lr=0.01))
    state = tx.init(PARAMS)
    state = observe(observe(state, 1.0), 1.0)  # reduced: 0.1 * 0.01 < min_lr, so the scale is 0.1
    assert float(state.plateau.scale) == pytest.approx(0.1)
    rates = []
    for _ in range(12):
        _, state = tx.update(jnp.ones(3), state)
        rates.append(float(lrjax.current_hyperparams(state)["learning_rate"]))
    base = [float(sched(t)) for t in range(12)]
    np.testing.assert_allclose(rates, [max(b * 0.1, min(b, 0.01)) for b in base], rtol=1e-6)
    assert rates[-1] == pytest.approx(0.001, rel=1e-5)  # the schedule itself went below min_lr: not raised


def test_update_with_value_equals_observe_then_update_and_step_leaves_counters():
    mk = lambda: lrjax.inject(optax.sgd, learning_rate=1.0, plateau=lrjax.reduce_on_plateau(patience=0))
    tx = mk()
    s1 = s2 = tx.init(PARAMS)
    for m in (1.0, 2.0, 3.0):
        u1, s1 = tx.update(jnp.ones(3), s1, value=m)
        u2, s2 = tx.update(jnp.ones(3), observe(s2, m))
        np.testing.assert_array_equal(u1, u2)
    assert float(s1.plateau.scale) == pytest.approx(0.01)
    _, s3 = tx.update(jnp.ones(3), s1)
    assert int(s3.plateau.num_observed) == 3 and int(s3.count) == 4


def test_standalone_in_a_chain_multiplies_updates():
    tx = optax.chain(optax.sgd(1.0), lrjax.reduce_on_plateau(patience=0, factor=0.5, min_lr=0.2))
    state = tx.init(PARAMS)
    scales = []
    for m in (1.0, 1.0, 1.0, 1.0):
        u, state = tx.update(jnp.ones(3), state, value=m)
        scales.append(float(u[0]))
    assert scales == pytest.approx([-1.0, -0.5, -0.25, -0.2])  # floored multiplier
    assert float(lrjax.current_hyperparams(state)["plateau_scale"]) == pytest.approx(0.2)


def test_settings_are_leaves_one_compile():
    before = observe._cache_size()
    for p in (0, 3, 7):
        tx = lrjax.inject(optax.sgd, learning_rate=0.1, plateau=lrjax.reduce_on_plateau(patience=p, factor=0.3))
        observe(tx.init(PARAMS), 1.0)
    assert observe._cache_size() - before <= 1


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"factor must be a number in \(0, 1\), got factor=1.0"):
        lrjax.reduce_on_plateau(factor=1.0)
    with pytest.raises(ValueError, match="mode must be one of 'min', 'max', got mode='mni'.*did you mean 'min'"):
        lrjax.reduce_on_plateau(mode="mni")
    with pytest.raises(ValueError, match="threshold_mode must be one of 'rel', 'abs', got threshold_mode='relative'"):
        lrjax.reduce_on_plateau(threshold_mode="relative")
    with pytest.raises(ValueError, match="patience must be an integer >= 0, got patience=-1"):
        lrjax.reduce_on_plateau(patience=-1)
    with pytest.raises(TypeError, match="patience must be an integer >= 0, got patience=2.5"):
        lrjax.reduce_on_plateau(patience=2.5)
    with pytest.raises(TypeError, match="min_lr must be a number"):
        lrjax.reduce_on_plateau(min_lr="0")


def _torch_plateau_cases():
    import json
    import pathlib

    data = json.loads((pathlib.Path(__file__).parents[1] / "golden" / "torch.json").read_text())
    return {c["name"]: c for c in data["cases"] if c["class"] == "ReduceLROnPlateau" and "lr_values" in c}


TORCH = _torch_plateau_cases()


@pytest.mark.parametrize("name", sorted(n for n in TORCH if n != "plateau_negative_rel"))
def test_matches_real_pytorch_golden_runs(name):
    case = TORCH[name]
    got, _ = _rates(case["kwargs"], case["metrics"], lr=case["lr"])
    np.testing.assert_allclose(got, case["lr_values"], rtol=1e-6)


def test_negative_metrics_differ_from_pytorch_on_purpose():
    case = TORCH["plateau_negative_rel"]  # the metric rises from -1.0 to -0.9: it gets worse
    assert set(case["lr_values"]) == {0.1}  # PyTorch's best·(1 − θ) calls each rise an improvement
    got, _ = _rates(case["kwargs"], case["metrics"], lr=case["lr"])
    ref = TorchPlateau(case["lr"], **case["kwargs"])
    want = []
    for m in case["metrics"]:
        ref.step(m)
        want.append(ref.lr)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[3] == pytest.approx(0.05)  # 3 bad evaluations > patience 2
