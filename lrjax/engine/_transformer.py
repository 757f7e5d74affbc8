r"""A decoder-only transformer language model (GPT-2 / nanoGPT style) in Flax NNX.

For tokens :math:`x \in \{0..V-1\}^T` with :math:`T \le` ``context``:

.. math::
   h_0 = W_{te}[x] + W_{pe}[0..T-1],\qquad
   h \leftarrow h + \mathrm{Attn}(\mathrm{LN}(h)),\quad h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h))
   \ (\text{``layers'' times}),\qquad
   \mathrm{logits} = \mathrm{LN}(h)\, W_{te}^\top

* pre-LayerNorm blocks (with bias), causal multi-head self-attention (``heads`` heads of ``d_model / heads``,
  :func:`causal_attention`: the maths of ``jax.nn.dot_product_attention(is_causal=True)``, faster on CPU),
  one fused ``d_model -> 3 d_model`` query-key-value projection, an MLP of
  ``4 d_model`` GELU (tanh approximation, as GPT-2) units, learned positions, a final LayerNorm;
* the output head is **tied** to the token embedding by default (GPT-2, nanoGPT); ``tie_embeddings=False``
  gives an untied bias-free head;
* weights as GPT-2: embeddings, positions and every linear :math:`\mathcal N(0, 0.02^2)`, the two residual
  output projections of each block (attention out, MLP out) :math:`\mathcal N(0, (0.02/\sqrt{2L})^2)`,
  biases 0, LayerNorm scales 1. At initialisation the logits are near 0, so the loss is about
  :math:`\ln V` (5.55 nats for bytes).

Parameters (with bias, tied head): :math:`V d + C d + L (12 d^2 + 13 d) + 2 d` for vocabulary :math:`V`,
``context`` :math:`C`, ``d_model`` :math:`d`, ``layers`` :math:`L`; an untied head adds :math:`V d`
(:func:`parameter_count` counts any model's).

Intended integration (not wired here): ``model: {kind: transformer, d_model, layers, heads, context}``
builds :func:`transformer` (it takes the engine's ``input_shape=(T,)`` and ``num_outputs=V``); today it
already works as ``model.factory: "lrjax.engine._transformer:transformer"`` with those ``model.args``.

>>> from flax import nnx
>>> import jax.numpy as jnp
>>> m = Transformer(d_model=32, layers=2, heads=4, context=16, rngs=nnx.Rngs(0))
>>> m(jnp.zeros((2, 16), jnp.int32)).shape, parameter_count(m)
((2, 16, 256), 34176)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lrjax._checks import integer

__all__ = ["Transformer", "transformer", "causal_attention", "parameter_count", "transformer_parameter_count"]

_STD = 0.02


class _Attention(nnx.Module):
    def __init__(self, d_model: int, heads: int, layers: int, *, dtype: Any, rngs: nnx.Rngs):
        self.heads = heads
        self.qkv = nnx.Linear(d_model, 3 * d_model, kernel_init=nnx.initializers.normal(_STD), dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, kernel_init=nnx.initializers.normal(_STD / math.sqrt(2 * layers)),
                              dtype=dtype, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        b, t, d = h.shape
        qkv = self.qkv(h).reshape(b, t, 3, self.heads, d // self.heads)
        return self.out(causal_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]).reshape(b, t, d))


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    r"""Causal scaled dot-product attention of ``(B, T, heads, head_dim)`` queries, keys and values:
    :math:`y_t = \sum_{s \le t} \mathrm{softmax}_s(q_t \cdot k_s / \sqrt{h})\, v_s`, the softmax in float32.

    The same as ``jax.nn.dot_product_attention(q, k, v, is_causal=True)`` (XLA's, the one it uses unless told
    ``implementation="cudnn"``), written as two einsums: about 1.5x faster forward and backward on CPU (B=32, T=128,
    4 heads of 32) as XLA compiles it.
    """
    scores = jnp.einsum("btnh,bsnh->bnts", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    t, s = scores.shape[-2:]
    scores = jnp.where(jnp.tril(jnp.ones((t, s), bool)), scores, jnp.finfo(jnp.float32).min)
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(scores, axis=-1).astype(v.dtype), v)


class _Block(nnx.Module):
    def __init__(self, d_model: int, heads: int, layers: int, *, dtype: Any, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(d_model, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.attn = _Attention(d_model, heads, layers, dtype=dtype, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d_model, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.fc = nnx.Linear(d_model, 4 * d_model, kernel_init=nnx.initializers.normal(_STD), dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(4 * d_model, d_model, kernel_init=nnx.initializers.normal(_STD / math.sqrt(2 * layers)),
                               dtype=dtype, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        h = h + self.attn(self.ln1(h))
        return h + self.proj(jax.nn.gelu(self.fc(self.ln2(h)), approximate=True))


class Transformer(nnx.Module):
    """The decoder-only language model of the module docs: ``(B, T)`` int tokens -> ``(B, T, V)`` float32 logits.

    Args:
      vocab_size: tokens (256: bytes).
      d_model: width; a multiple of ``heads``.
      layers: transformer blocks.
      heads: attention heads.
      context: positions the model has (inputs may be shorter).
      rngs: ``nnx.Rngs`` for the initial weights.
      tie_embeddings: the output head is the token embedding's transpose (default), else its own matrix.
      dtype: the computation's dtype (``jnp.bfloat16`` on a GPU halves the activations' memory); parameters
        and the returned logits are float32.

    Raises ``ValueError``/``TypeError`` naming the argument for a size that is not a positive integer or a
    ``d_model`` that ``heads`` does not divide; calling it on more than ``context`` tokens raises too.
    """

    def __init__(self, *, vocab_size: int = 256, d_model: int, layers: int, heads: int, context: int,
                 rngs: nnx.Rngs, tie_embeddings: bool = True, dtype: Any = jnp.float32):
        fn = "Transformer"
        vocab_size = integer(fn, "vocab_size", vocab_size, lo=1)
        d_model = integer(fn, "d_model", d_model, lo=1)
        layers = integer(fn, "layers", layers, lo=1)
        heads = integer(fn, "heads", heads, lo=1)
        context = integer(fn, "context", context, lo=1)
        if d_model % heads:
            raise ValueError(f"{fn}: d_model must be a multiple of heads (each head gets d_model / heads features), "
                             f"got d_model={d_model}, heads={heads}")
        if not isinstance(tie_embeddings, bool):
            raise TypeError(f"{fn}: tie_embeddings must be True or False, got tie_embeddings={tie_embeddings!r}")
        self.context, self.vocab_size = context, vocab_size
        init = nnx.initializers.normal(_STD)
        self.wte = nnx.Embed(vocab_size, d_model, embedding_init=init, dtype=dtype, rngs=rngs)
        self.wpe = nnx.Embed(context, d_model, embedding_init=init, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([_Block(d_model, heads, layers, dtype=dtype, rngs=rngs) for _ in range(layers)])
        self.ln_f = nnx.LayerNorm(d_model, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.head = None if tie_embeddings else nnx.Linear(d_model, vocab_size, use_bias=False, kernel_init=init,
                                                           dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 2:
            raise ValueError(f"Transformer: inputs must be token ids (B, T), got shape {tuple(x.shape)}")
        t = x.shape[1]
        if t > self.context:
            raise ValueError(f"Transformer: inputs of {t} tokens are longer than the model's context={self.context} "
                             "positions; give a larger model context or shorter windows")
        h = self.wte(x.astype(jnp.int32)) + self.wpe(jnp.arange(t))[None]
        for block in self.blocks:
            h = block(h)
        h = self.ln_f(h)
        logits = self.wte.attend(h) if self.head is None else self.head(h)
        return logits.astype(jnp.float32)


def transformer(*, rngs: nnx.Rngs, d_model: int, layers: int, heads: int, context: int | None = None,
                input_shape: Sequence[int] | None = None, num_outputs: int = 256, tie_embeddings: bool = True,
                dtype: Any = jnp.float32) -> Transformer:
    """A :class:`Transformer` as the engine's model factory: ``input_shape=(T,)`` are the windows (``context``
    defaults to ``T``, and must not be shorter), ``num_outputs`` the vocabulary.

    >>> from flax import nnx
    >>> transformer(rngs=nnx.Rngs(0), d_model=8, layers=1, heads=2, context=4, input_shape=(8,))
    Traceback (most recent call last):
    ...
    ValueError: transformer: windows of 8 tokens are longer than the model's context=4 positions; set context >= 8
    """
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 1:
            raise ValueError(f"transformer: inputs must be token windows (T,) per example, got input shape {shape}")
        if context is None:
            context = shape[0]
        elif shape[0] > context:
            raise ValueError(f"transformer: windows of {shape[0]} tokens are longer than the model's "
                             f"context={context} positions; set context >= {shape[0]}")
    if context is None:
        raise TypeError("transformer: give context (positions) or input_shape (T,)")
    return Transformer(vocab_size=num_outputs, d_model=d_model, layers=layers, heads=heads, context=context,
                       rngs=rngs, tie_embeddings=tie_embeddings, dtype=dtype)


def parameter_count(params: Any) -> int:
    """The number of parameters of an ``nnx.Module`` (its ``nnx.Param`` leaves) or of a pytree of arrays.

    >>> parameter_count({"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)})
    16
    """
    if isinstance(params, nnx.Module):
        params = nnx.state(params, nnx.Param)
    return int(sum(math.prod(getattr(x, "shape", ())) for x in jax.tree.leaves(params)))


def transformer_parameter_count(*, vocab_size: int = 256, d_model: int, layers: int, context: int,
                                tie_embeddings: bool = True) -> int:
    """The closed form: :math:`V d + C d + L(12 d^2 + 13 d) + 2 d` (+ :math:`V d` untied).

    >>> transformer_parameter_count(d_model=128, layers=4, context=128)
    842496
    """
    v, d, n, c = vocab_size, d_model, layers, context
    return v * d + c * d + n * (12 * d * d + 13 * d) + 2 * d + (0 if tie_embeddings else v * d)
