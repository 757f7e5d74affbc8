"""Models take their input shape and class count from the data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrjax.engine import ModelConfig, init_params, make_model


@pytest.mark.parametrize("kind, shape", [("mlp", (8, 8, 1)), ("mlp", (6,)), ("cnn", (8, 8, 1)),
                                         ("resnet", (32, 32, 3))])
def test_output_shape_and_params(kind, shape):
    cfg = ModelConfig(kind=kind, hidden=(16,), channels=(8, 16), blocks=1)
    model = nnx.eval_shape(lambda: make_model(cfg, shape, 7, nnx.Rngs(0)))
    out = jax.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, *shape), jnp.float32))
    assert out.shape == (2, 7)
    _, params = nnx.split(model, nnx.Param)
    n = sum(p.size for p in jax.tree.leaves(params))
    if kind == "mlp":
        d = 1
        for s in shape:
            d *= s
        assert n == d * 16 + 16 + 16 * 7 + 7


def test_image_models_need_images():
    with pytest.raises(ValueError, match=r"model.kind='cnn' needs image inputs \(H, W, C\) or \(H, W\), got input shape \(6,\)"):
        make_model(ModelConfig(kind="cnn"), (6,), 3, nnx.Rngs(0))


def _abstract(kind, shape, **kw):
    cfg = ModelConfig(kind=kind, hidden=(64,), channels=(8, 16), blocks=1, **kw)
    model = nnx.eval_shape(lambda: make_model(cfg, shape, 10, nnx.Rngs(0)))
    return model, nnx.to_pure_dict(nnx.split(model, nnx.Param)[1])


@pytest.mark.parametrize("kind, shape", [("mlp", (8, 8, 1)), ("cnn", (8, 8, 1)), ("resnet", (16, 16, 3))])
def test_init_params_matches_nnx_default_distributions(kind, shape):
    model, abstract = _abstract(kind, shape)
    params = init_params(abstract, jax.random.key(3))
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    assert jax.tree.map(lambda p: p.shape, params) == jax.tree.map(lambda a: a.shape, abstract)
    kernels = 0
    for path, w in flat:
        name = path[-1].key
        if name == "kernel":
            kernels += 1
            fan_in = int(np.prod(w.shape[:-1]))
            sigma = 1.0 / np.sqrt(fan_in)  # lecun normal: variance 1/fan_in after the truncation
            assert np.abs(w).max() <= 2 * sigma / 0.8796256610342398 * (1 + 1e-6)
            if w.size >= 500:
                assert np.std(w) == pytest.approx(sigma, rel=0.12)
        elif name == "scale":
            assert np.all(w == 1.0)
        else:
            assert name == "bias" and np.all(w == 0.0)
    assert kernels >= 2
    # the parameters run the model, and different kernels are different draws
    nnx.update(model, params)
    x = jax.random.normal(jax.random.key(0), (4, *shape))
    assert np.all(np.isfinite(model(x)))
    ks = [np.asarray(w).ravel()[:8] for path, w in flat if path[-1].key == "kernel"]
    assert not np.allclose(ks[0][: len(ks[1])], ks[1][: len(ks[0])])


def test_init_params_is_a_function_of_the_key():
    _, abstract = _abstract("mlp", (8, 8, 1))
    a, b, c = (init_params(abstract, jax.random.key(k)) for k in (0, 0, 1))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert not np.array_equal(a["head"]["kernel"], c["head"]["kernel"])


def test_init_params_refuses_unknown_parameters():
    with pytest.raises(ValueError, match=r"no initializer for parameter \['w'\]"):
        init_params({"w": jax.ShapeDtypeStruct((3,), jnp.float32)}, jax.random.key(0))
