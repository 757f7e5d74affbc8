"""The one evaluation: a split as padded batches on the device, summed by one ``lax.scan``.

:func:`eval_batches` cuts ``(x, y)`` into ``nb`` batches of ``bs`` examples on the host, padding the last
with zeros and marking real examples with ``mask = 1``; :func:`evaluate` scans a ``sums(state, batch)``
function over them and adds the totals. One compiled program serves any split size, it runs inside a
jitted train program or under ``jax.vmap`` over stacked states (a sweep), and nothing is read back until
the caller wants the numbers.

>>> import numpy as np, jax.numpy as jnp
>>> b = eval_batches(np.arange(5.0)[:, None], np.arange(5), batch_size=2)
>>> b["x"].shape, b["mask"].tolist()
((3, 2, 1), [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
>>> total = evaluate(lambda s, bt: {"n": bt["mask"].sum(), "y": (bt["y"] * bt["mask"]).sum()}, None, b)
>>> float(total["n"]), float(total["y"])
(5.0, 10.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["eval_batches", "evaluate"]


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int, multiple: int = 1) -> dict[str, np.ndarray]:
    """``{"x": (nb, bs, ...), "y": (nb, bs, ...), "mask": (nb, bs)}``: ``bs`` is ``batch_size`` (at most the
    split's size) rounded up to a ``multiple`` (the devices a batch is split over)."""
    n = len(y)
    bs = max(1, min(int(batch_size), n))
    bs = -(-bs // multiple) * multiple
    nb = -(-n // bs)
    pad = nb * bs - n

    def padded(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if pad:
            a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
        return a.reshape(nb, bs, *a.shape[1:])

    mask = np.ones(nb * bs, np.float32)
    mask[n:] = 0.0
    return {"x": padded(x), "y": padded(y), "mask": mask.reshape(nb, bs)}


def evaluate(sums: Callable[[Any, dict[str, jax.Array]], dict[str, jax.Array]], state: Any,
             batches: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Totals of ``sums(state, batch)`` over the batches of :func:`eval_batches` (pure, vmappable)."""
    first = jax.tree.map(lambda a: a[0], batches)
    zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(sums, state, first))

    def body(acc, b):
        return jax.tree.map(jnp.add, acc, sums(state, b)), None

    total, _ = jax.lax.scan(body, zero, batches)
    return total
