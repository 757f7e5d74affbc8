r"""The one training step: every entry point that trains (``lrjax train``, a sweep, both range tests and
:func:`lrjax.lr_range_test` on your own loss function) advances a :class:`TrainState` with
:func:`train_step`.

One micro-step on a batch :math:`B` with loss :math:`\ell(\theta; B)`:

.. math:: g = \nabla_\theta \ell(\theta_t; B), \qquad (u, o_{t+1}) = \mathrm{tx.update}(g, o_t, \theta_t),
          \qquad \theta_{t+1} = \theta_t + u

where the optimizer state :math:`o` holds the schedule (:func:`lrjax.inject`), so the rate applied is read
back from it (:func:`applied_rate`). The step reports ``loss``, ``grad_norm`` :math:`\lVert g \rVert_2`,
``finite`` (loss and gradient norm finite), ``lr`` and ``momentum`` as used by this update, and whatever
the loss function adds (accuracy). With ``skip_nonfinite`` a non-finite step leaves parameters, optimizer
state, model state and average as they were and counts itself in ``skipped``; both outcomes are computed
and selected with ``jnp.where`` (no Python branch on a traced value). With an :class:`Average` in the
state the averaged weights follow every applied update.

>>> import jax.numpy as jnp, optax
>>> from lrjax.engine._step import TrainState, train_step, plain_loss
>>> from lrjax.engine._optimizer import make_optimizer
>>> from lrjax import Constant
>>> tx = make_optimizer(optax.sgd, Constant(0.5))
>>> p = jnp.array([1.0, -2.0])
>>> state = TrainState.create(p, tx)
>>> loss = plain_loss(lambda p, b: jnp.sum((p - b) ** 2))
>>> state, m = train_step(state, jnp.zeros(2), loss_fn=loss, tx=tx)
>>> state.params.tolist(), float(m["loss"]), float(m["lr"])
([0.0, 0.0], 5.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrjax.engine._optimizer import applied_rate, update_count
from lrjax.optim import current_hyperparams

__all__ = ["TrainState", "Average", "LossFn", "train_step", "plain_loss"]

# ``loss_fn(params, extra, batch) -> (loss, (metrics, new_extra))``: the scalar loss of a micro-batch, the
# step's extra scalar metrics (accuracy) and the model's updated non-parameter state.
LossFn = Callable[[Any, Any, Any], tuple[jax.Array, tuple[dict[str, jax.Array], Any]]]


class TrainState(NamedTuple):
    """Everything a run carries from step to step (a pytree).

    ``step``: micro-steps done (int32). ``params``: the model's ``nnx.Param`` values as a nested dict
    (``nnx.merge(graphdef, params)`` rebuilds the model), or any pytree for your own loss function.
    ``opt_state``: the optax state, schedules inside. ``rng``: the run's raw uint32 PRNG key; the step
    never splits it (a stochastic layer of your own takes ``jax.random.fold_in(rng, step)``, the same after
    a resume; NNX layers such as ``Dropout`` keep their own streams in ``extra``). ``skipped``: updates
    skipped because the loss or gradient was not finite (``on_nonfinite: skip``). ``extra``: the model's
    state that is not a parameter (BatchNorm statistics, NNX RNG counters), ``{}`` for the built-in
    models. ``average``: the averaged weights (:class:`Average`, ``train.average``), ``None`` when not
    configured.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    skipped: jax.Array
    extra: Any = None
    average: Any = None

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation, *, rng: Any = None, extra: Any = None
               ) -> TrainState:
        """A fresh state: step 0, ``tx.init(params)``, no skipped step (pure: jit it to init in one program)."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   rng=jnp.zeros((2,), jnp.uint32) if rng is None else rng, skipped=jnp.zeros((), jnp.int32),
                   extra={} if extra is None else extra)


class Average(NamedTuple):
    r"""Averaged weights in the train state (``train.average``; a pytree, vmappable: a sweep stacks it).

    After each optimizer update :math:`u` (the count of the optimizer state, so skipped micro-steps and
    accumulation micro-steps do not count) with parameters :math:`\theta_u` — the *evaluated* ones
    (:meth:`lrjax.engine.Experiment.eval_params`: schedule-free's averaged point) — and
    :math:`u > \mathit{start}`:

    .. math:: n \leftarrow n + 1, \qquad \bar\theta \leftarrow \begin{cases} \theta_u & n = 1 \\
              \bar\theta + w\,(\theta_u - \bar\theta) & n > 1 \end{cases}, \qquad
              w = \begin{cases} 1/n & \text{SWA} \\ 1 - d & \text{EMA} \end{cases}

    so SWA is the arithmetic mean of :math:`\theta_{start+1}, \dots, \theta_u` and EMA the recursion
    started from a copy. Before that (:math:`n = 0`) ``params`` follows the parameters and evaluations
    report no averaged metrics. ``start``, ``decay`` and ``ema`` are leaves, so one compiled step serves
    both kinds and any start or decay.
    """

    params: Any        # the averaged parameters
    count: jax.Array   # int32: updates averaged so far (n)
    start: jax.Array   # int32: updates before averaging starts
    decay: jax.Array   # float32: the EMA decay d (NaN for SWA)
    ema: jax.Array     # bool: EMA, else SWA

    @classmethod
    def create(cls, params: Any, kind: str, start: int, decay: float | None) -> Average:
        """A fresh average of ``params`` (a copy), ``kind`` ``"swa"`` or ``"ema"``."""
        return cls(params=jax.tree.map(jnp.copy, params), count=jnp.zeros((), jnp.int32),
                   start=jnp.asarray(start, jnp.int32), decay=jnp.asarray(0.0 if decay is None else decay, jnp.float32),
                   ema=jnp.asarray(kind == "ema"))

    def update(self, params: Any, updates: jax.Array, applied: jax.Array) -> Average:
        """The average after an optimizer step that left ``params`` and ``updates`` applied updates;
        ``applied``: whether this call applied one (accumulation micro-steps do not)."""
        active = applied & (updates > self.start)
        n = self.count + active.astype(jnp.int32)
        w = jnp.where(self.ema, 1.0 - self.decay, 1.0 / jnp.maximum(n, 1).astype(jnp.float32))
        copy = (n == 0) | (active & (n == 1))

        def one(avg: jax.Array, p: jax.Array) -> jax.Array:
            blended = avg + w.astype(avg.dtype) * (p - avg)
            return jnp.where(copy, p, jnp.where(active, blended, avg))

        return self._replace(params=jax.tree.map(one, self.params, params), count=n)


def plain_loss(fn: Callable[[Any, Any], Any], *, has_aux: bool = False) -> LossFn:
    """A :data:`LossFn` from your own ``fn(params, batch) -> loss`` (or ``(loss, aux)`` with ``has_aux``):
    no extra metrics, no model state."""

    def loss_fn(params: Any, extra: Any, batch: Any):
        out = fn(params, batch)
        loss = out[0] if has_aux else out
        return jnp.asarray(loss, jnp.float32), ({}, extra)

    return loss_fn


def train_step(state: TrainState, batch: Any, *, loss_fn: LossFn, tx: optax.GradientTransformation,
               skip_nonfinite: bool = False, momentum_key: str | None = None,
               momentum_default: float | None = None,
               eval_params: Callable[[TrainState], Any] | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
    """One micro-step (see the module docs): ``(state, batch) -> (state, metrics)``, pure.

    Args:
      state: the :class:`TrainState`.
      batch: whatever ``loss_fn`` takes.
      loss_fn: a :data:`LossFn` (:func:`plain_loss` wraps ``fn(params, batch)``).
      tx: the optimizer (:func:`lrjax.engine.make_optimizer`: the schedule in its state).
      skip_nonfinite: keep the state when the loss or the gradient norm is not finite (structure, not a
        traced branch: both outcomes are computed).
      momentum_key: the hyperparameter reported as ``momentum`` (``b1``, ``momentum``) when scheduled;
        else ``momentum_default`` (the optimizer's constant) when given.
      eval_params: ``state -> params`` an :class:`Average` in the state follows (default the parameters).
    """
    (loss, (extra_metrics, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.extra, batch)
    grad_norm = optax.global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    skipped = state.skipped
    average = state.average
    if average is not None:  # structure: averaging configured or not
        before, after = update_count(state.opt_state), update_count(opt_state)
        new = state._replace(params=params, opt_state=opt_state)
        average = average.update(new.params if eval_params is None else eval_params(new), after, after != before)
    if skip_nonfinite:  # structure, not a traced branch: both sides computed
        params, opt_state, extra, average = jax.tree.map(
            lambda a, b: jnp.where(finite, a, b), (params, opt_state, extra, average),
            (state.params, state.opt_state, state.extra, state.average))
        skipped = skipped + (~finite).astype(jnp.int32)
    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, "lr": applied_rate(opt_state),
               **extra_metrics}
    hp = current_hyperparams(opt_state) if (momentum_key or momentum_default is not None) else {}
    if momentum_key is not None and momentum_key in hp:
        metrics["momentum"] = jnp.asarray(hp[momentum_key], jnp.float32)
    elif momentum_default is not None:  # not scheduled: the optimizer's constant default
        metrics["momentum"] = jnp.float32(momentum_default)
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, rng=state.rng, skipped=skipped,
                           extra=extra, average=average)
    return new_state, metrics

