"""``scale_by_schedule``: an optax transformation whose state holds the schedule itself."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrjax.schedules import Schedule

__all__ = ["ScaleByScheduleState", "scale_by_schedule", "check_schedule"]


class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_schedule`.

    Attributes:
      count: int32 number of updates applied (saturates at ``2**31 - 1``, never overflows).
      schedule: the schedule pytree (its numeric hyperparameters are array leaves).
      value: float32 factor used by the last update; ``schedule(0)`` before any update.
    """

    count: jax.Array
    schedule: Schedule
    value: jax.Array


def check_schedule(name: str, schedule: Any) -> Schedule:
    """Raise a TypeError unless ``schedule`` is an lrjax :class:`~lrjax.Schedule`."""
    if not isinstance(schedule, Schedule):
        hint = ""
        if callable(schedule):
            hint = (
                " A plain function would be closed over by the update and every new plan would "
                "recompile; wrap the formula as an lrjax schedule (e.g. lrjax.CosineDecay(...))."
            )
        raise TypeError(f"{name} must be an lrjax.Schedule, got {name}={schedule!r} ({type(schedule).__name__}).{hint}")
    return schedule


def scale_by_schedule(schedule: Schedule) -> optax.GradientTransformation:
    """Multiply updates by ``schedule(count)``, with the schedule living in the state.

    :math:`u_t \\leftarrow s(t)\\,u_t`, where :math:`t` is the number of updates already
    applied (the first update uses :math:`s(0)`). Same sign convention as
    :func:`optax.scale_by_schedule` (no negation): chain it after a direction and a
    ``optax.scale(-1.0)``, or use :func:`lrjax.inject` for a whole optimizer.

    Unlike optax's version, the update function does not close over the schedule:
    it reads it from ``state.schedule``. So ``tx_a.update`` applied to a state made by
    ``tx_b.init`` follows ``tx_b``'s schedule, and one jitted step serves every
    schedule of the same structure (no recompilation when a rate changes).

    Args:
      schedule: an lrjax schedule (a pytree).

    Returns:
      An ``optax.GradientTransformation`` with state :class:`ScaleByScheduleState`.

    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.scale(-1.0), lrjax.scale_by_schedule(lrjax.Linear(1.0, 0.0, 10)))
    >>> state = tx.init(jnp.zeros(2))
    >>> u, state = tx.update(jnp.ones(2), state)
    >>> u.tolist(), float(lrjax.current_hyperparams(state)["scale"])
    ([-1.0, -1.0], 1.0)
    """
    schedule = check_schedule("schedule", schedule)

    def init_fn(params):
        del params
        fresh = jax.tree.map(lambda x: jnp.array(x, copy=True), schedule)  # donation-safe
        return ScaleByScheduleState(
            count=jnp.zeros([], jnp.int32), schedule=fresh, value=fresh(jnp.zeros([], jnp.int32))
        )

    def update_fn(updates, state, params=None):
        del params
        value = state.schedule(state.count)
        updates = jax.tree.map(lambda g: jnp.array(value, dtype=g.dtype) * g, updates)
        return updates, ScaleByScheduleState(
            count=optax.safe_increment(state.count), schedule=state.schedule, value=value
        )

    return optax.GradientTransformation(init_fn, update_fn)
