r"""``Anneal``: any schedule, cooled down from a given step on — a cooldown forked from a run in progress.

A sweep that ranks members on a cooled copy of their current plan (``anneal`` on successive halving and
population-based training) wraps every member's schedule in an ``Anneal`` that is off (``anneal_at`` at
infinity: every rate is the wrapped schedule's, bit for bit) and switches a copy on by setting two leaves
— no new structure, nothing recompiled.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lrjax.schedules._base import Checks, Schedule, Step, child, clip01, leaf, register, safe_div, static

__all__ = ["Anneal"]


def _sqrt(x: jax.Array) -> jax.Array:
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


@register("anneal")
class Anneal(Schedule):
    r"""A schedule :math:`s` cooled from step :math:`a` (``anneal_at``) over :math:`n` steps
    (``anneal_steps``) to ``min_ratio`` :math:`m` of its value there, then held:

    .. math:: \eta(t) = \begin{cases} s(t) & t < a \\ s(a)\,\bigl(m + (1 - m)\,g(p)\bigr) & t \ge a,
              \quad p = \min\bigl(1, (t - a)/n\bigr) \end{cases}

    with :math:`g` by ``shape``: linear :math:`1 - p`, cosine :math:`(1 + \cos \pi p)/2`, 1-sqrt
    :math:`1 - \sqrt p` (the decay shapes of :class:`~lrjax.WarmupStableDecay`). ``anneal_at`` infinite
    (the default) is off: :math:`\eta(t) = s(t)` exactly, so a stack of wrapped schedules can switch one
    member's cooldown on by setting its leaves. The leaves are named ``anneal_*`` so that a sweep's
    dotted keys (``schedule.peak``) still name the wrapped schedule's own leaves through it.

    >>> import lrjax
    >>> s = lrjax.Anneal(lrjax.Constant(1.0), anneal_at=100, anneal_steps=50)
    >>> [round(float(s(t)), 3) for t in (99, 100, 125, 150, 200)]
    [1.0, 1.0, 0.5, 0.0, 0.0]
    >>> float(lrjax.Anneal(lrjax.CosineDecay(1.0, 100))(30)) == float(lrjax.CosineDecay(1.0, 100)(30))
    True
    """

    annealed: Schedule = child()
    anneal_at: float = leaf(math.inf, allow_inf=True)
    anneal_steps: float = leaf(1.0)
    min_ratio: float = leaf(0.0)
    shape: str = static("linear", choices=("linear", "cosine", "1-sqrt"))

    def _validate(self, check: Checks) -> None:
        check.nonneg("anneal_at")
        check.positive("anneal_steps")
        check.between("min_ratio", 0.0, 1.0)

    def _eval(self, s: Step):
        a = self.anneal_at
        on = jnp.isfinite(a)
        start = jnp.where(on, a, 0.0)  # off: a finite stand-in, so that no branch computes on infinity
        p = clip01(safe_div(s.t - start, self.anneal_steps, 1.0))
        if self.shape == "linear":
            g = 1.0 - p
        elif self.shape == "cosine":
            g = 0.5 * (1.0 + jnp.cos(math.pi * p))
        else:
            g = 1.0 - _sqrt(p)
        m = self.min_ratio
        cooled = self.annealed._eval(Step.at(start)) * (m + (1.0 - m) * g)
        return jnp.where(on & (s.t >= start), cooled, self.annealed._eval(s))

    @property
    def horizon(self):
        on = jnp.isfinite(self.anneal_at)
        return jnp.where(on, jnp.where(on, self.anneal_at, 0.0) + self.anneal_steps, self.annealed.horizon)
