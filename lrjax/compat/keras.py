"""Keras 3's ``keras.optimizers.schedules`` as native lrjax schedules, with Keras' argument names.

``s(t)`` equals Keras' ``schedule(t)`` (Keras evaluates at ``optimizer.iterations``, the
number of updates already applied, as lrjax does). Keras computes in float32, as lrjax does;
the two agree to float32 rounding. The ``name`` argument is accepted and ignored. This
module never imports keras.

>>> from lrjax.compat import keras as lrk
>>> s = lrk.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
>>> [round(float(s(t)), 4) for t in (0, 9, 10, 25)]
[0.1, 0.1, 0.05, 0.025]
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

import numpy as np

from lrjax.compat._common import number, positive, rate
from lrjax.schedules import (
    CosineDecay as _CosineDecay,
)
from lrjax.schedules import (
    CosineRestarts,
    Exponential,
    InverseTime,
    PiecewiseConstant,
    Polynomial,
    Schedule,
    Warmup,
)

__all__ = [
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "CosineDecay",
    "CosineDecayRestarts",
]


def ExponentialDecay(initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                     name: str = "ExponentialDecay") -> Schedule:
    """``initial_learning_rate * decay_rate ** (t / decay_steps)`` (floored with ``staircase``)
    → :class:`lrjax.Exponential`."""
    owner = "ExponentialDecay"
    d = positive(owner, "decay_steps", decay_steps)
    r = number(owner, "decay_rate", decay_rate)
    if r <= 0:
        raise ValueError(f"{owner}: decay_rate must be > 0 in lrjax, got decay_rate={decay_rate!r}")
    return Exponential(rate(owner, "initial_learning_rate", initial_learning_rate), decay_rate=r, decay_steps=d,
                       staircase=bool(staircase))


def InverseTimeDecay(initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                     name: str = "InverseTimeDecay") -> Schedule:
    """``initial_learning_rate / (1 + decay_rate * t / decay_steps)`` → :class:`lrjax.InverseTime`."""
    owner = "InverseTimeDecay"
    d = positive(owner, "decay_steps", decay_steps)
    return InverseTime(rate(owner, "initial_learning_rate", initial_learning_rate),
                       decay_rate=rate(owner, "decay_rate", decay_rate), decay_steps=d, staircase=bool(staircase))


def PiecewiseConstantDecay(boundaries: Seq[int], values: Seq[float], name: str = "PiecewiseConstant") -> Schedule:
    """``values[i]`` for ``boundaries[i-1] < t <= boundaries[i]`` → :class:`lrjax.PiecewiseConstant`
    (``side='left'``: the value changes just after each boundary).

    >>> s = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    >>> [float(s(t)) for t in (10, 11)]
    [1.0, 0.5]
    """
    b, v = list(boundaries), list(values)
    if len(b) != len(v) - 1:
        raise ValueError(
            f"PiecewiseConstantDecay: the length of boundaries should be 1 less than the length of values, got "
            f"boundaries={b} (length {len(b)}) and values={v} (length {len(v)})"
        )
    return PiecewiseConstant(boundaries=np.asarray(b, np.float64), values=np.asarray(v, np.float64), side="left")


def PolynomialDecay(initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                    power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay") -> Schedule:
    """``(init - end)(1 - min(t, T)/T) ** power + end`` → :class:`lrjax.Polynomial`; with
    ``cycle=True`` the length grows to ``T * ceil(t / T)`` (``Polynomial(cycle=True)``)."""
    owner = "PolynomialDecay"
    d = positive(owner, "decay_steps", decay_steps)
    return Polynomial(rate(owner, "initial_learning_rate", initial_learning_rate),
                      end_value=rate(owner, "end_learning_rate", end_learning_rate), decay_steps=d,
                      power=positive(owner, "power", power), cycle=bool(cycle))


def CosineDecay(initial_learning_rate: float, decay_steps: int, alpha: float = 0.0, name: str = "CosineDecay",
                warmup_target: float | None = None, warmup_steps: int = 0) -> Schedule:
    """Cosine decay to ``alpha`` (a fraction of the peak), held after ``decay_steps`` →
    :class:`lrjax.CosineDecay` (``floor_mode='relative'``); with ``warmup_target``, a linear
    warmup from ``initial_learning_rate`` to it over ``warmup_steps`` first (:class:`lrjax.Warmup`).

    >>> s = CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=5)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 15, 30)]
    [0.0, 1.0, 0.5, 0.0, 0.0]
    """
    owner = "CosineDecay"
    d = positive(owner, "decay_steps", decay_steps)
    a = number(owner, "alpha", alpha)
    init = rate(owner, "initial_learning_rate", initial_learning_rate)
    if warmup_target is None:
        return _CosineDecay(init, decay_steps=d, floor=a, floor_mode="relative")
    peak = rate(owner, "warmup_target", warmup_target)
    w = number(owner, "warmup_steps", warmup_steps)
    return Warmup(_CosineDecay(peak, decay_steps=d, floor=a, floor_mode="relative"), warmup_steps=w, init_value=init)


def CosineDecayRestarts(initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0, m_mul: float = 1.0,
                        alpha: float = 0.0, name: str = "SGDRDecay") -> Schedule:
    """SGDR with Keras' conventions → :class:`lrjax.CosineRestarts` with ``decay_mode='amplitude'``:
    cycle ``i`` lasts ``first_decay_steps * t_mul**i`` and its height above the floor
    ``alpha * initial_learning_rate`` is multiplied by ``m_mul**i``.

    >>> s = CosineDecayRestarts(1.0, first_decay_steps=10, m_mul=0.5)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 30)]
    [1.0, 0.5, 0.5, 0.25]
    """
    owner = "CosineDecayRestarts"
    d = positive(owner, "first_decay_steps", first_decay_steps)
    init = rate(owner, "initial_learning_rate", initial_learning_rate)
    t = number(owner, "t_mul", t_mul)
    if t < 1:
        raise ValueError(f"{owner}: t_mul must be >= 1 in lrjax (shrinking cycles end in NaN in Keras), got t_mul={t_mul!r}")
    a = number(owner, "alpha", alpha)
    return CosineRestarts(init, first_period=d, period_mult=t, peak_decay=rate(owner, "m_mul", m_mul), floor=a * init,
                          decay_mode="amplitude")
