"""The device-side runner: advance a state over a span of updates in one compiled loop.

``advance(step, state, source, start, stop)`` runs

.. math:: s \\leftarrow \\mathrm{step}(s, B_i), \\qquad i = \\mathit{start}, \\dots, \\mathit{stop} - 1

inside ``lax.fori_loop`` with *traced* bounds (any span length reuses one program), where the batch
:math:`B_i` is taken on the device by :func:`batch_at` from a :class:`Source`, and writes the step's
scalar metrics into row ``i - start`` of a ``(rows, columns)`` float32 table. It knows nothing of configs,
models or optimizers: ``step(state, batch) -> (state, metrics)`` is any pure function. With a *monitor*
(``init() -> m``, ``update(m, metrics, i) -> (m, values)`` and ``stopped(m) -> bool``) the loop is a
``lax.while_loop`` that also ends once the monitor says stop (the range test's smoothed-loss rule is one),
including before the first update of a later span; the monitor's ``values`` go to the table too.

Everything is a pure function of arrays, so ``jax.vmap(advance)`` runs a stack of states (a sweep, the
parallel range test): under ``vmap`` a member whose monitor stopped is frozen while the others go on.
The callers jit it with the state donated; the host reads the table when it needs it.

>>> import jax, jax.numpy as jnp
>>> step = lambda s, b: (s + b["x"].sum(), {"total": s + b["x"].sum()})
>>> src = Source({"x": jnp.arange(10.0)}, jnp.arange(10, dtype=jnp.int32).reshape(5, 2), 0)
>>> state, table, n = advance(step, ("total",), 0.0, src, 0, 5, rows=5)
>>> float(state), table[:, 0].tolist(), int(n)
(45.0, [1.0, 6.0, 15.0, 28.0, 45.0], 5)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

__all__ = ["Source", "Monitor", "batch_at", "advance"]


class Source(NamedTuple):
    """Where micro-batch ``i`` comes from (a pytree: it may be stacked and vmapped like a state).

    ``arrays``: a pytree of arrays with a leading example axis (``{"x": ..., "y": ...}``).
    ``index``: ``(S, B)`` int32, the examples of micro-batch ``i`` in row ``i - offset``; or ``None``, and
    then ``arrays`` are stacked micro-batches (leading axis = micro-batch, cycled).
    ``offset``: the micro-batch number of ``index``'s first row (a span's start, or 0 for a whole run).
    """

    arrays: Any
    index: Any
    offset: Any


def batch_at(source: Source, i: jax.Array) -> Any:
    """Micro-batch ``i`` of ``source``, gathered on the device (the engine's one batch gather)."""
    if source.index is None:
        n = jax.tree.leaves(source.arrays)[0].shape[0]
        return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, jnp.mod(i, n), 0, keepdims=False),
                            source.arrays)
    rows = jax.lax.dynamic_index_in_dim(source.index, i - source.offset, 0, keepdims=False)
    return jax.tree.map(lambda a: a[rows], source.arrays)  # rows are in range: no out-of-bounds masking


class Monitor(Protocol):
    """An on-device watcher of the metrics: it may stop the loop and adds its own columns."""

    columns: tuple[str, ...]

    def init(self) -> Any: ...

    def update(self, mstate: Any, metrics: dict[str, jax.Array], i: jax.Array
               ) -> tuple[Any, dict[str, jax.Array]]: ...

    def stopped(self, mstate: Any) -> jax.Array: ...


def _row(metrics: dict[str, jax.Array], columns: tuple[str, ...]) -> jax.Array:
    nan = jnp.float32(jnp.nan)
    return jnp.stack([jnp.asarray(metrics.get(c, nan), jnp.float32).reshape(()) for c in columns])


def advance(step: Callable[[Any, Any], tuple[Any, dict]], columns: tuple[str, ...], state: Any, source: Source,
            start: Any, stop: Any, *, rows: int, monitor: Monitor | None = None, mstate: Any = None,
            batch: Callable[[Source, jax.Array], Any] = batch_at) -> tuple:
    """Run ``step`` for micro-batches ``start .. stop - 1`` (see the module docs).

    Args:
      step: ``(state, batch) -> (state, metrics)``, pure; ``metrics`` maps names to scalars.
      columns: the metric names recorded, in table order (a missing one is NaN).
      state, source: the carried state and where batches come from (:class:`Source`).
      start, stop: the span (traced int32 scalars are fine: no recompilation per span).
      rows: the table's (static) number of rows, at least ``stop - start``; rows past the span stay NaN.
      monitor, mstate: an optional :class:`Monitor` and its state (``monitor.init()`` when None).
      batch: ``(source, i) -> batch`` (default :func:`batch_at`).

    Returns:
      ``(state, table, steps_run)``, plus the monitor's state when there is a monitor. ``table`` is
      ``(rows, len(columns) + len(monitor.columns))``; ``steps_run`` counts the micro-batches run.
    """
    cols = tuple(columns) + (tuple(monitor.columns) if monitor is not None else ())
    table = jnp.full((rows, len(cols)), jnp.nan, jnp.float32)
    start = jnp.asarray(start, jnp.int32)
    stop = jnp.asarray(stop, jnp.int32)

    def one(i, st, tab, m):
        st, metrics = step(st, batch(source, i))
        if monitor is not None:
            m, extra = monitor.update(m, metrics, i)
            metrics = {**metrics, **extra}
        tab = jax.lax.dynamic_update_index_in_dim(tab, _row(metrics, cols), i - start, 0)
        return st, tab, m

    if monitor is None:
        def body(i, carry):
            st, tab = carry
            st, tab, _ = one(i, st, tab, None)
            return st, tab

        state, table = jax.lax.fori_loop(start, stop, body, (state, table))
        return state, table, stop - start

    def cond(carry):
        i, _, _, m = carry
        return (i < stop) & ~monitor.stopped(m)

    def wbody(carry):
        i, st, tab, m = carry
        st, tab, m = one(i, st, tab, m)
        return i + 1, st, tab, m

    m0 = monitor.init() if mstate is None else mstate
    i, state, table, m = jax.lax.while_loop(cond, wbody, (start, state, table, m0))
    return state, table, i - start, m
