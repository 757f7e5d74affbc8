"""Hugging Face's ``transformers.get_scheduler`` as native lrjax schedules.

``get_scheduler(name, learning_rate, num_warmup_steps, num_training_steps,
scheduler_specific_kwargs)`` takes the optimizer's base rate instead of the optimizer and
returns a native lrjax schedule ``s`` with ``s(t) == scheduler.get_last_lr()[0]`` after ``t``
calls of ``scheduler.step()`` (for ``reduce_lr_on_plateau``: the lrjax plateau
transformation with PyTorch's semantics, see :func:`lrjax.compat.torch.ReduceLROnPlateau`).
Missing arguments and bad names raise ``ValueError`` as Hugging Face does. This module never
imports transformers or torch.

>>> from lrjax.compat.transformers import get_scheduler
>>> s = get_scheduler("linear", 1e-3, num_warmup_steps=10, num_training_steps=100)
>>> [round(float(s(t)) * 1e3, 3) for t in (0, 5, 10, 55, 100)]
[0.0, 0.5, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math
from typing import Any

from lrjax.compat._common import number, rate
from lrjax.compat.torch import ReduceLROnPlateau
from lrjax.schedules import (
    Constant,
    CosineDecay,
    CosineRestarts,
    InverseSqrt,
    Linear,
    Polynomial,
    Schedule,
    Sequence,
    Shift,
    Warmup,
    WarmupStableDecay,
)

__all__ = ["get_scheduler", "SCHEDULER_NAMES"]

SCHEDULER_NAMES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)


def _warm(schedule: Schedule, lr: float, w: float) -> Schedule:
    """HF's linear warmup ``lr * t / max(1, W)`` for ``t < W``, then ``schedule(t - W)``."""
    if w <= 0:
        return schedule
    return Warmup(schedule, warmup_steps=w, init_value=0.0, target=lr)


def _kwargs(name: str, given: dict, allowed: dict) -> dict:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise TypeError(
            f"get_scheduler({name!r}): unexpected scheduler_specific_kwargs {unknown}; {name!r} accepts "
            f"{sorted(allowed) or 'none'}"
        )
    return {**allowed, **given}


def _cosine(lr: float, w: float, t: float, cycles: float, floor: float = 0.0) -> Schedule:
    """HF's unclamped cosine after warmup: ``floor + (lr - floor)(1 + cos(2 pi c p))/2``, ``p = (t - W)/max(1, T - W)``."""
    span = max(1.0, t - w)
    if cycles == 0:
        return Constant(lr)
    return CosineDecay(lr, decay_steps=span / (2.0 * abs(cycles)), floor=floor, periodic=True)


def _min_lr_rate(name: str, lr: float, kw: dict) -> float:
    if kw["min_lr"] is not None and kw["min_lr_rate"] is not None:
        raise ValueError(f"get_scheduler({name!r}): only one of min_lr or min_lr_rate should be set, got both")
    if kw["min_lr"] is not None:
        return rate(name, "min_lr", kw["min_lr"]) / lr
    if kw["min_lr_rate"] is None:
        raise ValueError(f"get_scheduler({name!r}): one of min_lr or min_lr_rate must be set in scheduler_specific_kwargs")
    return number(name, "min_lr_rate", kw["min_lr_rate"])


def get_scheduler(name: str, learning_rate: float, num_warmup_steps: int | None = None,
                  num_training_steps: int | None = None,
                  scheduler_specific_kwargs: dict[str, Any] | None = None):
    """The lrjax equivalent of ``transformers.get_scheduler(name, optimizer, ...)``.

    Args:
      name: one of :data:`SCHEDULER_NAMES` (Hugging Face's ``SchedulerType`` values).
      learning_rate: the optimizer's base rate (``optimizer.defaults["lr"]``).
      num_warmup_steps: ``W``; required by every name but ``constant`` and ``reduce_lr_on_plateau``.
      num_training_steps: ``T``; required by the decaying ones (``warmup_stable_decay`` may
        instead get ``num_stable_steps``).
      scheduler_specific_kwargs: e.g. ``num_cycles``, ``power``/``lr_end``, ``timescale``,
        ``min_lr``/``min_lr_rate``, ``warmup_lr_rate``, WSD's ``num_decay_steps``...

    Returns:
      A native lrjax schedule (``reduce_lr_on_plateau``: a plateau transformation).

    >>> s = get_scheduler("cosine", 1.0, num_warmup_steps=0, num_training_steps=10)
    >>> round(float(s(5)), 3), round(float(s(20)), 3)   # HF's cosine is not clamped past T
    (0.5, 1.0)
    """
    if name not in SCHEDULER_NAMES:
        extra = " ('greedy' is not supported: it raises the rate on good metrics)" if name == "greedy" else ""
        raise ValueError(f"get_scheduler: {name!r} is not a valid scheduler name; choose one of "
                         f"{', '.join(SCHEDULER_NAMES)}{extra}")
    lr = rate(name, "learning_rate", learning_rate)
    given = dict(scheduler_specific_kwargs or {})
    if name == "constant":
        return Constant(lr)
    if name == "reduce_lr_on_plateau":
        return ReduceLROnPlateau(lr, **given)
    if num_warmup_steps is None:
        raise ValueError(f"get_scheduler: {name} requires num_warmup_steps, please provide that argument")
    w = number(name, "num_warmup_steps", num_warmup_steps)
    if w < 0:
        raise ValueError(f"get_scheduler({name!r}): num_warmup_steps must be >= 0, got {num_warmup_steps!r}")
    if name == "constant_with_warmup":
        return _warm(Constant(lr), lr, w)
    if name == "inverse_sqrt":
        kw = _kwargs(name, given, {"timescale": None})
        ts = kw["timescale"]
        tau = (w or 10_000) if ts is None else number(name, "timescale", ts)
        return InverseSqrt(lr, warmup_steps=w, timescale=tau)
    if name == "warmup_stable_decay":
        return _wsd(lr, w, num_training_steps, given)
    if num_training_steps is None:
        raise ValueError(f"get_scheduler: {name} requires num_training_steps, please provide that argument")
    t = number(name, "num_training_steps", num_training_steps)

    if name == "linear":
        _kwargs(name, given, {})
        after = Linear(lr, 0.0, steps=t - w) if t > w else Constant(0.0)
        return _warm(after, lr, w)
    if name == "cosine":
        kw = _kwargs(name, given, {"num_cycles": 0.5})
        return _warm(_cosine(lr, w, t, number(name, "num_cycles", kw["num_cycles"])), lr, w)
    if name == "cosine_with_restarts":
        kw = _kwargs(name, given, {"num_cycles": 1})
        c = number(name, "num_cycles", kw["num_cycles"])
        span = max(1.0, t - w)
        if c <= 0:
            raise ValueError(f"get_scheduler({name!r}): num_cycles must be > 0 in lrjax, got num_cycles={c!r}")
        restarts = CosineRestarts(lr, first_period=span / c)
        return _warm(Sequence([restarts, Constant(0.0)], boundaries=[span]), lr, w)
    if name == "polynomial":
        kw = _kwargs(name, given, {"lr_end": 1e-7, "power": 1.0})
        end, power = rate(name, "lr_end", kw["lr_end"]), number(name, "power", kw["power"])
        if not lr > end:
            raise ValueError(f"get_scheduler({name!r}): lr_end ({end}) must be smaller than initial lr ({lr})")
        if t == w:
            raise ValueError(
                f"get_scheduler({name!r}): num_training_steps == num_warmup_steps ({t:g}) divides by zero at step "
                "num_warmup_steps in Hugging Face (ZeroDivisionError)"
            )
        after = Polynomial(lr, end_value=end, decay_steps=t - w, power=power) if t > w else Constant(end)
        return _warm(after, lr, w)
    if name == "cosine_with_min_lr":
        kw = _kwargs(name, given, {"num_cycles": 0.5, "min_lr": None, "min_lr_rate": None})
        rho = _min_lr_rate(name, lr, kw)
        return _warm(_cosine(lr, w, t, number(name, "num_cycles", kw["num_cycles"]), floor=rho * lr), lr, w)
    # cosine_warmup_with_min_lr: warmup (t + 1)/W (or from warmup_lr_rate), decay counted from one step on.
    kw = _kwargs(name, given, {"num_cycles": 0.5, "min_lr": None, "min_lr_rate": None, "warmup_lr_rate": None})
    rho = _min_lr_rate(name, lr, kw)
    decay = Shift(_cosine(lr, w, t, number(name, "num_cycles", kw["num_cycles"]), floor=rho * lr), shift=1.0)
    if w <= 0:
        return decay
    r = kw["warmup_lr_rate"]
    first = lr / max(1.0, w) if r is None else lr * number(name, "warmup_lr_rate", r)
    warm = Linear(first, lr * (w / max(1.0, w) if r is None else 1.0), steps=w - 1) if w >= 2 else Constant(first)
    return Sequence([warm, decay], boundaries=[w])


_WSD_SHAPES = ("linear", "cosine", "1-sqrt")


def _wsd(lr: float, w: float, num_training_steps: Any, given: dict) -> Schedule:
    name = "warmup_stable_decay"
    kw = _kwargs(name, given, {"num_decay_steps": None, "num_stable_steps": None, "warmup_type": "linear",
                               "decay_type": "cosine", "min_lr_ratio": 0.0, "num_cycles": 0.5})
    if kw["num_decay_steps"] is None:
        raise TypeError("get_scheduler('warmup_stable_decay'): num_decay_steps is required in scheduler_specific_kwargs")
    if num_training_steps is None and kw["num_stable_steps"] is None:
        raise ValueError(f"get_scheduler({name!r}): either num_training_steps or num_stable_steps must be specified")
    for key in ("warmup_type", "decay_type"):
        if kw[key] not in _WSD_SHAPES:
            raise ValueError(f"get_scheduler({name!r}): unknown {key} {kw[key]!r}, expected 'linear', 'cosine' or '1-sqrt'")
    d = number(name, "num_decay_steps", kw["num_decay_steps"])
    s = (number(name, "num_stable_steps", kw["num_stable_steps"]) if kw["num_stable_steps"] is not None
         else number(name, "num_training_steps", num_training_steps) - w - d)
    m = number(name, "min_lr_ratio", kw["min_lr_ratio"])
    c = number(name, "num_cycles", kw["num_cycles"])
    if d <= 0 or s < 0:
        raise ValueError(f"get_scheduler({name!r}): lrjax needs num_decay_steps > 0 and a stable phase >= 0, got "
                         f"num_decay_steps={d:g} and num_stable_steps={s:g}")
    wsd = WarmupStableDecay(lr, warmup_steps=w, stable_steps=s, decay_steps=d, min_ratio=m,
                            warmup_shape=kw["warmup_type"], decay_shape=kw["decay_type"])
    if kw["decay_type"] != "cosine" or math.isclose(c, 0.5):
        return wsd
    # num_cycles != 0.5: the cosine decay runs c cycles over num_decay_steps, unclamped.
    cos = CosineDecay(lr, decay_steps=d / (2.0 * c), floor=m, floor_mode="relative", periodic=True)
    return Sequence([wsd, cos, Constant(lr * m)], boundaries=[w + s, w + s + d])
