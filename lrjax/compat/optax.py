"""optax's schedule functions (``optax.schedules``) as native lrjax schedules, by their own names and arguments.

Moving a codebase from optax's closures to lrjax schedules is one import::

    from lrjax.compat import optax as lro

    sched = lro.warmup_cosine_decay_schedule(0.0, 1e-3, warmup_steps=500, decay_steps=10_000)
    tx = lrjax.inject(optax.adamw, learning_rate=sched)   # in the state: sweepable, replaceable, checkpointed

Each function takes optax's arguments and defaults and returns an lrjax schedule ``s`` with
``s(t)`` equal to optax's ``schedule(t)`` at every step (float32 arithmetic, as optax) — the
degenerate cases included: a non-positive ``transition_steps`` gives a constant, a negative
``transition_begin`` counts as 0, ``exponential_decay``'s ``end_value`` bounds every step (before
``transition_begin`` too), a ``decay_rate`` of 0 gives a constant, ``join_schedules`` ignores the
boundaries or schedules that ``zip`` leaves over and lets a later boundary override an earlier
one, the one-cycle schedules keep optax's dictionary of boundaries (two phases that end on the
same step: the later one wins). Negative values, which optax allows, come out negative
(:class:`~lrjax.schedules._optax_families.Affine` around the native family). ``lrjax.to_spec(s)``
shows the native composition.

lrjax refuses, with a ValueError naming the argument, what optax accepts but turns into
infinite or NaN values (a negative ``power`` or ``exponent``: infinite at the end of the decay; a
negative ``decay_rate``: NaN between steps), non-finite numbers, and an empty list of schedules
(optax fails when it is called). ``join_schedules`` takes lrjax schedules (what these functions
return), not optax closures. Arguments are numbers (optax also takes arrays of them). Nothing here
calls optax: the values are those of lrjax's own families.

>>> from lrjax.compat import optax as lro
>>> s = lro.exponential_decay(1.0, transition_steps=10, decay_rate=0.5, transition_begin=5, end_value=0.3)
>>> [round(float(s(t)), 4) for t in (0, 5, 15, 25, 100)]
[1.0, 1.0, 0.5, 0.3, 0.3]
>>> lro.linear_schedule(1.0, -1.0, transition_steps=4)(4)   # negative values, as optax
Array(-1., dtype=float32)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Sequence as Seq
from typing import Any

from lrjax._checks import choice, fail
from lrjax._checks import number as _num
from lrjax.compat._common import positive
from lrjax.schedules import (
    Affine,
    Clamp,
    Constant,
    CosineDecay,
    Exponential,
    Linear,
    OneCycle,
    PiecewiseConstant,
    Polynomial,
    Schedule,
    Sequence,
    Shift,
    Warmup,
)

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]


# -- building blocks ------------------------------------------------------------------------

def _constant(value: float) -> Schedule:
    """``value`` at every step, negative values included."""
    return Constant(value) if value >= 0 else Affine(Constant(-value), scale=-1.0)


def _negate(s: Schedule) -> Schedule:
    """``-s``, written as simply as possible."""
    if isinstance(s, Constant):
        return _constant(-float(s.value))
    if isinstance(s, Affine) and float(s.scale) == -1.0 and float(s.offset) == 0.0:
        return s.schedule
    return Affine(s, scale=-1.0)


def _shifted(s: Schedule, origin: float) -> Schedule:
    """``s(t - origin)``."""
    return s if origin == 0 else Shift(s, shift=-origin)


def _sequence(pieces: list[tuple[float, Schedule]]) -> Schedule:
    """Pieces ``(origin, s)`` with increasing origins; piece ``i`` gives ``s(t - origin)`` from its origin on
    (the first from step 0). Of the pieces that begin at or before step 0, only the last is ever seen."""
    k = max((i for i, (o, _) in enumerate(pieces) if o <= 0), default=0)
    pieces = pieces[k:]
    first = _shifted(pieces[0][1], pieces[0][0])
    if len(pieces) == 1:
        return first
    return Sequence([first] + [s for _, s in pieces[1:]], [o for o, _ in pieces[1:]])


def _join(schedules: list[Schedule], boundaries: list[float]) -> Schedule:
    """optax's ``join_schedules``: ``s0(t)``, then for each boundary in turn ``s_{i+1}(t - b_i)`` where
    ``t >= b_i``. A boundary that a later one does not exceed is never seen (the later one overrides it)."""
    pairs = list(zip(boundaries, schedules[1:]))
    kept = [(b, s) for i, (b, s) in enumerate(pairs) if all(b < later for later, _ in pairs[i + 1:])]
    return _sequence([(0.0, schedules[0])] + kept)


def _pairs(owner: str, boundaries_and_scales: Any) -> list[tuple[float, float]]:
    """``{step: scale}`` sorted by step; scales must be >= 0 (optax's own check) and finite."""
    if boundaries_and_scales is None:
        return []
    if not isinstance(boundaries_and_scales, Mapping):
        raise fail(owner, "boundaries_and_scales", boundaries_and_scales, "a dict {step: scale} or None", TypeError)
    out = []
    for b, s in sorted(boundaries_and_scales.items()):
        step = _num(owner, "boundaries_and_scales key", b)
        scale = _num(owner, f"boundaries_and_scales[{b!r}]", s)
        if scale < 0:
            raise ValueError(f"{owner}: expects non-negative scale factors, got boundaries_and_scales[{b!r}]={s!r}")
        out.append((step, scale))
    return out


def _cumulative(init: float, scales: list[float]) -> list[float]:
    values = [init]
    for s in scales:
        values.append(values[-1] * s)
    return values


def _ramp(kind: str, start: float, end: float, length: float) -> Schedule:
    """From ``start`` at 0 to ``end`` at ``length``, linearly or along half a cosine (start, end >= 0)."""
    if start == end:
        return Constant(start)
    if kind == "linear":
        return Linear(start, end, length)
    if start > end:
        return CosineDecay(start, length, floor=end)
    return Warmup(Constant(end), length, init_value=start, shape="cosine")


def _linear(init: float, end: float, steps: float, begin: float = 0.0) -> Schedule:
    if steps <= 0:
        return _constant(init)
    if init >= 0 and end >= 0:
        s = Linear(init, end, steps)
    else:
        s = Affine(Linear(0.0, 1.0, steps), scale=end - init, offset=init)
    return _shifted(s, max(begin, 0.0))


def _cosine(owner: str, init: float, steps: float, alpha: float, exponent: float,
            floor: float | None = None) -> Schedule:
    """optax's ``init * ((1 - alpha) * c(t) ** exponent + alpha)``, ``c = (1 + cos(pi min(t, T) / T)) / 2``;
    ``floor``: the absolute floor ``init * alpha`` as the caller wrote it (``end_value``)."""
    if exponent < 0:
        raise ValueError(
            f"{owner}: exponent must be >= 0 in lrjax, got exponent={exponent!r}: optax's cosine ** exponent is "
            f"infinite at the end of the decay"
        )
    if exponent == 0:  # c ** 0 = 1 at every step, 0 ** 0 included
        return _constant(init)
    if init >= 0 and 0 <= alpha <= 1:
        if floor is not None and 0 <= floor <= init:
            return CosineDecay(init, steps, floor=floor, exponent=exponent)
        return CosineDecay(init, steps, floor=alpha, floor_mode="relative", exponent=exponent)
    return Affine(CosineDecay(1.0, steps, exponent=exponent), scale=init * (1.0 - alpha), offset=init * alpha)


def _exponential_core(init: float, steps: float, rate: float, begin: float, staircase: bool,
                      lo: float | None, hi: float | None) -> Schedule:
    """``clip(E(t), lo, hi)`` for ``init >= 0``, ``rate > 0``: ``E = init`` before ``begin``, then
    ``init * rate ** ((t - begin) / steps)`` (the exponent floored with ``staircase``)."""
    if hi is not None and hi <= 0:  # E >= 0 everywhere
        return _constant(hi)
    if lo is not None and lo <= 0:
        lo = None
    held = init if lo is None else max(init, lo)
    held = held if hi is None else min(held, hi)
    if rate == 1:
        return _constant(held)
    native = lo if (rate < 1 and lo is not None) else hi if (rate > 1 and hi is not None) else 0.0
    decay = Exponential(init, decay_rate=rate, decay_steps=steps, end_value=native, staircase=staircase)
    s = decay if begin <= 0 else Sequence([Constant(held), decay], [begin])
    if rate > 1 and lo is not None:
        s = Clamp(s, floor=lo)
    elif rate < 1 and hi is not None:
        s = Clamp(s, ceiling=hi)
    return s


def _exponential(owner: str, init: float, steps: float, rate: float, begin: float, staircase: bool,
                 end: float | None) -> Schedule:
    if steps <= 0 or rate == 0:  # optax: a constant, end_value not applied
        return _constant(init)
    if rate < 0:
        raise ValueError(
            f"{owner}: decay_rate must be >= 0 in lrjax, got decay_rate={rate!r}: optax raises it to fractional "
            f"powers (NaN between steps), or to alternating signs with staircase=True"
        )
    begin = max(begin, 0.0)
    if end is None:
        lo = hi = None
    elif rate < 1:  # optax: jnp.maximum(value, end_value)
        lo, hi = end, None
    else:  # optax: jnp.minimum(value, end_value)
        lo, hi = None, end
    if init >= 0:
        return _exponential_core(init, steps, rate, begin, staircase, lo, hi)
    # -x bounded below by e is -(x bounded above by -e), and the other way round
    return _negate(_exponential_core(-init, steps, rate, begin, staircase,
                                     None if hi is None else -hi, None if lo is None else -lo))


def _start_of_exponential(init: float, steps: float, rate: float, end: float | None) -> float:
    """optax's ``exponential_decay(init, ...)(0)``."""
    if steps <= 0 or rate == 0 or end is None:
        return init
    return max(init, end) if rate < 1 else min(init, end)


def _piecewise_interpolate(owner: str, kind: str, init: float, pairs: list[tuple[float, float]]) -> Schedule:
    if init < 0:
        return _negate(_piecewise_interpolate(owner, kind, -init, pairs))
    bounds = [0.0] + [b for b, _ in pairs]
    values = _cumulative(init, [s for _, s in pairs])
    pieces: list[tuple[float, Schedule]] = []
    for i in range(len(pairs)):
        a, b = bounds[i], bounds[i + 1]
        if not a < b or b <= 0:  # empty (a first boundary <= 0), or over before step 0
            continue
        pieces.append((a, _ramp(kind, values[i], values[i + 1], max(b - a, 1.0))))  # optax: length >= 1
    pieces.append((bounds[-1], Constant(values[-1])))
    return _sequence(pieces)


def _onecycle_scales(owner: str, peak: float, div: float, final_div: float) -> float:
    if div == 0:
        raise ValueError(f"{owner}: div_factor must be != 0 (optax divides by it), got div_factor={div!r}")
    if final_div == 0:
        raise ValueError(f"{owner}: final_div_factor must be != 0 (optax divides by it), got final_div_factor=0")
    return peak / div


# -- optax's functions ----------------------------------------------------------------------

def constant_schedule(value: float) -> Schedule:
    """``value`` at every step → :class:`lrjax.Constant` (negative: ``Affine(Constant(-value), scale=-1)``).

    >>> float(constant_schedule(0.1)(1000))
    0.10000000149011612
    """
    return _constant(_num("constant_schedule", "value", value))


def polynomial_schedule(init_value: float, end_value: float, power: float, transition_steps: int,
                        transition_begin: int = 0) -> Schedule:
    """``(init - end) * (1 - min(max(t - B, 0), T) / T) ** power + end`` → :class:`lrjax.Polynomial` read
    ``B`` steps late (:class:`lrjax.Shift`); ``transition_steps <= 0`` or ``power == 0``: the constant ``init``.

    >>> s = polynomial_schedule(1.0, 0.0, power=2, transition_steps=10, transition_begin=5)
    >>> [float(s(t)) for t in (0, 5, 10, 15)]
    [1.0, 1.0, 0.25, 0.0]
    """
    owner = "polynomial_schedule"
    init, end = _num(owner, "init_value", init_value), _num(owner, "end_value", end_value)
    p = _num(owner, "power", power)
    steps, begin = _num(owner, "transition_steps", transition_steps), _num(owner, "transition_begin", transition_begin)
    if steps <= 0:
        return _constant(init)
    if p < 0:
        raise ValueError(
            f"{owner}: power must be >= 0 in lrjax, got power={power!r}: optax's (1 - t/T) ** power is infinite "
            f"at the end of the transition"
        )
    if p == 0:  # frac ** 0 = 1 at every step, 0 ** 0 included
        return _constant(init)
    if init >= 0 and end >= 0:
        s = Polynomial(init, end_value=end, decay_steps=steps, power=p)
    else:
        s = Affine(Polynomial(1.0, end_value=0.0, decay_steps=steps, power=p), scale=init - end, offset=end)
    return _shifted(s, max(begin, 0.0))


def linear_schedule(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """``polynomial_schedule`` with ``power=1`` → :class:`lrjax.Linear` (read ``transition_begin`` steps late).

    >>> [float(linear_schedule(1.0, 0.5, transition_steps=10)(t)) for t in (0, 5, 20)]
    [1.0, 0.75, 0.5]
    """
    owner = "linear_schedule"
    init, end = _num(owner, "init_value", init_value), _num(owner, "end_value", end_value)
    steps, begin = _num(owner, "transition_steps", transition_steps), _num(owner, "transition_begin", transition_begin)
    return _linear(init, end, steps, begin)


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """A linear warmup to ``peak_value``, then held: ``linear_schedule(init_value, peak_value, warmup_steps)``."""
    owner = "warmup_constant_schedule"
    init, peak = _num(owner, "init_value", init_value), _num(owner, "peak_value", peak_value)
    return _linear(init, peak, _num(owner, "warmup_steps", warmup_steps))


def piecewise_constant_schedule(init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
                                ) -> Schedule:
    """``init`` times every scale whose boundary ``t`` has reached → :class:`lrjax.PiecewiseConstant`
    (``side="right"``: the value changes AT the boundary).

    >>> s = piecewise_constant_schedule(1.0, {10: 0.1, 20: 0.5})
    >>> [round(float(s(t)), 4) for t in (9, 10, 20)]
    [1.0, 0.1, 0.05]
    """
    owner = "piecewise_constant_schedule"
    init = _num(owner, "init_value", init_value)
    pairs = _pairs(owner, boundaries_and_scales)
    if not pairs:
        return _constant(init)
    values = _cumulative(abs(init), [s for _, s in pairs])
    s = PiecewiseConstant(boundaries=[b for b, _ in pairs], values=values, side="right")
    return s if init >= 0 else _negate(s)


def piecewise_interpolate_schedule(interpolate_type: str, init_value: float,
                                   boundaries_and_scales: Mapping[int, float] | None = None) -> Schedule:
    """Linear or cosine interpolation between ``init * cumprod(scales)`` at the boundaries, held after the last
    → a :class:`lrjax.Sequence` of :class:`lrjax.Linear` (``"linear"``) or :class:`lrjax.CosineDecay` /
    cosine :class:`lrjax.Warmup` ramps (``"cosine"``), one per interval (optax stretches an interval shorter
    than one step to one step).

    >>> s = piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
    >>> [round(float(s(t)), 6) for t in (0, 2, 4, 6, 8, 10)]
    [1.0, 0.55, 0.1, 0.0505, 0.001, 0.001]
    """
    owner = "piecewise_interpolate_schedule"
    kind = choice(owner, "interpolate_type", interpolate_type, ("linear", "cosine"))
    init = _num(owner, "init_value", init_value)
    return _piecewise_interpolate(owner, kind, init, _pairs(owner, boundaries_and_scales or None))


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float, transition_begin: int = 0,
                      staircase: bool = False, end_value: float | None = None) -> Schedule:
    """``init * decay_rate ** ((t - B) / T)`` from ``B`` on (floored exponent with ``staircase``), ``init``
    before, bounded at every step by ``end_value`` (below if ``decay_rate < 1``, else above) →
    :class:`lrjax.Exponential`, after a :class:`lrjax.Constant` when ``B > 0`` (:class:`lrjax.Sequence`).
    ``transition_steps <= 0`` or ``decay_rate == 0``: the constant ``init`` (``end_value`` unused).

    >>> s = exponential_decay(1.0, transition_steps=10, decay_rate=0.5, staircase=True)
    >>> [float(s(t)) for t in (0, 9, 10, 25)]
    [1.0, 1.0, 0.5, 0.25]
    """
    owner = "exponential_decay"
    init = _num(owner, "init_value", init_value)
    steps, rate = _num(owner, "transition_steps", transition_steps), _num(owner, "decay_rate", decay_rate)
    begin = _num(owner, "transition_begin", transition_begin)
    end = None if end_value is None else _num(owner, "end_value", end_value)
    return _exponential(owner, init, steps, rate, begin, bool(staircase), end)


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
                          ) -> Schedule:
    """``init * ((1 - alpha) * ((1 + cos(pi min(t, T) / T)) / 2) ** exponent + alpha)`` →
    :class:`lrjax.CosineDecay` with the relative floor ``alpha`` (``alpha`` outside [0, 1] or a negative
    ``init``: ``Affine(CosineDecay(1, T), init (1 - alpha), init alpha)``).

    >>> s = cosine_decay_schedule(1.0, decay_steps=10, alpha=0.1)
    >>> [round(float(s(t)), 4) for t in (0, 5, 10, 20)]
    [1.0, 0.55, 0.1, 0.1]
    """
    owner = "cosine_decay_schedule"
    init = _num(owner, "init_value", init_value)
    steps = positive(owner, "decay_steps", decay_steps)
    return _cosine(owner, init, steps, _num(owner, "alpha", alpha), _num(owner, "exponent", exponent))


def warmup_cosine_decay_schedule(init_value: float, peak_value: float, warmup_steps: int, decay_steps: int,
                                 end_value: float = 0.0, exponent: float = 1.0) -> Schedule:
    """A linear warmup from ``init_value`` to ``peak_value`` over ``warmup_steps``, then a cosine decay to
    ``end_value`` that ends at ``decay_steps`` (warmup included) → :class:`lrjax.Warmup` around
    :class:`lrjax.CosineDecay` (``floor=end_value``). optax: ``peak_value == 0`` ignores ``end_value``; a
    negative ``warmup_steps`` starts the cosine that many steps in.

    >>> s = warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=110, end_value=0.1)
    >>> [round(float(s(t)), 4) for t in (0, 5, 10, 60, 110, 200)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    """
    owner = "warmup_cosine_decay_schedule"
    init, peak = _num(owner, "init_value", init_value), _num(owner, "peak_value", peak_value)
    warm, total = _num(owner, "warmup_steps", warmup_steps), _num(owner, "decay_steps", decay_steps)
    end, e = _num(owner, "end_value", end_value), _num(owner, "exponent", exponent)
    if not total - warm > 0:
        raise ValueError(
            f"{owner}: decay_steps must be > warmup_steps (the cosine lasts decay_steps - warmup_steps steps), got "
            f"decay_steps={decay_steps!r} and warmup_steps={warmup_steps!r}"
        )
    alpha = 0.0 if peak == 0 else end / peak
    cos = _cosine(owner, peak, total - warm, alpha, e, floor=end if peak != 0 else None)
    if warm > 0 and init >= 0 and peak >= 0:
        return Warmup(cos, warm, init_value=init)
    return _join([_linear(init, peak, warm), cos], [warm])


def warmup_exponential_decay_schedule(init_value: float, peak_value: float, warmup_steps: int,
                                      transition_steps: int, decay_rate: float, transition_begin: int = 0,
                                      staircase: bool = False, end_value: float | None = None) -> Schedule:
    """A linear warmup from ``init_value`` to ``peak_value`` over ``warmup_steps``, then
    ``exponential_decay(peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value)``
    counted from the end of the warmup → :class:`lrjax.Warmup` (ramping to ``peak_value`` even where
    ``end_value`` bounds the decay's first value, as optax).

    >>> s = warmup_exponential_decay_schedule(0.0, 1.0, warmup_steps=10, transition_steps=10, decay_rate=0.5)
    >>> [float(s(t)) for t in (0, 5, 10, 20, 30)]
    [0.0, 0.5, 1.0, 0.5, 0.25]
    """
    owner = "warmup_exponential_decay_schedule"
    init, peak = _num(owner, "init_value", init_value), _num(owner, "peak_value", peak_value)
    warm = _num(owner, "warmup_steps", warmup_steps)
    steps, rate = _num(owner, "transition_steps", transition_steps), _num(owner, "decay_rate", decay_rate)
    begin = _num(owner, "transition_begin", transition_begin)
    end = None if end_value is None else _num(owner, "end_value", end_value)
    decay = _exponential(owner, peak, steps, rate, begin, bool(staircase), end)
    if warm > 0 and init >= 0 and peak >= 0:
        target = peak if _start_of_exponential(peak, steps, rate, end) != peak else -1.0
        return Warmup(decay, warm, init_value=init, target=target)
    return _join([_linear(init, peak, warm), decay], [warm])


def linear_onecycle_schedule(transition_steps: int, peak_value: float, pct_start: float = 0.3,
                             pct_final: float = 0.85, div_factor: float = 25.0, final_div_factor: float = 1e4
                             ) -> Schedule:
    """Three linear phases: ``peak/div -> peak`` until ``int(pct_start T)``, back to ``peak/div`` until
    ``int(pct_final T)``, then to ``peak/div/final_div`` at ``T``, held → ``piecewise_interpolate_schedule``
    with optax's dictionary of boundaries (a :class:`lrjax.Sequence` of :class:`lrjax.Linear`).

    >>> s = linear_onecycle_schedule(100, 1.0)
    >>> [round(float(s(t)), 4) for t in (0, 30, 85, 100)]
    [0.04, 1.0, 0.04, 0.0]
    """
    owner = "linear_onecycle_schedule"
    steps = positive(owner, "transition_steps", transition_steps)
    peak = _num(owner, "peak_value", peak_value)
    q, f = _num(owner, "pct_start", pct_start), _num(owner, "pct_final", pct_final)
    div, final_div = _num(owner, "div_factor", div_factor), _num(owner, "final_div_factor", final_div_factor)
    init = _onecycle_scales(owner, peak, div, final_div)
    table = {int(q * steps): div, int(f * steps): 1.0 / div, transition_steps: 1.0 / final_div}
    return _piecewise_interpolate(owner, "linear", init, _pairs(owner, table))


def cosine_onecycle_schedule(transition_steps: int, peak_value: float, pct_start: float = 0.3,
                             div_factor: float = 25.0, final_div_factor: float = 1e4) -> Schedule:
    """Two cosine phases: ``peak/div -> peak`` until ``int(pct_start T)``, then to ``peak/div/final_div`` at
    ``int(T)``, held → :class:`lrjax.OneCycle` (``total_steps = int(T) + 1``: PyTorch's phase ends are one
    step earlier than optax's). When the phases do not fit that shape (``pct_start`` outside
    ``[0, 1)``, a negative factor or peak) → ``piecewise_interpolate_schedule`` with optax's dictionary.

    >>> s = cosine_onecycle_schedule(100, 1.0)
    >>> [round(float(s(t)), 4) for t in (0, 30, 65, 100)]
    [0.04, 1.0, 0.5, 0.0]
    """
    owner = "cosine_onecycle_schedule"
    steps = positive(owner, "transition_steps", transition_steps)
    peak = _num(owner, "peak_value", peak_value)
    q = _num(owner, "pct_start", pct_start)
    div, final_div = _num(owner, "div_factor", div_factor), _num(owner, "final_div_factor", final_div_factor)
    init = _onecycle_scales(owner, peak, div, final_div)
    up, end = int(q * steps), int(steps)
    if peak >= 0 and div > 0 and final_div > 0 and 0 <= up < end:
        return OneCycle(peak, total_steps=end + 1, pct_start=(up + 1) / (end + 1), div_factor=div,
                        final_div_factor=final_div)
    table = {up: div, end: 1.0 / (div * final_div)}
    return _piecewise_interpolate(owner, "cosine", init, _pairs(owner, table))


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> Schedule:
    """Warm restarts: one ``warmup_cosine_decay_schedule(**kwargs)`` per dict, each lasting its ``decay_steps``
    → a :class:`lrjax.Sequence` of them.

    >>> s = sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=10)] * 2)
    >>> [round(float(s(t)), 4) for t in (0, 2, 10, 12, 20)]
    [0.0, 1.0, 0.0, 1.0, 0.0]
    """
    owner = "sgdr_schedule"
    if isinstance(cosine_kwargs, Mapping) or not isinstance(cosine_kwargs, Iterable):
        raise fail(owner, "cosine_kwargs", cosine_kwargs, "a list of dicts of warmup_cosine_decay_schedule's "
                   "arguments", TypeError)
    schedules, boundaries, step = [], [], 0.0
    for i, kwargs in enumerate(cosine_kwargs):
        if not isinstance(kwargs, Mapping):
            raise fail(owner, f"cosine_kwargs[{i}]", kwargs, "a dict of warmup_cosine_decay_schedule's arguments",
                       TypeError)
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        step += _num(owner, f"cosine_kwargs[{i}]['decay_steps']", kwargs["decay_steps"])
        boundaries.append(step)
    if not schedules:
        raise ValueError(f"{owner}: cosine_kwargs must hold at least one cycle, got cosine_kwargs=[] "
                         f"(optax fails when the schedule is called)")
    return _join(schedules, boundaries[:-1])


def join_schedules(schedules: Seq[Schedule], boundaries: Seq[int]) -> Schedule:
    """``schedules[0](t)``, then ``schedules[i + 1](t - boundaries[i])`` from each boundary on →
    :class:`lrjax.Sequence`. As optax: extra boundaries or schedules (``zip``) are ignored, a later
    boundary at or before an earlier one overrides it, a boundary at or before step 0 starts its
    schedule that many steps in. The schedules are lrjax schedules (what this module returns).

    >>> s = join_schedules([constant_schedule(1.0), linear_schedule(1.0, 0.0, 10)], [5])
    >>> [float(s(t)) for t in (0, 5, 10, 15)]
    [1.0, 1.0, 0.5, 0.0]
    """
    owner = "join_schedules"
    if isinstance(schedules, Schedule) or not isinstance(schedules, Iterable):
        raise fail(owner, "schedules", schedules, "a list of lrjax schedules", TypeError)
    schedules = list(schedules)
    if not schedules:
        raise ValueError(f"{owner}: schedules must hold at least one schedule, got schedules=[] "
                         f"(optax fails when the schedule is called)")
    for i, s in enumerate(schedules):
        if not isinstance(s, Schedule):
            raise TypeError(
                f"{owner}: schedules must hold lrjax schedules, got {type(s).__name__} at position {i}: {s!r}; "
                f"an optax schedule function is a closure lrjax cannot read: build it with lrjax.compat.optax"
            )
    if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, Iterable):
        raise fail(owner, "boundaries", boundaries, "a list of steps", TypeError)
    steps = [_num(owner, f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
    return _join(schedules, steps)
