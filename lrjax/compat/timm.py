"""timm's ``timm.scheduler`` classes as native lrjax schedules, by update count.

Each function takes the timm class's arguments with the optimizer replaced by ``lr`` (the
optimizer's base rate) and returns a native lrjax schedule ``s`` with ``s(t)`` equal to the
rate timm sets in ``scheduler.step_update(t)`` (``t_in_epochs=False``): give every duration
(``t_initial``, ``warmup_t``, ``decay_t``) in optimizer updates. ``t_in_epochs`` and
``initialize`` are accepted and ignored. Noise (``noise_range_t``) is not supported: timm
draws it from torch's generator per step, which lrjax does not reproduce; passing it raises
``ValueError``. timm's ``assert`` checks raise ``ValueError`` here. This module never imports
timm or torch.

>>> from lrjax.compat import timm as lrtimm
>>> s = lrtimm.CosineLRScheduler(0.1, t_initial=100, warmup_t=10, warmup_lr_init=1e-4)
>>> round(float(s(5)), 5), round(float(s(150)), 5)
(0.05005, 0.0)
"""

from __future__ import annotations

from typing import Any
from typing import Sequence as Seq

import numpy as np

from lrjax.compat._common import number, rate
from lrjax.schedules import CosineRestarts, MultiStep, Schedule, StepDecay, Warmup

__all__ = ["CosineLRScheduler", "TanhLRScheduler", "StepLRScheduler", "MultiStepLRScheduler", "PolyLRScheduler"]


def _no_noise(owner: str, noise_range_t: Any) -> None:
    if noise_range_t is not None:
        raise ValueError(
            f"{owner}: noise is not supported by lrjax (timm draws it from torch's generator), got "
            f"noise_range_t={noise_range_t!r}; leave it None"
        )


def _warmup(owner: str, schedule: Schedule, lr: float, warmup_t: Any, warmup_lr_init: Any, prefix: bool,
            to_base: bool = True) -> Schedule:
    """timm's linear warmup ``warmup_lr_init + t (lr - warmup_lr_init)/warmup_t`` for ``t < warmup_t``."""
    w = number(owner, "warmup_t", warmup_t)
    init = number(owner, "warmup_lr_init", warmup_lr_init)
    if w < 0:
        raise ValueError(f"{owner}: warmup_t must be >= 0, got warmup_t={warmup_t!r}")
    if init < 0:
        raise ValueError(f"{owner}: warmup_lr_init must be >= 0, got warmup_lr_init={warmup_lr_init!r}")
    if w == 0:
        return schedule
    return Warmup(schedule, warmup_steps=w, init_value=init, prefix=bool(prefix), target=lr if to_base else -1.0)


def _restarts(owner: str, lr: float, t_initial: Any, lr_min: Any, cycle_mul: Any, cycle_decay: Any,
              cycle_limit: Any, **shape: Any) -> CosineRestarts:
    t0 = number(owner, "t_initial", t_initial)
    if t0 <= 0:
        raise ValueError(f"{owner}: t_initial must be > 0, got t_initial={t_initial!r}")
    floor = number(owner, "lr_min", lr_min)
    if floor < 0:
        raise ValueError(f"{owner}: lr_min must be >= 0, got lr_min={lr_min!r}")
    limit = number(owner, "cycle_limit", cycle_limit)
    if limit <= 0:
        raise ValueError(f"{owner}: cycle_limit must be >= 1 in lrjax, got cycle_limit={cycle_limit!r}")
    mul = number(owner, "cycle_mul", cycle_mul)
    if mul < 1:
        raise ValueError(f"{owner}: cycle_mul must be >= 1 in lrjax, got cycle_mul={cycle_mul!r}")
    return CosineRestarts(lr, first_period=t0, period_mult=mul, peak_decay=rate(owner, "cycle_decay", cycle_decay),
                          floor=floor, cycle_limit=limit, **shape)


def CosineLRScheduler(lr: float, t_initial: int, lr_min: float = 0.0, cycle_mul: float = 1.0,
                      cycle_decay: float = 1.0, cycle_limit: int = 1, warmup_t: int = 0, warmup_lr_init: float = 0.0,
                      warmup_prefix: bool = False, t_in_epochs: bool = True, noise_range_t: Any = None,
                      noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42, k_decay: float = 1.0,
                      initialize: bool = True) -> Schedule:
    """Cosine with restarts (SGDR) → :class:`lrjax.CosineRestarts` (``k_decay``), warmed up by
    :class:`lrjax.Warmup` (ramp to ``lr``; ``prefix=warmup_prefix``)."""
    owner = "CosineLRScheduler"
    _no_noise(owner, noise_range_t)
    lr = rate(owner, "lr", lr)
    k = number(owner, "k_decay", k_decay)
    if k <= 0:
        raise ValueError(f"{owner}: k_decay must be > 0, got k_decay={k_decay!r}")
    s = _restarts(owner, lr, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, k_decay=k)
    return _warmup(owner, s, lr, warmup_t, warmup_lr_init, warmup_prefix)


def TanhLRScheduler(lr: float, t_initial: int, lb: float = -7.0, ub: float = 3.0, lr_min: float = 0.0,
                    cycle_mul: float = 1.0, cycle_decay: float = 1.0, cycle_limit: int = 1, warmup_t: int = 0,
                    warmup_lr_init: float = 0.0, warmup_prefix: bool = False, t_in_epochs: bool = True,
                    noise_range_t: Any = None, noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42,
                    initialize: bool = True) -> Schedule:
    """Tanh annealing with restarts → :class:`lrjax.CosineRestarts` (``shape='tanh'``). Its warmup
    ramps to ``lr`` with ``warmup_prefix``, else to the schedule's value at ``warmup_t`` (timm)."""
    owner = "TanhLRScheduler"
    _no_noise(owner, noise_range_t)
    lr = rate(owner, "lr", lr)
    lo, hi = number(owner, "lb", lb), number(owner, "ub", ub)
    if not lo < hi:
        raise ValueError(f"{owner}: lb must be < ub, got lb={lb!r} and ub={ub!r}")
    s = _restarts(owner, lr, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, shape="tanh", lower=lo, upper=hi)
    return _warmup(owner, s, lr, warmup_t, warmup_lr_init, warmup_prefix, to_base=bool(warmup_prefix))


def StepLRScheduler(lr: float, decay_t: float, decay_rate: float = 1.0, warmup_t: int = 0,
                    warmup_lr_init: float = 0.0, warmup_prefix: bool = True, t_in_epochs: bool = True,
                    noise_range_t: Any = None, noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42,
                    initialize: bool = True) -> Schedule:
    """``lr * decay_rate ** (t // decay_t)`` → :class:`lrjax.StepDecay` (+ warmup)."""
    owner = "StepLRScheduler"
    _no_noise(owner, noise_range_t)
    lr = rate(owner, "lr", lr)
    d = number(owner, "decay_t", decay_t)
    if d <= 0:
        raise ValueError(f"{owner}: decay_t must be > 0, got decay_t={decay_t!r}")
    s = StepDecay(lr, step_size=d, gamma=rate(owner, "decay_rate", decay_rate))
    return _warmup(owner, s, lr, warmup_t, warmup_lr_init, warmup_prefix)


def MultiStepLRScheduler(lr: float, decay_t: Seq[int], decay_rate: float = 1.0, warmup_t: int = 0,
                         warmup_lr_init: float = 0.0, warmup_prefix: bool = True, t_in_epochs: bool = True,
                         noise_range_t: Any = None, noise_pct: float = 0.67, noise_std: float = 1.0,
                         noise_seed: int = 42, initialize: bool = True) -> Schedule:
    """``lr * decay_rate ** bisect_right(decay_t, t + 1)`` → :class:`lrjax.MultiStep` with
    milestones ``decay_t - 1``: timm drops ONE UPDATE BEFORE each listed step (its
    ``t + 1``), reproduced here."""
    owner = "MultiStepLRScheduler"
    _no_noise(owner, noise_range_t)
    lr = rate(owner, "lr", lr)
    ms = [max(number(owner, "decay_t", m) - 1.0, 0.0) for m in decay_t]
    if any(b < a for a, b in zip(ms, ms[1:])):
        raise ValueError(f"{owner}: decay_t must be sorted (timm's bisect assumes it), got decay_t={list(decay_t)}")
    s = MultiStep(lr, milestones=np.asarray(ms, np.float64), gamma=rate(owner, "decay_rate", decay_rate))
    return _warmup(owner, s, lr, warmup_t, warmup_lr_init, warmup_prefix)


def PolyLRScheduler(lr: float, t_initial: int, power: float = 0.5, lr_min: float = 0.0, cycle_mul: float = 1.0,
                    cycle_decay: float = 1.0, cycle_limit: int = 1, warmup_t: int = 0, warmup_lr_init: float = 0.0,
                    warmup_prefix: bool = False, t_in_epochs: bool = True, noise_range_t: Any = None,
                    noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42, k_decay: float = 1.0,
                    initialize: bool = True) -> Schedule:
    """Polynomial decay with restarts, ``lr_min + (lr_i - lr_min)(1 - p^k) ** power`` →
    :class:`lrjax.CosineRestarts` (``shape='polynomial'``)."""
    owner = "PolyLRScheduler"
    _no_noise(owner, noise_range_t)
    lr = rate(owner, "lr", lr)
    p, k = number(owner, "power", power), number(owner, "k_decay", k_decay)
    if p <= 0 or k <= 0:
        raise ValueError(f"{owner}: power and k_decay must be > 0, got power={power!r} and k_decay={k_decay!r}")
    s = _restarts(owner, lr, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, shape="polynomial", power=p,
                  k_decay=k)
    return _warmup(owner, s, lr, warmup_t, warmup_lr_init, warmup_prefix)
