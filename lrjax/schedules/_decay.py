"""Monotone decay families: constant, linear ramp, step, multi-step, exponential,
inverse-time, polynomial, cosine to a floor, tanh.

All take the step ``t`` as float32 and return float32; every branch is finite.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lrjax.schedules._base import (
    Checks,
    Schedule,
    Step,
    clip01,
    leaf,
    pow_count,
    register,
    safe_div,
    static,
    with_exponent,
)

__all__ = [
    "Constant",
    "Linear",
    "StepDecay",
    "MultiStep",
    "Exponential",
    "InverseTime",
    "Polynomial",
    "CosineDecay",
    "TanhDecay",
]


@register("constant")
class Constant(Schedule):
    """A constant rate: :math:`\\eta(t) = \\text{value}`.

    >>> import lrjax
    >>> float(lrjax.Constant(0.1)(10_000))
    0.10000000149011612
    """

    value: float = leaf(1.0)

    def _validate(self, check: Checks) -> None:
        check.nonneg("value")

    def _value(self, t):
        return jnp.broadcast_to(self.value, jnp.shape(t))


@register("linear")
class Linear(Schedule):
    """A linear ramp from ``init_value`` to ``end_value`` over ``steps`` steps, then held.

    :math:`\\eta(t) = a + (b - a)\\,\\min(t, T)/T`.

    >>> import lrjax
    >>> float(lrjax.Linear(0.0, 1.0, steps=10)(5))
    0.5
    """

    init_value: float = leaf()
    end_value: float = leaf()
    steps: float = leaf()

    def _validate(self, check: Checks) -> None:
        check.nonneg("init_value", "end_value")
        check.positive("steps")

    def _value(self, t):
        p = clip01(t / self.steps)
        return self.init_value + (self.end_value - self.init_value) * p

    @property
    def horizon(self):
        return self.steps

    def _has_total(self) -> bool:
        return True


@register("step_decay")
class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``step_size`` steps: :math:`\\eta_0\\,\\gamma^{\\lfloor t/N \\rfloor}`.

    >>> import lrjax
    >>> [round(float(lrjax.StepDecay(1.0, step_size=10, gamma=0.5)(t)), 3) for t in (0, 9, 10, 25)]
    [1.0, 1.0, 0.5, 0.25]
    """

    init_value: float = leaf()
    step_size: float = leaf()
    gamma: float = leaf(0.1)

    def _validate(self, check: Checks) -> None:
        check.nonneg("init_value", "gamma")
        check.positive("step_size")

    def _value(self, t):
        k = jnp.floor(t / self.step_size)
        return self.init_value * pow_count(self.gamma, k)  # finite gradients at gamma = 0 too

    @property
    def horizon(self):
        return self.step_size * 3


@register("multi_step")
class MultiStep(Schedule):
    """Multiply by ``gamma`` at each milestone: :math:`\\eta_0\\,\\gamma^{|\\{m_i \\le t\\}|}`.

    The drop happens AT the milestone (PyTorch's ``MultiStepLR``).

    >>> import lrjax
    >>> s = lrjax.MultiStep(1.0, milestones=[3, 6], gamma=0.1)
    >>> [round(float(s(t)), 3) for t in (2, 3, 6)]
    [1.0, 0.1, 0.01]
    """

    init_value: float = leaf()
    milestones: tuple = leaf()
    gamma: float = leaf(0.1)

    def _validate(self, check: Checks) -> None:
        check.nonneg("init_value", "gamma", "milestones")
        m = check.value("milestones")
        if m is not None and m.ndim == 0:
            raise ValueError(f"MultiStep: milestones must be a list of steps, got milestones={float(m)}")
        # Non-decreasing: a repeated milestone multiplies by gamma once per repeat (PyTorch's Counter).
        check.increasing("milestones", strict=False)

    def _value(self, t):
        # One select per milestone (their number is static): no (steps, milestones) array, no pow.
        out = self.init_value + jnp.zeros_like(t)
        for i in range(self.milestones.shape[-1]):
            out = jnp.where(t >= self.milestones[..., i], out * self.gamma, out)
        return out

    @property
    def horizon(self):
        return self.milestones[..., -1] if self.milestones.shape[-1] else jnp.float32(0)


@register("exponential")
class Exponential(Schedule):
    """Exponential decay: :math:`\\eta_0\\, r^{t/d}` (``staircase``: :math:`r^{\\lfloor t/d \\rfloor}`),
    never below ``end_value`` (if ``r < 1``) or above it (if ``r > 1``).

    >>> import lrjax
    >>> float(lrjax.Exponential(1.0, decay_rate=0.5, decay_steps=10)(20))
    0.25
    """

    init_value: float = leaf()
    decay_rate: float = leaf()
    decay_steps: float = leaf(1.0)
    end_value: float = leaf(0.0)
    staircase: bool = static(False, choices=(False, True))

    def _validate(self, check: Checks) -> None:
        check.nonneg("init_value", "end_value")
        check.positive("decay_rate", "decay_steps")

    def _value(self, t):
        e = t / self.decay_steps
        if self.staircase:
            e = jnp.floor(e)
        v = self.init_value * pow_count(self.decay_rate, e)
        bounded = jnp.where(self.decay_rate < 1, jnp.maximum(v, self.end_value), v)
        return jnp.where((self.decay_rate > 1) & (self.end_value > 0), jnp.minimum(v, self.end_value), bounded)

    @property
    def horizon(self):
        return self.decay_steps * 10


@register("inverse_time")
class InverseTime(Schedule):
    """Inverse-time decay: :math:`\\eta_0 / (1 + k\\,t/d)` (``staircase``: :math:`\\lfloor t/d \\rfloor`).

    With ``decay_steps=1`` this is the classic time-based decay ``lr0 / (1 + k t)``.

    >>> import lrjax
    >>> float(lrjax.InverseTime(1.0, decay_rate=0.5)(2))
    0.5
    """

    init_value: float = leaf()
    decay_rate: float = leaf()
    decay_steps: float = leaf(1.0)
    staircase: bool = static(False, choices=(False, True))

    def _validate(self, check: Checks) -> None:
        check.nonneg("init_value", "decay_rate")
        check.positive("decay_steps")

    def _value(self, t):
        e = t / self.decay_steps
        if self.staircase:
            e = jnp.floor(e)
        return self.init_value / (1.0 + self.decay_rate * e)

    @property
    def horizon(self):
        return safe_div(self.decay_steps * 10, self.decay_rate, self.decay_steps)


@register("polynomial")
class Polynomial(Schedule):
    """Polynomial decay to ``end_value`` over ``decay_steps``, then held:
    :math:`(\\eta_0 - \\eta_e)(1 - \\min(t, T)/T)^p + \\eta_e`.

    With ``cycle=True`` (Keras) the length becomes :math:`T\\lceil t/T \\rceil` past ``T``: the rate
    jumps back up and decays again.

    >>> import lrjax
    >>> float(lrjax.Polynomial(1.0, end_value=0.0, decay_steps=10, power=2.0)(5))
    0.25
    """

    init_value: float = leaf()
    end_value: float = leaf(0.0)
    decay_steps: float = leaf(1.0)
    power: float = leaf(1.0)
    # cycle=True (Keras' PolynomialDecay(cycle=True)): past T the decay length grows to
    # T * ceil(t / T), so the rate jumps back up and decays again towards end_value.
    cycle: bool = static(False, choices=(False, True))

    def _validate(self, check: Checks) -> None:
        check.nonneg("init_value", "end_value")
        check.positive("decay_steps", "power")

    def _value(self, t):
        def value(pw):  # built inside the with_exponent branch so that each branch is one fused kernel
            if self.cycle:
                span = self.decay_steps * jnp.maximum(jnp.ceil(t / self.decay_steps), 1.0)
                frac = 1.0 - clip01(t / span)
            else:
                frac = 1.0 - clip01(t / self.decay_steps)
            # frac**power with frac = 0 has an infinite gradient for power < 1: pw guards it.
            return (self.init_value - self.end_value) * pw(frac) + self.end_value

        return with_exponent(self.power, value)

    @property
    def horizon(self):
        return self.decay_steps

    def _has_total(self) -> bool:
        return not getattr(self, "cycle", False)


@register("cosine_decay")
class CosineDecay(Schedule):
    """Cosine decay from ``peak`` to a floor over ``decay_steps`` steps.

    :math:`\\eta(t) = f + (\\eta_{peak} - f)\\,\\tfrac12\\,(1 + \\cos(\\pi\\,\\min(t, T)/T))^{\\,e}` with ``e`` the
    ``exponent`` (1 for the usual cosine). The floor is ``floor`` itself when
    ``floor_mode='absolute'`` and ``floor * peak`` when ``floor_mode='relative'``
    (Keras' ``alpha``). With ``periodic=True`` the curve is not held after ``T``
    but keeps following the cosine (PyTorch's closed-form ``CosineAnnealingLR``:
    back at the peak at ``2T``).

    >>> import lrjax
    >>> round(float(lrjax.CosineDecay(1.0, decay_steps=100)(50)), 6)
    0.5
    """

    peak: float = leaf()
    decay_steps: float = leaf()
    floor: float = leaf(0.0)
    exponent: float = leaf(1.0)
    floor_mode: str = static("absolute", choices=("absolute", "relative"))
    periodic: bool = static(False, choices=(False, True))

    def _validate(self, check: Checks) -> None:
        check.nonneg("peak", "floor")
        check.positive("decay_steps", "exponent")
        if self.floor_mode == "relative":
            check.between("floor", 0.0, 1.0)
        else:
            check.relation("floor", "peak", "<=")

    @property
    def floor_value(self) -> jax.Array:
        return self.floor * self.peak if self.floor_mode == "relative" else self.floor

    def _eval(self, s: Step):
        def value(pw):  # built inside the with_exponent branch: each branch is one fused kernel
            if self.periodic:
                # The position in the period 2T from the exact step: the phase holds at any step.
                p = s.mod(2.0 * self.decay_steps)[0] / self.decay_steps
            else:
                p = clip01(s.t / self.decay_steps)
            f = self.floor_value
            return f + (self.peak - f) * pw(0.5 * (1.0 + jnp.cos(math.pi * p)))

        return with_exponent(self.exponent, value)

    @property
    def horizon(self):
        return self.decay_steps

    def _has_total(self) -> bool:
        return not getattr(self, "periodic", False)


@register("tanh_decay")
class TanhDecay(Schedule):
    """Hyperbolic-tangent decay (timm's ``TanhLRScheduler``, one cycle):

    :math:`f + (\\eta_{peak} - f)\\,\\tfrac12\\,(1 - \\tanh(l\\,(1 - \\tau) + u\\,\\tau))`, with
    :math:`\\tau = \\min(t, T)/T`, ``l = lower`` (default -7) and ``u = upper`` (default 3).

    >>> import lrjax
    >>> round(float(lrjax.TanhDecay(1.0, decay_steps=100)(0)), 4)
    1.0
    """

    peak: float = leaf()
    decay_steps: float = leaf()
    floor: float = leaf(0.0)
    lower: float = leaf(-7.0)
    upper: float = leaf(3.0)

    def _validate(self, check: Checks) -> None:
        check.nonneg("peak", "floor")
        check.positive("decay_steps")
        check.relation("lower", "upper", "<")
        check.relation("floor", "peak", "<=")

    def _value(self, t):
        tau = clip01(t / self.decay_steps)
        return self.floor + (self.peak - self.floor) * 0.5 * (1.0 - jnp.tanh(self.lower * (1.0 - tau) + self.upper * tau))

    @property
    def horizon(self):
        return self.decay_steps

    def _has_total(self) -> bool:
        return True
