"""What a strategy does to the stacked states: keep, drop, copy, perturb, set, fork, start — one gather.

A strategy's :class:`~lrjax.sweep.strategies.Decision` names, for every member that trains on, the
member whose state its row takes (itself, or another: PBT's exploit, a cooldown's fork, an annealed copy),
the factors its hyperparameter leaves are multiplied by (PBT's explore), the leaves set to a value (an
annealed copy's cooldown start), and whose plan (schedule and optimizer hyperparameters) it follows
afterwards: the source's (an exploit copies the plan it perturbs) or its own (a fork keeps its own
schedule and continues the source's weights and optimizer moments). A member that was not training
starts from the copy with the source's update count (its history is the source's). Members not named
leave the stacked state (pruned, finished). The driver turns that into one gather of rows on the devices
(or through host memory on CPUs) and, where something is copied, one compiled program.

Dotted keys name leaves of the *configured* schedule: the wrappers a sweep adds around it — a
:class:`lrjax.Switch` of families, an :class:`lrjax.Anneal` — are looked through.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.engine import fetch
from lrjax.optim import InjectState
from lrjax.schedules import Anneal, Schedule, Switch, to_spec
from lrjax.sweep._errors import SweepError

__all__ = ["gather_rows", "rebuild", "explore_leaves", "leaf_pattern", "lr_schedule", "plans", "effective_spec",
           "host_row", "hyperparam_names", "configured"]

_PATH_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the wrappers a sweep puts around a configured schedule, in either order: a Switch of families, an Anneal
_WRAPPERS = r"(?:\.branches\[\d+\])?(?:\.annealed)?(?:\.branches\[\d+\])?"


def leaf_pattern(key: str) -> re.Pattern:
    """The key-path regex of the optimizer-state leaf a config key names (through Switch branches):
    ``schedule.<field...>`` for the learning rate's schedule, ``optimizer.args.<name>[.<field...>]``."""
    parts = key.split(".")
    if parts[0] == "schedule":
        hp, rest = "learning_rate", parts[1:]
    else:  # optimizer.args.<name>[...]
        hp, rest = parts[2], parts[3:]
    if not all(_PATH_PART.match(p) for p in [hp, *rest]):
        raise SweepError(f"strategy.explore.{key}: not a dotted key of names")
    tail = "".join(rf"\.{re.escape(p)}" for p in rest)
    return re.compile(rf"\.hyperparams\['{re.escape(hp)}'\]{_WRAPPERS}{tail}$")


def explore_leaves(opt_state: Any, key: str) -> list[str]:
    """Key paths (``jax.tree_util.keystr``) of the numeric leaves ``key`` names in an optimizer state."""
    pat = leaf_pattern(key)
    found = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        ks = jax.tree_util.keystr(path)
        if pat.search(ks) and np.issubdtype(np.dtype(leaf.dtype), np.floating):
            found.append(ks)
    return found


def hyperparam_names(opt_state: Any) -> list[str]:
    """The hyperparameters an optimizer state holds (for messages)."""
    hp = [k for k in (jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(opt_state)[0])
          if ".hyperparams[" in k]
    return sorted({re.sub(r"^.*\.hyperparams\['([^']+)'\]" + _WRAPPERS, r"\1", k) for k in hp})


@jax.jit
def _take_rows(chunk_states: list[Any], idx: jax.Array) -> Any:
    return jax.tree.map(lambda *xs: jnp.take(jnp.concatenate(xs), idx, axis=0), *chunk_states)


def gather_rows(chunk_states: list[Any], pick: list[tuple[int, int]], cpu: bool) -> Any:
    """Stacked states whose row ``r`` is row ``pick[r][1]`` of chunk ``pick[r][0]``: on CPU devices a copy
    through host memory (no program to compile), elsewhere one compiled gather on the devices."""
    sizes = [jax.tree.leaves(s)[0].shape[0] for s in chunk_states]
    offsets = np.cumsum([0] + sizes[:-1])
    idx = np.asarray([offsets[c] + r for c, r in pick], np.int32)
    if cpu:
        host = fetch(chunk_states)
        return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs])[idx], *host)
    return _take_rows(chunk_states, idx)


def _is_inject(x: Any) -> bool:
    return isinstance(x, InjectState)


def plans(opt_state: Any) -> list[dict]:
    """The plans (``InjectState.hyperparams``: schedules and hyperparameters) inside an optimizer state."""
    return [node.hyperparams for node in jax.tree.leaves(opt_state, is_leaf=_is_inject) if _is_inject(node)]


def _with_plans(opt_state: Any, new: list[dict]) -> Any:
    it = iter(new)
    return jax.tree.map(lambda n: n._replace(hyperparams=next(it)) if _is_inject(n) else n, opt_state,
                        is_leaf=_is_inject)


def _leaf_map(opt_state: Any, keys: tuple[str, ...], values: tuple, fn: Any) -> Any:
    """``opt_state`` with every floating leaf named by ``keys[k]`` replaced by ``fn(leaf, values[k])``."""
    for key, v in zip(keys, values):
        pat = leaf_pattern(key)

        def one(path, leaf, pat=pat, v=v):
            if pat.search(jax.tree_util.keystr(path)) and np.issubdtype(np.dtype(leaf.dtype), np.floating):
                return fn(leaf, v.reshape((-1,) + (1,) * (leaf.ndim - 1)).astype(leaf.dtype))
            return leaf

        opt_state = jax.tree_util.tree_map_with_path(one, opt_state)
    return opt_state


def _rebuild(xp: Any, states: Any, idx: Any, keep: Any, rng: Any, factors: tuple, keys: tuple[str, ...], own: Any,
             values: tuple, set_keys: tuple[str, ...]) -> Any:
    """:func:`rebuild` with the array module ``xp`` (``jax.numpy`` in a compiled program, ``numpy`` on the host:
    the same elementwise operations, the same bits)."""
    def take(tree: Any, i: Any = idx) -> Any:
        return jax.tree.map(lambda a: xp.take(a, i, axis=0), tree)

    params, opt_state, extra, average = take((states.params, states.opt_state, states.extra, states.average))
    step, skipped, own_rng = take((states.step, states.skipped, states.rng), keep)
    rng = own_rng if rng is None else rng
    if own is not None:  # rows that keep their own plan (a fork): the plan leaves from ``own``, row by row
        mask, own_plans = own

        def pick(a, b):
            return xp.where(xp.reshape(mask, (-1,) + (1,) * (a.ndim - 1)), b, a)

        opt_state = _with_plans(opt_state, jax.tree.map(pick, plans(opt_state), own_plans))
    opt_state = _leaf_map(opt_state, keys, factors, lambda leaf, f: leaf * f)
    opt_state = _leaf_map(opt_state, set_keys, values, lambda leaf, v: xp.where(xp.isnan(v), leaf, v))
    return states._replace(step=step, params=params, opt_state=opt_state, rng=rng, skipped=skipped, extra=extra,
                           average=average)


_rebuild_program = functools.partial(jax.jit, static_argnames=("keys", "set_keys"))(functools.partial(_rebuild, jnp))


def rebuild(states: Any, src: np.ndarray, factors: dict[str, np.ndarray] | None = None,
            own: tuple[np.ndarray, Any] | None = None, *, keep: np.ndarray | None = None, rng: Any = None,
            values: dict[str, np.ndarray] | None = None, host: bool = False) -> Any:
    """Stacked states whose row ``r`` takes parameters, optimizer state, model state and averaged weights of
    row ``src[r]`` of ``states`` (an exact copy); its update count and skip count come from row ``keep[r]``
    (default ``r``: the member's own row; a member that starts from a copy gives its source's) and its PRNG
    key from ``rng[r]`` (default: row ``r``'s). Then, row by row, the leaves named in ``factors`` are
    multiplied (explore) and those named in ``values`` set (NaN: left as copied). ``own = (mask, plans)``:
    rows where ``mask`` is set keep the plan given in ``plans`` (stacked :func:`plans` of their own states)
    instead of the source's. ``host``: in host memory with numpy (CPUs: nothing to compile, the same bits);
    else one compiled program per population and structure (the same shapes at every decision)."""
    factors, values = factors or {}, values or {}
    keys, set_keys = tuple(factors), tuple(values)
    src = np.asarray(src, np.int32)
    if keep is None:
        keep = np.arange(len(src)) if len(src) == np.shape(states.step)[0] else src
    keep = np.asarray(keep, np.int32)
    fs = tuple(np.asarray(factors[k], np.float32) for k in keys)
    vs = tuple(np.asarray(values[k], np.float32) for k in set_keys)
    if host:
        states, own = jax.tree.map(np.asarray, fetch(states)), None if own is None else jax.tree.map(np.asarray, own)
        return _rebuild(np, states, src, keep, rng, fs, keys, own, vs, set_keys)
    return _rebuild_program(states, src, keep, rng, fs, keys=keys, own=own, values=vs, set_keys=set_keys)


def lr_schedule(opt_state: Any) -> Any:
    """The learning-rate schedule held in an (unstacked) optimizer state."""
    found = [p.get("learning_rate") for p in plans(opt_state)]
    return found[0] if found else None


def effective_spec(pieces: list[tuple[int, Any]]) -> dict[str, Any] | None:
    """An lrjax spec of the rate a member followed: schedule ``i`` from update ``t_i`` on, read at the
    global update count (``Sequence`` of ``Shift(s_i, t_i)``)."""
    specs = []
    for t, sched in pieces:
        if not isinstance(sched, Schedule):
            return None
        sched = configured(sched)
        spec = to_spec(sched)
        specs.append(spec if t == 0 else {"name": "shift", "schedule": spec, "shift": t})
    if len(specs) == 1:
        return specs[0]
    return {"name": "sequence", "schedules": specs, "boundaries": [t for t, _ in pieces[1:]]}


def configured(sched: Any) -> Any:
    """The configured schedule inside the wrappers a sweep adds: a :class:`lrjax.Switch`'s chosen branch, an
    :class:`lrjax.Anneal` that is off (a concrete schedule)."""
    while True:
        if isinstance(sched, Switch):
            sched = sched.branches[int(np.asarray(sched.index))]
        elif isinstance(sched, Anneal) and not np.isfinite(np.asarray(sched.anneal_at)):
            sched = sched.annealed
        else:
            return sched


def host_row(tree: Any, r: int) -> Any:
    return jax.tree.map(lambda a: np.asarray(a)[r], tree)
