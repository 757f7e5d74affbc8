"""timm's ``timm.scheduler`` classes as native lrjax schedules, by update count.

Each function takes the timm class's arguments with the optimizer replaced by ``lr`` (the
optimizer's base rate) and returns a native lrjax schedule ``s`` with ``s(t)`` equal to the
rate timm sets in ``scheduler.step_update(t)`` (``t_in_epochs=False``): give every duration
(``t_initial``, ``warmup_t``, ``decay_t``) in optimizer updates. ``t_in_epochs`` and
``initialize`` are accepted and ignored. Noise (``noise_range_t``) is not supported: timm
draws it from torch's generator per step, which lrjax does not reproduce; passing it raises
``ValueError``. timm's ``assert`` checks raise ``ValueError`` here. This module never imports
timm or torch.

``PlateauLRScheduler`` is metric-driven, not a function of the step: it is a small object
holding the rate schedule (its warmup, by epoch) and a :func:`lrjax.reduce_on_plateau`
transformation for :func:`lrjax.inject`, with timm's ``step(epoch, metric)`` as a pure
function of the optimizer state (see its docstring).

>>> from lrjax.compat import timm as lrtimm
>>> s = lrtimm.CosineLRScheduler(0.1, t_initial=100, warmup_t=10, warmup_lr_init=1e-4)
>>> round(float(s(5)), 5), round(float(s(150)), 5)
(0.05005, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import choice, fail, integer, number
from lrjax.compat._common import rate
from lrjax.compat.torch import ReduceLROnPlateau
from lrjax.optim import observe_metric
from lrjax.schedules import Constant, CosineRestarts, MultiStep, PiecewiseConstant, Schedule, StepDecay, Warmup

__all__ = ["CosineLRScheduler", "TanhLRScheduler", "StepLRScheduler", "MultiStepLRScheduler", "PolyLRScheduler",
           "PlateauLRScheduler"]


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


class PlateauLRScheduler:
    """timm's ``PlateauLRScheduler``: PyTorch's ``ReduceLROnPlateau`` after a linear warmup, stepped
    once per epoch with the epoch's metric.

    timm sets ``warmup_lr_init + k (lr - warmup_lr_init) / warmup_t`` in ``step(k, metric)`` for
    ``k <= warmup_t`` (the metric is ignored), then hands each metric to ``ReduceLROnPlateau``
    (``factor=decay_rate``, ``patience=patience_t``, ``cooldown=cooldown_t``, ``min_lr=lr_min``,
    relative ``threshold``, ``mode`` — by default ``'max'``, timm's, not PyTorch's ``'min'``).
    ``step_update`` does nothing. The port is three pieces:

    * ``.schedule``: the rate by optimizer update — the warmup as a staircase over epochs of
      ``steps_per_epoch`` updates (required when ``warmup_t > 0``), then ``lr``;
    * ``.plateau``: the :func:`lrjax.reduce_on_plateau` transformation with PyTorch's semantics
      (its relative test, see :func:`lrjax.compat.torch.ReduceLROnPlateau`);
    * ``.step(opt_state, epoch, metric)``: timm's ``scheduler.step(epoch, metric)``, a pure
      function of the optimizer state: :func:`lrjax.observe_metric` once past the warmup
      (``epoch > warmup_t``), else the state unchanged.

    ::

        sched = lrtimm.PlateauLRScheduler(0.1, decay_rate=0.5, patience_t=2, warmup_t=3, steps_per_epoch=len(loader))
        tx = lrjax.inject(optax.sgd, learning_rate=sched.schedule, plateau=sched.plateau, momentum=0.9)
        for epoch in range(epochs):
            ...                                                  # steps_per_epoch updates
            state = sched.step(state, epoch + 1, eval_metric)    # timm's train.py: step(epoch + 1, metric)

    The rate of the updates of epoch ``e`` is then timm's after ``step(e, ...)``. Epochs count
    from 1, as timm's training script passes them (timm's ``step(0)`` without warmup would set
    the rate to ``warmup_lr_init``; here it observes nothing). Noise (``noise_range_t``) is
    refused; ``noise_*`` and ``initialize`` are accepted and ignored.

    >>> import jax.numpy as jnp, optax, lrjax
    >>> s = PlateauLRScheduler(0.1, decay_rate=0.5, patience_t=0, mode="min", warmup_t=2, steps_per_epoch=1)
    >>> [round(float(s.schedule(t)), 4) for t in range(4)]
    [0.0, 0.05, 0.1, 0.1]
    >>> tx = lrjax.inject(optax.sgd, learning_rate=s.schedule, plateau=s.plateau)
    >>> state = tx.init(jnp.zeros(1))
    >>> for epoch, loss in enumerate([9.0, 9.0, 1.0, 1.0], start=1):   # the first two: during warmup, ignored
    ...     _, state = tx.update(jnp.zeros(1), state)    # the epoch's updates (one here)
    ...     state = s.step(state, epoch, loss)
    >>> round(float(lrjax.current_hyperparams(state)["plateau_scale"]), 4)
    0.5
    """

    def __init__(self, lr: float, decay_rate: float = 0.1, patience_t: int = 10, threshold: float = 1e-4,
                 cooldown_t: int = 0, warmup_t: int = 0, warmup_lr_init: float = 0.0, lr_min: float = 0.0,
                 mode: str = "max", noise_range_t: Any = None, noise_type: str = "normal", noise_pct: float = 0.67,
                 noise_std: float = 1.0, noise_seed: int | None = None, initialize: bool = True, *,
                 steps_per_epoch: int | None = None) -> None:
        owner = "PlateauLRScheduler"
        _no_noise(owner, noise_range_t)
        lr = rate(owner, "lr", lr)
        if number(owner, "decay_rate", decay_rate) >= 1.0:  # ReduceLROnPlateau: "Factor should be < 1.0."
            raise fail(owner, "decay_rate", decay_rate, "< 1 (it is ReduceLROnPlateau's factor)")
        choice(owner, "mode", mode, ("min", "max"))
        patience = integer(owner, "patience_t", patience_t, lo=0, integral_floats=True)
        cooldown = integer(owner, "cooldown_t", cooldown_t, lo=0, integral_floats=True)
        number(owner, "threshold", threshold, lo=0)
        floor = rate(owner, "lr_min", lr_min)
        init = rate(owner, "warmup_lr_init", warmup_lr_init)
        w = integer(owner, "warmup_t", warmup_t, lo=0, integral_floats=True)
        self.warmup_t: int = w
        self.steps_per_epoch: int | None = None
        if w == 0:
            self.schedule: Schedule = Constant(lr)
        else:
            if steps_per_epoch is None:
                raise ValueError(
                    f"{owner}: warmup_t={warmup_t!r} needs steps_per_epoch=<optimizer updates per epoch>: timm warms "
                    "up once per epoch, lrjax's rate is a function of the update count"
                )
            n = integer(owner, "steps_per_epoch", steps_per_epoch, lo=1)
            self.steps_per_epoch = n
            step = (lr - init) / w  # timm: warmup_lr_init + epoch * (lr - warmup_lr_init) / warmup_t
            self.schedule = PiecewiseConstant(boundaries=np.arange(1, w + 1, dtype=np.float64) * n,
                                              values=np.array([init + k * step for k in range(w + 1)]), side="right")
        self.plateau = ReduceLROnPlateau(lr, mode=mode, factor=decay_rate, patience=patience, threshold=threshold,
                                         cooldown=cooldown, min_lr=floor)

    def step(self, opt_state: Any, epoch: Any, metric: Any) -> Any:
        """timm's ``scheduler.step(epoch, metric)``: the metric observed once ``epoch > warmup_t``.

        Pure and jittable; ``epoch`` may be traced (then both outcomes are computed and one kept).
        """
        observed = observe_metric(opt_state, metric)
        if isinstance(epoch, (jax.core.Tracer, jax.Array)):
            past = jnp.asarray(epoch) > self.warmup_t
            return jax.tree.map(lambda a, b: jnp.where(past, a, b), observed, opt_state)
        return observed if epoch > self.warmup_t else opt_state

    def step_update(self, opt_state: Any, num_updates: Any, metric: Any = None) -> Any:
        """timm's ``step_update``: nothing to do (the warmup is in :attr:`schedule`)."""
        return opt_state

    def __repr__(self) -> str:
        return f"PlateauLRScheduler(schedule={self.schedule!r}, warmup_t={self.warmup_t})"
