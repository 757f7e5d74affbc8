"""The results of range tests: the curve of the sequential test, the grid of the parallel one.

Both can be saved (``save_json``, ``to_dict``) and drawn (``plot``); :mod:`lrjax.finder._suggest` reads
suggestions off the curve.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, ClassVar

import numpy as np

from lrjax._rundir import atomic_write_json
from lrjax.finder import _plot
from lrjax.finder._suggest import Suggestion, suggest

__all__ = ["RangeTestResult", "ParallelRangeResult", "status_and_order"]

# Stop codes of the range test's monitor (int32 on the device).
RUNNING, DIVERGED, NONFINITE = 0, 1, 2
REASONS = {DIVERGED: "diverged", NONFINITE: "non-finite"}


class _Report:
    """``save_json`` and ``plot`` for a result with ``to_dict()``; ``_plotter`` names its function in
    :mod:`lrjax.finder._plot`."""

    _plotter: ClassVar[str]

    def save_json(self, path: str | os.PathLike) -> str:
        """Write ``to_dict()`` as JSON to ``path``; returns the path."""
        path = os.fspath(path)
        atomic_write_json(path, self.to_dict(), indent=1)  # type: ignore[attr-defined]
        return path

    def plot(self, path: str | os.PathLike | None = None, *, ax: Any = None, title: str | None = None):
        """The result's figure (saved to ``path`` when given). Returns the figure."""
        return getattr(_plot, self._plotter)(self, path, ax=ax, title=title)


@dataclasses.dataclass(frozen=True)
class RangeTestResult(_Report):
    """The curve of a range test and the suggestions read off it: ``plot()`` draws the loss against the
    rate (log axis), raw and smoothed, with the suggestions marked.

    Attributes:
      lrs, losses, smoothed: float64 arrays, one entry per optimizer update run
        (``lrs[i]`` is the rate applied at update ``i``, ``losses[i]`` the loss of
        its batch before it, ``smoothed[i]`` the bias-corrected EMA).
      stop_reason: ``"completed"``, ``"diverged"`` (smoothed loss above
        ``diverge_factor`` × its best), ``"non-finite"`` or ``"data exhausted"``.
      suggestions: ``{method: Suggestion}`` for steepest, minimum (the rate at the lowest smoothed loss
        divided by 10: ``minimum/10`` where it is printed or drawn) and valley.
      settings: the sweep's settings (rates, steps, mode, smoothing, ...).
    """

    _plotter: ClassVar[str] = "plot_range_test"

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    stop_reason: str
    suggestions: dict[str, Suggestion]
    settings: dict[str, Any]

    @property
    def num_steps_run(self) -> int:
        return int(self.lrs.size)

    @property
    def stop_lr(self) -> float | None:
        """The last rate applied (where the sweep stopped)."""
        return float(self.lrs[-1]) if self.lrs.size else None

    def suggestion(self, method: str = "steepest") -> float:
        """The suggested rate of ``method``; ValueError carrying the reason when there is none."""
        if method not in self.suggestions:
            self.suggestions.update(suggest(self.lrs, self.smoothed, (method,), raw=self.losses))
        s = self.suggestions[method]
        if not s.ok:
            raise ValueError(f"range test: no {method!r} suggestion: {s.message}")
        return float(s.lr)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeTestResult:
        """The result :meth:`to_dict` (``range_test.json``'s ``sweep``) wrote: ``None`` in the curve reads
        back as NaN.

        >>> import numpy as np
        >>> r = RangeTestResult(np.array([1e-3, 1e-2]), np.array([2.0, np.nan]), np.array([2.0, np.nan]),
        ...                     "non-finite", {}, {"num_steps": 2})
        >>> back = RangeTestResult.from_dict(r.to_dict())
        >>> back.stop_reason, back.losses.tolist()
        ('non-finite', [2.0, nan])
        """
        def arr(xs):
            return np.array([np.nan if x is None else x for x in xs], dtype=np.float64)

        c = d["curve"]
        return cls(arr(c["lr"]), arr(c["loss"]), arr(c["smoothed"]), d["stop_reason"],
                   {k: Suggestion(**v) for k, v in d["suggestions"].items()}, dict(d["settings"]))

    def to_dict(self) -> dict[str, Any]:
        def clean(a):
            return [float(x) if math.isfinite(x) else None for x in np.asarray(a, dtype=np.float64)]

        return {
            "kind": "lr_range_test",
            "settings": dict(self.settings),
            "stop_reason": self.stop_reason,
            "num_steps_run": self.num_steps_run,
            "curve": {"lr": clean(self.lrs), "loss": clean(self.losses), "smoothed": clean(self.smoothed)},
            "suggestions": {k: v.to_dict() for k, v in self.suggestions.items()},
        }

    def __str__(self) -> str:
        lines = [f"range test: {self.num_steps_run} of {self.settings['num_steps']} steps, "
                 f"stopped: {self.stop_reason}" + (f" at lr={self.stop_lr:.3g}" if self.lrs.size else "")]
        lines += [f"  {s}" for s in self.suggestions.values()]
        return "\n".join(lines)


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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParallelRangeResult:
        """The result :meth:`to_dict` (``range_test.json``'s ``parallel``) wrote (``None`` reads back as NaN)."""
        def arr(xs):
            return np.array([[np.nan if v is None else v for v in x] if isinstance(x, list) else
                             (np.nan if x is None else x) for x in xs], dtype=np.float64)

        return cls(arr(d["lrs"]), arr(d["curves"]["loss"]), arr(d["curves"]["smoothed"]), arr(d["final"]),
                   tuple(d["status"]), np.asarray(d["stopped_at"], np.int64), np.asarray(d["order"], np.int64),
                   d["metric"], np.nan if d["initial"] is None else float(d["initial"]), dict(d["settings"]))

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


def status_and_order(codes: np.ndarray, final: np.ndarray, initial: float, sign: float, frac: float,
                     stopped_at: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each run's status (``good``, ``slow``, ``diverged``) and the ranking, best first."""
    status = _status(codes, final, initial, sign, frac)
    return status, _rank(final, status, stopped_at, sign)


def _gain(final: np.ndarray, initial: float, sign: float, ok: np.ndarray) -> np.ndarray:
    """Improvement of each run (larger is better): a log ratio for positive losses, else a difference."""
    f = final[ok]
    if sign > 0 and initial > 0 and f.size and np.all(f > 0):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(initial / final)
    return sign * (initial - final)


def _status(codes: np.ndarray, final: np.ndarray, initial: float, sign: float, frac: float) -> list[str]:
    bad = (codes != RUNNING) | ~np.isfinite(final)
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

