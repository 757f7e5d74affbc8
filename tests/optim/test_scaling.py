"""scale_lr: rules, auto by optimizer, every family's rates scaled (and back), warmup lengthened."""

import importlib.util
import math
import pathlib

import jax
import numpy as np
import optax
import pytest

import lrjax


def _battery_cases():
    path = pathlib.Path(__file__).parents[1] / "schedules" / "test_battery.py"
    spec = importlib.util.spec_from_file_location("_lrjax_battery_cases", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {k: v[1] for k, v in mod.CASES.items() if k != "momentum_of"}


CASES = _battery_cases()
T = np.array([0, 1, 3, 7, 10, 37, 99, 100, 250, 1000], np.int32)


def test_rules_and_factor():
    assert lrjax.scale_lr(0.1, 256, 1024) == pytest.approx(0.4)
    assert lrjax.scale_lr(0.1, 256, 1024, "sqrt") == pytest.approx(0.2)
    assert lrjax.scale_lr(0.1, 256, 1024, "none") == 0.1
    for opt in ("adamw", optax.adamw, optax.lion, "lamb", "optax.adafactor"):
        assert lrjax.scale_lr(0.1, 256, 1024, "auto", optimizer=opt) == pytest.approx(0.2), opt
    for opt in ("sgd", optax.sgd, "lars"):
        assert lrjax.scale_lr(0.1, 256, 1024, "auto", optimizer=opt) == pytest.approx(0.4), opt
    batch = lrjax.effective_batch_size(64, num_devices=4, accumulation_steps=2)
    assert lrjax.lr_scale_factor(128, batch) == 4.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="rule='auto' .* needs optimizer="):
        lrjax.scale_lr(0.1, 256, 1024, "auto")
    with pytest.raises(ValueError, match="cannot tell whether optimizer='fromage' is adaptive"):
        lrjax.scale_lr(0.1, 256, 1024, "auto", optimizer=optax.fromage)
    with pytest.raises(ValueError, match="rule must be one of .* got rule='squareroot'"):
        lrjax.scale_lr(0.1, 256, 1024, "squareroot")
    with pytest.raises(ValueError, match="scale_lr: batch_size must be a finite number > 0, got batch_size=0"):
        lrjax.scale_lr(0.1, 256, 0)
    with pytest.raises(ValueError, match="MomentumOf schedule is a momentum"):
        lrjax.scale_lr(lrjax.OneCycle(1.0, 100).momentum, 1, 2)
    with pytest.raises(ValueError, match="scale_warmup=True needs an lrjax schedule"):
        lrjax.scale_lr(0.1, 1, 2, scale_warmup=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_family_scaled_in_place_and_back(name):
    s = CASES[name]
    scaled = lrjax.scale_lr(s, 100, 300)
    assert type(scaled) is type(s)  # the same family, readable spec
    assert jax.tree.structure(scaled) == jax.tree.structure(s)
    np.testing.assert_allclose(scaled(T), 3.0 * np.asarray(s(T)), rtol=2e-6, atol=1e-9)
    back = lrjax.scale_lr(scaled, 300, 100)  # the inverse property
    np.testing.assert_allclose(back(T), s(T), rtol=2e-6, atol=1e-9)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(s)):
        np.testing.assert_allclose(a, b, rtol=2e-6)


def test_product_scales_one_factor_and_relative_floor_is_kept():
    p = lrjax.Product([lrjax.Constant(0.5), lrjax.Constant(0.2)])
    q = lrjax.scale_lr(p, 1, 4)
    assert float(q.schedules[0].value) == 2.0 and float(q.schedules[1].value) == pytest.approx(0.2)
    c = lrjax.scale_lr(lrjax.CosineDecay(1.0, 10, floor=0.1, floor_mode="relative"), 1, 4)
    assert float(c.floor) == pytest.approx(0.1) and float(c(10)) == pytest.approx(0.4)


def test_scale_warmup_lengthens_warmup_in_proportion():
    s = lrjax.Warmup(lrjax.CosineDecay(1e-3, 1000), warmup_steps=100)
    big = lrjax.scale_lr(s, 256, 1024, scale_warmup=True)
    assert float(big.warmup_steps) == 400 and float(big.schedule.peak) == pytest.approx(4e-3)
    assert float(big(200)) == pytest.approx(2e-3)  # halfway up the longer ramp
    wsd = lrjax.scale_lr(lrjax.WarmupStableDecay(1.0, 10, 80, 10), 1, 2, "sqrt", scale_warmup=True)
    assert float(wsd.warmup_steps) == round(10 * math.sqrt(2)) and float(wsd.stable_steps) == 80


def test_callables_are_wrapped_and_junk_refused():
    class Fn:
        pass

    f = lrjax.scale_lr(lambda t: 0.5, 1, 4)
    assert f(3) == 2.0
    with pytest.raises(TypeError, match="must be a number, an array or a schedule"):
        lrjax.scale_lr(Fn(), 1, 4)
