"""Learning-rate suggestions from a range-test curve: pure numpy, no JAX.

Three rules, each returning a :class:`Suggestion` that carries either a rate or
a message saying why no rate can be read off the curve:

* ``steepest`` — the rate where the smoothed loss falls fastest against
  :math:`\\log_{10}\\eta`: :math:`\\arg\\min_i\\, \\partial L_i / \\partial \\log_{10} \\eta_i`,
  after dropping non-finite points and the first ``skip_start`` / last
  ``skip_end`` points (the start is noisy, the end is diverging).
* ``minimum`` — the rate at the lowest smoothed loss, divided by 10 (printed and drawn as ``minimum/10``).
* ``valley`` — fastai's default: inside the longest decreasing stretch of the
  smoothed loss, the point :math:`1/3 + 1/6` of the way along it.

>>> import numpy as np
>>> lrs = np.logspace(-4, 0, 50)
>>> loss = 1.0 / (1.0 + np.exp(8 * (np.log10(lrs) + 2)))   # falls around 1e-2
>>> s = steepest(lrs, loss)
>>> round(float(np.log10(s.lr)), 1)
-2.0
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lrjax._checks import closest

__all__ = ["Suggestion", "steepest", "minimum", "valley", "suggest", "loss_noise", "SUGGESTIONS", "LABELS",
           "default_smoothing"]

# Relative spread of the smoothed loss below which a curve is called flat.
FLAT_TOL = 1e-3
# Fewest usable points a rule needs.
MIN_POINTS = 5
#: What each rule's rate is, as printed and drawn (``minimum`` suggests the minimum's rate divided by 10).
LABELS = {"steepest": "steepest", "minimum": "minimum/10", "valley": "valley"}


def default_smoothing(num_steps: int) -> float:
    r"""The EMA factor :math:`\beta` of the smoothed loss when none is given: :math:`\beta = n / (n + 10)`
    for a sweep of :math:`n` updates.

    The bias-corrected EMA :math:`a_i = \beta a_{i-1} + (1-\beta)\ell_i` weighs the loss of :math:`j` updates
    ago by :math:`(1-\beta)\beta^j`: its mean lag is :math:`\beta / (1-\beta)` updates, and it divides the
    variance of independent batch noise by :math:`(1+\beta)/(1-\beta)`. A fixed :math:`\beta = 0.98` lags
    49 updates — half of a 100-update sweep, so the curve (and every suggestion read off it) sits far to the
    right of the loss it smooths. :math:`\beta = n/(n+10)` keeps the lag at :math:`n/10` updates, a tenth of
    the sweep (a factor :math:`(\eta_{max}/\eta_{min})^{1/10}` in rate on the exponential ramp), and divides
    the noise's standard deviation by :math:`\sqrt{1 + n/5}`: 100 updates give :math:`\beta = 0.909` (lag 10),
    1000 give 0.990. Less smoothing than that lets batch noise make the steepest slope (on the noisy
    quadratic of the tests, :math:`\beta = 0.83` picks a wobble a factor 5 below the descent).

    >>> default_smoothing(100), default_smoothing(1000)
    (0.9090909090909091, 0.9900990099009901)
    """
    n = max(int(num_steps), 0)
    return n / (n + 10.0)


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """One suggested rate, or the reason there is none.

    Attributes:
      method: the rule's name (``"steepest"``, ``"minimum"``, ``"valley"``).
      lr: the suggested learning rate, or ``None`` when the curve says nothing.
      index: the curve index the rule picked (``None`` without a rate).
      loss: the smoothed loss at that index (``None`` without a rate).
      message: why there is no rate (empty when there is one).
    """

    method: str
    lr: float | None
    index: int | None = None
    loss: float | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.lr is not None

    @property
    def label(self) -> str:
        """What the rate is: the method's name, ``minimum/10`` for ``minimum`` (:data:`LABELS`)."""
        return LABELS.get(self.method, self.method)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        """``steepest: lr=0.0025 (step 61, smoothed loss 1.23)``; for ``minimum``, where the minimum is.

        >>> print(Suggestion("minimum", 0.002, 57, 0.31))
        minimum/10: lr=0.002 (a tenth of 0.02, the rate at the lowest smoothed loss 0.31, step 57)
        """
        if not self.ok:
            return f"{self.label}: no suggestion — {self.message}"
        if self.method == "minimum":
            return (f"{self.label}: lr={self.lr:.3g} (a tenth of {10 * self.lr:.3g}, the rate at the lowest smoothed "
                    f"loss {self.loss:.4g}, step {self.index})")
        return f"{self.label}: lr={self.lr:.3g} (step {self.index}, smoothed loss {self.loss:.4g})"


def _check_curve(lrs: Any, losses: Any) -> tuple[np.ndarray, np.ndarray]:
    lrs = np.asarray(lrs, dtype=np.float64).reshape(-1)
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    if lrs.shape != losses.shape:
        raise ValueError(
            f"lrs and losses must have the same length, got len(lrs)={lrs.size} and len(losses)={losses.size}"
        )
    return lrs, losses


def _finite(lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Indices of points with a finite, positive rate and a finite loss."""
    return np.flatnonzero(np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0))


def loss_noise(losses: Any) -> float:
    """Batch-to-batch noise of a raw loss curve: a robust standard deviation of its first differences,
    ``median(|Δℓ|) / (0.6745·√2)`` over the finite points (the trend and the final blow-up hardly move it).

    >>> import numpy as np
    >>> round(loss_noise(np.random.default_rng(0).normal(5.0, 0.1, 4000)), 2)
    0.1
    """
    x = np.asarray(losses, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size < 3:
        return 0.0
    return float(np.median(np.abs(np.diff(x))) / (0.6745 * np.sqrt(2.0)))


def _flat_message(values: np.ndarray, noise: float = 0.0) -> str | None:
    spread = float(np.max(values) - np.min(values))
    drop = float(np.max(np.maximum.accumulate(values) - values))  # largest fall, earlier point to later
    scale = max(float(np.max(np.abs(values))), 1e-12)
    if spread <= FLAT_TOL * scale:
        return (
            f"the curve is too flat: the smoothed loss moves by {spread / scale:.2%} of its size over the sweep "
            f"(needs more than {FLAT_TOL:.1%}); raise max_lr, or check that the loss depends on the parameters"
        )
    if drop <= FLAT_TOL * scale:
        return "the smoothed loss never decreases over the usable part of the curve; lower min_lr"
    if drop <= noise:
        return (
            f"the curve is too flat: the smoothed loss falls by at most {drop:.3g}, less than the batch-to-batch "
            f"noise of the loss ({noise:.3g}); raise max_lr or num_steps"
        )
    return None


def _short_message(n: int, total: int, what: str) -> str:
    return (
        f"the curve is too short: {n} usable point(s) of {total} {what} (needs at least {MIN_POINTS}); "
        f"raise num_steps, lower min_lr, or raise diverge_factor so the sweep runs longer"
    )


def _skips(n: int, skip_start: int | None, skip_end: int | None) -> tuple[int, int]:
    s = max(1, n // 10) if skip_start is None else int(skip_start)
    e = 1 if skip_end is None else int(skip_end)
    if s < 0 or e < 0:
        raise ValueError(f"skip_start and skip_end must be >= 0, got skip_start={s}, skip_end={e}")
    return s, e


def steepest(lrs: Any, losses: Any, *, skip_start: int | None = None, skip_end: int | None = None,
             noise: float = 0.0) -> Suggestion:
    """The rate where the smoothed loss falls fastest against ``log10(lr)``.

    Non-finite points are dropped first; then ``skip_start`` points (default:
    10 % of the curve, at least one) and ``skip_end`` points (default 1) are
    cut. The slope is ``numpy.gradient(loss, log10(lr))`` on what remains, up to
    its lowest loss: past the minimum the loss rises on average, and a fall there
    is the instability before divergence, not a rate to train at.

    >>> import numpy as np
    >>> lrs = np.logspace(-3, 0, 31)
    >>> steepest(lrs, np.full(31, 2.0)).ok     # a flat curve has no steepest point
    False
    """
    lrs, losses = _check_curve(lrs, losses)
    keep = _finite(lrs, losses)
    s, e = _skips(keep.size, skip_start, skip_end)
    idx = keep[s : keep.size - e]
    if idx.size < MIN_POINTS:
        return Suggestion("steepest", None, message=_short_message(
            idx.size, lrs.size, f"after dropping non-finite points and skipping {s} at the start and {e} at the end"))
    x, y = np.log10(lrs[idx]), losses[idx]
    if (msg := _flat_message(y, noise)) is not None:
        return Suggestion("steepest", None, message=msg)
    if np.any(np.diff(x) <= 0):
        return Suggestion("steepest", None, message="the rates must increase along the curve to take a slope")
    slope = np.gradient(y, x)
    j = int(np.argmin(slope[: int(np.argmin(y)) + 1]))  # on the way down: past the lowest loss it is unstable
    if not slope[j] < 0:
        return Suggestion("steepest", None, message=(
            "the smoothed loss never decreases over the usable part of the curve; lower min_lr"))
    i = int(idx[j])
    return Suggestion("steepest", float(lrs[i]), i, float(losses[i]))


def minimum(lrs: Any, losses: Any, *, factor: float = 10.0, noise: float = 0.0) -> Suggestion:
    """The rate at the lowest finite smoothed loss, divided by ``factor`` (10).

    >>> import numpy as np
    >>> minimum([1e-3, 1e-2, 1e-1, 1.0, 10.0], [1.0, 0.8, 0.5, 0.3, 9.0]).lr
    0.1
    """
    lrs, losses = _check_curve(lrs, losses)
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got factor={factor}")
    keep = _finite(lrs, losses)
    if keep.size < MIN_POINTS:
        return Suggestion("minimum", None, message=_short_message(keep.size, lrs.size, "with a finite loss"))
    if (msg := _flat_message(losses[keep], noise)) is not None:
        return Suggestion("minimum", None, message=msg)
    i = int(keep[np.argmin(losses[keep])])
    if i == keep[0]:
        return Suggestion("minimum", None, message=(
            "the lowest loss is at the first rate: the loss only rises; lower min_lr"))
    return Suggestion("minimum", float(lrs[i] / factor), i, float(losses[i]))


def _longest_decreasing(y: np.ndarray) -> tuple[int, int]:
    """First and last index of a longest strictly decreasing subsequence of ``y`` (O(n²))."""
    n = y.size
    length = np.ones(n, dtype=np.int64)
    first = np.arange(n)
    for i in range(1, n):
        prev = np.flatnonzero(y[:i] > y[i])
        if prev.size:
            j = prev[np.argmax(length[prev])]  # earliest among the longest
            length[i] = length[j] + 1
            first[i] = first[j]
    end = int(np.argmax(length))
    return int(first[end]), end


def valley(lrs: Any, losses: Any, *, noise: float = 0.0) -> Suggestion:
    """fastai's ``valley``: within the longest decreasing run of the smoothed loss
    (a longest strictly decreasing subsequence, spanning indices ``a..b``), the
    point at ``a + ⌊(b - a)/3⌋ + ⌊(b - a)/6⌋``.

    >>> import numpy as np
    >>> lrs = np.logspace(-4, 0, 13)
    >>> loss = np.array([5, 5, 4.9, 4.5, 4, 3, 2, 1.5, 1.2, 1.1, 3, 8, 20.0])
    >>> v = valley(lrs, loss)
    >>> v.index
    4
    """
    lrs, losses = _check_curve(lrs, losses)
    keep = _finite(lrs, losses)
    if keep.size < MIN_POINTS:
        return Suggestion("valley", None, message=_short_message(keep.size, lrs.size, "with a finite loss"))
    y = losses[keep]
    if (msg := _flat_message(y, noise)) is not None:
        return Suggestion("valley", None, message=msg)
    a, b = _longest_decreasing(y)
    if b - a < 2:
        return Suggestion("valley", None, message=(
            "the smoothed loss has no decreasing stretch longer than two points; lower min_lr or raise num_steps"))
    span = b - a
    i = int(keep[a + span // 3 + span // 6])
    return Suggestion("valley", float(lrs[i]), i, float(losses[i]))


SUGGESTIONS = {"steepest": steepest, "minimum": minimum, "valley": valley}


def suggest(lrs: Any, losses: Any, methods: Any = ("steepest", "minimum", "valley"), *,
            raw: Any = None) -> dict[str, Suggestion]:
    """Every requested rule on one (smoothed) curve: ``{method: Suggestion}``.

    With ``raw`` (the unsmoothed losses), a curve whose largest fall is below the loss's
    batch-to-batch noise (:func:`loss_noise`) is called flat: no rule suggests a rate from noise.

    >>> import numpy as np
    >>> lrs = np.logspace(-4, 0, 40)
    >>> loss = 2.0 - np.tanh(3 * (np.log10(lrs) + 2)) + np.where(lrs > 0.3, 50 * (lrs - 0.3), 0)
    >>> sorted(suggest(lrs, loss))
    ['minimum', 'steepest', 'valley']
    """
    if isinstance(methods, str):
        methods = (methods,)
    noise = 0.0 if raw is None else loss_noise(raw)
    out = {}
    for m in methods:
        if m not in SUGGESTIONS:
            raise ValueError(
                f"suggestion method must be one of {', '.join(map(repr, SUGGESTIONS))}, got {m!r}"
                f"{closest(m, SUGGESTIONS)}"
            )
        out[m] = SUGGESTIONS[m](lrs, losses, noise=noise)
    return out
