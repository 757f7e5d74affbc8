"""Reading and editing lrjax hyperparameters anywhere inside an optimizer state.

The functions here walk any (nested) optax state — ``optax.chain`` tuples,
``optax.MultiSteps``, ``optax.masked``, ``optax.multi_transform`` — and act on the
lrjax states they find: :class:`InjectState`, :class:`ScaleByScheduleState`,
:class:`PlateauState` (and report optax's own ``inject_hyperparams`` states).

Flax NNX: ``nnx.Optimizer`` wraps every array of the optax state in a Variable (``OptArray``,
``OptVariable``) — the leaves of the schedules inside it too — and each ``update`` writes the new
values into those Variables in place. These functions read through the wrappers (plain arrays
out), give back a state wrapped the same way (so ``optimizer.opt_state = with_hyperparams(...)``
keeps working), and :func:`set_hyperparams` changes an optimizer in place. flax is never imported
here: a state can only hold NNX Variables once the caller has imported ``flax.nnx``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax.optim._inject import InjectState, _evaluate, hyperparam_values
from lrjax.optim._plateau import PlateauState, plateau_step
from lrjax.optim._schedule import ScaleByScheduleState
from lrjax.schedules import Schedule, field_kind

__all__ = ["current_hyperparams", "with_hyperparams", "set_hyperparams", "replace_schedule", "observe_metric"]

_OPTAX_INJECT = tuple(
    t for t in (getattr(optax, "InjectHyperparamsState", None), getattr(optax, "InjectStatefulHyperparamsState", None))
    if isinstance(t, type)
)
_NODES = (InjectState, ScaleByScheduleState, PlateauState) + _OPTAX_INJECT


def _is_node(x: Any) -> bool:
    return isinstance(x, _NODES)


# -- Flax NNX: states whose arrays are wrapped in nnx.Variable ----------------------------

def _variable_type() -> type | None:
    """``flax.nnx.Variable`` if the caller has imported flax.nnx (else no state can hold one)."""
    nnx = sys.modules.get("flax.nnx")
    return getattr(nnx, "Variable", None) if nnx is not None else None


def _variables(tree: Any) -> tuple[type | None, list]:
    var = _variable_type()
    if var is None:
        return None, []
    leaves = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, var))
    return var, [x for x in leaves if isinstance(x, var)]


def _get(v: Any) -> Any:
    return v.get_value() if hasattr(v, "get_value") else v.value


def _unwrap(tree: Any) -> tuple[Any, Any]:
    """``(plain, rewrap)``: the state with each NNX Variable replaced by its value, and the function
    that wraps a state of the same structure back into Variables of the same types and metadata
    (the identity when ``tree`` holds none)."""
    var, found = _variables(tree)
    if not found:
        return tree, lambda plain: plain
    is_var = lambda x: isinstance(x, var)  # noqa: E731
    plain = jax.tree.map(lambda x: _get(x) if is_var(x) else x, tree, is_leaf=is_var)

    def rewrap(new_plain: Any) -> Any:
        return jax.tree.map(lambda w, x: w.replace(value=x) if is_var(w) else x, tree, new_plain, is_leaf=is_var)

    return plain, rewrap


def _holder_state(obj: Any) -> Any:
    """The optax state of an optimizer object (``nnx.Optimizer``, flax's ``TrainState``), else ``obj``."""
    if not isinstance(obj, (tuple, list, dict)) and not _is_node(obj) and hasattr(obj, "opt_state"):
        return obj.opt_state
    return obj


def _refuse_holder(fn: str, obj: Any) -> None:
    if _holder_state(obj) is not obj:
        raise TypeError(
            f"{fn}: opt_state must be an optax state, got a {type(obj).__name__} (an optimizer holding one); "
            f"pass its .opt_state (the result wraps its arrays the same way, ready to assign back), or "
            f"change it in place with lrjax.set_hyperparams(optimizer, ...)"
        )


def _key_str(path) -> str:
    parts = []
    for k in path:
        for attr in ("name", "key", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:  # pragma: no cover - other key types
            parts.append(str(k))
    return "/".join(parts)


def _last_step(count: jax.Array) -> jax.Array:
    """The count of the last update applied (0 before any)."""
    return jnp.maximum(count - 1, 0)


def _entries(state: Any, prefix: tuple = ()) -> list[tuple[str, str, jax.Array]]:
    out: list[tuple[str, str, jax.Array]] = []
    leaves, _ = jax.tree_util.tree_flatten_with_path(state, is_leaf=_is_node)
    for path, node in leaves:
        full = prefix + tuple(path)
        where = _key_str(full)
        if isinstance(node, InjectState):
            out += [(where, k, v) for k, v in node.values.items()]
            out += _entries(node.inner_state, full + (jax.tree_util.GetAttrKey("inner_state"),))
        elif isinstance(node, ScaleByScheduleState):
            out.append((where, "scale", node.value))
        elif isinstance(node, PlateauState):
            out.append((where, "plateau_scale", node.scale))
        elif _OPTAX_INJECT and isinstance(node, _OPTAX_INJECT):
            out += [(where, k, v) for k, v in node.hyperparams.items()]
            out += _entries(node.inner_state, full + (jax.tree_util.GetAttrKey("inner_state"),))
    return out


def current_hyperparams(opt_state: Any) -> dict[str, jax.Array]:
    """The hyperparameter values used by the last update, wherever they sit in the state.

    Finds every :func:`lrjax.inject` state (keys are the hyperparameter names, e.g.
    ``learning_rate``, ``b1``; with a plateau also ``plateau_scale``), every
    :func:`lrjax.scale_by_schedule` state (key ``scale``), every standalone
    :func:`lrjax.reduce_on_plateau` state (``plateau_scale``) and optax's own
    ``inject_hyperparams`` states, inside ``optax.chain``, ``optax.MultiSteps``,
    ``optax.masked`` and any nesting. Before any update the values are those of step 0.
    When a name occurs more than once (two param groups), each is keyed by its path in the
    state, ``"<path>/<name>"``. The values stay on the device: fetch them when you log.
    ``opt_state`` may also be an optimizer holding one (``nnx.Optimizer``, flax's
    ``TrainState``): the values are plain arrays even where NNX wraps the state in Variables.

    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.MultiSteps(lrjax.inject(optax.sgd, learning_rate=lrjax.Linear(1.0, 0.0, 4)), every_k_schedule=2)
    >>> state = tx.init(jnp.zeros(1))
    >>> float(lrjax.current_hyperparams(state)["learning_rate"])
    1.0
    """
    entries = _entries(_unwrap(_holder_state(opt_state))[0])
    counts: dict[str, int] = {}
    for _, name, _ in entries:
        counts[name] = counts.get(name, 0) + 1
    out: dict[str, jax.Array] = {}
    for where, name, value in entries:
        out[name if counts[name] == 1 else f"{where}/{name}"] = value
    return out


# -- structure checks ------------------------------------------------------------------

def _describe(x: Any) -> str:
    if isinstance(x, Schedule):
        return type(x).__name__
    if isinstance(x, (jax.Array, np.ndarray)):
        return f"a number (array of shape {tuple(x.shape)})"
    if isinstance(x, (int, float, np.integer, np.floating)):
        return f"a number ({x!r})"
    return type(x).__name__


def _difference(old: Any, new: Any, where: str) -> str | None:
    """A sentence saying how ``new`` differs structurally from ``old``, or None."""
    if isinstance(old, Schedule) or isinstance(new, Schedule):
        if type(old) is not type(new):
            return f"{where} is {_describe(old)} in the state but {_describe(new)} in the replacement"
        for f in dataclasses.fields(old):
            a, b = getattr(old, f.name), getattr(new, f.name)
            kind = field_kind(f)
            sub = f"{where}.{f.name}"
            if kind == "static" and a != b:
                return f"{sub} is {a!r} in the state but {b!r} in the replacement (structural setting)"
            if kind == "child":
                if isinstance(a, tuple) != isinstance(b, tuple) or (isinstance(a, tuple) and len(a) != len(b)):
                    na = len(a) if isinstance(a, tuple) else 1
                    nb = len(b) if isinstance(b, tuple) else 1
                    return f"{sub} holds {na} schedule(s) in the state but {nb} in the replacement"
                pairs = zip(a, b) if isinstance(a, tuple) else [(a, b)]
                for i, (ca, cb) in enumerate(pairs):
                    d = _difference(ca, cb, f"{sub}[{i}]" if isinstance(a, tuple) else sub)
                    if d:
                        return d
            if kind == "leaf" and jnp.shape(a) != jnp.shape(b):
                return f"{sub} has shape {jnp.shape(a)} in the state but {jnp.shape(b)} in the replacement"
        return None
    if jnp.shape(old) != jnp.shape(new):
        return f"{where} has shape {jnp.shape(old)} in the state but {jnp.shape(new)} in the replacement"
    return None


def _coerce(name: str, old: Any, new: Any) -> Any:
    if not isinstance(new, Schedule) and not isinstance(old, Schedule):
        if isinstance(new, (bool, np.bool_)) or not (
            isinstance(new, (int, float, np.integer, np.floating, jax.Array, np.ndarray))
        ):
            raise TypeError(f"with_hyperparams: {name} must be a number or an lrjax schedule, got {name}={new!r}")
        arr = jnp.asarray(new, jnp.float32)
        if arr.ndim == 0 and jnp.ndim(old) > 0:
            arr = jnp.broadcast_to(arr, jnp.shape(old))
        new = arr
    diff = _difference(old, new, name)
    if diff:
        raise ValueError(
            f"with_hyperparams: cannot replace {name} by a structurally different value: {diff}. "
            f"A live state only takes a replacement of the same pytree structure (same schedule "
            f"families, same static settings, same leaf shapes); build a new optimizer state for a "
            f"different kind of plan. State has {old!r}, got {new!r}"
        )
    return jax.tree.map(lambda x: jnp.array(x, copy=True), new)  # the state owns its buffers (donation)


def with_hyperparams(opt_state: Any, **new: Any) -> Any:
    """A copy of ``opt_state`` whose hyperparameters (schedules or numbers) are replaced.

    Use it to extend a run or change the peak on resume without rebuilding or recompiling:
    ``state = lrjax.with_hyperparams(state, learning_rate=sched.replace(decay_steps=20_000))``.
    Every :func:`lrjax.inject` state holding a hyperparameter of that name is updated
    (``scale`` names the schedule of :func:`lrjax.scale_by_schedule`). The replacement must
    have the same pytree structure as what the state holds — same schedule families and
    static settings, same leaf shapes — or a ValueError says what differs. The counts and
    the inner optimizer state (moments) are kept; the reported values are re-evaluated at the
    last update's step.

    A state whose arrays are wrapped in NNX Variables (``nnx.Optimizer(...).opt_state``) comes
    back wrapped the same way, so ``optimizer.opt_state = lrjax.with_hyperparams(
    optimizer.opt_state, ...)`` works; :func:`set_hyperparams` does it in place.

    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.inject(optax.sgd, learning_rate=lrjax.CosineDecay(0.1, 100))
    >>> state = lrjax.with_hyperparams(tx.init(jnp.zeros(1)), learning_rate=lrjax.CosineDecay(0.2, 200))
    >>> float(lrjax.current_hyperparams(state)["learning_rate"])
    0.20000000298023224
    """
    _refuse_holder("with_hyperparams", opt_state)
    opt_state, rewrap = _unwrap(opt_state)
    found: set[str] = set()
    names: set[str] = set()

    def visit(node):
        if isinstance(node, InjectState):
            names.update(node.hyperparams)
            hp = dict(node.hyperparams)
            for k, v in new.items():
                if k in hp:
                    hp[k] = _coerce(k, hp[k], v)
                    found.add(k)
            inner = jax.tree.map(visit, node.inner_state, is_leaf=_is_node)
            values = hyperparam_values(hp, _last_step(node.count), node.plateau)
            return node._replace(hyperparams=hp, values=values, inner_state=inner)
        if isinstance(node, ScaleByScheduleState):
            names.add("scale")
            if "scale" in new:
                sched = _coerce("scale", node.schedule, new["scale"])
                found.add("scale")
                return node._replace(schedule=sched, value=sched(_last_step(node.count)))
        return node

    out = jax.tree.map(visit, opt_state, is_leaf=_is_node)
    missing = [k for k in new if k not in found]
    if missing:
        raise ValueError(
            f"with_hyperparams: no lrjax state holds {', '.join(map(repr, missing))}; "
            f"the state holds {', '.join(sorted(names)) or 'no lrjax hyperparameters'} "
            f"(only hyperparameters passed to lrjax.inject as numbers or schedules live in the state)"
        )
    return rewrap(out)


def set_hyperparams(optimizer: Any, **new: Any) -> None:
    """Replace hyperparameters (schedules or numbers) of an optimizer object in place.

    For Flax NNX: ``lrjax.set_hyperparams(optimizer, learning_rate=new_plan)`` on an
    ``nnx.Optimizer(model, lrjax.inject(...), wrt=nnx.Param)`` writes the new plan into the
    Variables that hold its state, as ``optimizer.update`` writes each step's state — eagerly or
    inside ``nnx.jit`` (a jitted step keeps its compiled program: same structure). The rules are
    those of :func:`with_hyperparams` (same structure, counts and moments kept). An object whose
    ``opt_state`` is not NNX-wrapped gets ``optimizer.opt_state = with_hyperparams(...)``.

    Why not assign a plain state back: ``nnx.Optimizer`` wraps every array of the optax state
    in a Variable, the leaves of the (frozen) schedules too, and its ``update`` then writes
    values into those Variables; a plain array in their place makes it try to set an attribute
    of the frozen schedule ("Cannot set key ... on immutable node").

    >>> import jax.numpy as jnp, optax, lrjax
    >>> from flax import nnx
    >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    >>> optimizer = nnx.Optimizer(model, lrjax.inject(optax.sgd, learning_rate=lrjax.Constant(0.1)), wrt=nnx.Param)
    >>> lrjax.set_hyperparams(optimizer, learning_rate=lrjax.Constant(0.2))
    >>> float(lrjax.current_hyperparams(optimizer)["learning_rate"])
    0.20000000298023224
    """
    state = _holder_state(optimizer)
    if state is optimizer:
        raise TypeError(
            f"set_hyperparams: optimizer must be an optimizer object holding its state in .opt_state (an "
            f"nnx.Optimizer), got {type(optimizer).__name__}; for an optax state use "
            f"state = lrjax.with_hyperparams(state, ...)"
        )
    var, wrapped = _variables(state)
    if not wrapped:
        try:
            optimizer.opt_state = with_hyperparams(state, **new)
        except dataclasses.FrozenInstanceError:
            raise TypeError(
                f"set_hyperparams: {type(optimizer).__name__} is immutable; use "
                f"x = x.replace(opt_state=lrjax.with_hyperparams(x.opt_state, ...))"
            ) from None
        return
    plain, _ = _unwrap(state)
    updated = with_hyperparams(plain, **new)

    def put(v: Any, x: Any) -> None:
        if not isinstance(v, var):
            return
        if hasattr(v, "set_value"):
            v.set_value(x)
        else:  # older flax
            v.value = x

    jax.tree.map(put, state, updated, is_leaf=lambda x: isinstance(x, var))


def replace_schedule(opt_state: Any, schedule: Any, name: str = "learning_rate") -> Any:
    """Replace one schedule in a live state: ``with_hyperparams(opt_state, **{name: schedule})``."""
    return with_hyperparams(opt_state, **{name: schedule})


def observe_metric(opt_state: Any, value: Any) -> Any:
    """Feed an evaluation metric to every plateau rule in ``opt_state`` (pure, jittable).

    Updates each :func:`lrjax.reduce_on_plateau` state found (standalone in a chain, or
    given to :func:`lrjax.inject` as ``plateau=``) exactly as ``update(..., value=metric)``
    would, without applying a gradient update: the training loop's eval hook calls it with
    the eval loss, and the gradient step never touches the plateau counters. For a plateau
    inside ``inject``, the rate it multiplies is the schedule at the current count; the
    reported ``learning_rate``/``plateau_scale`` are refreshed.

    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(patience=0))
    >>> state = lrjax.observe_metric(lrjax.observe_metric(tx.init(jnp.zeros(1)), 1.0), 2.0)
    >>> round(float(lrjax.current_hyperparams(state)["plateau_scale"]), 6)
    0.1

    NNX-wrapped states come back wrapped: ``optimizer.opt_state = lrjax.observe_metric(
    optimizer.opt_state, loss)``.
    """
    _refuse_holder("observe_metric", opt_state)
    opt_state, rewrap = _unwrap(opt_state)

    def visit(node):
        if isinstance(node, PlateauState):
            return plateau_step(node, value)
        if isinstance(node, InjectState):
            inner = jax.tree.map(visit, node.inner_state, is_leaf=_is_node)
            if node.plateau is None:
                return node._replace(inner_state=inner)
            base = _evaluate(node.hyperparams["learning_rate"], node.count)
            p = plateau_step(node.plateau, value, base)
            values = hyperparam_values(node.hyperparams, _last_step(node.count), p)
            return node._replace(plateau=p, values=values, inner_state=inner)
        return node

    return rewrap(jax.tree.map(visit, opt_state, is_leaf=_is_node))
