"""Which configurations of a sweep train together: a *group* shares one compiled program.

Configurations whose states have the same tree structure, shapes and dtypes, and whose configs agree on
everything that is not a state leaf (model, data shapes, optimizer name and static arguments, run length,
cadences), form a group: their states are stacked along a new leading axis and one vmapped program trains
them. Configurations that differ only in their learning-rate schedule's *family* (or a static option of
it) are merged too: each family becomes a branch of a :class:`lrjax.Switch`, and every member follows
its own branch (its rates unchanged), so the sweep compiles once per structure, not once per family.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lrjax.engine import Experiment, momentum_arg
from lrjax.optim import InjectState
from lrjax.schedules import Schedule, Switch

__all__ = ["state_shapes", "group_key", "switch_families", "data_key"]


def data_key(cfg: Any) -> tuple:
    """What decides a configuration's dataset (configurations with equal keys share one loaded copy)."""
    d = cfg.data
    seed = cfg.train.seed if d.seed is None else d.seed
    # splits drawn with the seed (digits' test split, the validation split) depend on it; files do not
    seeded = d.source == "digits" or bool(d.validation_fraction)
    return (d.source, seed if seeded else None, d.test_fraction, d.normalize, d.validation_fraction)


def _static_args(cfg: Any) -> str:
    """Optimizer arguments that are not state leaves (ints, bools, strings): they change the program."""
    st = {k: v for k, v in cfg.optimizer.args.items()
          if not isinstance(v, (float, dict)) or isinstance(v, bool)}
    return json.dumps(st, sort_keys=True, default=str)


def state_shapes(exp: Experiment) -> Any:
    """The abstract train state of ``exp`` (no parameters computed)."""
    return jax.eval_shape(exp.init_state, jax.ShapeDtypeStruct((2,), jnp.uint32))


def _structure(tree: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    try:
        hash(treedef)
        tdef: Any = treedef
    except TypeError:  # pragma: no cover - unhashable aux data somewhere
        tdef = str(treedef)
    return tdef, tuple((x.shape, str(x.dtype)) for x in leaves)


def _config_key(exp: Experiment, lengths: bool = True) -> tuple:
    c = exp.config
    d, o, t = c.data, c.optimizer, c.train
    return (
        d.source, d.batch_size, d.test_fraction, d.normalize, d.validation_fraction, d.eval_batch_size,
        exp.data.input_shape, exp.data.num_train, int(exp.data.x_test.shape[0]), c.model, c.loss, o.name,
        o.clip_norm, o.accumulation_steps, o.cycle_momentum, o.batch_scaling, _static_args(c),
        t.steps if lengths else None, t.log_every, t.eval_every, t.on_nonfinite, json.dumps(c.plateau, sort_keys=True),
        id(exp.model),
    )


def group_key(exp: Experiment, shapes: Any = None, *, lengths: bool = True) -> tuple:
    """Everything that must agree for two experiments to share one compiled vmapped program; without
    ``lengths``, runs of different ``train.steps`` too (each member leaves the stacked state at its own end)."""
    return _config_key(exp, lengths) + _structure(state_shapes(exp) if shapes is None else shapes)


def _family_key(exp: Experiment, shapes: Any, lengths: bool = True) -> tuple:
    """:func:`group_key` with the learning-rate schedule (and the momentum that follows it) left out:
    experiments that differ only in their schedule's family or static options."""
    slots = {"learning_rate"}
    if exp.config.optimizer.cycle_momentum:
        slots.add(momentum_arg(exp.config.optimizer.name))

    def blank(node: Any) -> Any:
        if isinstance(node, InjectState):
            return node._replace(hyperparams={k: (None if k in slots else v) for k, v in node.hyperparams.items()})
        return node

    blanked = jax.tree.map(blank, shapes, is_leaf=lambda x: isinstance(x, InjectState))
    return _config_key(exp, lengths) + _structure(blanked)


def switch_families(exps: list[Experiment], build: Callable[[Experiment, Schedule], Experiment], *,
                    lengths: bool = True) -> list[tuple]:
    """Group keys after giving experiments that differ only in their schedule family one structure.

    Within such a set, each family (a distinct schedule structure) is a branch of a :class:`lrjax.Switch`;
    every member is rebuilt with ``Switch(branches, index=its family)``, its own schedule in its own
    branch and one member's schedule of each other family in the others (evaluated and discarded). Its
    rates are then its own schedule's, and the set trains in one compiled program. ``lengths``: as in
    :func:`group_key`.
    """
    shapes = [state_shapes(e) for e in exps]
    keys = [group_key(e, s, lengths=lengths) for e, s in zip(exps, shapes)]
    sets: dict[tuple, list[int]] = {}
    for i, (e, s) in enumerate(zip(exps, shapes)):
        sets.setdefault(_family_key(e, s, lengths), []).append(i)
    for members in sets.values():
        families: dict[tuple, list[int]] = {}
        for i in members:
            families.setdefault(keys[i], []).append(i)
        if len(families) < 2:
            continue
        templates = tuple(exps[idx[0]].schedule for idx in families.values())
        for j, idx in enumerate(families.values()):
            for i in idx:
                branches = templates[:j] + (exps[i].schedule,) + templates[j + 1:]
                exps[i] = build(exps[i], Switch(branches, index=j))
                keys[i] = group_key(exps[i], lengths=lengths)
    return keys
