"""Reduce-on-plateau with PyTorch's arguments and timing, as state inside the optimizer.

The counters and the settings live in :class:`PlateauState`, so the state checkpoints
with the optimizer, ``jax.vmap`` can sweep ``factor``/``patience``, and
:func:`lrjax.observe_metric` can update it from the state alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrjax._checks import choice, integer, number

__all__ = ["PlateauConfig", "PlateauState", "reduce_on_plateau", "plateau_step", "plateau_rate"]

_MODES = ("min", "max")
_THRESHOLD_MODES = ("rel", "abs")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PlateauConfig:
    """The settings of a plateau rule: numbers are array leaves, ``mode``/``threshold_mode`` static."""

    factor: jax.Array
    patience: jax.Array
    threshold: jax.Array
    cooldown: jax.Array
    min_lr: jax.Array
    eps: jax.Array
    mode: str = dataclasses.field(metadata=dict(static=True), default="min")
    threshold_mode: str = dataclasses.field(metadata=dict(static=True), default="rel")
    # Added for lrjax.compat (torch.ReduceLROnPlateau / HF reduce_lr_on_plateau): True uses
    # PyTorch's relative test best*(1 -/+ threshold), wrong for negative metrics, to
    # reproduce its numbers. The native API keeps the corrected |best| test (default False).
    torch_rel: bool = dataclasses.field(metadata=dict(static=True), default=False)


class PlateauState(NamedTuple):
    """State of :func:`reduce_on_plateau`.

    Attributes:
      scale: float32 multiplier applied to the rate (1 until the first reduction).
      best: float32 best metric seen (``+inf`` for ``mode="min"``, ``-inf`` for ``"max"`` at first).
      num_bad_epochs: int32 evaluations since the last improvement (PyTorch's name).
      cooldown_counter: int32 evaluations left in the cooldown after a reduction.
      num_observed: int32 number of metrics observed.
      config: the :class:`PlateauConfig` (settings, so the state is self-contained).
    """

    scale: jax.Array
    best: jax.Array
    num_bad_epochs: jax.Array
    cooldown_counter: jax.Array
    num_observed: jax.Array
    config: PlateauConfig


def _initial_state(config: PlateauConfig) -> PlateauState:
    best = jnp.float32(jnp.inf if config.mode == "min" else -jnp.inf)
    zero = jnp.zeros([], jnp.int32)
    config = jax.tree.map(lambda x: jnp.array(x, copy=True), config)  # donation-safe
    return PlateauState(jnp.ones([], jnp.float32), best, zero, jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32), config)


def plateau_step(state: PlateauState, value: Any, base_rate: Any = 1.0) -> PlateauState:
    """Feed one metric to a plateau state (pure, jittable): PyTorch's ``ReduceLROnPlateau.step``.

    ``better`` is ``a < best - θ|best|`` (min/rel), ``a < best - θ`` (min/abs),
    ``a > best + θ|best|`` (max/rel), ``a > best + θ`` (max/abs); the first finite metric
    is always better. Using ``|best|`` makes the relative test right for negative metrics
    (PyTorch's ``best·(1 - θ)`` moves the wrong way there). A NaN or ±inf metric is never
    better: it counts as a bad evaluation. Better: ``best = a``, ``bad = 0``; else ``bad += 1``.
    During cooldown: ``cooldown -= 1``, ``bad = 0``. When ``bad > patience``: with the rate
    ``old = base_rate·scale``, ``new = max(old·factor, min_lr)`` is applied only if
    ``old - new > eps``; then the cooldown restarts and ``bad = 0``.

    ``base_rate`` is the rate the multiplier applies to (the learning rate of the schedule
    for :func:`lrjax.inject`'s ``plateau=``, 1 for a standalone multiplier).
    """
    cfg = state.config
    a = jnp.asarray(value, jnp.float32)
    base = jnp.asarray(base_rate, jnp.float32)
    best = state.best
    margin = cfg.threshold * (best if cfg.torch_rel else jnp.abs(best)) if cfg.threshold_mode == "rel" else cfg.threshold
    if cfg.mode == "min":
        better = a < best - margin
    else:
        better = a > best + margin
    better = jnp.isfinite(a) & (better | jnp.isinf(best))
    best = jnp.where(better, a, best)
    bad = jnp.where(better, 0, state.num_bad_epochs + 1)
    in_cooldown = state.cooldown_counter > 0
    cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
    bad = jnp.where(in_cooldown, 0, bad)
    reduce = bad > cfg.patience
    old = base * state.scale
    new = jnp.maximum(old * cfg.factor, cfg.min_lr)
    apply = reduce & (old - new > cfg.eps) & (base > 0)
    scale = jnp.where(apply, new / jnp.where(base > 0, base, 1.0), state.scale)
    cooldown_counter = jnp.where(reduce, cfg.cooldown, cooldown_counter)
    bad = jnp.where(reduce, 0, bad)
    return PlateauState(
        scale.astype(jnp.float32),
        best.astype(jnp.float32),
        bad.astype(jnp.int32),
        cooldown_counter.astype(jnp.int32),
        optax.safe_increment(state.num_observed),
        cfg,
    )


def plateau_rate(state: PlateauState, base_rate: jax.Array) -> jax.Array:
    """The rate after the plateau: ``max(base·scale, min(base, min_lr))``.

    ``min_lr`` is an absolute floor on what the plateau takes away: a reduction never
    takes the rate below ``min_lr``, and a schedule that is itself below ``min_lr`` is
    left alone (the plateau does not raise it).
    """
    base = jnp.asarray(base_rate, jnp.float32)
    return jnp.maximum(base * state.scale, jnp.minimum(base, state.config.min_lr))


def reduce_on_plateau(
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """Reduce the learning rate when a metric stops improving (PyTorch's ``ReduceLROnPlateau``).

    Same argument names, defaults and timing as PyTorch (see :func:`plateau_step` for the
    exact rule): the rate is multiplied by ``factor`` when the number of evaluations without
    improvement *exceeds* ``patience``. Unlike PyTorch's and optax's ``contrib`` version,
    the relative threshold is right for negative metrics (improvement for ``mode="min"`` is
    ``a < best - threshold·|best|``), and a NaN/inf metric never counts as an improvement
    (it is a bad evaluation, as in PyTorch).

    Two ways to use it:

    * **With a schedule (recommended)**: ``lrjax.inject(optax.adamw, learning_rate=sched,
      plateau=lrjax.reduce_on_plateau(...))``. The rate used is
      ``max(sched(t)·scale, min(sched(t), min_lr))``: ``min_lr`` is an absolute floor on the
      resulting rate, and ``current_hyperparams`` reports that rate as ``learning_rate`` and
      the multiplier as ``plateau_scale``.
    * **Standalone**, chained after any optimizer: ``optax.chain(tx, lrjax.reduce_on_plateau(...))``
      multiplies the updates by ``scale``. It cannot see the rate it multiplies, so here
      ``min_lr`` floors the multiplier itself.

    Feed the metric either through the update (``tx.update(g, state, params, value=loss)``,
    which observes the metric before scaling) or, from an eval hook, with the pure
    :func:`lrjax.observe_metric` ``(opt_state, loss) -> opt_state``, which touches only the
    plateau counters. Updates without ``value`` leave the counters alone.

    Args:
      mode: ``"min"`` (lower is better) or ``"max"``.
      factor: multiplier of the rate at each reduction, in (0, 1).
      patience: bad evaluations tolerated; the reduction comes at the next one.
      threshold: smallest improvement that counts, relative or absolute (``threshold_mode``).
      threshold_mode: ``"rel"`` or ``"abs"``.
      cooldown: evaluations after a reduction during which bad evaluations are not counted.
      min_lr: floor on the resulting rate (see above).
      eps: a reduction smaller than ``eps`` is skipped.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`PlateauState`.

    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.inject(optax.sgd, learning_rate=0.1, plateau=lrjax.reduce_on_plateau(patience=1))
    >>> state = tx.init(jnp.zeros(2))
    >>> for loss in (1.0, 1.0, 1.0):
    ...     state = lrjax.observe_metric(state, loss)
    >>> round(float(lrjax.current_hyperparams(state)["learning_rate"]), 6)
    0.01
    """
    choice("reduce_on_plateau", "mode", mode, _MODES)
    choice("reduce_on_plateau", "threshold_mode", threshold_mode, _THRESHOLD_MODES)
    f = number("reduce_on_plateau", "factor", factor, lo=0, hi=1, lo_open=True, hi_open=True)
    p = integer("reduce_on_plateau", "patience", patience, lo=0, integral_floats=True)
    c = integer("reduce_on_plateau", "cooldown", cooldown, lo=0, integral_floats=True)
    for name, v in (("threshold", threshold), ("min_lr", min_lr), ("eps", eps)):
        number("reduce_on_plateau", name, v, lo=0)
    config = PlateauConfig(
        factor=jnp.float32(f),
        patience=jnp.int32(int(p)),
        threshold=jnp.float32(float(threshold)),
        cooldown=jnp.int32(int(c)),
        min_lr=jnp.float32(float(min_lr)),
        eps=jnp.float32(float(eps)),
        mode=mode,
        threshold_mode=threshold_mode,
    )

    def init_fn(params):
        del params
        return _initial_state(config)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is not None:
            state = plateau_step(state, value)
        s = state.scale
        updates = jax.tree.map(lambda g: jnp.array(s, dtype=g.dtype) * g, updates)
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
