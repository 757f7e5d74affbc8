"""The sequential learning-rate range test (Smith, 2017), in one compiled loop.

The rate grows from ``min_lr`` to ``max_lr`` over ``num_steps`` optimizer
updates, exponentially, :math:`\\eta_i = \\eta_{lo}(\\eta_{hi}/\\eta_{lo})^{i/(N-1)}`,
or linearly, :math:`\\eta_i = \\eta_{lo} + (\\eta_{hi} - \\eta_{lo})\\,i/(N-1)`.
The ramp is an lrjax schedule living in the optimizer state (``lrjax.inject``),
so the rate recorded at index ``i`` is the rate the optimizer applied at update
``i``, read back from that state. The loss at index ``i`` is the loss of the
batch(es) of update ``i`` at the parameters before it.

The loss is smoothed by a bias-corrected EMA,

.. math:: a_i = \\beta a_{i-1} + (1-\\beta)\\,\\ell_i, \\qquad \\hat\\ell_i = a_i / (1 - \\beta^{i+1}),

and the sweep stops (on the device, no host round trip) at the first ``i > 0``
where :math:`\\hat\\ell_i > b + (k - 1)|b|` with :math:`b = \\min_{j<i} \\hat\\ell_j` (that is
:math:`k\\,b` for a positive loss, and still meaningful for a negative one), or where
:math:`\\hat\\ell_i` is not finite. That point is kept in the curve. The whole sweep is a ``lax.scan``
(chunks of it when batches come from a host iterator, with one read of a
"stopped" flag per chunk). The caller's parameters are copied inside the
compiled program and never donated, so they are untouched afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from typing import Any, Callable, ClassVar, Iterable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.finder._suggest import Suggestion, suggest
from lrjax.schedules import Exponential, Linear, Schedule

__all__ = ["lr_range_test", "RangeTestResult", "range_schedule", "from_schedule", "FromSchedule"]

MODES = ("exp", "linear")
# Stop codes kept in the carry (int32).
_RUNNING, _DIVERGED, _NONFINITE = 0, 1, 2
_REASONS = {_DIVERGED: "diverged", _NONFINITE: "non-finite"}


# ---------------------------------------------------------------------------
# validation helpers (Python, at call time)

def _int_arg(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {lo}, got {name}={value!r} ({type(value).__name__})")
    if value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {name}={value}")
    return int(value)


def _float_arg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {name}={value!r} ({type(value).__name__})")
    return float(value)


def check_rates(min_lr: Any, max_lr: Any) -> tuple[float, float]:
    lo, hi = _float_arg("min_lr", min_lr), _float_arg("max_lr", max_lr)
    if not (math.isfinite(lo) and lo > 0):
        raise ValueError(f"min_lr must be a finite number > 0, got min_lr={lo!r}")
    if not (math.isfinite(hi) and hi > lo):
        raise ValueError(f"max_lr must be finite and > min_lr, got min_lr={lo!r} and max_lr={hi!r}")
    return lo, hi


def check_smoothing(smoothing: Any) -> float:
    b = _float_arg("smoothing", smoothing)
    if not 0.0 <= b < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got smoothing={b!r} (0 = no smoothing; 0.98 is usual)")
    return b


def check_diverge_factor(diverge_factor: Any) -> float:
    if diverge_factor is None:
        return math.inf
    k = _float_arg("diverge_factor", diverge_factor)
    if not k > 1.0:
        raise ValueError(
            f"diverge_factor must be > 1 (or None to never stop early), got diverge_factor={k!r}"
        )
    return k


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
    n = _int_arg("num_steps", num_steps, 2)
    if mode not in MODES:
        from lrjax._checks import closest

        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got mode={mode!r}{closest(mode, MODES)}")
    if mode == "exp":
        return Exponential(init_value=lo, decay_rate=hi / lo, decay_steps=n - 1, end_value=hi)
    return Linear(init_value=lo, end_value=hi, steps=n - 1)


# ---------------------------------------------------------------------------
# the optimizer with the ramp in its state

@dataclasses.dataclass(frozen=True)
class FromSchedule:
    """An optimizer built by your own code around a schedule: ``build(schedule) -> GradientTransformation``.

    Use it when the optimizer is more than ``factory(learning_rate=...)`` (e.g. a training config's
    clipping and extra hyperparameters). ``build`` must put the schedule in the state with
    :func:`lrjax.inject` (anywhere inside chains/wrappers) so the applied rate can be read back.

    >>> import optax, lrjax
    >>> opt = lrjax.finder.from_schedule(lambda s: optax.chain(optax.clip(1.0), lrjax.inject(optax.sgd, learning_rate=s)))
    >>> isinstance(opt, lrjax.finder.FromSchedule)
    True
    """

    build: Callable[[Schedule], Any]


def from_schedule(build: Callable[[Schedule], Any]) -> FromSchedule:
    """Mark ``build(schedule) -> optax.GradientTransformation`` as an optimizer for the range tests."""
    if not callable(build):
        raise TypeError(f"from_schedule: build must be a function schedule -> optimizer, got {type(build).__name__}")
    return FromSchedule(build)


def make_optimizer(optimizer_factory: Callable[..., Any] | FromSchedule, schedule: Schedule):
    """``optimizer_factory`` with its ``learning_rate`` driven by ``schedule`` from the optimizer state."""
    if isinstance(optimizer_factory, FromSchedule):
        return optimizer_factory.build(schedule)
    from lrjax.finder._inject import inject_learning_rate

    return inject_learning_rate(optimizer_factory, schedule)


def applied_lr(opt_state: Any) -> jax.Array:
    """The learning rate used by the last update, read from the optimizer state."""
    from lrjax.finder._inject import applied_learning_rate

    return applied_learning_rate(opt_state)


# ---------------------------------------------------------------------------
# the compiled sweep

@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Static (hashable) structure of a compiled sweep: a change here recompiles."""

    loss_fn: Callable
    optimizer_factory: Callable
    has_aux: bool
    accumulation_steps: int
    chunk: int  # optimizer steps per compiled call
    source: str  # "stacked" or "fn"
    batch_fn: Callable | None
    return_state: bool  # keep the training state (for a later chunk)


class SweepState(NamedTuple):
    params: Any
    opt_state: Any
    avg: jax.Array  # EMA accumulator (not debiased)
    bpow: jax.Array  # beta ** (updates done)
    best: jax.Array  # lowest smoothed loss so far
    step: jax.Array  # int32, optimizer updates done
    code: jax.Array  # int32 stop code


class SweepRows(NamedTuple):
    lr: jax.Array
    loss: jax.Array
    smoothed: jax.Array
    code: jax.Array  # stop code after this update
    valid: jax.Array


def _tree_copy(tree: Any) -> Any:
    # jnp.copy keeps a copy primitive in the jaxpr, so jit never forwards the
    # caller's buffers to the outputs (which a later chunk donates).
    return jax.tree.map(jnp.copy, tree)


def _micro_batch(cfg: SweepConfig, data: Any, micro: jax.Array, offset: jax.Array) -> Any:
    if cfg.source == "fn":
        return cfg.batch_fn(micro)
    leaves = jax.tree.leaves(data)
    n = leaves[0].shape[0]
    i = jnp.mod(micro - offset, n)
    return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False), data)


def _loss_and_grad(cfg: SweepConfig, params: Any, data: Any, step: jax.Array, offset: jax.Array):
    """Mean loss and gradient over the ``accumulation_steps`` micro-batches of one update."""
    vg = jax.value_and_grad(cfg.loss_fn, has_aux=cfg.has_aux)

    def one(micro):
        out, g = vg(params, _micro_batch(cfg, data, micro, offset))
        loss = out[0] if cfg.has_aux else out
        return jnp.asarray(loss, jnp.float32), g

    k = cfg.accumulation_steps
    first = step * k
    if k == 1:
        return one(first)

    def body(j, acc):
        l, g = one(first + j)
        return acc[0] + l, jax.tree.map(jnp.add, acc[1], g)

    l0, g0 = one(first)
    l, g = jax.lax.fori_loop(1, k, body, (l0, g0))
    return l / k, jax.tree.map(lambda x: x / k, g)


def _run(cfg: SweepConfig, tx: Any, state: SweepState, data: Any, offset: jax.Array, stop_at: jax.Array,
         smoothing: jax.Array, factor: jax.Array) -> tuple[SweepState, SweepRows]:
    import optax

    nan = jnp.float32(jnp.nan)

    def step_fn(s: SweepState) -> tuple[SweepState, SweepRows]:
        loss, grads = _loss_and_grad(cfg, s.params, data, s.step, offset * cfg.accumulation_steps)
        updates, opt_state = tx.update(grads, s.opt_state, s.params)
        params = optax.apply_updates(s.params, updates)
        lr = jnp.asarray(applied_lr(opt_state), jnp.float32)
        avg = smoothing * s.avg + (1.0 - smoothing) * loss
        bpow = s.bpow * smoothing
        sm = avg / (1.0 - bpow)
        # "k x best" for a positive best; best + (k - 1)|best| in general, so a negative loss works too
        limit = s.best + (factor - 1.0) * jnp.abs(s.best)
        code = jnp.where(~jnp.isfinite(sm), _NONFINITE,
                         jnp.where((s.step > 0) & (sm > limit), _DIVERGED, _RUNNING)).astype(jnp.int32)
        best = jnp.minimum(s.best, sm)
        new = SweepState(params, opt_state, avg, bpow, best, s.step + 1, code)
        return new, SweepRows(lr, loss, sm, code, jnp.bool_(True))

    def skip(s: SweepState) -> tuple[SweepState, SweepRows]:
        return s, SweepRows(nan, nan, nan, s.code, jnp.bool_(False))

    def body(s, _):
        active = (s.code == _RUNNING) & (s.step < stop_at)
        return jax.lax.cond(active, step_fn, skip, s)

    return jax.lax.scan(body, state, None, length=cfg.chunk)


def init_state(cfg: SweepConfig, params: Any, schedule: Schedule) -> tuple[Any, SweepState]:
    tx = make_optimizer(cfg.optimizer_factory, schedule)
    params = _tree_copy(params)
    f32 = jnp.float32
    state = SweepState(params, tx.init(params), f32(0.0), f32(1.0), f32(jnp.inf), jnp.int32(0), jnp.int32(_RUNNING))
    return tx, state


@functools.partial(jax.jit, static_argnames=("cfg",))
def _start(cfg, params, schedule, data, offset, stop_at, smoothing, factor):
    tx, state = init_state(cfg, params, schedule)
    state, rows = _run(cfg, tx, state, data, offset, stop_at, smoothing, factor)
    return (state if cfg.return_state else None), rows


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("state",))
def _continue(cfg, state, schedule, data, offset, stop_at, smoothing, factor):
    tx = make_optimizer(cfg.optimizer_factory, schedule)
    state, rows = _run(cfg, tx, state, data, offset, stop_at, smoothing, factor)
    return state, rows


# ---------------------------------------------------------------------------
# data sources

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


def _stack(batches: list) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)


# ---------------------------------------------------------------------------
# the result

class _Report:
    """``save_json`` and ``plot`` for a result with ``to_dict()``; ``_plotter`` names its function in
    :mod:`lrjax.finder._plot`."""

    _plotter: ClassVar[str]

    def save_json(self, path: str | os.PathLike) -> str:
        """Write ``to_dict()`` as JSON to ``path``; returns the path."""
        path = os.fspath(path)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)  # type: ignore[attr-defined]
        return path

    def plot(self, path: str | os.PathLike | None = None, *, ax: Any = None, title: str | None = None):
        """The result's figure (saved to ``path`` when given). Returns the figure."""
        from lrjax.finder import _plot

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
      suggestions: ``{method: Suggestion}`` for steepest, minimum and valley.
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


# ---------------------------------------------------------------------------
# the public entry point

def lr_range_test(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    optimizer_factory: Callable[..., Any],
    data: Any,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
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
      smoothing: EMA factor β of the bias-corrected smoothed loss.
      diverge_factor: stop once the smoothed loss exceeds this × its best (or
        is not finite); ``None`` runs the whole ramp unless the loss is non-finite.
      accumulation_steps: micro-batches averaged per optimizer update; the ramp
        counts updates, not micro-batches.
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
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch) -> loss, got {type(loss_fn).__name__}")
    if not (callable(optimizer_factory) or isinstance(optimizer_factory, FromSchedule)):
        raise TypeError(
            "optimizer_factory must be a function learning_rate -> optax.GradientTransformation "
            f"(e.g. optax.adamw) or lrjax.finder.from_schedule(build), got {type(optimizer_factory).__name__}"
        )
    schedule = range_schedule(min_lr, max_lr, num_steps, mode)
    n = int(num_steps)
    beta = check_smoothing(smoothing)
    factor = check_diverge_factor(diverge_factor)
    k = _int_arg("accumulation_steps", accumulation_steps, 1)
    source = classify_data(data)
    settings = dict(min_lr=float(min_lr), max_lr=float(max_lr), num_steps=n, mode=mode, smoothing=beta,
                    diverge_factor=None if math.isinf(factor) else factor, accumulation_steps=k)
    f32 = np.float32
    if source in ("stacked", "fn"):
        cfg = SweepConfig(loss_fn, optimizer_factory, bool(has_aux), k, n, source,
                          data if source == "fn" else None, False)
        stacked = None if source == "fn" else jax.tree.map(jnp.asarray, data)
        _, rows = _start(cfg, params, schedule, stacked, np.int32(0), np.int32(n), f32(beta), f32(factor))
        rows = jax.device_get(rows)
        exhausted = False
    else:
        rows, exhausted = _run_chunks(loss_fn, params, optimizer_factory, iter(data), schedule, n, k, has_aux,
                                      chunk_size, beta, factor)
    return _result(rows, n, exhausted, settings)


def _run_chunks(loss_fn, params, factory, it, schedule, n, k, has_aux, chunk_size, beta, factor):
    c = min(n, 64) if chunk_size is None else _int_arg("chunk_size", chunk_size, 1)
    c = min(c, n)
    f32 = np.float32
    state, pieces, done, exhausted = None, [], 0, False
    while done < n and not exhausted:
        want = min(c, n - done) * k
        batches = []
        for _ in range(want):
            try:
                batches.append(next(it))
            except StopIteration:
                exhausted = True
                break
        usable = len(batches) // k
        if usable == 0:
            break
        batches = batches[: usable * k]
        batches += [batches[-1]] * (c * k - len(batches))  # pad to the compiled chunk length
        stacked = jax.tree.map(jnp.asarray, _stack(batches))
        stop_at = np.int32(done + usable)
        cfg = SweepConfig(loss_fn, factory, bool(has_aux), k, c, "stacked", None, True)
        if state is None:
            state, rows = _start(cfg, params, schedule, stacked, np.int32(done), stop_at, f32(beta), f32(factor))
        else:
            state, rows = _continue(cfg, state, schedule, stacked, np.int32(done), stop_at, f32(beta), f32(factor))
        pieces.append(rows)
        done += usable
        if int(state.code) != _RUNNING:  # one host read per chunk
            break
    if not pieces:
        raise ValueError("data yielded no batches" + (f" (need {k} per update with accumulation_steps={k})"
                                                      if k > 1 else ""))
    rows = jax.device_get(pieces)
    rows = SweepRows(*(np.concatenate([getattr(r, f) for r in rows]) for f in SweepRows._fields))
    return rows, exhausted and done < n


def _result(rows: SweepRows, n: int, exhausted: bool, settings: dict) -> RangeTestResult:
    valid = np.asarray(rows.valid, dtype=bool)
    lrs = np.asarray(rows.lr, dtype=np.float64)[valid]
    losses = np.asarray(rows.loss, dtype=np.float64)[valid]
    smoothed = np.asarray(rows.smoothed, dtype=np.float64)[valid]
    code = int(np.asarray(rows.code)[valid][-1]) if lrs.size else _RUNNING
    if code != _RUNNING:
        reason = _REASONS[code]
    elif lrs.size < n and exhausted:
        reason = "data exhausted"
    else:
        reason = "completed"
    return RangeTestResult(lrs, losses, smoothed, reason, suggest(lrs, smoothed, raw=losses), settings)
