"""The parallel range test: K rates on a log grid, each trained for a short budget
from the same initialisation, in one vmapped, compiled program.

Rate ``k`` is :math:`\\eta_k = \\eta_{lo}(\\eta_{hi}/\\eta_{lo})^{k/(K-1)}`, held constant
(or shaped by ``schedule(\\eta_k)``) for ``num_steps`` updates on the same
batches. Each run keeps the sequential test's bias-corrected smoothed loss and
its divergence rule (a diverged run freezes at that point). Runs are ranked by
their final smoothed loss, or by ``eval_fn`` on held-out data when given;
diverged runs rank last. Unlike the sequential sweep, no run's result depends
on what earlier, smaller rates did to the parameters, so one noisy curve cannot
mislead it; it shows directly where training diverges and where it is too slow.

Status of a run, with :math:`d_k` = improvement of the metric from the
initial parameters (the same for every run) to the end of run ``k`` — the log
ratio :math:`\\log(m_0/m_k)` for a positive loss (losses span orders of
magnitude), the difference :math:`\\pm(m_0 - m_k)` otherwise:

* ``"diverged"``: stopped by the divergence rule, or a non-finite metric;
* ``"slow"``: :math:`d_k < f \\cdot \\max_j d_j` (``slow_fraction`` :math:`f`, 0.5);
* ``"good"``: the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.finder._sweep import (
    _RUNNING,
    FromSchedule,
    SweepConfig,
    _int_arg,
    _Report,
    _run,
    _stack,
    check_diverge_factor,
    check_rates,
    check_smoothing,
    classify_data,
    init_state,
)
from lrjax.schedules import Constant, Schedule

__all__ = ["parallel_range_test", "ParallelRangeResult"]


@functools.partial(jax.jit, static_argnames=("cfg", "eval_fn"))
def _parallel(cfg, eval_fn, params, schedules, data, smoothing, factor, eval_data):
    n = jnp.int32(cfg.chunk)

    def one(schedule):
        tx, state = init_state(cfg, params, schedule)
        state, rows = _run(cfg, tx, state, data, jnp.int32(0), n, smoothing, factor)
        ev = jnp.float32(jnp.nan) if eval_fn is None else jnp.asarray(eval_fn(state.params, eval_data), jnp.float32)
        return rows, state.code, ev

    rows, codes, evals = jax.vmap(one)(schedules)
    ev0 = jnp.float32(jnp.nan) if eval_fn is None else jnp.asarray(eval_fn(params, eval_data), jnp.float32)
    return rows, codes, evals, ev0


@dataclasses.dataclass(frozen=True)
class ParallelRangeResult(_Report):
    """K short runs at K rates, ranked; ``plot()`` draws the final metric against the rate (log axis),
    coloured by status, best marked.

    Attributes:
      lrs: the K peak rates (ascending).
      losses, smoothed: ``(K, num_steps)`` raw and smoothed loss per update,
        NaN after a run stopped.
      final: ``(K,)`` the ranking metric (last smoothed loss, or the eval metric).
      status: ``"good"``, ``"slow"`` or ``"diverged"`` per rate.
      stopped_at: ``(K,)`` updates run before the divergence rule stopped it
        (``num_steps`` when it did not).
      order: indices of ``lrs`` from best to worst.
      metric: ``"smoothed_loss"`` or ``"eval"``; ``higher_is_better`` for eval.
      settings: the grid's settings.
    """

    _plotter: ClassVar[str] = "plot_parallel"

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    final: np.ndarray
    status: tuple[str, ...]
    stopped_at: np.ndarray
    order: np.ndarray
    metric: str
    initial: float
    settings: dict[str, Any]

    @property
    def best_lr(self) -> float:
        """The rate of the best-ranked run; ValueError when every run diverged."""
        i = int(self.order[0])
        if self.status[i] == "diverged":
            raise ValueError(
                f"parallel range test: every rate in [{self.lrs[0]:.3g}, {self.lrs[-1]:.3g}] diverged; lower min_lr"
            )
        return float(self.lrs[i])

    @property
    def diverged_from(self) -> float | None:
        """The smallest rate that diverged (None if none did)."""
        bad = [i for i, s in enumerate(self.status) if s == "diverged"]
        return float(self.lrs[min(bad)]) if bad else None

    @property
    def good_range(self) -> tuple[float, float] | None:
        """Smallest and largest rate with status ``"good"``."""
        good = [i for i, s in enumerate(self.status) if s == "good"]
        return (float(self.lrs[min(good)]), float(self.lrs[max(good)])) if good else None

    def table(self) -> str:
        """One line per rate: rate, metric, status, rank."""
        rank = np.empty(len(self.order), dtype=int)
        rank[self.order] = np.arange(1, len(self.order) + 1)
        head = f"{'lr':>10}  {self.metric:>14}  {'status':<9} rank"
        rows = [
            f"{lr:10.3g}  {f:14.5g}  {s:<9} {r}"
            for lr, f, s, r in zip(self.lrs, self.final, self.status, rank)
        ]
        return "\n".join([head, *rows])

    def to_dict(self) -> dict[str, Any]:
        def clean(a):
            a = np.asarray(a, dtype=np.float64)
            if a.ndim > 1:
                return [clean(x) for x in a]
            return [float(x) if math.isfinite(x) else None for x in a]

        try:
            best = self.best_lr
        except ValueError:
            best = None
        return {
            "kind": "parallel_range_test",
            "settings": dict(self.settings),
            "metric": self.metric,
            "initial": self.initial if math.isfinite(self.initial) else None,
            "lrs": clean(self.lrs),
            "final": clean(self.final),
            "status": list(self.status),
            "stopped_at": [int(x) for x in self.stopped_at],
            "order": [int(x) for x in self.order],
            "best_lr": best,
            "diverged_from": self.diverged_from,
            "good_range": self.good_range,
            "curves": {"loss": clean(self.losses), "smoothed": clean(self.smoothed)},
        }

    def __str__(self) -> str:
        try:
            head = f"parallel range test: best lr={self.best_lr:.3g}"
        except ValueError as e:
            head = str(e)
        if self.diverged_from is not None:
            head += f", diverges from lr={self.diverged_from:.3g}"
        return head + "\n" + self.table()


def _rate_grid(min_lr: float, max_lr: float, k: int) -> np.ndarray:
    return np.exp(np.linspace(np.log(min_lr), np.log(max_lr), k)).astype(np.float32)


def _stack_schedules(scheds: list[Schedule]) -> Schedule:
    structs = {jax.tree.structure(s) for s in scheds}
    if len(structs) != 1:
        raise ValueError("schedule(lr) must return schedules of one structure for every rate")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *scheds)


def parallel_range_test(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    optimizer_factory: Callable[..., Any],
    data: Any,
    *,
    min_lr: float = 1e-5,
    max_lr: float = 1.0,
    num_rates: int = 8,
    num_steps: int = 50,
    schedule: Callable[[float], Schedule] | None = None,
    smoothing: float = 0.9,
    diverge_factor: float | None = 4.0,
    accumulation_steps: int = 1,
    has_aux: bool = False,
    eval_fn: Callable[[Any, Any], Any] | None = None,
    eval_data: Any = None,
    higher_is_better: bool = False,
    slow_fraction: float = 0.5,
) -> ParallelRangeResult:
    """Train ``num_rates`` log-spaced rates for ``num_steps`` updates each, all at once.

    Args:
      loss_fn, params, optimizer_factory, has_aux, accumulation_steps: as in
        :func:`lrjax.lr_range_test`.
      data: stacked batches or a function ``i -> batch`` (traced into the program);
        a list or iterator gives its first ``num_steps * accumulation_steps``
        batches, stacked. Every rate sees the same batches.
      min_lr, max_lr, num_rates: the log grid of rates.
      num_steps: the training budget of every run (optimizer updates).
      schedule: ``lr -> lrjax schedule`` shaping each run (e.g.
        ``lambda lr: lrjax.Warmup(lrjax.Constant(lr), warmup_steps=10)``); default
        a constant rate. It must give the same structure for every rate.
      smoothing, diverge_factor: the smoothed loss and the divergence rule.
      eval_fn, eval_data: optional ``eval_fn(params, eval_data) -> scalar`` run at
        the end of every run; the runs are then ranked by it.
      higher_is_better: the eval metric is an accuracy (rank descending).
      slow_fraction: a run is "slow" when it improved the metric by less than
        this fraction of the best run's improvement.

    Returns:
      a :class:`ParallelRangeResult`.

    Example:

    >>> import jax.numpy as jnp, optax
    >>> import lrjax
    >>> curv = jnp.array([1.0, 10.0])                     # GD diverges above 2/L = 0.2
    >>> loss = lambda p, batch: 0.5 * jnp.sum(curv * p ** 2)
    >>> res = lrjax.parallel_range_test(loss, jnp.ones(2), optax.sgd, lambda i: None,
    ...                                 min_lr=1e-3, max_lr=1.0, num_rates=7, num_steps=30)
    >>> [round(float(x), 3) for x in res.lrs]
    [0.001, 0.003, 0.01, 0.032, 0.1, 0.316, 1.0]
    >>> res.status
    ('slow', 'slow', 'slow', 'good', 'good', 'diverged', 'diverged')
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch) -> loss, got {type(loss_fn).__name__}")
    if not (callable(optimizer_factory) or isinstance(optimizer_factory, FromSchedule)):
        raise TypeError(
            "optimizer_factory must be a function learning_rate -> optax.GradientTransformation "
            f"(e.g. optax.adamw) or lrjax.finder.from_schedule(build), got {type(optimizer_factory).__name__}"
        )
    lo, hi = check_rates(min_lr, max_lr)
    k = _int_arg("num_rates", num_rates, 2)
    n = _int_arg("num_steps", num_steps, 1)
    acc = _int_arg("accumulation_steps", accumulation_steps, 1)
    beta = check_smoothing(smoothing)
    factor = check_diverge_factor(diverge_factor)
    frac = float(slow_fraction)
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"slow_fraction must be in [0, 1], got slow_fraction={slow_fraction!r}")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be a function (params, eval_data) -> scalar, got {type(eval_fn).__name__}")
    if eval_fn is None and eval_data is not None:
        raise ValueError("eval_data was given without eval_fn; pass eval_fn=(params, eval_data) -> scalar")

    lrs = _rate_grid(lo, hi, k)
    make = Constant if schedule is None else schedule
    scheds = [make(float(lr)) for lr in lrs]
    for s in scheds:
        if not isinstance(s, Schedule):
            raise TypeError(f"schedule(lr) must return an lrjax schedule, got {type(s).__name__}")
    stacked_sched = _stack_schedules(scheds)

    source = classify_data(data)
    if source == "iter":
        it, batches = iter(data), []
        for _ in range(n * acc):
            try:
                batches.append(next(it))
            except StopIteration:
                break
        if not batches:
            raise ValueError("data yielded no batches")
        data, source = _stack(batches), "stacked"
    cfg = SweepConfig(loss_fn, optimizer_factory, bool(has_aux), acc, n, source,
                      data if source == "fn" else None, False)
    stacked = None if source == "fn" else jax.tree.map(jnp.asarray, data)
    out = _parallel(cfg, eval_fn, params, stacked_sched, stacked, np.float32(beta), np.float32(factor), eval_data)
    rows, codes, evals, ev0 = jax.device_get(out)

    valid = np.asarray(rows.valid, dtype=bool)
    losses = np.where(valid, rows.loss, np.nan).astype(np.float64)
    smoothed = np.where(valid, rows.smoothed, np.nan).astype(np.float64)
    stopped_at = valid.sum(axis=1)
    last = np.take_along_axis(smoothed, np.maximum(stopped_at - 1, 0)[:, None], axis=1)[:, 0]
    if eval_fn is None:
        metric, final, initial, sign = "smoothed_loss", last, float(losses[0, 0]), 1.0
    else:
        metric, final, initial = "eval", np.asarray(evals, dtype=np.float64), float(ev0)
        sign = -1.0 if higher_is_better else 1.0
    status = _status(np.asarray(codes), final, initial, sign, frac)
    order = _rank(final, status, stopped_at, sign)
    settings = dict(min_lr=lo, max_lr=hi, num_rates=k, num_steps=n, smoothing=beta,
                    diverge_factor=None if math.isinf(factor) else factor, accumulation_steps=acc,
                    slow_fraction=frac, higher_is_better=bool(higher_is_better),
                    schedule="constant" if schedule is None else type(scheds[0]).name)
    return ParallelRangeResult(lrs.astype(np.float64), losses, smoothed, final, tuple(status), stopped_at,
                               order, metric, initial, settings)


def _gain(final: np.ndarray, initial: float, sign: float, ok: np.ndarray) -> np.ndarray:
    """Improvement of each run (larger is better): a log ratio for positive losses, else a difference."""
    f = final[ok]
    if sign > 0 and initial > 0 and f.size and np.all(f > 0):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(initial / final)
    return sign * (initial - final)


def _status(codes: np.ndarray, final: np.ndarray, initial: float, sign: float, frac: float) -> list[str]:
    bad = (codes != _RUNNING) | ~np.isfinite(final)
    gain = _gain(final, initial, sign, ~bad)
    best = np.max(gain[~bad]) if np.any(~bad) else np.nan
    out = []
    for i in range(final.size):
        if bad[i]:
            out.append("diverged")
        elif not best > 0 or gain[i] < frac * best:
            out.append("slow")
        else:
            out.append("good")
    return out


def _rank(final: np.ndarray, status: list[str], stopped_at: np.ndarray, sign: float) -> np.ndarray:
    """Non-diverged runs by metric; then diverged ones, those that lasted longer first."""
    keys = []
    for i in range(final.size):
        if status[i] == "diverged":
            keys.append((1, -int(stopped_at[i]), 0.0, i))
        else:
            keys.append((0, 0, float(sign * final[i]), i))
    return np.array([k[-1] for k in sorted(keys)], dtype=np.int64)

