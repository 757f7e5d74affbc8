"""The decoder-only transformer: shapes, causality, GPT-2 initialisation, parameter count, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lrjax.engine._models import model_structure
from lrjax.engine._transformer import (
    Transformer,
    causal_attention,
    parameter_count,
    transformer,
    transformer_parameter_count,
)


def _tiny(**kw):
    args = {"d_model": 32, "layers": 2, "heads": 4, "context": 16, "rngs": nnx.Rngs(0)} | kw
    return Transformer(**args)


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def _call(m, x):
    """``m(x)``, compiled (eager NNX calls dispatch op by op: slow on a busy CPU)."""
    return nnx.jit(lambda m, x: m(x))(m, x)


def test_logits_have_one_score_per_token_and_position(tiny):
    m = tiny
    x = jax.random.randint(jax.random.key(1), (3, 16), 0, 256)
    out = _call(m, x)
    assert out.shape == (3, 16, 256) and out.dtype == jnp.float32 and bool(jnp.isfinite(out).all())
    short = _call(m, x[:, :5])  # shorter than the context: the first positions
    assert short.shape == (3, 5, 256)
    np.testing.assert_allclose(short, out[:, :5], atol=1e-5)


def test_a_token_changes_no_logit_before_it(tiny):
    m = tiny
    x = jax.random.randint(jax.random.key(2), (2, 16), 0, 256)
    t = 9
    y = x.at[:, t].set((x[:, t] + 17) % 256)
    a, b = _call(m, x), _call(m, y)
    np.testing.assert_array_equal(a[:, :t], b[:, :t])
    assert float(jnp.abs(a[:, t:] - b[:, t:]).max()) > 1e-4


def test_attention_is_jaxs_causal_dot_product_attention():
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 7, 3, 8)) for i in range(3))
    np.testing.assert_allclose(causal_attention(q, k, v), jax.nn.dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-5)


def test_initial_weights_are_gpt2s():
    layers = 4
    m = Transformer(d_model=64, layers=layers, heads=4, context=64, rngs=nnx.Rngs(3))
    p = nnx.to_pure_dict(nnx.state(m, nnx.Param))
    for w in (p["wte"]["embedding"], p["wpe"]["embedding"], p["blocks"][0]["fc"]["kernel"],
              p["blocks"][1]["attn"]["qkv"]["kernel"]):
        assert abs(float(jnp.std(w)) - 0.02) < 0.002 and abs(float(jnp.mean(w))) < 0.002
    resid = 0.02 / math.sqrt(2 * layers)
    for w in (p["blocks"][2]["proj"]["kernel"], p["blocks"][3]["attn"]["out"]["kernel"]):
        assert abs(float(jnp.std(w)) - resid) < 0.1 * resid
    assert float(jnp.abs(p["blocks"][0]["fc"]["bias"]).max()) == 0.0
    np.testing.assert_array_equal(p["ln_f"]["scale"], 1.0)
    assert "head" not in p  # tied: the embedding is the head


def test_the_loss_at_initialisation_is_about_ln_256():
    m = Transformer(d_model=64, layers=2, heads=4, context=32, rngs=nnx.Rngs(4))
    x = jax.random.randint(jax.random.key(5), (8, 33), 0, 256)
    loss = optax.softmax_cross_entropy_with_integer_labels(_call(m, x[:, :-1]), x[:, 1:]).mean()
    assert abs(float(loss) - math.log(256)) < 0.1, float(loss)


@pytest.mark.parametrize("tie", [True, False])
def test_the_parameter_count_follows_the_formula(tie):
    m = nnx.eval_shape(lambda: _tiny(tie_embeddings=tie, vocab_size=100))  # shapes only: nothing computed
    n = transformer_parameter_count(vocab_size=100, d_model=32, layers=2, context=16, tie_embeddings=tie)
    assert parameter_count(m) == n == 100 * 32 + 16 * 32 + 2 * (12 * 32 ** 2 + 13 * 32) + 2 * 32 + (0 if tie else 3200)
    assert parameter_count(nnx.state(m, nnx.Param)) == n
    assert ("head" in nnx.to_pure_dict(nnx.state(m, nnx.Param))) is not tie


def test_bad_sizes_are_errors_naming_the_argument(tiny):
    with pytest.raises(ValueError, match=r"d_model must be a multiple of heads .* got d_model=30, heads=4"):
        _tiny(d_model=30)
    for name in ("d_model", "layers", "heads", "context", "vocab_size"):
        with pytest.raises(ValueError, match=rf"Transformer: {name} must be an integer >= 1, got {name}=0"):
            _tiny(**{name: 0})
    with pytest.raises(TypeError, match=r"layers must be an integer"):
        _tiny(layers=2.5)
    with pytest.raises(ValueError, match=r"inputs of 17 tokens are longer than the model's context=16"):
        tiny(jnp.zeros((1, 17), jnp.int32))
    with pytest.raises(ValueError, match=r"inputs must be token ids \(B, T\), got shape \(4,\)"):
        tiny(jnp.zeros((4,), jnp.int32))


def test_it_is_a_model_factory_for_the_engine_today():
    """``model.factory: lrjax.engine._transformer:transformer`` with ``model.args``: windows of T tokens, 256 outputs."""
    s = model_structure(transformer, (16,), 256, args={"d_model": 32, "layers": 1, "heads": 2})
    params, extra, _ = s.init(jax.random.key_data(jax.random.key(0)))
    assert extra == {} and parameter_count(params) == transformer_parameter_count(d_model=32, layers=1, context=16)
    out, _ = s.apply(params, extra, jnp.zeros((2, 16), jnp.int32))
    assert out.shape == (2, 16, 256)
    with pytest.raises(ValueError, match=r"windows of 32 tokens are longer than the model's context=16"):
        transformer(rngs=nnx.Rngs(0), d_model=8, layers=1, heads=2, context=16, input_shape=(32,))
    with pytest.raises(ValueError, match=r"token windows \(T,\) per example, got input shape \(4, 4\)"):
        transformer(rngs=nnx.Rngs(0), d_model=8, layers=1, heads=2, input_shape=(4, 4))


def test_a_few_steps_of_adam_learn_a_repeating_text():
    m = Transformer(d_model=32, layers=1, heads=2, context=16, rngs=nnx.Rngs(0))
    g, p = nnx.split(m, nnx.Param)
    text = jnp.asarray(np.frombuffer(b"abcabdabe" * 8, np.uint8).astype(np.int32))
    x, y = text[:64].reshape(4, 16), text[1:65].reshape(4, 16)
    tx = optax.adam(1e-2)

    @jax.jit
    def step(p, o):
        loss, grads = jax.value_and_grad(
            lambda p: optax.softmax_cross_entropy_with_integer_labels(nnx.merge(g, p)(x), y).mean())(p)
        u, o = tx.update(grads, o, p)
        return optax.apply_updates(p, u), o, loss

    o = tx.init(p)
    first = None
    for _ in range(60):
        p, o, loss = step(p, o)
        first = float(loss) if first is None else first
    assert first > 5.0 and float(loss) < first / 3, (first, float(loss))
