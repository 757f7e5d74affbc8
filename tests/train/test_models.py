"""Models take their input shape and class count from the data."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from lrjax.train import ModelConfig, make_model


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
    with pytest.raises(ValueError, match=r"model.kind='cnn' needs image inputs \(H, W, C\), got input shape \(6,\)"):
        make_model(ModelConfig(kind="cnn"), (6,), 3, nnx.Rngs(0))
