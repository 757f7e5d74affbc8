"""The one compiled-program factory: a *segment* of training — the runner over a span, then (when asked)
the evaluation of every split and the validation loss fed to reduce-on-plateau — compiled once.

``lrjax train`` runs one member per call, a sweep vmaps the same :class:`Segment` over stacked states,
the range tests add the divergence monitor (the parallel one vmapped), and :func:`lrjax.lr_range_test`
runs it on your own loss. Each caller keeps the programs it compiled (one per shape); nothing else
compiles around :func:`~lrjax.engine.advance`.

One call, for one member (``jax.vmap`` maps it over a stack):

1. ``(state, table, steps_run[, mstate]) = advance(step, columns, state, source, start, stop, rows=...)``
   — micro-steps ``start .. stop - 1``, a metric row each (:mod:`lrjax.engine._runner`);
2. if ``flags.evaluate``: ``metrics[split] = evaluate(state, evals[split])`` for every split (NaN
   otherwise: a ``lax.cond``, so a span that ends between evaluations pays nothing);
3. if ``flags.observe``: ``opt_state = lrjax.observe_metric(opt_state, metrics[observe]["loss"])`` — the
   plateau sees the *selection* split's loss (the validation split, the test set only without one).

Start and stop are traced: any span, cadence or run length reuses the program.

>>> import jax.numpy as jnp
>>> from lrjax.engine._runner import Source
>>> seg = Segment(step=lambda s, b: (s + b["x"].sum(), {"total": s + b["x"].sum()}), columns=("total",), rows=4,
...               evaluate=lambda s, e: {"loss": s * e["w"]}, splits=("val",))
>>> prog = compile_segment(seg)
>>> src = Source({"x": jnp.arange(8.0)}, jnp.arange(8, dtype=jnp.int32).reshape(4, 2), 0)
>>> out = prog(jnp.float32(0), src, 0, 4, {"val": {"w": jnp.float32(2)}}, Flags(evaluate=True))
>>> float(out.state), float(out.metrics["val"]["loss"]), out.table[:, 0].tolist()
(28.0, 56.0, [1.0, 6.0, 15.0, 28.0])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.engine._runner import Monitor, Source, advance, batch_at
from lrjax.optim import observe_metric

__all__ = ["Segment", "Flags", "SegmentOut", "Program", "compile_segment", "stacked_axes"]


class Flags(NamedTuple):
    """What a segment does after its span (traced booleans: one program serves both answers)."""

    evaluate: Any = False
    observe: Any = False


class SegmentOut(NamedTuple):
    """A segment's results: the state (None when not kept), the metric table ``(rows, columns)``, the
    micro-steps run, the evaluation ``{split: {metric: value}}`` and the monitor's state (or None)."""

    state: Any
    table: jax.Array
    steps: jax.Array
    metrics: dict[str, dict[str, jax.Array]]
    mstate: Any


@dataclasses.dataclass(frozen=True, eq=False)
class Segment:
    """One member's work in a compiled call (see the module docs).

    ``step``: ``(state, batch) -> (state, metrics)``; ``columns``: the step metrics recorded;
    ``rows``: the table's static length (at least the longest span); ``batch``: ``(source, i) -> batch``;
    ``monitor``: an optional on-device :class:`~lrjax.engine.Monitor` that can stop the loop;
    ``evaluate``: ``(state, split_data) -> {metric: scalar}``; ``splits``: the splits it runs on;
    ``observe``: the split whose ``loss`` feeds the optimizer's plateau (None: no plateau).
    """

    step: Callable[[Any, Any], tuple[Any, dict]]
    columns: tuple[str, ...]
    rows: int
    batch: Callable[[Source, jax.Array], Any] = batch_at
    monitor: Monitor | None = None
    evaluate: Callable[[Any, Any], dict[str, jax.Array]] | None = None
    splits: tuple[str, ...] = ()
    observe: str | None = None

    def __call__(self, state: Any, source: Source, start: Any, stop: Any, evals: Any = None, flags: Flags = Flags(),
                 mstate: Any = None) -> SegmentOut:
        out = advance(self.step, self.columns, state, source, start, stop, rows=self.rows, monitor=self.monitor,
                      mstate=mstate, batch=self.batch)
        state, table, steps = out[:3]
        mstate = out[3] if self.monitor is not None else None
        metrics: dict[str, dict[str, jax.Array]] = {}
        if self.evaluate is not None and self.splits:
            def run(st: Any) -> dict:
                return {s: self.evaluate(st, evals[s]) for s in self.splits}

            shapes = jax.eval_shape(run, state)
            nan = lambda st: jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), shapes)  # noqa: E731
            metrics = jax.lax.cond(jnp.asarray(flags.evaluate), run, nan, state)
        if self.observe is not None:
            loss = metrics[self.observe]["loss"]
            fed = lambda st: st._replace(opt_state=observe_metric(st.opt_state, loss))  # noqa: E731
            state = jax.lax.cond(jnp.asarray(flags.observe), fed, lambda st: st, state)
        return SegmentOut(state, table, steps, metrics, mstate)


def stacked_axes(*, arrays: bool, index: bool, evals: bool) -> tuple:
    """``in_axes`` of a vmapped segment over stacked states: whether the training arrays, the batch
    indices and the evaluation data are stacked per member too (else shared)."""
    src = Source(arrays=0 if arrays else None, index=0 if index else None, offset=None)
    return (0, src, None, None, 0 if evals else None, None, None)


class Program:
    """A compiled segment: ``program(state, source, start, stop, evals=None, flags=Flags(), mstate=None)``
    (host arguments converted to the dtypes the program was traced with, so every call reuses it);
    :meth:`compile` compiles ahead of time (a sweep times its compilation apart) and later calls run that
    executable directly."""

    def __init__(self, jitted: Callable[..., SegmentOut]):
        self.jitted = jitted
        self.executable: Any = None

    @staticmethod
    def _args(state, source, start, stop, evals, flags, mstate) -> tuple:
        return (state, source, np.int32(start), np.int32(stop), evals,
                Flags(np.bool_(flags.evaluate), np.bool_(flags.observe)), mstate)

    def __call__(self, state, source, start, stop, evals=None, flags: Flags = Flags(), mstate=None) -> SegmentOut:
        args = self._args(state, source, start, stop, evals, flags, mstate)
        return (self.executable or self.jitted)(*args)

    def lower(self, state, source, start, stop, evals=None, flags: Flags = Flags(), mstate=None) -> Any:
        return self.jitted.lower(*self._args(state, source, start, stop, evals, flags, mstate))

    def compile(self, state, source, start, stop, evals=None, flags: Flags = Flags(), mstate=None) -> None:
        """Compile for arguments like these (their shapes, dtypes and shardings); later calls with such
        arguments run the executable without going through ``jax.jit``'s dispatch again."""
        self.executable = self.lower(state, source, start, stop, evals, flags, mstate).compile()


def compile_segment(segment: Segment, *, in_axes: tuple | None = None, donate: bool = True, keep_state: bool = True,
                    out_shardings: Any = None, init: Callable[[Any], Any] | None = None) -> Program:
    """The compiled :class:`Program` of ``segment``.

    Args:
      segment: what one member does.
      in_axes: ``None`` for one member; else the ``jax.vmap`` axes (:func:`stacked_axes`) of a stack.
      donate: donate the state (it is consumed: pass a copy of anything you keep).
      keep_state: return the state (``False``: the outputs hold ``None`` there, nothing to donate to).
      out_shardings: the outputs' sharding (one sharding for all, or a :class:`SegmentOut` of them).
      init: ``init(x) -> state``: the program's first argument is ``x`` (e.g. your parameters and a
        schedule), turned into the state inside the same compiled program (never donated: it is yours);
        with ``in_axes`` its axes are ``in_axes[0]``.
    """
    one: Callable[..., SegmentOut] = segment
    if init is not None:
        def one(x, source, start, stop, evals, flags, mstate):
            return segment(init(x), source, start, stop, evals, flags, mstate)

    fn = one if in_axes is None else jax.vmap(one, in_axes=in_axes)

    def program(state, source, start, stop, evals, flags, mstate):
        out = fn(state, source, start, stop, evals, flags, mstate)
        return out if keep_state else out._replace(state=None)

    donated = (0,) if (donate and keep_state and init is None) else ()
    return Program(jax.jit(program, donate_argnums=donated, out_shardings=out_shardings))
