"""Cyclical families: cosine with warm restarts, cyclic (CLR), one-cycle, and the
momentum schedules that go with cyclic and one-cycle.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.schedules._base import (
    Checks,
    Schedule,
    Step,
    child,
    clip01,
    cosine_interp,
    leaf,
    pow_count,
    register,
    safe_div,
    static,
    with_exponent,
)

__all__ = ["CosineRestarts", "Cyclic", "OneCycle", "MomentumOf"]


def _restart_cycle(s: Step, first: jax.Array, mult: jax.Array):
    """Cycle index ``n``, position in it ``tc`` and its length ``Ti`` for periods ``T0 * mult**n``.

    For ``mult == 1``: ``n`` and ``tc`` come from :meth:`Step.mod` (exact for an integer
    step and a whole-number ``T0``, at any step). Otherwise the cycle starts at
    ``T0 (mult**n - 1)/(mult - 1)``, so ``n = floor(log_m(1 + t (m - 1)/T0))``; the
    float estimate is then corrected by one in either direction so that a step exactly
    at a boundary starts the new cycle.
    """
    t = s.t
    is_one = mult == 1.0
    m = jnp.where(is_one, 2.0, mult)  # a safe stand-in on the unused branch
    n = jnp.maximum(jnp.floor(jnp.log1p(t * (m - 1.0) / first) / jnp.log(m)), 0.0)

    def power(k):
        # m ** 0 on the unused branch: nothing to overflow, and pow(x, 0) returns at once (a runtime
        # period_mult computes both branches; this keeps the one of mult == 1 cheap).
        return m ** jnp.where(is_one, 0.0, k)

    def start(k):
        return first * (power(k) - 1.0) / (m - 1.0)

    n = jnp.where(t < start(n), n - 1.0, n)
    n = jnp.where(t >= start(n + 1.0), n + 1.0, n)
    n = jnp.maximum(n, 0.0)
    tc_one, n_one = s.mod(first)
    return (jnp.where(is_one, n_one, n), jnp.where(is_one, tc_one, t - start(n)),
            jnp.where(is_one, first, first * power(n)))


@register("cosine_restarts")
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017).

    Cycle ``i`` lasts :math:`T_i = T_0\\,m^i` steps (``period_mult`` ``m`` is any real
    :math:`\\ge 1`); inside it, at position :math:`t_c`:

    :math:`\\eta = f + (\\eta_{peak}\\,d^{\\,i} - f)\\,\\tfrac12(1 + \\cos(\\pi\\,t_c/T_i))`

    with ``peak_decay`` ``d`` and ``floor`` ``f``. After ``cycle_limit`` cycles the rate
    stays at the floor (``inf``: never). ``shape='tanh'`` anneals with timm's tanh
    curve inside each cycle instead (bounds ``lower``/``upper``), ``shape='polynomial'``
    with timm's :math:`(1 - p)^{power}`. ``k_decay`` bends the progress
    :math:`p = (t_c/T_i)^k` (timm's ``k_decay``). ``decay_mode='amplitude'`` decays the
    height above the floor instead of the peak (Keras' ``CosineDecayRestarts``:
    cycle top :math:`f + (\\eta_{peak} - f)\\,d^{\\,i}`).

    >>> import lrjax
    >>> s = lrjax.CosineRestarts(1.0, first_period=10, period_mult=2.0)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 20)]
    [1.0, 0.5, 1.0, 0.5]
    """

    peak: float = leaf()
    first_period: float = leaf()
    period_mult: float = leaf(1.0)
    peak_decay: float = leaf(1.0)
    floor: float = leaf(0.0)
    cycle_limit: float = leaf(float("inf"), allow_inf=True)
    shape: str = static("cosine", choices=("cosine", "tanh", "polynomial"))
    lower: float = leaf(-7.0)
    upper: float = leaf(3.0)
    power: float = leaf(1.0)
    k_decay: float = leaf(1.0)
    decay_mode: str = static("peak", choices=("peak", "amplitude"))

    def _validate(self, check: Checks) -> None:
        check.nonneg("peak", "floor", "peak_decay")
        check.positive("first_period", "cycle_limit", "power", "k_decay")
        check.require("period_mult", lambda x: x >= 1, ">= 1")
        check.relation("floor", "peak", "<=")
        check.relation("lower", "upper", "<")

    def _eval(self, s: Step):
        def value(pk):  # pk(x) = x ** k_decay, specialised by with_exponent; one fused kernel per branch
            n, tc, ti = _restart_cycle(s, self.first_period, self.period_mult)
            decay = pow_count(self.peak_decay, n)  # finite gradients at peak_decay = 0 too
            if self.decay_mode == "peak":
                # never below the floor: a decayed peak under it would push the rate below the floor
                top = jnp.maximum(self.peak * decay, self.floor)
            else:
                top = self.floor + (self.peak - self.floor) * decay
            p = pk(clip01(tc / ti))
            if self.shape == "cosine":
                v = cosine_interp(top, self.floor, p)
            elif self.shape == "tanh":
                v = self.floor + (top - self.floor) * 0.5 * (1.0 - jnp.tanh(self.lower * (1.0 - p) + self.upper * p))
            else:
                v = self.floor + (top - self.floor) * with_exponent(self.power, lambda pw: pw(1.0 - p))
            return jnp.where(n >= self.cycle_limit, self.floor, v)

        return with_exponent(self.k_decay, value)

    @property
    def horizon(self):
        m = self.period_mult
        three = jnp.where(m == 1.0, 3.0 * self.first_period,
                          self.first_period * safe_div(m**3 - 1.0, m - 1.0, 3.0))
        return three


@register("cyclic")
class Cyclic(Schedule):
    """Cyclical learning rates (Smith 2017), PyTorch's ``CyclicLR`` semantics.

    With cycle length :math:`T = u + d` (``step_size_up``, ``step_size_down``), ratio
    :math:`r = u/T`, cycle :math:`c = \\lfloor 1 + t/T \\rfloor`, :math:`x = 1 + t/T - c`:
    :math:`h = x/r` if :math:`x \\le r` else :math:`(x - 1)/(r - 1)` and

    :math:`\\eta = \\eta_{base} + (\\eta_{max} - \\eta_{base})\\,h\\,s`,

    :math:`s = 1` (``triangular``), :math:`2^{-(c-1)}` (``triangular2``) or :math:`\\gamma^t`
    (``exp_range``). The companion momentum (:attr:`momentum`) moves the other way:
    :math:`m = m_{max} - (m_{max} - m_{base})\\,h\\,s`.

    >>> import lrjax
    >>> s = lrjax.Cyclic(0.1, 1.0, step_size_up=10)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 15, 20)]
    [0.1, 0.55, 1.0, 0.55, 0.1]
    """

    base_lr: float = leaf()
    max_lr: float = leaf()
    step_size_up: float = leaf(2000.0)
    step_size_down: float = leaf(-1.0, negative_unset=True)  # < 0: same as step_size_up
    mode: str = static("triangular", choices=("triangular", "triangular2", "exp_range"))
    gamma: float = leaf(1.0)
    base_momentum: float = leaf(0.8)
    max_momentum: float = leaf(0.9)

    def _validate(self, check: Checks) -> None:
        check.nonneg("base_lr", "max_lr", "base_momentum", "max_momentum")
        check.positive("step_size_up")
        check.between("gamma", 0.0, 1.0, lo_open=True)  # > 1 would grow without bound (inf) in exp_range
        check.require("step_size_down", lambda x: (x > 0) | (x < 0), "> 0 (or negative for 'same as step_size_up')")

    def _shape(self, s: Step):
        down = jnp.where(self.step_size_down < 0, self.step_size_up, self.step_size_down)
        total = self.step_size_up + down
        ratio = self.step_size_up / total
        # x = 1 + t/T - c from the position in the cycle (Step.mod): exact for an integer step and
        # a whole-number cycle at any step, no cancellation at large t.
        rem, k = s.mod(total)
        x = rem / total
        h = jnp.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))
        if self.mode == "triangular":
            return h
        if self.mode == "triangular2":
            return h * 2.0 ** (-k)  # cycle c = k + 1 scales by 2**-(c - 1)
        return h * pow_count(self.gamma, s.t)

    def _eval(self, s: Step):
        return self.base_lr + (self.max_lr - self.base_lr) * self._shape(s)

    def _momentum(self, s: Step):  # from the exact position in the cycle (Step.mod), like the rate
        return self.max_momentum - (self.max_momentum - self.base_momentum) * self._shape(s)

    @property
    def momentum(self) -> MomentumOf:
        """The momentum (or Adam ``b1``) schedule that cycles opposite to the rate."""
        return MomentumOf(self)

    @property
    def horizon(self):
        down = jnp.where(self.step_size_down < 0, self.step_size_up, self.step_size_down)
        return 3.0 * (self.step_size_up + down)


@register("one_cycle")
class OneCycle(Schedule):
    """The one-cycle policy (Smith & Topin 2018), PyTorch's ``OneCycleLR`` semantics.

    :math:`\\eta_{init} = \\eta_{max}/\\text{div}`, :math:`\\eta_{min} = \\eta_{init}/\\text{final\\_div}`,
    :math:`N` = ``total_steps``, :math:`q` = ``pct_start``.
    Two phases: :math:`\\eta_{init} \\to \\eta_{max}` ending at step :math:`qN - 1`, then
    :math:`\\eta_{max} \\to \\eta_{min}` ending at :math:`N - 1`. Three phases
    (``three_phase=True``): up to :math:`qN - 1`, back down to :math:`\\eta_{init}` at
    :math:`2qN - 2`, then to :math:`\\eta_{min}` at :math:`N - 1`. Inside a phase from ``a``
    to ``b`` (``p`` its progress): ``cos``: :math:`b + (a - b)(1 + \\cos \\pi p)/2`;
    ``linear``: :math:`a + p(b - a)`. The rate holds :math:`\\eta_{min}` after step ``N - 1``
    (``extend_last_phase=True``: the last phase's formula runs on to step ``N``, as
    PyTorch evaluates it there, and that value is held).

    The companion momentum (:attr:`momentum`) goes ``max_momentum -> base_momentum ->
    max_momentum`` (three phases: stays at ``max_momentum`` in the last one).

    >>> import lrjax
    >>> s = lrjax.OneCycle(1.0, total_steps=100)
    >>> round(float(s(29)), 3), round(float(s(0)), 3)
    (1.0, 0.04)
    """

    max_lr: float = leaf()
    total_steps: float = leaf()
    pct_start: float = leaf(0.3)
    div_factor: float = leaf(25.0)
    final_div_factor: float = leaf(1e4)
    anneal_strategy: str = static("cos", choices=("cos", "linear"))
    three_phase: bool = static(False, choices=(False, True))
    base_momentum: float = leaf(0.85)
    max_momentum: float = leaf(0.95)
    # True: PyTorch's OneCycleLR, which also evaluates the last phase's formula at step N
    # (progress a little past 1) before it refuses to step further; held from N on.
    extend_last_phase: bool = static(False, choices=(False, True))

    def _validate(self, check: Checks) -> None:
        check.nonneg("max_lr", "base_momentum", "max_momentum")
        check.positive("total_steps", "div_factor", "final_div_factor")
        check.between("pct_start", 0.0, 1.0)  # PyTorch accepts both ends (0.0: no warmup phase)
        check.relation("base_momentum", "max_momentum", "<=")
        n, q = check.value("total_steps"), check.value("pct_start")
        if self.three_phase and n is not None and q is not None and np.any(2 * q * n - 2 > n - 1):
            raise ValueError(
                f"OneCycle: with three_phase=True the second phase must end by the last step, i.e. "
                f"2*pct_start*total_steps - 2 <= total_steps - 1 (pct_start <= about 0.5), got "
                f"pct_start={float(np.max(q)):g} and total_steps={float(np.max(n)):g}"
            )

    def _phases(self):
        init = self.max_lr / self.div_factor
        low = init / self.final_div_factor
        n = self.total_steps
        e1 = self.pct_start * n - 1.0
        if self.three_phase:
            ends = (e1, 2.0 * self.pct_start * n - 2.0, n - 1.0)
            lr = ((init, self.max_lr), (self.max_lr, init), (init, low))
            mom = ((self.max_momentum, self.base_momentum), (self.base_momentum, self.max_momentum),
                   (self.max_momentum, self.max_momentum))
        else:
            ends = (e1, n - 1.0)
            lr = ((init, self.max_lr), (self.max_lr, low))
            mom = ((self.max_momentum, self.base_momentum), (self.base_momentum, self.max_momentum))
        return ends, lr, mom

    def _interp(self, a, b, p):
        if self.anneal_strategy == "cos":
            return cosine_interp(a, b, p)
        return a + p * (b - a)

    def _piecewise(self, t, pairs):
        ends, _, _ = self._phases()
        start = 0.0
        out = pairs[-1][1] + jnp.zeros_like(t)  # after the last phase: its end value
        # Walk the phases backwards so the earliest phase containing t wins.
        bounds = []
        for e, (a, b) in zip(ends, pairs):
            bounds.append((start, e, a, b))
            start = e
        if self.extend_last_phase:
            s, e, a, b = bounds[-1]
            out = self._interp(a, b, jnp.maximum(safe_div(jnp.minimum(t, e + 1.0) - s, e - s, 1.0), 0.0))
        for s, e, a, b in reversed(bounds):
            p = clip01(safe_div(t - s, e - s, 1.0))
            out = jnp.where(t <= e, self._interp(a, b, p), out)
        return out

    def _value(self, t):
        _, lr, _ = self._phases()
        return self._piecewise(t, lr)

    def _momentum(self, s: Step):
        _, _, mom = self._phases()
        return self._piecewise(s.t, mom)

    @property
    def momentum(self) -> MomentumOf:
        """The momentum (or Adam ``b1``) schedule that goes with this rate."""
        return MomentumOf(self)

    @property
    def horizon(self):
        return self.total_steps

    def _has_total(self) -> bool:
        return True


@register("momentum_of")
class MomentumOf(Schedule):
    """The momentum schedule that accompanies a cyclic or one-cycle rate schedule.

    >>> import lrjax
    >>> m = lrjax.OneCycle(1.0, total_steps=100).momentum
    >>> round(float(m(0)), 3), round(float(m(29)), 3)
    (0.95, 0.85)
    """

    schedule: Schedule = child()

    def _validate(self, check: Checks) -> None:
        if not hasattr(self.schedule, "_momentum"):
            raise TypeError(
                f"MomentumOf: schedule must be a Cyclic or OneCycle schedule (one with a companion momentum), "
                f"got {type(self.schedule).__name__}"
            )

    def _eval(self, s: Step):
        return self.schedule._momentum(s)

    @property
    def horizon(self):
        return self.schedule.horizon
