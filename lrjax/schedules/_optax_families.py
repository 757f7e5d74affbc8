"""``Affine``: a schedule scaled and shifted by any real numbers, signs included.

Every other family is non-negative by construction (a learning rate is). optax's schedule
functions are not: ``optax.linear_schedule(1.0, -1.0, 100)`` crosses zero, ``constant_schedule(-0.5)``
is negative, and optax schedules also drive other hyperparameters. :mod:`lrjax.compat.optax`
reproduces those with this one family around the native ones; no composition of the others
can produce a negative value.
"""

from __future__ import annotations

import jax

from lrjax.schedules._base import Schedule, Step, child, leaf, register

__all__ = ["Affine"]


@register("affine")
class Affine(Schedule):
    """An affine map of a schedule: :math:`\\eta(t) = a\\,s(t) + b` with ``scale`` :math:`a` and
    ``offset`` :math:`b` any finite numbers (negative ones too: the result may be negative).

    ``Affine(s, scale=-1.0)`` is ``-s``; ``Affine(Linear(0.0, 1.0, T), scale=e - i, offset=i)``
    is a ramp from ``i`` to ``e`` of any signs.

    >>> import lrjax
    >>> from lrjax.schedules._optax_families import Affine
    >>> s = Affine(lrjax.Linear(0.0, 1.0, steps=10), scale=-2.0, offset=1.0)
    >>> float(s(0)), float(s(5)), float(s(10))
    (1.0, 0.0, -1.0)
    """

    schedule: Schedule = child()
    scale: float = leaf(1.0)
    offset: float = leaf(0.0)

    def _eval(self, s: Step):
        return self.scale * self.schedule._eval(s) + self.offset  # the exact step on to the child

    @property
    def horizon(self) -> jax.Array:
        return self.schedule.horizon

    def _has_total(self) -> bool:
        return self.schedule._has_total()
