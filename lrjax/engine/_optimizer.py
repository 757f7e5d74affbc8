"""The one optimizer builder, and the readers of what an optimizer state holds.

:func:`make_optimizer` is where every optimizer that lrjax trains with is made — from a config
(:func:`build_optimizer`, what ``lrjax train``, ``lrjax sweep`` and ``lrjax find-lr`` use) or from your own
factory (:func:`lrjax.lr_range_test`): ``lrjax.inject(factory, learning_rate=schedule, **args)`` so the
schedule lives in the state, then optional global-norm clipping in front, then optional gradient
accumulation around it (:func:`lrjax.accumulate`: the schedule advances once per applied update). An
optimizer your own code assembles (``FromSchedule``) is used as it is, accumulation added.

:func:`applied_rate` reads the learning rate the last update used back from a state; :func:`update_count`
the updates applied; :func:`find_state` any node inside.

>>> import optax, jax.numpy as jnp
>>> from lrjax import Constant
>>> tx = make_optimizer(optax.adamw, Constant(1e-3), args={"weight_decay": 0.0}, clip_norm=1.0)
>>> state = tx.init(jnp.zeros(3))
>>> float(applied_rate(state))
0.0010000000474974513
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lrjax.engine._config import Config, ConfigError, optimizer_factory, schedule_of, train_steps
from lrjax.optim import (
    InjectState,
    accumulate,
    current_hyperparams,
    effective_batch_size,
    inject,
    reduce_on_plateau,
    scale_lr,
)
from lrjax.schedules import Schedule

__all__ = ["FromSchedule", "from_schedule", "make_optimizer", "build_optimizer", "make_schedule", "spec_schedule",
           "momentum_arg", "momentum_default", "applied_rate", "find_state", "update_count", "schedule_free_state"]


@dataclasses.dataclass(frozen=True)
class FromSchedule:
    """An optimizer built by your own code around a schedule: ``build(schedule) -> GradientTransformation``.

    Use it when the optimizer is more than ``factory(learning_rate=...)``. ``build`` must put the
    schedule in the state with :func:`lrjax.inject` (anywhere inside chains/wrappers) so the applied rate
    can be read back.

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


def make_optimizer(factory: Callable[..., Any] | FromSchedule, schedule: Schedule, *,
                   args: dict[str, Any] | None = None, plateau: optax.GradientTransformation | None = None,
                   clip_norm: float | None = None, accumulation_steps: int = 1) -> optax.GradientTransformation:
    """``factory`` (``optax.adamw``, ``functools.partial(optax.sgd, momentum=0.9)``, ...) driven by
    ``schedule``, every hyperparameter in its state (see the module docs).

    Args:
      factory: ``f(learning_rate=..., **args) -> GradientTransformation``, or a :class:`FromSchedule`.
      schedule: the learning-rate schedule (an lrjax schedule: it lives in the state).
      args: the factory's other arguments (numbers or schedules: state leaves too).
      plateau: a :func:`lrjax.reduce_on_plateau` whose multiplier applies to the rate.
      clip_norm: global-norm clipping of the gradient before the optimizer.
      accumulation_steps: micro-batches averaged per update.
    """
    if isinstance(factory, FromSchedule):
        if args or plateau is not None:
            raise ValueError("make_optimizer: a FromSchedule optimizer is built by its own code; give it no args "
                             "or plateau")
        tx = factory.build(schedule)
    else:
        tx = inject(factory, learning_rate=schedule, plateau=plateau, **(args or {}))
    if clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    if accumulation_steps > 1:
        tx = accumulate(tx, accumulation_steps)
    return tx


# ----------------------------------------------------------------------------- from a config

def spec_schedule(spec: Any, config: Config, num_examples: int | None, where: str) -> Schedule:
    """The schedule of a spec inside ``config`` (at key ``where``), its durations resolved against the run."""
    return schedule_of(spec, where, total_steps=train_steps(config, num_examples), batch_size=config.data.batch_size,
                       accumulation_steps=config.optimizer.accumulation_steps, num_examples=num_examples,
                       context=config.data.context)


def make_schedule(config: Config, *, num_examples: int | None = None) -> Schedule:
    """The learning-rate schedule of ``config``: durations resolved to optimizer steps (``"10%"``,
    ``"2 epochs"``, via :func:`lrjax.to_steps`), then batch-size scaling (:func:`lrjax.scale_lr`) from
    ``optimizer.base_batch_size`` to the effective batch (batch x accumulation x processes)."""
    sched = spec_schedule(config.schedule, config, num_examples, "schedule")
    o = config.optimizer
    if o.batch_scaling != "none":
        batch = effective_batch_size(config.data.batch_size, jax.process_count(), o.accumulation_steps)
        sched = scale_lr(sched, o.base_batch_size, batch, o.batch_scaling, optimizer=o.name)
    return sched


def momentum_arg(name: str) -> str | None:
    """The argument of ``optax.<name>`` that a momentum schedule drives (``b1``, ``momentum``), or None
    when the optimizer has none. Read from its signature, so every optax optimizer is covered."""
    params = inspect.signature(optimizer_factory(name)).parameters
    for key in ("b1", "momentum", "beta1"):
        if key in params:
            return key
    return None


def momentum_default(name: str) -> float | None:
    """The factory's default momentum (reported when momentum is not scheduled), or None."""
    key = momentum_arg(name)
    if key is None:
        return None
    default = inspect.signature(optimizer_factory(name)).parameters[key].default
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None


def build_optimizer(config: Config, schedule: Schedule, *, num_examples: int | None = None,
                    momentum: Schedule | None = None) -> optax.GradientTransformation:
    """Optax optimizer ``config.optimizer.name`` with every hyperparameter in its state:
    :func:`make_optimizer` of ``optax.<name>`` (``optax.contrib.<name>`` for the schedule-free ones,
    :func:`~lrjax.engine._config.optimizer_factory`) with the config's args, plateau, clipping and
    accumulation. With ``optimizer.cycle_momentum``, ``momentum`` (default: the schedule's momentum
    companion) drives the optimizer's momentum argument (:func:`momentum_arg`).
    """
    o = config.optimizer
    args: dict[str, Any] = {}
    for k, v in o.args.items():
        args[k] = spec_schedule(v, config, num_examples, f"optimizer.args.{k}") if isinstance(v, dict) else v
    if o.cycle_momentum:
        mom = momentum if momentum is not None else getattr(schedule, "momentum", None)
        if mom is None:
            raise ConfigError(
                "optimizer.cycle_momentum needs a schedule with a momentum companion (one_cycle, cyclic), "
                f"got schedule.name={config.schedule.get('name')!r}"
            )
        key = momentum_arg(o.name)
        if key is None:
            raise ConfigError(f"optimizer.cycle_momentum: optimizer {o.name!r} has no momentum argument "
                              "(b1 or momentum); set optimizer.cycle_momentum: false")
        args[key] = mom
    plateau = None
    if config.plateau is not None:
        try:
            plateau = reduce_on_plateau(**config.plateau)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"plateau: {e}") from None
    try:
        return make_optimizer(optimizer_factory(o.name), schedule, args=args, plateau=plateau, clip_norm=o.clip_norm,
                              accumulation_steps=o.accumulation_steps)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer.args: {e}") from None


# ----------------------------------------------------------------------------- reading a state

def applied_rate(opt_state: Any) -> jax.Array:
    """The learning rate used by the last update (the first update's before any), read from the state:
    its one injected ``learning_rate``. A ``ValueError`` when there is none or more than one (then the
    rate cannot be told)."""
    hp = current_hyperparams(opt_state)
    rates = [v for k, v in hp.items() if k == "learning_rate" or k.endswith("/learning_rate")]
    if len(rates) != 1:
        raise ValueError(
            "the optimizer state must hold exactly one injected learning_rate (lrjax.inject) so the applied rate "
            f"can be read back; found {len(rates)} among {sorted(hp) or 'none'}"
        )
    return jnp.asarray(rates[0], jnp.float32)


def find_state(opt_state: Any, cls: type, caller: str, what: str) -> Any:
    """The first node of type ``cls`` inside an optimizer state (wrapped by lrjax.inject, clipping,
    accumulation); a ``ValueError`` names ``caller`` and ``what`` was looked for when there is none."""
    for node in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, cls)):
        if isinstance(node, cls):
            return node
    raise ValueError(f"{caller}: no {what} in the optimizer state")


def update_count(opt_state: Any) -> jax.Array:
    """The optimizer updates applied so far: the count of the (first) :class:`lrjax.optim.InjectState` in
    ``opt_state`` (gradient-accumulation micro-steps and skipped steps do not count)."""
    return find_state(opt_state, InjectState, "update_count", "lrjax.inject state").count


def schedule_free_state(opt_state: Any) -> Any:
    """The ``optax.contrib.ScheduleFreeState`` inside an optimizer state: what
    ``optax.contrib.schedule_free_eval_params`` needs."""
    return find_state(opt_state, optax.contrib.ScheduleFreeState, "schedule_free_state",
                      "optax.contrib.ScheduleFreeState")
