"""PyTorch's ``torch.optim.lr_scheduler`` classes as native lrjax schedules.

Each function takes the PyTorch class's arguments with the optimizer replaced by ``lr``,
the optimizer's base learning rate, and returns a native lrjax schedule ``s`` with
``s(t) == scheduler.get_last_lr()[0]`` after ``t`` calls of ``scheduler.step()`` (``s(0)``
is the rate right after construction). Port a recipe by changing the import::

    # sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=1000)
    from lrjax.compat import torch as lrt
    sched = lrt.OneCycleLR(None, max_lr=0.1, total_steps=1000)   # lr: overwritten, as in PyTorch
    tx = lrjax.inject(optax.sgd, learning_rate=sched, momentum=sched.momentum)

``CyclicLR`` and ``OneCycleLR`` return schedules whose ``.momentum`` is the momentum (or
Adam ``b1``) schedule PyTorch would set. ``ReduceLROnPlateau`` returns the lrjax plateau
transformation with PyTorch's semantics (see its docstring). ``LambdaLR`` becomes an
:class:`lrjax.Lambda` when its function traces with JAX, else (given ``total_steps``) an
:class:`lrjax.Table` computed on the host, with a :class:`TabulatedWarning`. ``SWALR``
(``torch.optim.swa_utils``) is here too, alone or after another scheduler (``after=``,
``start=``). Arguments PyTorch refuses raise ``ValueError`` here too, at construction. This
module never imports torch.

>>> from lrjax.compat import torch as lrt
>>> s = lrt.StepLR(0.1, step_size=2, gamma=0.5)
>>> [round(float(s(t)), 4) for t in range(5)]
[0.1, 0.1, 0.05, 0.05, 0.025]
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable
from collections.abc import Sequence as Seq
from typing import Any

import numpy as np
import optax

from lrjax._checks import choice, fail, integer, is_int, number
from lrjax.compat._common import TabulatedWarning, no_resume, rate
from lrjax.optim import reduce_on_plateau
from lrjax.schedules import (
    Constant,
    CosineDecay,
    CosineRestarts,
    Cyclic,
    Exponential,
    Lambda,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Product,
    Scale,
    Schedule,
    Sequence,
    StepDecay,
    Table,
    Warmup,
    depends_on_step,
    trace_failure,
)

__all__ = [
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "SequentialLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "SWALR",
    "TabulatedWarning",
]


def _one_lambda(owner: str, lr_lambda: Any) -> Callable:
    """The single ``lr_lambda`` (a list of one is accepted: one parameter group)."""
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != 1:
            raise ValueError(
                f"{owner}: lr_lambda must be one function (an lrjax schedule drives one parameter group; PyTorch "
                f"wants one per group), got a list of {len(lr_lambda)}; build one schedule per group and combine "
                "them with optax.multi_transform"
            )
        lr_lambda = lr_lambda[0]
    if not callable(lr_lambda):
        raise fail(owner, "lr_lambda", lr_lambda, "a function of the epoch (step)", TypeError)
    return lr_lambda


def _factor(owner: str, fn: Callable, t: int) -> float:
    """``fn(t)`` called as PyTorch does (a Python int), as a float; finite and >= 0."""
    v = fn(t)
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: lr_lambda({t}) must return a number, got {v!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{owner}: lr_lambda({t}) must be a finite number >= 0 (it scales a rate), got {v!r}")
    return x


def _table(owner: str, lr: float, factors: np.ndarray, why: str) -> Table:
    n = len(factors) - 1
    warnings.warn(
        f"{owner}: lr_lambda was evaluated on the host for steps 0..{n} into an lrjax.Table: {why}; the rate "
        f"holds its step-{n} value after step {n}",
        TabulatedWarning,
        stacklevel=3,
    )
    return Table(factors, scale=lr)


def _steps(owner: str, total_steps: Any, why: str) -> int:
    if total_steps is None:
        raise ValueError(
            f"{owner}: {why}, so lr_lambda is tabulated on the host, which needs its length: pass "
            "total_steps=<the number of scheduler steps> (the rate holds its last value after it)"
        )
    return integer(owner, "total_steps", total_steps, lo=0, integral_floats=True)


def LambdaLR(lr: float, lr_lambda: Callable[[int], float], last_epoch: int = -1, *,
             total_steps: int | None = None) -> Schedule:
    """``lr * lr_lambda(t)`` → :class:`lrjax.Lambda` when ``lr_lambda`` traces with JAX, else an
    :class:`lrjax.Table` of its values for ``t = 0..total_steps``.

    A function of ``jax.numpy``/arithmetic (``lambda e: 0.95 ** e``) is traced on a float32
    step (checked against Python's value at the first steps) and gives an exact
    ``Lambda(lr_lambda, scale=lr)`` for every step; ``total_steps`` is then not needed. Python
    that JAX cannot trace (``if`` on the step, ``min``/``max``, ``math``) is called with
    ``t = 0..total_steps`` on the host as PyTorch does; ``total_steps`` is then required, the
    rate holds ``lr * lr_lambda(total_steps)`` after it, and a :class:`TabulatedWarning` says
    so. Either way ``lr`` is a leaf (``scale``), so ``jax.vmap`` can sweep it.

    >>> s = LambdaLR(0.1, lambda epoch: 0.5 ** epoch)          # traces: lrjax.Lambda
    >>> type(s).__name__, [round(float(s(t)), 4) for t in range(4)]
    ('Lambda', [0.1, 0.05, 0.025, 0.0125])
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", TabulatedWarning)
    ...     s = LambdaLR(0.1, lambda epoch: min(1.0, (epoch + 1) / 3), total_steps=5)   # Python: a Table
    >>> type(s).__name__, [round(float(s(t)), 4) for t in range(4)]
    ('Table', [0.0333, 0.0667, 0.1, 0.1])
    """
    owner = "LambdaLR"
    no_resume(owner, last_epoch)
    lr = rate(owner, "lr", lr)
    fn = _one_lambda(owner, lr_lambda)
    why = trace_failure(fn)
    if why is None:
        sched = Lambda(fn, scale=lr)
        probe = range(6)
        try:  # the traced function must agree with Python's (ints, as PyTorch calls it)
            want = np.array([float(fn(t)) for t in probe])
        except Exception:  # noqa: BLE001 - fails on Python ints: PyTorch would fail too; nothing to compare
            want = None
        got = np.asarray(sched.replace(scale=1.0)(np.asarray(probe)), np.float64)
        if want is None or np.allclose(got, want, rtol=1e-5, atol=1e-7 * np.max(np.abs(want), initial=1.0)):
            return sched
        why = f"its traced value {got.tolist()} differs from Python's {want.tolist()} at steps 0..5"
    else:
        why = f"JAX cannot trace it ({why})"
    n = _steps(owner, total_steps, why)
    return _table(owner, lr, np.array([_factor(owner, fn, t) for t in range(n + 1)]), why)


def MultiplicativeLR(lr: float, lr_lambda: Callable[[int], float], last_epoch: int = -1, *,
                     total_steps: int | None = None) -> Schedule:
    """``lr * prod_{i=1..t} lr_lambda(i)`` (``lr`` at ``t = 0``) → :class:`lrjax.Exponential` for a
    constant factor, else an :class:`lrjax.Table` of the running product for ``t = 0..total_steps``.

    A factor that does not depend on the step (``lambda epoch: 0.95``, found by tracing it) is
    the closed form ``Exponential(lr, decay_rate=0.95, decay_steps=1)``. Any other factor is
    multiplied up on the host in float64 as PyTorch does (``lr_lambda(1)``, ``lr_lambda(2)``,
    ...); ``total_steps`` is then required, the rate holds its value at ``total_steps`` after it,
    and a :class:`TabulatedWarning` says so.

    >>> s = MultiplicativeLR(1.0, lambda epoch: 0.5)
    >>> type(s).__name__, [float(s(t)) for t in range(4)]
    ('Exponential', [1.0, 0.5, 0.25, 0.125])
    """
    owner = "MultiplicativeLR"
    no_resume(owner, last_epoch)
    lr = rate(owner, "lr", lr)
    fn = _one_lambda(owner, lr_lambda)
    why = trace_failure(fn)
    if why is None and not depends_on_step(fn):
        c = _factor(owner, fn, 1)
        if c > 0:
            return Exponential(lr, decay_rate=c, decay_steps=1.0)
        why = "its factor is 0"
    else:
        why = "the rate is a running product of a factor that changes with the step" if why is None else (
            f"JAX cannot trace lr_lambda ({why})")
    n = _steps(owner, total_steps, why)
    factors = np.ones(n + 1)
    for t in range(1, n + 1):
        factors[t] = factors[t - 1] * _factor(owner, fn, t)
    return _table(owner, lr, factors, why)


def StepLR(lr: float, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> Schedule:
    """``lr * gamma ** (t // step_size)`` → :class:`lrjax.StepDecay`.

    >>> round(float(StepLR(1.0, step_size=3, gamma=0.5)(7)), 4)
    0.25
    """
    no_resume("StepLR", last_epoch)
    lr = rate("StepLR", "lr", lr)
    if number("StepLR", "step_size", step_size) <= 0:
        raise ValueError(f"StepLR: step_size must be a positive number of steps, got step_size={step_size!r}")
    return StepDecay(lr, step_size=step_size, gamma=number("StepLR", "gamma", gamma))


def MultiStepLR(lr: float, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1) -> Schedule:
    """``lr * gamma ** (number of milestones <= t)`` → :class:`lrjax.MultiStep`.

    Milestones may be unsorted or repeated (a repeat multiplies by ``gamma`` once more), as
    PyTorch's ``Counter`` allows.

    >>> round(float(MultiStepLR(1.0, milestones=[4, 2, 2], gamma=0.5)(3)), 4)
    0.25
    """
    no_resume("MultiStepLR", last_epoch)
    lr = rate("MultiStepLR", "lr", lr)
    ms = sorted(number("MultiStepLR", "milestones", m) for m in milestones)
    return MultiStep(lr, milestones=np.asarray([m for m in ms if m >= 0], dtype=np.float64),
                     gamma=number("MultiStepLR", "gamma", gamma))


def ConstantLR(lr: float, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1) -> Schedule:
    """``lr * factor`` for ``t < total_iters``, then ``lr`` → :class:`lrjax.Sequence` of two constants.

    As in PyTorch, ``total_iters <= 0`` keeps ``lr * factor`` for ever (its recursive form never
    undoes the factor).
    """
    no_resume("ConstantLR", last_epoch)
    lr = rate("ConstantLR", "lr", lr)
    f = number("ConstantLR", "factor", factor)
    if f > 1.0 or f < 0:
        raise ValueError(f"ConstantLR: factor must be between 0 and 1 (PyTorch's check), got factor={factor!r}")
    n = number("ConstantLR", "total_iters", total_iters)
    if n <= 0:
        return Constant(lr * f)
    if f == 0:
        raise ValueError(
            "ConstantLR: factor=0 is refused: PyTorch divides by it at step total_iters (ZeroDivisionError)"
        )
    return Sequence([Constant(lr * f), Constant(lr)], boundaries=[n])


def LinearLR(lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
             last_epoch: int = -1) -> Schedule:
    """Factor linear from ``start_factor`` to ``end_factor`` over ``total_iters`` → :class:`lrjax.Linear`.

    ``total_iters <= 0`` keeps ``lr * start_factor`` (PyTorch's recursive form).

    >>> round(float(LinearLR(1.0, start_factor=0.5, total_iters=4)(2)), 4)
    0.75
    """
    no_resume("LinearLR", last_epoch)
    lr = rate("LinearLR", "lr", lr)
    a = number("LinearLR", "start_factor", start_factor)
    b = number("LinearLR", "end_factor", end_factor)
    if a > 1.0 or a <= 0:
        raise ValueError(f"LinearLR: start_factor must be in (0, 1] (PyTorch's check), got start_factor={start_factor!r}")
    if b > 1.0 or b < 0:
        raise ValueError(f"LinearLR: end_factor must be in [0, 1] (PyTorch's check), got end_factor={end_factor!r}")
    n = number("LinearLR", "total_iters", total_iters)
    if n <= 0:
        return Constant(lr * a)
    return Linear(lr * a, lr * b, steps=n)


def ExponentialLR(lr: float, gamma: float, last_epoch: int = -1) -> Schedule:
    """``lr * gamma ** t`` → :class:`lrjax.Exponential` (``decay_steps=1``)."""
    no_resume("ExponentialLR", last_epoch)
    lr = rate("ExponentialLR", "lr", lr)
    g = number("ExponentialLR", "gamma", gamma)
    if g <= 0:
        raise ValueError(f"ExponentialLR: gamma must be > 0 in lrjax, got gamma={gamma!r}")
    return Exponential(lr, decay_rate=g, decay_steps=1.0)


def PolynomialLR(lr: float, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> Schedule:
    """``lr * (1 - min(t, T)/T) ** power`` → :class:`lrjax.Polynomial` (to 0); ``T <= 0``: constant."""
    no_resume("PolynomialLR", last_epoch)
    lr = rate("PolynomialLR", "lr", lr)
    n = number("PolynomialLR", "total_iters", total_iters)
    p = number("PolynomialLR", "power", power)
    if n <= 0:
        return Constant(lr)
    if p <= 0:
        raise ValueError(f"PolynomialLR: power must be > 0 in lrjax, got power={power!r}")
    return Polynomial(lr, end_value=0.0, decay_steps=n, power=p)


def CosineAnnealingLR(lr: float, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> Schedule:
    """``eta_min + (lr - eta_min)(1 + cos(pi t / T_max))/2`` for every ``t`` → periodic
    :class:`lrjax.CosineDecay`.

    PyTorch does not hold after ``T_max``: the rate climbs back to ``lr`` at ``2 T_max``
    (its recursive form follows the closed form to float rounding).
    """
    no_resume("CosineAnnealingLR", last_epoch)
    lr = rate("CosineAnnealingLR", "lr", lr)
    if number("CosineAnnealingLR", "T_max", T_max) <= 0:
        raise ValueError(f"CosineAnnealingLR: T_max must be > 0 (PyTorch divides by it), got T_max={T_max!r}")
    return CosineDecay(lr, decay_steps=T_max, floor=rate("CosineAnnealingLR", "eta_min", eta_min), periodic=True)


def CosineAnnealingWarmRestarts(lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                                last_epoch: int = -1) -> Schedule:
    """SGDR: cosine from ``lr`` to ``eta_min`` over ``T_0``, ``T_0 T_mult``, ... steps →
    :class:`lrjax.CosineRestarts`.

    >>> s = CosineAnnealingWarmRestarts(1.0, T_0=4, T_mult=2)
    >>> [round(float(s(t)), 3) for t in (0, 2, 4, 8, 12)]
    [1.0, 0.5, 1.0, 0.5, 1.0]
    """
    no_resume("CosineAnnealingWarmRestarts", last_epoch)
    lr = rate("CosineAnnealingWarmRestarts", "lr", lr)
    integer("CosineAnnealingWarmRestarts", "T_0", T_0, lo=1, error=ValueError)
    integer("CosineAnnealingWarmRestarts", "T_mult", T_mult, lo=1, error=ValueError)
    number("CosineAnnealingWarmRestarts", "eta_min", eta_min, error=ValueError)
    return CosineRestarts(lr, first_period=T_0, period_mult=T_mult, floor=rate("CosineAnnealingWarmRestarts",
                                                                                "eta_min", eta_min))


_CLR_MODES = ("triangular", "triangular2", "exp_range")


def CyclicLR(lr: float | None, base_lr: float, max_lr: float, step_size_up: int = 2000,
             step_size_down: int | None = None, mode: str = "triangular", gamma: float = 1.0,
             scale_fn: Callable[[float], float] | None = None, scale_mode: str = "cycle",
             cycle_momentum: bool = True, base_momentum: float = 0.8, max_momentum: float = 0.9,
             last_epoch: int = -1) -> Cyclic:
    """Cyclical learning rates → :class:`lrjax.Cyclic`; ``.momentum`` cycles the other way.

    ``lr`` is ignored: PyTorch overwrites the optimizer's rate with ``base_lr``. A custom
    ``scale_fn`` is not supported (a Python callable cannot live in a pytree spec): use
    ``mode``. With ``cycle_momentum=False`` PyTorch leaves the optimizer's momentum alone;
    the returned ``.momentum`` is then the constant ``max_momentum`` — use your own.

    >>> s = CyclicLR(None, base_lr=0.1, max_lr=1.0, step_size_up=2)
    >>> [round(float(s(t)), 3) for t in range(5)], round(float(s.momentum(2)), 3)
    ([0.1, 0.55, 1.0, 0.55, 0.1], 0.8)
    """
    no_resume("CyclicLR", last_epoch)
    if scale_fn is not None:
        raise ValueError(
            "CyclicLR: a custom scale_fn is not supported by lrjax (a Python callable is neither a pytree leaf nor "
            f"part of a spec), got scale_fn={scale_fn!r}; use mode='triangular', 'triangular2' or 'exp_range'"
        )
    if mode not in _CLR_MODES:
        raise ValueError(f"CyclicLR: mode must be one of {', '.join(map(repr, _CLR_MODES))}, got mode={mode!r}")
    up = number("CyclicLR", "step_size_up", step_size_up)
    if up <= 0:
        raise ValueError(f"CyclicLR: step_size_up must be > 0 (PyTorch divides by it), got step_size_up={step_size_up!r}")
    down = -1.0 if step_size_down is None else number("CyclicLR", "step_size_down", step_size_down)
    if step_size_down is not None and down <= 0:
        raise ValueError(f"CyclicLR: step_size_down must be > 0 in lrjax, got step_size_down={step_size_down!r}")
    bm, mm = number("CyclicLR", "base_momentum", base_momentum), number("CyclicLR", "max_momentum", max_momentum)
    if not cycle_momentum:
        bm = mm
    return Cyclic(rate("CyclicLR", "base_lr", base_lr), rate("CyclicLR", "max_lr", max_lr), step_size_up=up,
                  step_size_down=down, mode=mode, gamma=number("CyclicLR", "gamma", gamma), base_momentum=bm,
                  max_momentum=mm)


def OneCycleLR(lr: float | None, max_lr: float, total_steps: int | None = None, epochs: int | None = None,
               steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
               cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
               div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
               last_epoch: int = -1) -> OneCycle:
    """The one-cycle policy → :class:`lrjax.OneCycle` (``extend_last_phase=True``); ``.momentum``
    is the momentum PyTorch sets.

    ``lr`` is ignored (PyTorch starts from ``max_lr / div_factor``). PyTorch evaluates steps
    ``0..total_steps`` and raises after; lrjax holds the value of step ``total_steps`` from
    there on. A first phase of zero length (``pct_start * total_steps == 1``) is refused with
    ``ValueError`` (PyTorch: ``ZeroDivisionError`` at construction).

    >>> s = OneCycleLR(None, max_lr=1.0, total_steps=10, pct_start=0.5)
    >>> round(float(s(0)), 3), round(float(s(4)), 3), round(float(s.momentum(4)), 3)
    (0.04, 1.0, 0.85)
    """
    no_resume("OneCycleLR", last_epoch)
    if total_steps is not None:
        if not is_int(total_steps) or total_steps <= 0:
            raise ValueError(f"OneCycleLR: total_steps must be a positive integer, got total_steps={total_steps!r}")
        n = total_steps
    elif epochs is not None and steps_per_epoch is not None:
        if not is_int(epochs) or epochs <= 0:
            raise ValueError(f"OneCycleLR: epochs must be a positive integer, got epochs={epochs!r}")
        if not is_int(steps_per_epoch) or steps_per_epoch <= 0:
            raise ValueError(
                f"OneCycleLR: steps_per_epoch must be a positive integer, got steps_per_epoch={steps_per_epoch!r}")
        n = epochs * steps_per_epoch
    else:
        raise ValueError("OneCycleLR: define either total_steps OR (epochs AND steps_per_epoch), got neither")
    if not isinstance(pct_start, float) or not 0.0 <= pct_start <= 1.0:
        raise ValueError(f"OneCycleLR: pct_start must be a float in [0, 1] (PyTorch's check), got pct_start={pct_start!r}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got anneal_strategy={anneal_strategy!r}")
    if float(pct_start * n) - 1 == 0:
        raise ValueError(
            f"OneCycleLR: pct_start * total_steps = 1 gives a warm-up phase of zero length (PyTorch raises "
            f"ZeroDivisionError), got pct_start={pct_start!r} and total_steps={n}"
        )
    bm, mm = number("OneCycleLR", "base_momentum", base_momentum), number("OneCycleLR", "max_momentum", max_momentum)
    if not cycle_momentum:
        bm = mm
    return OneCycle(rate("OneCycleLR", "max_lr", max_lr), total_steps=n, pct_start=pct_start,
                    div_factor=number("OneCycleLR", "div_factor", div_factor),
                    final_div_factor=number("OneCycleLR", "final_div_factor", final_div_factor),
                    anneal_strategy=anneal_strategy, three_phase=bool(three_phase), base_momentum=bm,
                    max_momentum=mm, extend_last_phase=True)


def _schedules(owner: str, schedulers: Seq[Any]) -> tuple[Schedule, ...]:
    scheds = tuple(schedulers)
    for i, s in enumerate(scheds):
        if not isinstance(s, Schedule):
            raise TypeError(
                f"{owner}: schedulers must hold lrjax schedules (e.g. from lrjax.compat.torch), got "
                f"{type(s).__name__} at index {i}"
            )
    return scheds


def SequentialLR(lr: float | None, schedulers: Seq[Schedule], milestones: Seq[int], last_epoch: int = -1) -> Schedule:
    """Schedulers one after another → :class:`lrjax.Sequence`: scheduler ``i`` starts its own
    count at 0 at milestone ``i - 1`` (PyTorch steps it with ``epoch=0`` there).

    ``lr`` is not used (each scheduler already carries the base rate).

    >>> s = SequentialLR(0.1, [LinearLR(0.1, start_factor=0.5, total_iters=2), ExponentialLR(0.1, 0.5)], [2])
    >>> [round(float(s(t)), 4) for t in range(5)]
    [0.05, 0.075, 0.1, 0.05, 0.025]
    """
    no_resume("SequentialLR", last_epoch)
    scheds = _schedules("SequentialLR", schedulers)
    if len(scheds) < 1:
        raise ValueError("SequentialLR: expects at least one scheduler, got schedulers=[]")
    ms = list(milestones)
    if len(ms) != len(scheds) - 1:
        raise ValueError(
            f"SequentialLR: expects one milestone fewer than schedulers, got {len(scheds)} schedulers and "
            f"milestones={ms}"
        )
    if len(scheds) == 1:
        return scheds[0]
    return Sequence(scheds, boundaries=np.asarray(ms, dtype=np.float64))


_ABSOLUTE = (Cyclic, OneCycle, CosineRestarts)


def ChainedScheduler(schedulers: Seq[Schedule], lr: float) -> Schedule:
    """Chained multiplicative schedulers: the factors multiply →
    ``Scale(Product(schedulers), lr ** (1 - n))``.

    ``lr`` (the optimizer's base rate, replacing PyTorch's ``optimizer`` argument) is each
    scheduler's base: the rate is ``lr * prod_i (s_i(t) / lr)``. This is PyTorch's value when
    every chained scheduler is multiplicative (StepLR, MultiStepLR, ConstantLR, LinearLR,
    ExponentialLR, PolynomialLR) and, with CosineAnnealingLR (eta_min=0), up to its ``T_max``.
    CyclicLR, OneCycleLR and CosineAnnealingWarmRestarts set the rate outright in PyTorch, so
    the chain depends on their order; they are refused here.

    >>> s = ChainedScheduler([ConstantLR(0.1, factor=0.5, total_iters=2), ExponentialLR(0.1, 0.5)], lr=0.1)
    >>> [round(float(s(t)), 4) for t in range(4)]
    [0.05, 0.025, 0.025, 0.0125]
    """
    scheds = _schedules("ChainedScheduler", schedulers)
    if len(scheds) < 1:
        raise ValueError("ChainedScheduler: expects at least one scheduler to be chained, got schedulers=[]")
    for i, s in enumerate(scheds):
        if isinstance(s, _ABSOLUTE):
            raise ValueError(
                f"ChainedScheduler: {type(s).__name__} at index {i} sets the rate outright in PyTorch (CyclicLR, "
                "OneCycleLR, CosineAnnealingWarmRestarts), so a chain with it is not a product of factors; "
                "use it on its own or in SequentialLR"
            )
    base = rate("ChainedScheduler", "lr", lr)
    if base <= 0:
        raise ValueError(f"ChainedScheduler: lr must be > 0 (the factors are rates divided by it), got lr={lr!r}")
    if len(scheds) == 1:
        return scheds[0]
    return Scale(Product(scheds), factor=base ** (1 - len(scheds)))


def ReduceLROnPlateau(lr: float, mode: str = "min", factor: float = 0.1, patience: int = 10,
                      threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                      min_lr: float = 0.0, eps: float = 1e-8):
    """PyTorch's ``ReduceLROnPlateau`` → the :func:`lrjax.reduce_on_plateau` transformation set
    to PyTorch's semantics, to give to :func:`lrjax.inject` next to the rate ``lr``::

        plateau = lrt.ReduceLROnPlateau(0.1, patience=5)
        tx = lrjax.inject(optax.sgd, learning_rate=0.1, plateau=plateau)
        state = lrjax.observe_metric(state, val_loss)      # PyTorch: scheduler.step(val_loss)

    The rate after ``k`` observed metrics equals ``get_last_lr()`` after ``k`` calls of
    ``scheduler.step(metric)``, including PyTorch's relative test ``a < best * (1 - threshold)``,
    which moves the wrong way for negative metrics. The native ``lrjax.reduce_on_plateau``
    uses the corrected ``|best|`` test; prefer it for new code. Metrics are compared in float32.
    ``min_lr`` is absolute, as in PyTorch, when the transformation is given to ``inject``.
    """
    rate("ReduceLROnPlateau", "lr", lr)
    if number("ReduceLROnPlateau", "factor", factor) >= 1.0:
        raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0, got factor={factor!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got mode={mode!r}")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got threshold_mode={threshold_mode!r}")
    if isinstance(min_lr, (list, tuple)):
        raise ValueError(f"ReduceLROnPlateau: min_lr must be one number (one parameter group), got min_lr={min_lr!r}")
    base = reduce_on_plateau(mode=mode, factor=factor, patience=patience, threshold=threshold,
                             threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)

    def init_fn(params):
        state = base.init(params)
        return state._replace(config=dataclasses.replace(state.config, torch_rel=True))

    return optax.GradientTransformationExtraArgs(init_fn, base.update)


def SWALR(lr: float | None, swa_lr: float, anneal_epochs: int = 10, anneal_strategy: str = "cos",
          last_epoch: int = -1, *, after: Schedule | None = None, start: int | None = None) -> Schedule:
    """``torch.optim.swa_utils.SWALR``: from the current rate to ``swa_lr`` over ``anneal_epochs``
    SWALR steps, then ``swa_lr`` → :class:`lrjax.Warmup` ramping to ``Constant(swa_lr)``.

    After ``k`` calls of ``SWALR.step()`` the rate is ``r + (swa_lr - r) a(min(k / A, 1))``
    with ``r`` the optimizer's rate when SWALR starts stepping, ``A = anneal_epochs`` and
    ``a(p) = (1 - cos(pi p)) / 2`` (``"cos"``) or ``p`` (``"linear"``); with ``A = 0``,
    ``swa_lr`` from the start (PyTorch sets it at construction). Alone, ``r = lr``.

    PyTorch's SWA recipe steps another scheduler first and SWALR from ``swa_start`` on, both
    built before training (as in PyTorch's tests and tutorial)::

        for epoch in range(epochs):
            train(...)
            if epoch >= swa_start: swa_scheduler.step()
            else: scheduler.step()

    ``SWALR(None, swa_lr, ..., after=<that scheduler's lrjax schedule>, start=swa_start)`` is
    that whole run: ``after(t)`` for ``t <= start``, then the anneal from ``r = after(start)``
    (evaluated once, here) → ``Sequence([after, anneal], [start])``; ``lr`` is then not used.
    ``start`` without ``after`` keeps ``lr`` until ``start`` (no scheduler before SWALR).
    (``if epoch > swa_start`` in the recipe means ``start=swa_start + 1``.) With ``start``,
    ``anneal_epochs=0`` is refused: PyTorch's SWALR sets ``swa_lr`` at construction, and the
    other scheduler then steps from it. ``swa_lr`` is one number (a list of one is accepted).

    >>> s = SWALR(1.0, swa_lr=0.5, anneal_epochs=2, anneal_strategy="linear")
    >>> [float(s(t)) for t in range(4)]
    [1.0, 0.75, 0.5, 0.5]
    >>> s = SWALR(None, 0.01, anneal_epochs=2, after=MultiplicativeLR(0.1, lambda e: 0.5), start=2)
    >>> [round(float(s(t)), 4) for t in range(6)]
    [0.1, 0.05, 0.025, 0.0175, 0.01, 0.01]
    """
    owner = "SWALR"
    no_resume(owner, last_epoch)
    if isinstance(swa_lr, (list, tuple)):
        if len(swa_lr) != 1:
            raise ValueError(
                f"{owner}: swa_lr must be one number (an lrjax schedule drives one parameter group; PyTorch wants "
                f"one per group), got swa_lr={list(swa_lr)!r}"
            )
        swa_lr = swa_lr[0]
    swa = rate(owner, "swa_lr", swa_lr)
    shape = {"cos": "cosine", "linear": "linear"}[choice(owner, "anneal_strategy", anneal_strategy, ("cos", "linear"))]
    if not is_int(anneal_epochs) or anneal_epochs < 0:  # PyTorch: ValueError for 1.7 too
        raise fail(owner, "anneal_epochs", anneal_epochs, "an integer >= 0")
    n = int(anneal_epochs)

    def anneal(start_rate: float) -> Schedule:
        if n == 0:
            return Constant(swa)
        return Warmup(Constant(swa), warmup_steps=n, init_value=start_rate, shape=shape)

    if after is None:
        base = rate(owner, "lr", lr)
        if start is None or n == 0:  # n == 0: PyTorch sets swa_lr at construction, whatever start is
            return anneal(base)
        after = Constant(base)  # no scheduler before SWALR: the rate stays lr until start
    elif not isinstance(after, Schedule):
        raise fail(owner, "after", after, "an lrjax schedule (e.g. from lrjax.compat.torch)", TypeError)
    if start is None:
        raise ValueError(f"{owner}: after= needs start=<the number of its steps before SWALR steps>")
    s0 = integer(owner, "start", start, lo=0, integral_floats=True)
    if n == 0:
        raise ValueError(
            f"{owner}: anneal_epochs=0 with after= is refused: PyTorch's SWALR sets swa_lr when it is built, and the "
            "scheduler stepped before it then starts from swa_lr; use anneal_epochs >= 1 (or Sequence([after, "
            "Constant(swa_lr)], [start]) for a switch at start)"
        )
    if isinstance(after, Table) and float(after.horizon) < s0:
        raise ValueError(
            f"{owner}: after is a Table of {int(after.horizon) + 1} steps, shorter than start={start!r}: tabulate it "
            f"for at least total_steps={s0}"
        )
    start_rate = float(after(s0))
    if s0 == 0:
        return anneal(start_rate)
    return Sequence([after, anneal(start_rate)], boundaries=[s0])
