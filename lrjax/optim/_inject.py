"""``inject``: any optax optimizer with its hyperparameters (numbers or schedules) in the state."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax._checks import closest, fail
from lrjax.optim._plateau import PlateauState, plateau_rate, plateau_step
from lrjax.schedules import Schedule

__all__ = ["InjectState", "inject", "hyperparam_values"]

_LR = "learning_rate"


class InjectState(NamedTuple):
    """State of :func:`inject`.

    Attributes:
      count: int32 number of optimizer updates applied (saturating).
      hyperparams: ``{name: schedule or float32 array}`` — the plan, read by every update.
      values: ``{name: float32}`` the values used by the last update (those for step 0 before
        any update); with a plateau, ``learning_rate`` is the rate after it and
        ``plateau_scale`` its multiplier.
      plateau: a :class:`~lrjax.optim.PlateauState`, or ``None``.
      inner_state: the state of the optimizer built by the factory.
    """

    count: jax.Array
    hyperparams: dict
    values: dict
    plateau: Any
    inner_state: Any


def _is_number(value: Any) -> bool:
    """A real number or an array of them. Not a bool, and not an array of another kind: a typed PRNG
    key (``jax.random.key(0)``, an extended dtype) or a raw ``uint32`` key (``jax.random.PRNGKey(0)``)
    stays static, it is never a float hyperparameter."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    if isinstance(value, (jax.Array, np.ndarray, jax.core.Tracer)):
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.extended):
            return False
        try:
            kind = np.dtype(value.dtype).kind
        except TypeError:  # any other dtype numpy cannot interpret
            return False
        return kind in "if"
    return False


def _check_number(name: str, value: Any) -> None:
    """Refuse, at construction, a NaN hyperparameter, and a learning rate that is negative or not finite
    (the schedule families refuse them the same way). Traced values are not checked."""
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value, np.float64)
    if name == _LR and not np.all(np.isfinite(arr) & (arr >= 0)):
        raise fail("inject", name, value if arr.ndim == 0 else arr.tolist(), "a finite number >= 0")
    if np.any(np.isnan(arr)):
        raise fail("inject", name, value if arr.ndim == 0 else arr.tolist(), "a number, not NaN")


def _check_rate_kind(value: Any) -> None:
    """A learning rate is a number, a numeric array, an lrjax schedule, a schedule function or None."""
    if isinstance(value, (bool, np.bool_, str, bytes, list, tuple, dict, set)):
        raise fail("inject", _LR, value,
                   "a number, an lrjax schedule or a schedule function (step -> rate)", TypeError)


def _fresh(tree: Any) -> Any:
    """A copy of ``tree`` with its own buffers (a no-op on tracers)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _evaluate(hyper: Any, count: jax.Array) -> jax.Array:
    if isinstance(hyper, Schedule):
        return hyper(count)
    return jnp.array(hyper, jnp.float32, copy=True)  # never the state's own buffer (donation)


def hyperparam_values(hyperparams: dict, count: jax.Array, plateau: Any = None) -> dict:
    """``{name: value at count}`` for a dict of schedules/arrays; the plateau applied to the rate."""
    values = {k: _evaluate(h, count) for k, h in hyperparams.items()}
    if plateau is not None:
        values[_LR] = plateau_rate(plateau, values[_LR])
        values["plateau_scale"] = jnp.array(plateau.scale, copy=True)
    return values


@dataclasses.dataclass(frozen=True)
class _Builder:
    """Builds the optax optimizer from this step's hyperparameter values (hashable when its static
    arguments are, so every :func:`inject` of the same optimizer shares one compiled init)."""

    factory: Callable[..., optax.GradientTransformation]
    static: tuple[tuple[str, Any], ...]
    dynamic: tuple[str, ...]
    lr_as_schedule: bool

    def __call__(self, values: dict) -> optax.GradientTransformationExtraArgs:
        kwargs = dict(self.static)
        for k in self.dynamic:
            v = values[k]
            kwargs[k] = (lambda _count, v=v: v) if (k == _LR and self.lr_as_schedule) else v
        return optax.with_extra_args_support(self.factory(**kwargs))


def _init_state(build: _Builder, params: Any, hyper: dict, pstate: Any) -> InjectState:
    count = jnp.zeros([], jnp.int32)
    # fresh buffers: a donated state must not consume the user's schedule (or share
    # leaves between two hyperparameters, e.g. OneCycle and its .momentum)
    hyper, pstate = _fresh((hyper, pstate))
    values = hyperparam_values(hyper, count, pstate)
    return InjectState(count, hyper, values, pstate, build(values).init(params))


# One compiled program per optimizer structure instead of one eager dispatch (and, cold, one XLA
# compilation) per operation of every schedule; the schedules are arguments, so new values (a new
# peak, another warmup) reuse it.
_init_program = jax.jit(_init_state, static_argnums=0)

# Whether a factory takes its learning rate as a schedule function, decided once per optimizer
# configuration (a hashable _Builder) by _takes_rate_function.
_TAKES_FUNCTION: dict[_Builder, bool] = {}


def _probe(build: _Builder, params: Any, hyper: dict) -> Any:
    values = hyperparam_values(hyper, jnp.zeros([], jnp.int32))
    tx = build(values)
    state = tx.init(params)
    return tx.update(jax.tree.map(jnp.zeros_like, params), state, params)


def _takes_rate_function(as_function: _Builder, params: Any, hyper: dict) -> bool:
    """Whether the optimizer takes its rate as a schedule function (optax's own path for schedules).

    The function form is built, initialised and updated abstractly (``jax.eval_shape``: traced, not
    compiled). Some factories need a number: ``optax.sm3`` negates it when built, ``optax.rprop``
    fills its state with it, a custom factory may compute ``-learning_rate``. When the function form
    fails and the number form does not, the rate goes in as a float32 array; when both fail (an
    update that needs extra arguments, say) the failure is not the rate's, and the function form stays.
    """
    try:
        key = as_function
        hash(key)
    except TypeError:  # unhashable static arguments: decided for this transformation only
        key = None
    if key is not None and key in _TAKES_FUNCTION:
        return _TAKES_FUNCTION[key]
    as_number = dataclasses.replace(as_function, lr_as_schedule=False)
    try:
        jax.eval_shape(functools.partial(_probe, as_function), params, hyper)
        takes = True
    except Exception:  # noqa: BLE001 - any failure of the function form: try the number form
        try:
            jax.eval_shape(functools.partial(_probe, as_number), params, hyper)
            takes = False
        except Exception:  # noqa: BLE001 - fails either way: not the rate's doing
            takes = True
    if key is not None:
        _TAKES_FUNCTION[key] = takes
    return takes


def _signature(factory: Callable) -> tuple[dict[str, inspect.Parameter], bool]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: accept anything
        return {}, True
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return dict(params), var_kw


def inject(
    optimizer_factory: Callable[..., optax.GradientTransformation],
    /,
    *,
    static_args: Iterable[str] = (),
    plateau: optax.GradientTransformation | None = None,
    **hyperparams: Any,
) -> optax.GradientTransformationExtraArgs:
    """Any optax optimizer whose hyperparameters may be numbers or lrjax schedules, held in the state.

    ``lrjax.inject(optax.adamw, learning_rate=sched, weight_decay=1e-4)`` behaves like
    ``optax.adamw(sched, weight_decay=1e-4)``, but the schedule and the numbers are pytree
    leaves of the optimizer state (:class:`InjectState`), not constants baked into the
    compiled step: the update reads them from the state, evaluates each at the update count
    :math:`t` (the first update uses :math:`s(0)`), rebuilds the optimizer from these values
    and applies it. So ``tx_a.update`` on a state made by ``tx_b.init`` follows ``tx_b``'s
    plan whenever both have the same structure, one jitted step serves every plan, and
    ``jax.vmap`` over a stacked state sweeps rates.

    Which argument goes where:

    * an :class:`lrjax.Schedule` → the state; evaluated at each update;
    * a number or numeric array → the state as a float32 array (a Python int whose
      factory default is an int, e.g. a period, stays static; name an integer seed in
      ``static_args``). A NaN is refused, and so is a learning rate that is negative or
      infinite, as the schedule families refuse them;
    * anything else (bools, strings, callables such as a mask or an optax schedule
      function, PRNG keys — typed ``jax.random.key(0)`` or raw ``uint32``), and the names in
      ``static_args`` → passed through unchanged (static: changing them recompiles). A
      learning rate that is a string, a bool or a list is refused;
    * arguments you do not pass keep the factory's own defaults, exactly as optax uses them.

    The learning rate is handed to the factory as a schedule function of the count, so
    optax applies it exactly as it applies its own schedules (``-η`` cast to the update's
    dtype, times the update): the updates are bitwise identical (on CPU) to the optimizer
    built directly with the same constant rate or with an optax schedule of the same
    formula. (``optax.inject_hyperparams`` is not: it also injects every default, e.g.
    ``b1 = 0.9``, as float32, and optax then computes ``1 - b1`` in float32 instead of in
    double precision — optax issue #1532.) The same holds for a number given for
    ``b1``/``b2``/``decay``: as a float32 leaf it differs from optax's double-precision
    ``1 - b1`` by about one ulp; pass its name in ``static_args`` to keep optax's exact
    constant (then it is not in the state).

    A few factories cannot take a schedule function (``optax.sm3`` negates its rate when
    built, ``optax.rprop`` fills its state with it, and so may your own): that is found out
    from the first parameters the transformation sees, by building, initialising and
    updating the function form abstractly (``jax.eval_shape``, nothing compiled, once per
    optimizer configuration); where only the number form works, the rate goes in as a
    float32 array.

    Args:
      optimizer_factory: an optax optimizer factory (``optax.adamw``, ``optax.sgd``, ``optax.lion``, ...).
      static_args: names passed through as static constants, numbers included.
      plateau: a :func:`lrjax.reduce_on_plateau` transformation whose multiplier applies to
        the learning rate (``min_lr`` is then an absolute floor on the rate used).
      **hyperparams: the factory's arguments, each a number, a schedule or a static value.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`InjectState`; its update
      accepts ``value=metric`` (fed to the plateau) and forwards other extra args.

    >>> import jax.numpy as jnp, optax, lrjax
    >>> sched = lrjax.Warmup(lrjax.CosineDecay(peak=1e-2, decay_steps=90), warmup_steps=10)
    >>> tx = lrjax.inject(optax.adamw, learning_rate=sched, weight_decay=1e-4)
    >>> state = tx.init({"w": jnp.ones(3)})
    >>> updates, state = tx.update({"w": jnp.ones(3)}, state, {"w": jnp.ones(3)})
    >>> float(lrjax.current_hyperparams(state)["learning_rate"])  # the rate of step 0
    0.0
    """
    if not callable(optimizer_factory):
        raise TypeError(
            f"inject: optimizer_factory must be an optax optimizer factory such as optax.adamw, "
            f"got {optimizer_factory!r} ({type(optimizer_factory).__name__})"
        )
    fname = getattr(optimizer_factory, "__name__", repr(optimizer_factory))
    if isinstance(static_args, str):
        static_args = (static_args,)
    static_names = set(static_args)
    params, var_kw = _signature(optimizer_factory)
    if not var_kw:
        for name in list(hyperparams) + sorted(static_names):
            if name not in params:
                raise TypeError(
                    f"inject: {fname} has no argument {name!r}{closest(name, params)}; "
                    f"its arguments are {', '.join(params)}"
                )
    for name in static_names:
        if name not in hyperparams:
            raise ValueError(f"inject: static_args names {name!r}, which is not among the hyperparameters given")
    if plateau is not None:
        probe = plateau.init(None) if isinstance(plateau, optax.GradientTransformation) else None
        if not isinstance(probe, PlateauState):
            raise TypeError(f"inject: plateau must come from lrjax.reduce_on_plateau(...), got plateau={plateau!r}")
        if _LR not in hyperparams:
            raise ValueError(
                "inject: plateau needs the learning rate it multiplies; pass learning_rate=... "
                "(a number or a schedule) to inject"
            )
        plateau_init = probe
    else:
        plateau_init = None

    if _LR in hyperparams and _LR not in static_names:
        _check_rate_kind(hyperparams[_LR])
    dynamic: dict[str, Any] = {}
    static: dict[str, Any] = {}
    for name, value in hyperparams.items():
        if name in static_names:
            static[name] = value
        elif isinstance(value, Schedule):
            dynamic[name] = value
        elif _is_number(value):
            _check_number(name, value)
            default = params[name].default if name in params else None
            if isinstance(value, (int, np.integer)) and isinstance(default, int) and not isinstance(default, bool):
                static[name] = value
            else:
                dynamic[name] = jnp.asarray(np.asarray(value, np.float32)) if not isinstance(
                    value, jax.core.Tracer) else jnp.asarray(value, jnp.float32)
        else:
            static[name] = value
    if plateau is not None and _LR not in dynamic:
        raise ValueError("inject: plateau needs learning_rate to be a number or an lrjax schedule, not static")

    as_function = _Builder(optimizer_factory, tuple(sorted(static.items())), tuple(dynamic), True)
    # The optimizer, once it is known whether the factory takes its rate as a schedule function (a
    # property of the factory, found out from the first parameters it sees; see _takes_rate_function).
    chosen: list[tuple[_Builder, Callable]] = []

    def builder(params: Any) -> tuple[_Builder, Callable]:
        if not chosen:
            takes = _LR not in dynamic or _takes_rate_function(as_function, params, dict(dynamic))
            build = as_function if takes else dataclasses.replace(as_function, lr_as_schedule=False)
            try:
                hash(build)
                init_jit = functools.partial(_init_program, build)
            except TypeError:  # an unhashable static argument: a program of this optimizer's own
                init_jit = jax.jit(functools.partial(_init_state, build))
            chosen.append((build, init_jit))
        return chosen[0]

    def init_fn(params):
        return builder(params)[1](params, dict(dynamic), plateau_init)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        build = builder(updates if params is None else params)[0]
        pstate = state.plateau
        if value is not None and pstate is not None:
            base = _evaluate(state.hyperparams[_LR], state.count)
            pstate = plateau_step(pstate, value, base)
        values = hyperparam_values(state.hyperparams, state.count, pstate)
        if value is not None:  # also for optimizers inside that read the metric themselves
            extra_args["value"] = value
        updates, inner = build(values).update(updates, state.inner_state, params, **extra_args)
        return updates, InjectState(
            optax.safe_increment(state.count), state.hyperparams, values, pstate, inner
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
