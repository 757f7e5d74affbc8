"""Flax NNX models whose input shape and class count come from the data.

* :class:`MLP` — flatten, ``hidden`` ReLU layers, linear head.
* :class:`CNN` — one 3x3 conv + ReLU + 2x2 average pool per entry of ``channels``, then ``hidden``
  ReLU layers and a linear head.
* :class:`ResNet` — a small pre-activation ResNet for CIFAR-sized images: stem conv, ``blocks``
  residual blocks per stage (stride 2 between stages), GroupNorm (no mutable batch statistics, so the
  train step stays a pure function of parameters), global average pool, linear head.

>>> from flax import nnx
>>> from lrjax.train import make_model, ModelConfig
>>> m = make_model(ModelConfig(kind="mlp", hidden=(32,)), (8, 8, 1), 10, nnx.Rngs(0))
>>> m(jnp.zeros((2, 8, 8, 1))).shape
(2, 10)
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lrjax.train._config import ModelConfig

__all__ = ["MLP", "CNN", "ResNet", "make_model"]


class MLP(nnx.Module):
    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, *, rngs: nnx.Rngs):
        widths = [in_features, *hidden]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.head = nnx.Linear(widths[-1], num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.head(x)


def _pool(x: jax.Array) -> jax.Array:
    # 2x2 average pool; odd sizes keep their last row/column out (like floor division).
    if x.shape[1] < 2 or x.shape[2] < 2:
        return x
    return nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))


class CNN(nnx.Module):
    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], hidden: Sequence[int],
                 num_classes: int, *, rngs: nnx.Rngs):
        h, w, c = input_shape
        convs = []
        for ch in channels:
            convs.append(nnx.Conv(c, ch, kernel_size=(3, 3), padding="SAME", rngs=rngs))
            c = ch
            if h >= 2 and w >= 2:
                h, w = h // 2, w // 2
        self.convs = nnx.List(convs)
        self.mlp = MLP(h * w * c, hidden, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = _pool(nnx.relu(conv(x)))
        return self.mlp(x)


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class _Block(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.GroupNorm(cin, num_groups=_groups(cin), rngs=rngs)
        self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=(stride, stride), padding="SAME", rngs=rngs)
        self.norm2 = nnx.GroupNorm(cout, num_groups=_groups(cout), rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding="SAME", rngs=rngs)
        self.proj = (nnx.Conv(cin, cout, (1, 1), strides=(stride, stride), rngs=rngs)
                     if (stride != 1 or cin != cout) else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = nnx.relu(self.norm1(x))
        skip = self.proj(h) if self.proj is not None else x
        h = self.conv1(h)
        h = self.conv2(nnx.relu(self.norm2(h)))
        return skip + h


class ResNet(nnx.Module):
    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], blocks: int, num_classes: int,
                 *, rngs: nnx.Rngs):
        c_in = input_shape[-1]
        self.stem = nnx.Conv(c_in, channels[0], (3, 3), padding="SAME", rngs=rngs)
        layers = []
        c = channels[0]
        for i, ch in enumerate(channels):
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(_Block(c, ch, stride, rngs=rngs))
                c = ch
        self.blocks = nnx.List(layers)
        self.norm = nnx.GroupNorm(c, num_groups=_groups(c), rngs=rngs)
        self.head = nnx.Linear(c, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        x = nnx.relu(self.norm(x))
        return self.head(jnp.mean(x, axis=(1, 2)))


def make_model(cfg: ModelConfig, input_shape: Sequence[int], num_classes: int, rngs: nnx.Rngs) -> nnx.Module:
    """Build the model named by ``cfg.kind`` for inputs of ``input_shape`` (no batch axis)."""
    shape = tuple(int(s) for s in input_shape)
    if cfg.kind == "mlp":
        return MLP(math.prod(shape), cfg.hidden, num_classes, rngs=rngs)
    if len(shape) != 3:
        raise ValueError(
            f"model.kind={cfg.kind!r} needs image inputs (H, W, C), got input shape {shape}; use model.kind='mlp'"
        )
    if cfg.kind == "cnn":
        return CNN(shape, cfg.channels, cfg.hidden, num_classes, rngs=rngs)
    return ResNet(shape, cfg.channels, cfg.blocks, num_classes, rngs=rngs)
