"""Warmup-based families and combinators: inverse square root (Noam),
warmup-stable-decay, a warmup wrapper for any schedule, sequence, product,
scale and clamp.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.schedules._base import Checks, Schedule, Step, child, clip01, leaf, register, safe_div, static

__all__ = ["InverseSqrt", "WarmupStableDecay", "Warmup", "Sequence", "Product", "Scale", "Clamp", "Switch"]

_RAMPS = ("linear", "cosine", "exponential")


def _ramp(shape: str, a, b, p):
    """From ``a`` at ``p = 0`` to ``b`` at ``p = 1``: linear, cosine or exponential (geometric)."""
    if shape == "linear":
        return a + (b - a) * p
    if shape == "cosine":
        return a + (b - a) * 0.5 * (1.0 - jnp.cos(math.pi * p))
    # exponential: a * (b/a)**p, for a, b > 0; guarded so that no branch is NaN
    ok = (a > 0) & (b > 0)
    sa = jnp.where(ok, a, 1.0)
    sb = jnp.where(ok, b, 1.0)
    return jnp.where(ok, sa * jnp.exp(p * (jnp.log(sb) - jnp.log(sa))), a + (b - a) * p)


@register("inverse_sqrt")
class InverseSqrt(Schedule):
    """Inverse square root decay with linear warmup (Noam, "Attention is all you need").

    :math:`\\eta(t) = \\eta_{peak}\\,t/W` for :math:`t < W`, then
    :math:`\\eta_{peak} / \\sqrt{(t - W + \\tau)/\\tau}`. With the default timescale
    :math:`\\tau = W` this is :math:`\\eta_{peak}\\sqrt{W/t}` (Noam's
    :math:`d^{-1/2}\\min(t^{-1/2}, t W^{-3/2})` with :math:`\\eta_{peak} = (dW)^{-1/2}`).
    ``timescale`` defaults (``0`` or ``None``) to ``warmup_steps``, or 10⁴ when there is
    no warmup (Hugging Face's ``inverse_sqrt``); the default is resolved at evaluation,
    so it follows ``.replace(warmup_steps=...)``.

    >>> import lrjax
    >>> s = lrjax.InverseSqrt(1.0, warmup_steps=100)
    >>> float(s(50)), float(s(400))
    (0.5, 0.5)
    """

    peak: float = leaf()
    warmup_steps: float = leaf(0.0)
    timescale: float = leaf(0.0)  # 0 (or None): the warmup length, or 1e4 without warmup

    def __post_init__(self) -> None:
        # The default is resolved when evaluating, not stored: ``.replace(warmup_steps=...)``
        # and a vmap over warmup lengths then move the default timescale with them.
        if self.timescale is None:
            object.__setattr__(self, "timescale", 0.0)
        super().__post_init__()

    def _validate(self, check: Checks) -> None:
        check.nonneg("peak", "warmup_steps", "timescale")

    @property
    def effective_timescale(self) -> jax.Array:
        """``timescale`` if set (> 0), else ``warmup_steps`` if > 0, else 10⁴ (Hugging Face's default)."""
        default = jnp.where(self.warmup_steps > 0, self.warmup_steps, 1e4)
        return jnp.where(self.timescale > 0, self.timescale, default)

    def _value(self, t):
        tau = self.effective_timescale
        warm = self.peak * safe_div(t, self.warmup_steps, 1.0)
        x = (t - self.warmup_steps + tau) / tau
        decay = self.peak * jax.lax.rsqrt(jnp.maximum(x, 1.0))
        return jnp.where(t < self.warmup_steps, warm, decay)

    @property
    def horizon(self):
        return jnp.maximum(self.warmup_steps, self.effective_timescale) * 4


@register("warmup_stable_decay")
class WarmupStableDecay(Schedule):
    """Warmup-stable-decay (WSD, "trapezoidal"; Hu et al. 2024, Hägele et al. 2024).

    With ``m = min_ratio``: warmup :math:`\\eta(m + (1 - m) f(t/W))` over ``warmup_steps``
    (``f`` by ``warmup_shape``: linear :math:`p`, cosine :math:`(1 - \\cos \\pi p)/2`,
    1-sqrt :math:`1 - \\sqrt{1 - p}`); stable :math:`\\eta` for ``stable_steps``; decay
    :math:`\\eta(m + (1 - m) g(p))` over ``decay_steps`` with ``g`` by ``decay_shape``:
    linear :math:`1 - p`, cosine :math:`(1 + \\cos \\pi p)/2`, 1-sqrt :math:`1 - \\sqrt p`;
    then :math:`\\eta m`.

    >>> import lrjax
    >>> s = lrjax.WarmupStableDecay(1.0, warmup_steps=10, stable_steps=80, decay_steps=10)
    >>> [round(float(s(t)), 3) for t in (5, 50, 95, 100)]
    [0.5, 1.0, 0.5, 0.0]
    """

    peak: float = leaf()
    warmup_steps: float = leaf()
    stable_steps: float = leaf()
    decay_steps: float = leaf()
    min_ratio: float = leaf(0.0)
    warmup_shape: str = static("linear", choices=("linear", "cosine", "1-sqrt"))
    decay_shape: str = static("linear", choices=("linear", "cosine", "1-sqrt"))

    def _validate(self, check: Checks) -> None:
        check.nonneg("peak", "warmup_steps", "stable_steps")
        check.positive("decay_steps")
        check.between("min_ratio", 0.0, 1.0)

    @staticmethod
    def _sqrt(x):
        pos = x > 0
        return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)

    def _value(self, t):
        m = self.min_ratio
        p_w = clip01(safe_div(t, self.warmup_steps, 1.0))
        if self.warmup_shape == "linear":
            f = p_w
        elif self.warmup_shape == "cosine":
            f = 0.5 * (1.0 - jnp.cos(math.pi * p_w))
        else:
            f = 1.0 - self._sqrt(1.0 - p_w)
        p_d = clip01((t - self.warmup_steps - self.stable_steps) / self.decay_steps)
        if self.decay_shape == "linear":
            g = 1.0 - p_d
        elif self.decay_shape == "cosine":
            g = 0.5 * (1.0 + jnp.cos(math.pi * p_d))
        else:
            g = 1.0 - self._sqrt(p_d)
        warm = self.peak * (m + (1.0 - m) * f)
        rest = self.peak * (m + (1.0 - m) * g)
        return jnp.where(t < self.warmup_steps, warm, rest)

    @property
    def horizon(self):
        return self.warmup_steps + self.stable_steps + self.decay_steps


@register("warmup")
class Warmup(Schedule):
    """Warm up any schedule: ramp from ``init_value`` to the schedule over ``warmup_steps``.

    With ``prefix=True`` (default) the wrapped schedule starts after the warmup:
    :math:`\\eta(t) = r(t/W)` for :math:`t < W`, then :math:`s(t - W)`, with the ramp
    ``r`` going from ``init_value`` to :math:`s(0)`. With ``prefix=False`` the warmup
    overlays the schedule's own clock (timm's default): the ramp ends at :math:`s(W)`
    and :math:`\\eta(t) = s(t)` afterwards. ``shape``: ``linear``
    :math:`a + (b - a)p`, ``cosine`` :math:`a + (b - a)(1 - \\cos \\pi p)/2`,
    ``exponential`` :math:`a\\,(b/a)^p` (needs ``init_value > 0``). A non-negative
    ``target`` replaces the ramp's end value (timm and Hugging Face ramp to the base rate).

    >>> import lrjax
    >>> s = lrjax.Warmup(lrjax.Constant(1.0), warmup_steps=10)
    >>> float(s(5)), float(s(10))
    (0.5, 1.0)
    """

    schedule: Schedule = child()
    warmup_steps: float = leaf()
    init_value: float = leaf(0.0)
    shape: str = static("linear", choices=_RAMPS)
    prefix: bool = static(True, choices=(True, False))
    # The value the ramp ends at; negative (default): the wrapped schedule's value where it
    # takes over. timm and Hugging Face ramp to the base rate whatever the schedule does there.
    target: float = leaf(-1.0, negative_unset=True)

    def _validate(self, check: Checks) -> None:
        check.nonneg("warmup_steps", "init_value")
        if self.shape == "exponential":
            check.positive("init_value")
        w = check.value("warmup_steps")
        if not self.prefix and w is not None and self.schedule._has_total():
            total = self.schedule.horizon
            if not isinstance(total, jax.core.Tracer) and np.any(w > np.asarray(total)):
                raise ValueError(
                    f"Warmup: warmup_steps must be <= the total length of the wrapped "
                    f"{type(self.schedule).__name__} ({float(np.max(total)):g} steps) when prefix=False, got "
                    f"warmup_steps={float(np.max(w)):g}; use prefix=True to put the warmup before it"
                )

    def _eval(self, s: Step):
        w = self.warmup_steps
        # The ramp's end value, evaluated once (a scalar), not once per step.
        target = self.schedule._eval(Step.at(0.0 if self.prefix else w))
        target = jnp.where(self.target < 0, target, self.target)
        p = clip01(safe_div(s.t, w, 1.0))
        ramp = _ramp(self.shape, self.init_value, target, p)
        after = self.schedule._eval(s.after(w) if self.prefix else s)
        return jnp.where(s.t < w, ramp, after)

    @property
    def horizon(self):
        inner = self.schedule.horizon
        return inner + self.warmup_steps if self.prefix else jnp.maximum(inner, self.warmup_steps)


@register("sequence")
class Sequence(Schedule):
    """Schedules one after another, like PyTorch's ``SequentialLR``.

    Schedule ``i`` runs from ``boundaries[i-1]`` (0 for the first) to ``boundaries[i]``
    and restarts its own count at its start: :math:`\\eta(t) = s_i(t - b_{i-1})`.
    ``len(boundaries) == len(schedules) - 1``.

    >>> import lrjax
    >>> s = lrjax.Sequence([lrjax.Linear(0.0, 1.0, 10), lrjax.CosineDecay(1.0, 90)], boundaries=[10])
    >>> float(s(5)), float(s(10))
    (0.5, 1.0)
    """

    schedules: tuple = child()
    boundaries: tuple = leaf()

    def _validate(self, check: Checks) -> None:
        b = check.value("boundaries")
        if len(self.schedules) < 1:
            raise ValueError("Sequence: schedules must hold at least one schedule, got schedules=()")
        if b is not None and (b.ndim == 0 or b.shape[-1] != len(self.schedules) - 1):
            raise ValueError(
                f"Sequence: boundaries must hold len(schedules) - 1 = {len(self.schedules) - 1} steps, "
                f"got boundaries={b.tolist()}"
            )
        check.nonneg("boundaries")
        check.increasing("boundaries")

    def _eval(self, s: Step):
        b = self.boundaries
        out = self.schedules[-1]._eval(s.after(b[..., -1]) if len(self.schedules) > 1 else s)
        for i in range(len(self.schedules) - 2, -1, -1):
            out = jnp.where(s.t < b[..., i], self.schedules[i]._eval(s.after(b[..., i - 1]) if i > 0 else s), out)
        return out

    @property
    def horizon(self):
        last = self.schedules[-1].horizon
        return (self.boundaries[..., -1] if len(self.schedules) > 1 else 0.0) + last


@register("product")
class Product(Schedule):
    """The product of several schedules (PyTorch's ``ChainedScheduler`` of multiplicative factors).

    :math:`\\eta(t) = \\prod_i s_i(t)`.

    >>> import lrjax
    >>> float(lrjax.Product([lrjax.Constant(0.5), lrjax.Constant(0.2)])(3))
    0.10000000149011612
    """

    schedules: tuple = child()

    def _validate(self, check: Checks) -> None:
        if len(self.schedules) < 1:
            raise ValueError("Product: schedules must hold at least one schedule, got schedules=()")

    def _eval(self, s: Step):
        out = self.schedules[0]._eval(s)
        for sched in self.schedules[1:]:
            out = out * sched._eval(s)
        return out

    @property
    def horizon(self):
        h = self.schedules[0].horizon
        for s in self.schedules[1:]:
            h = jnp.maximum(h, s.horizon)
        return h


@register("scale")
class Scale(Schedule):
    """A schedule multiplied by a constant: :math:`\\eta(t) = c\\,s(t)`.

    >>> import lrjax
    >>> float(lrjax.Scale(lrjax.Constant(0.5), factor=4.0)(0))
    2.0
    """

    schedule: Schedule = child()
    factor: float = leaf()

    def _validate(self, check: Checks) -> None:
        check.nonneg("factor")

    def _eval(self, s: Step):
        return self.factor * self.schedule._eval(s)

    @property
    def horizon(self):
        return self.schedule.horizon


@register("clamp")
class Clamp(Schedule):
    """A schedule kept within ``[floor, ceiling]``: :math:`\\min(\\max(s(t), f), c)`.

    >>> import lrjax
    >>> float(lrjax.Clamp(lrjax.Linear(0.0, 1.0, 10), floor=0.2)(0))
    0.20000000298023224
    """

    schedule: Schedule = child()
    floor: float = leaf(0.0)
    ceiling: float = leaf(float("inf"), allow_inf=True)

    def _validate(self, check: Checks) -> None:
        check.nonneg("floor")
        check.relation("floor", "ceiling", "<=")

    def _eval(self, s: Step):
        return jnp.clip(self.schedule._eval(s), self.floor, self.ceiling)

    @property
    def horizon(self):
        return self.schedule.horizon


@register("switch")
class Switch(Schedule):
    """One of several schedules, chosen by an index leaf: :math:`\\eta(t) = s_{\\text{index}}(t)`.

    The index is a pytree leaf like any hyperparameter, so schedules of *different families* share one
    tree structure once wrapped: ``jax.vmap`` over stacked switches trains a cosine, a step decay and a
    constant rate in one compiled program (the sweep engine groups families this way). Under ``vmap``
    every branch is evaluated and the indexed one kept; a single switch evaluates one branch
    (``lax.switch``). ``momentum`` is the switch of the branches' momenta when each has one (one-cycle,
    cyclic).

    >>> import lrjax
    >>> s = lrjax.Switch([lrjax.Constant(0.25), lrjax.Linear(0.0, 1.0, 100)], index=1)
    >>> float(s(50)), float(s.replace(index=0)(50))
    (0.5, 0.25)
    """

    branches: tuple = child()
    index: float = leaf(0)

    def _validate(self, check: Checks) -> None:
        n = len(self.branches)
        if n < 1:
            raise ValueError("Switch: branches must hold at least one schedule, got branches=()")
        i = check.value("index")
        if i is not None and (i.ndim != 0 or not float(i).is_integer() or not 0 <= float(i) < n):
            raise ValueError(f"Switch: index must be an integer in [0, {n - 1}] (one per branch), got index={i.tolist()}")

    def _which(self) -> jax.Array:
        return jnp.clip(jnp.round(self.index), 0, len(self.branches) - 1).astype(jnp.int32)

    def _eval(self, s: Step):
        return jax.lax.switch(self._which(), [b._eval for b in self.branches], s)

    @property
    def horizon(self):
        return jnp.stack([jnp.asarray(b.horizon, jnp.float32) for b in self.branches])[self._which()]

    @property
    def momentum(self) -> Switch | None:
        moms = [getattr(b, "momentum", None) for b in self.branches]
        if any(m is None for m in moms):
            return None
        return Switch(tuple(moms), self.index)
