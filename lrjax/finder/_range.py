"""Learning-rate range tests (Smith, 2017) on the engine's runner: the sequential ramp and its vmap.

The rate grows from ``min_lr`` to ``max_lr`` over ``num_steps`` optimizer updates, exponentially,
:math:`\\eta_i = \\eta_{lo}(\\eta_{hi}/\\eta_{lo})^{i/(N-1)}`, or linearly,
:math:`\\eta_i = \\eta_{lo} + (\\eta_{hi} - \\eta_{lo})\\,i/(N-1)`. The ramp is an lrjax schedule living in
the optimizer state (``lrjax.inject``), so the rate recorded at index ``i`` is the rate the optimizer
applied at update ``i``, read back from that state. The loss at index ``i`` is the loss of the batch(es)
of update ``i`` at the parameters before it (with ``accumulation_steps = k``, the mean over its ``k``
micro-batches: :func:`lrjax.accumulate` applies one update per ``k``).

The loss is smoothed by a bias-corrected EMA,

.. math:: a_i = \\beta a_{i-1} + (1-\\beta)\\,\\ell_i, \\qquad \\hat\\ell_i = a_i / (1 - \\beta^{i+1}),

and the test stops at the first ``i > 0`` where :math:`\\hat\\ell_i > b + (k - 1)|b|` with
:math:`b = \\min_{j<i} \\hat\\ell_j` (that is :math:`k\\,b` for a positive loss, and still meaningful
for a negative one), or where :math:`\\hat\\ell_i` is not finite; that point is kept in the curve. The
rule is a :class:`RangeMonitor` of the engine's runner (:func:`lrjax.engine.advance`): the whole test is
one ``lax.while_loop`` that ends on the device, no host round trip. The parallel test is the same
runner under ``jax.vmap`` over stacked ramps (constant rates): a run that diverges freezes there while
the others go on. The caller's parameters are copied inside the compiled program and never donated.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import choice, integer, number
from lrjax.engine import (
    Flags,
    FromSchedule,
    Program,
    Segment,
    Source,
    TrainState,
    batch_at,
    compile_segment,
    from_schedule,
    make_optimizer,
    plain_loss,
    stack_trees,
    stacked_axes,
    train_step,
)
from lrjax.finder._result import (
    DIVERGED,
    NONFINITE,
    REASONS,
    RUNNING,
    ParallelRangeResult,
    RangeTestResult,
    status_and_order,
)
from lrjax.finder._suggest import default_smoothing, suggest
from lrjax.schedules import Constant, Exponential, Linear, Schedule

__all__ = ["lr_range_test", "parallel_range_test", "range_schedule", "from_schedule", "FromSchedule",
           "RangeMonitor", "rate_grid", "DEFAULT_MIN_LR"]

MODES = ("exp", "linear")
#: The first rate of every range test's ramp (and of the parallel grid) unless you give one.
DEFAULT_MIN_LR = 1e-6


# ---------------------------------------------------------------------------- arguments

def check_rates(min_lr: Any, max_lr: Any) -> tuple[float, float]:
    lo = number("", "min_lr", min_lr, lo=0, lo_open=True)
    hi = number("", "max_lr", max_lr)
    if not hi > lo:
        raise ValueError(f"max_lr must be finite and > min_lr, got min_lr={lo!r} and max_lr={hi!r}")
    return lo, hi


def check_smoothing(smoothing: Any) -> float:
    b = number("", "smoothing", smoothing)
    if not 0.0 <= b < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got smoothing={b!r} (0 = no smoothing; the default is "
                         "num_steps / (num_steps + 10))")
    return b


def check_diverge_factor(diverge_factor: Any) -> float:
    if diverge_factor is None:
        return math.inf
    k = number("", "diverge_factor", diverge_factor)
    if not k > 1.0:
        raise ValueError(f"diverge_factor must be > 1 (or None to never stop early), got diverge_factor={k!r}")
    return k


def factor_setting(factor: float) -> float | None:
    """A checked diverge factor as the results' settings record it: ``None`` for never (``inf``)."""
    return None if math.isinf(factor) else factor


def range_schedule(min_lr: float, max_lr: float, num_steps: int, mode: str = "exp") -> Schedule:
    """The range test's ramp as an lrjax schedule: ``min_lr`` at step 0, ``max_lr`` at step ``num_steps - 1``.

    ``mode="exp"`` is :class:`lrjax.Exponential` with ``decay_rate = max_lr / min_lr``
    over ``num_steps - 1`` steps (capped at ``max_lr``); ``mode="linear"`` is
    :class:`lrjax.Linear`.

    >>> s = range_schedule(1e-4, 1.0, 5)
    >>> [round(float(s(i)), 6) for i in range(5)]
    [0.0001, 0.001, 0.01, 0.1, 1.0]
    """
    lo, hi = check_rates(min_lr, max_lr)
    n = integer("", "num_steps", num_steps, lo=2)
    choice("", "mode", mode, MODES)
    if mode == "exp":
        return Exponential(init_value=lo, decay_rate=hi / lo, decay_steps=n - 1, end_value=hi)
    return Linear(init_value=lo, end_value=hi, steps=n - 1)


def rate_grid(min_lr: float, max_lr: float, k: int) -> np.ndarray:
    """``k`` log-spaced rates from ``min_lr`` to ``max_lr`` (float32)."""
    return np.exp(np.linspace(np.log(min_lr), np.log(max_lr), k)).astype(np.float32)


# ---------------------------------------------------------------------------- the monitor

class RangeState(NamedTuple):
    smoothing: jax.Array  # beta (a leaf: new values never recompile)
    factor: jax.Array     # diverge factor k (inf: never)
    avg: jax.Array        # EMA accumulator (not debiased)
    bpow: jax.Array       # beta ** (updates done)
    best: jax.Array       # lowest smoothed loss so far
    code: jax.Array       # int32 stop code
    acc: jax.Array        # loss sum of the current update's micro-batches
    updates: jax.Array    # int32 updates done


@dataclasses.dataclass(frozen=True)
class RangeMonitor:
    """The range test's rule as a runner monitor (see the module docs); ``micro`` micro-batches per update.

    Columns: ``update_loss`` (mean loss of the update's micro-batches), ``smoothed`` and ``code``, written
    at the last micro-step of each update (NaN at the others).
    """

    micro: int = 1
    columns: tuple[str, ...] = ("update_loss", "smoothed", "code")

    @staticmethod
    def start(smoothing: float, factor: float) -> RangeState:
        f32 = np.float32
        return RangeState(f32(smoothing), f32(factor), f32(0.0), f32(1.0), f32(np.inf), np.int32(RUNNING),
                          f32(0.0), np.int32(0))

    def init(self) -> RangeState:  # pragma: no cover - callers always pass the state (its settings)
        raise TypeError("RangeMonitor needs its state: pass mstate=RangeMonitor.start(smoothing, factor)")

    def stopped(self, m: RangeState) -> jax.Array:
        return m.code != RUNNING

    def update(self, m: RangeState, metrics: dict[str, jax.Array], i: jax.Array) -> tuple[RangeState, dict]:
        acc = m.acc + jnp.asarray(metrics["loss"], jnp.float32)
        boundary = jnp.mod(i + 1, self.micro) == 0
        loss = acc / self.micro
        avg = m.smoothing * m.avg + (1.0 - m.smoothing) * loss
        bpow = m.bpow * m.smoothing
        sm = avg / (1.0 - bpow)
        limit = m.best + (m.factor - 1.0) * jnp.abs(m.best)  # "k x best" for a positive best
        code = jnp.where(~jnp.isfinite(sm), NONFINITE,
                         jnp.where((m.updates > 0) & (sm > limit), DIVERGED, RUNNING)).astype(jnp.int32)
        new = m._replace(avg=avg, bpow=bpow, best=jnp.minimum(m.best, sm), code=code, acc=jnp.float32(0.0),
                         updates=m.updates + 1)
        kept = m._replace(acc=acc)
        m = jax.tree.map(lambda a, b: jnp.where(boundary, a, b), new, kept)
        nan = jnp.float32(jnp.nan)
        values = {"update_loss": jnp.where(boundary, loss, nan), "smoothed": jnp.where(boundary, sm, nan),
                  "code": jnp.where(boundary, code.astype(jnp.float32), nan)}
        return m, values


# ---------------------------------------------------------------------------- the compiled test

# Range tests of your own loss run the engine's one step (:func:`lrjax.engine._step.train_step`) in the
# engine's one segment program with the monitor. The schedule lives in the optimizer state, so a program
# compiled for one ramp serves any other of the same structure: programs are kept per (loss, optimizer,
# data kind, length, ramp structure) — new rates, a new smoothing or another start never recompile.
_PROGRAMS: collections.OrderedDict[tuple, Program] = collections.OrderedDict()
_KEEP = 16


def _program(loss_fn: Callable, factory: Any, has_aux: bool, micro: int, rows: int, batch: Callable,
             schedule: Schedule, eval_fn: Callable | None = None, kind: str = "start") -> Program:
    """The compiled test: ``kind`` ``"start"`` (the state made inside from ``(params, ramp)``: one program
    from your parameters to the curve), ``"continue"`` (a state in, donated: the next chunk of an iterator)
    or ``"parallel"`` (``(params, stacked ramps)`` in, one member per ramp, vmapped)."""
    key = (loss_fn, factory, has_aux, micro, rows, batch, jax.tree.structure(schedule), eval_fn, kind)
    prog = _PROGRAMS.get(key)
    if prog is not None:
        _PROGRAMS.move_to_end(key)
        return prog
    tx = make_optimizer(factory, schedule, accumulation_steps=micro)
    step = functools.partial(train_step, loss_fn=plain_loss(loss_fn, has_aux=has_aux), tx=tx)
    seg = Segment(step=step, columns=_COLUMNS, rows=rows, batch=batch, monitor=RangeMonitor(micro),
                  evaluate=None if eval_fn is None else functools.partial(_evaluate, eval_fn),
                  splits=() if eval_fn is None else ("eval",))
    init = functools.partial(_init_state, factory, micro)
    if kind == "parallel":
        axes = ((None, 0), *stacked_axes(arrays=False, index=False, evals=False)[1:])
        prog = compile_segment(seg, in_axes=axes, keep_state=False, init=init)
    elif kind == "start":
        prog = compile_segment(seg, init=init)
    else:
        prog = compile_segment(seg)
    _PROGRAMS[key] = prog
    if len(_PROGRAMS) > _KEEP:
        _PROGRAMS.popitem(last=False)
    return prog


def _evaluate(eval_fn: Callable, state: TrainState, data: Any) -> dict[str, jax.Array]:
    return {"eval": jnp.asarray(eval_fn(state.params, data), jnp.float32)}


def _init_state(factory: Any, micro: int, x: tuple[Any, Schedule]) -> TrainState:
    """A fresh state from ``(params, ramp)``, inside the compiled test: a copy of your parameters (the
    program never hands your buffers back or consumes them) and the optimizer's state with the ramp in it."""
    params, schedule = x
    params = jax.tree.map(jnp.copy, params)
    return TrainState.create(params, make_optimizer(factory, schedule, accumulation_steps=micro))


_COLUMNS = ("loss", "lr")
_BATCHES: dict[int, Callable] = {}


def _fn_batch(fn: Callable) -> Callable:
    """``(source, i) -> fn(i)``: the runner's batch from your function of the micro-batch index (one
    wrapper per function, so its programs are reused)."""
    wrapper = _BATCHES.get(id(fn))
    if wrapper is None or wrapper.fn is not fn:  # type: ignore[attr-defined]
        def wrapper(source: Source, i: jax.Array) -> Any:
            return fn(i)

        wrapper.fn = fn  # type: ignore[attr-defined]
        if len(_BATCHES) > _KEEP:
            _BATCHES.clear()
        _BATCHES[id(fn)] = wrapper
    return wrapper


def classify_data(data: Any) -> str:
    """``"fn"`` (a callable ``i -> batch``), ``"iter"`` (a list/iterator of batches) or ``"stacked"``."""
    if callable(data) and not isinstance(data, (jax.Array, np.ndarray)):
        return "fn"
    if isinstance(data, (list, Iterator)) or (
        isinstance(data, Iterable) and not isinstance(data, (tuple, dict, jax.Array, np.ndarray, str, bytes))
    ):
        return "iter"
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise TypeError(
            "data must be stacked batches (an array or a tuple/dict of arrays with a leading batch-index axis), "
            f"a list/iterator of batches, or a function i -> batch; got {type(data).__name__} with no arrays"
        )
    shapes = [np.shape(x) for x in leaves]
    if any(len(s) == 0 for s in shapes) or len({s[0] for s in shapes}) != 1:
        raise ValueError(
            "stacked batches must share a leading axis (one entry per micro-batch), got leading shapes "
            f"{[s[:1] for s in shapes]}; pass a list of batches instead if they are separate batches"
        )
    return "stacked"


def _check_callables(loss_fn: Any, factory: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch) -> loss, got {type(loss_fn).__name__}")
    if not (callable(factory) or isinstance(factory, FromSchedule)):
        raise TypeError(
            "optimizer_factory must be a function learning_rate -> optax.GradientTransformation "
            f"(e.g. optax.adamw) or lrjax.finder.from_schedule(build), got {type(factory).__name__}"
        )


# Where the curve is in a table of this module's programs: (lr, update loss, smoothed, code) columns.
CURVE = (1, 2, 3, 4)


def curve(table: np.ndarray, steps_run: int, micro: int, cols: tuple[int, int, int, int] = CURVE
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(lrs, losses, smoothed, last code)`` per optimizer update from a runner table (micro-step rows;
    ``cols``: the columns of the rate, the update's loss, the smoothed loss and the stop code)."""
    rows = np.asarray(table)[:steps_run][micro - 1::micro]
    lr, loss, sm, code = cols
    last = int(rows[-1, code]) if len(rows) else RUNNING
    f64 = np.float64
    return rows[:, lr].astype(f64), rows[:, loss].astype(f64), rows[:, sm].astype(f64), last


def sweep_result(curve_: tuple[np.ndarray, np.ndarray, np.ndarray, int], *, min_lr: float, max_lr: float,
                 num_steps: int, mode: str, smoothing: float, factor: float, accumulation_steps: int,
                 exhausted: bool = False) -> RangeTestResult:
    """The sequential test's :class:`RangeTestResult` from its ``curve(...)``: the stop reason (the monitor's
    code; else ``"data exhausted"`` when ``exhausted``, else ``"completed"``), the suggestions, the settings."""
    lrs, losses, smoothed, code = curve_
    if code != RUNNING:
        reason = REASONS[code]
    elif exhausted:
        reason = "data exhausted"
    else:
        reason = "completed"
    settings = dict(min_lr=float(min_lr), max_lr=float(max_lr), num_steps=num_steps, mode=mode, smoothing=smoothing,
                    diverge_factor=factor_setting(factor), accumulation_steps=accumulation_steps)
    return RangeTestResult(lrs, losses, smoothed, reason, suggest(lrs, smoothed, raw=losses), settings)


# ---------------------------------------------------------------------------- the sequential test

def lr_range_test(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    optimizer_factory: Callable[..., Any],
    data: Any,
    *,
    min_lr: float = DEFAULT_MIN_LR,
    max_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float | None = None,
    diverge_factor: float | None = 4.0,
    accumulation_steps: int = 1,
    has_aux: bool = False,
    chunk_size: int | None = None,
) -> RangeTestResult:
    """Run Smith's learning-rate range test in one compiled loop.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (or ``(scalar, aux)`` with
        ``has_aux=True``), differentiable in ``params``.
      params: the starting parameters (any pytree). Never modified or donated.
      optimizer_factory: any ``f(learning_rate=...) -> optax.GradientTransformation``
        (``optax.adamw``, ``functools.partial(optax.sgd, momentum=0.9)``, ...).
        Its rate is driven by the ramp through ``lrjax.inject``; a fresh state
        is initialised from ``params``. For an optimizer assembled by your own
        code, pass ``lrjax.finder.from_schedule(build)`` with ``build(schedule)``
        returning it (``lrjax.inject`` inside).
      data: where the batches come from —
        * stacked batches: an array or a tuple/dict of arrays whose leading axis
          indexes micro-batches (cycled if shorter than
          ``num_steps * accumulation_steps``), kept on the device: one compiled call;
        * a function ``i -> batch`` of the (traced, int32) micro-batch index,
          traced into the loop: one compiled call;
        * a list or iterator of batches: stacked on the host ``chunk_size``
          updates at a time (default 64), one compiled call per chunk.
      min_lr, max_lr: the first and last rate of the ramp.
      num_steps: optimizer updates in the ramp (>= 2).
      mode: ``"exp"`` (geometric ramp) or ``"linear"``.
      smoothing: EMA factor β of the bias-corrected smoothed loss (default
        :func:`~lrjax.finder.default_smoothing`: ``num_steps / (num_steps + 10)``, a lag of a tenth of the sweep).
      diverge_factor: stop once the smoothed loss exceeds this × its best (or
        is not finite); ``None`` runs the whole ramp unless the loss is non-finite.
      accumulation_steps: micro-batches averaged per optimizer update (:func:`lrjax.accumulate`); the
        ramp counts updates, not micro-batches.
      has_aux: ``loss_fn`` returns ``(loss, aux)``.
      chunk_size: updates per compiled call for list/iterator data.

    Returns:
      a :class:`RangeTestResult` with the curve and the steepest/minimum/valley
      suggestions (each a rate, or a message saying why there is none).

    Example:

    >>> import jax, jax.numpy as jnp, optax
    >>> import lrjax
    >>> curv = jnp.array([2.5, 5.0, 10.0])   # largest curvature L = 10: GD diverges above 2/L = 0.2
    >>> def loss(p, b):                        # a noisy quadratic: the batch b moves the minimum
    ...     return 0.5 * jnp.sum(curv * (p - b) ** 2)
    >>> batch = lambda i: 0.1 * jax.random.normal(jax.random.fold_in(jax.random.key(0), i), (3,))
    >>> res = lrjax.lr_range_test(loss, jnp.ones(3), optax.sgd, batch,
    ...                           min_lr=1e-4, max_lr=10.0, num_steps=200)
    >>> res.stop_reason, 0.2 <= res.stop_lr <= 0.6
    ('diverged', True)
    >>> 0.002 <= res.suggestion("steepest") < 0.2
    True
    """
    _check_callables(loss_fn, optimizer_factory)
    schedule = range_schedule(min_lr, max_lr, num_steps, mode)
    n = int(num_steps)
    beta = check_smoothing(default_smoothing(n) if smoothing is None else smoothing)
    factor = check_diverge_factor(diverge_factor)
    k = integer("", "accumulation_steps", accumulation_steps, lo=1)
    source_kind = classify_data(data)
    m0 = RangeMonitor.start(beta, factor)
    if source_kind in ("stacked", "fn"):
        batch = _fn_batch(data) if source_kind == "fn" else batch_at
        arrays = None if source_kind == "fn" else jax.tree.map(jnp.asarray, data)
        prog = _program(loss_fn, optimizer_factory, bool(has_aux), k, n * k, batch, schedule)
        out = prog((params, schedule), Source(arrays, None, 0), 0, n * k, mstate=m0)
        table, steps_run = out.table, out.steps
        got, exhausted = curve(jax.device_get(table), int(steps_run), k), False
    else:
        *got, exhausted = _run_chunks(loss_fn, params, optimizer_factory, iter(data), schedule, n, k, has_aux,
                                      chunk_size, m0)
    return sweep_result(tuple(got), min_lr=min_lr, max_lr=max_lr, num_steps=n, mode=mode, smoothing=beta,
                        factor=factor, accumulation_steps=k, exhausted=got[0].size < n and exhausted)


def _run_chunks(loss_fn, params, factory, it, schedule, n, k, has_aux, chunk_size, m0):
    c = min(n, 64) if chunk_size is None else integer("", "chunk_size", chunk_size, lo=1)
    c = min(c, n)
    start = _program(loss_fn, factory, bool(has_aux), k, c * k, batch_at, schedule)
    state, m, tables, done, exhausted = None, m0, [], 0, False
    while done < n and not exhausted:
        want = min(c, n - done) * k
        batches = list(itertools.islice(it, want))
        exhausted = len(batches) < want  # next(it) raised StopIteration before ``want`` batches
        usable = len(batches) // k
        if usable == 0:
            break
        batches = batches[: usable * k]
        batches += [batches[-1]] * (c * k - len(batches))  # pad to the compiled chunk length
        source = Source(jax.tree.map(jnp.asarray, stack_trees(batches)), None, 0)
        if state is None:
            out = start((params, schedule), source, 0, usable * k, mstate=m)
        else:
            out = _program(loss_fn, factory, bool(has_aux), k, c * k, batch_at, schedule, kind="continue")(
                state, source, done * k, (done + usable) * k, mstate=m)
        state, table, steps_run, m = out.state, out.table, out.steps, out.mstate
        tables.append((table, steps_run))
        done += usable
        if int(m.code) != RUNNING:  # one host read per chunk
            break
    if not tables:
        raise ValueError("data yielded no batches" + (f" (need {k} per update with accumulation_steps={k})"
                                                      if k > 1 else ""))
    host = jax.device_get(tables)
    parts = [curve(t, int(s), k) for t, s in host]
    lrs, losses, smoothed = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return lrs, losses, smoothed, parts[-1][3], exhausted and done < n


# ---------------------------------------------------------------------------- the parallel test

def stack_schedules(scheds: list[Schedule]) -> Schedule:
    """Same-structure schedules stacked along a new leading axis (a vmappable batch of plans)."""
    if len({jax.tree.structure(s) for s in scheds}) != 1:
        raise ValueError("schedule(lr) must return schedules of one structure for every rate")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *scheds)


def parallel_result(lrs: np.ndarray, tables: np.ndarray, runs: np.ndarray, codes: np.ndarray, final_eval: Any,
                    ev0: Any, micro: int, num_steps: int, higher_is_better: bool, frac: float,
                    settings: dict, cols: tuple[int, int, int, int] = CURVE) -> ParallelRangeResult:
    """A :class:`ParallelRangeResult` from the vmapped runner's tables (``(K, rows, columns)``)."""
    k = len(lrs)
    losses = np.full((k, num_steps), np.nan)
    smoothed = np.full((k, num_steps), np.nan)
    for j in range(k):
        _, l, s, _ = curve(tables[j], int(runs[j]), micro, cols)
        losses[j, :l.size], smoothed[j, :s.size] = l, s
    stopped_at = (np.asarray(runs) // micro).astype(np.int64)  # updates each run did before it stopped
    last = np.take_along_axis(smoothed, np.maximum(stopped_at - 1, 0)[:, None], axis=1)[:, 0]
    if final_eval is None:
        metric, final, initial, sign = "smoothed_loss", last, float(losses[0, 0]), 1.0
    else:
        metric, final, initial = "eval", np.asarray(final_eval, dtype=np.float64), float(ev0)
        sign = -1.0 if higher_is_better else 1.0
    status, order = status_and_order(np.asarray(codes), final, initial, sign, frac, stopped_at)
    return ParallelRangeResult(np.asarray(lrs, np.float64), losses, smoothed, final, tuple(status), stopped_at,
                               order, metric, initial, settings)


def parallel_range_test(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    optimizer_factory: Callable[..., Any],
    data: Any,
    *,
    min_lr: float = DEFAULT_MIN_LR,
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

    Rate ``k`` is :math:`\\eta_k = \\eta_{lo}(\\eta_{hi}/\\eta_{lo})^{k/(K-1)}`, held constant (or shaped by
    ``schedule(\\eta_k)``) for ``num_steps`` updates on the same batches. Each run keeps the sequential
    test's smoothed loss and divergence rule (a diverged run freezes at that point). Runs are ranked by
    their final smoothed loss, or by ``eval_fn`` on held-out data when given — pass a *validation* split
    carved from the training data, never the test set: the ranking chooses. With :math:`d_k` the
    improvement of the metric from the initial parameters to the end of run ``k`` (a log ratio for a
    positive loss), a run is ``"diverged"`` (stopped, or a non-finite metric), ``"slow"``
    (:math:`d_k < f\\max_j d_j`, ``slow_fraction`` :math:`f`) or ``"good"``.

    Args:
      loss_fn, params, optimizer_factory, has_aux, accumulation_steps: as in :func:`lrjax.lr_range_test`.
      data: stacked batches or a function ``i -> batch`` (traced into the program); a list or iterator
        gives its first ``num_steps * accumulation_steps`` batches, stacked. Every rate sees the same batches.
      min_lr, max_lr, num_rates: the log grid of rates.
      num_steps: the training budget of every run (optimizer updates).
      schedule: ``lr -> lrjax schedule`` shaping each run (e.g.
        ``lambda lr: lrjax.Warmup(lrjax.Constant(lr), warmup_steps=10)``); default a constant rate. It
        must give the same structure for every rate.
      smoothing, diverge_factor: the smoothed loss and the divergence rule.
      eval_fn, eval_data: optional ``eval_fn(params, eval_data) -> scalar`` run at the end of every run
        (and on the initial parameters); the runs are then ranked by it.
      higher_is_better: the eval metric is an accuracy (rank descending).
      slow_fraction: the fraction :math:`f` above.

    Returns:
      a :class:`ParallelRangeResult`.

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
    _check_callables(loss_fn, optimizer_factory)
    lo, hi = check_rates(min_lr, max_lr)
    k = integer("", "num_rates", num_rates, lo=2)
    n = integer("", "num_steps", num_steps, lo=1)
    acc = integer("", "accumulation_steps", accumulation_steps, lo=1)
    beta = check_smoothing(smoothing)
    factor = check_diverge_factor(diverge_factor)
    frac = number("", "slow_fraction", slow_fraction, lo=0, hi=1)
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be a function (params, eval_data) -> scalar, got {type(eval_fn).__name__}")
    if eval_fn is None and eval_data is not None:
        raise ValueError("eval_data was given without eval_fn; pass eval_fn=(params, eval_data) -> scalar")
    lrs = rate_grid(lo, hi, k)
    make = Constant if schedule is None else schedule
    scheds = [make(float(lr)) for lr in lrs]
    for s in scheds:
        if not isinstance(s, Schedule):
            raise TypeError(f"schedule(lr) must return an lrjax schedule, got {type(s).__name__}")
    source_kind = classify_data(data)
    if source_kind == "iter":
        batches = list(itertools.islice(data, n * acc))
        if not batches:
            raise ValueError("data yielded no batches")
        data, source_kind = stack_trees(batches), "stacked"
    batch = _fn_batch(data) if source_kind == "fn" else batch_at
    arrays = None if source_kind == "fn" else jax.tree.map(jnp.asarray, data)
    prog = _program(loss_fn, optimizer_factory, bool(has_aux), acc, n * acc, batch, scheds[0], eval_fn, "parallel")
    ramps = stack_schedules(scheds)
    source, m0 = Source(arrays, None, 0), RangeMonitor.start(beta, factor)
    evals = {"eval": eval_data} if eval_fn is not None else None
    flags = Flags(evaluate=eval_fn is not None)
    ev0 = np.nan
    if eval_fn is not None:  # the initial parameters' metric: the same program, zero updates
        ev0 = float(jax.device_get(prog((params, ramps), source, 0, 0, evals, flags, m0).metrics["eval"]["eval"][0]))
    out = jax.device_get(prog((params, ramps), source, 0, n * acc, evals, flags, m0))
    tables, runs, codes = out.table, out.steps, out.mstate.code
    evals_out = out.metrics["eval"]["eval"] if eval_fn is not None else None
    settings = dict(min_lr=lo, max_lr=hi, num_rates=k, num_steps=n, smoothing=beta,
                    diverge_factor=factor_setting(factor), accumulation_steps=acc,
                    slow_fraction=frac, higher_is_better=bool(higher_is_better),
                    schedule="constant" if schedule is None else type(scheds[0]).name)
    return parallel_result(lrs, tables, runs, codes, evals_out, ev0, acc, n, higher_is_better, frac, settings)
