"""From a config to an :class:`Experiment`: data, model structure, task, optimizer, and pure step functions.

``build_experiment(config, model=None, loss=None, data=None)`` is the one place where a config becomes
something that trains; ``lrjax train``, ``lrjax sweep`` and ``lrjax find-lr`` all start here:

* the data (:func:`~lrjax.engine.load_dataset`, or your arrays), with its validation split;
* the model structure (:func:`~lrjax.engine.model_structure`: a built-in kind or your factory);
* the task (:func:`~lrjax.engine.make_task`: the loss and the metrics that follow from it);
* the optimizer (:func:`build_optimizer`: ``lrjax.inject(optax.<name>, learning_rate=schedule, ...)``,
  clipping, gradient accumulation) — the schedule lives in its state;
* pure functions that close over *structure only*: ``init_state(key) -> TrainState``,
  ``train_step(state, batch) -> (state, metrics)`` (one micro-step), ``eval_sums(state, batch)``;
  ``eval_params(state)`` is what an evaluation uses (a schedule-free optimizer's averaged point), and with
  ``train.average`` the state carries an :class:`Average` of it, evaluated beside (``avg_<metric>``).

Because every hyperparameter is a leaf of the state (never a closure constant), the same compiled step
serves any peak rate or warmup length, and ``jax.vmap`` runs a stack of states whose schedules differ::

    exp = build_experiment(config)
    state = exp.init_state(seed_key(0))
    state, table, n = exp.advance(state, exp.source(indices), 0, 100)   # 100 micro-steps, one program
    exp.evaluate(state, "test")                                         # {'loss': ..., 'accuracy': ...}

Data parallelism: ``exp.mesh`` spans the devices along axis ``"data"``; the training arrays are
replicated, each micro-batch's rows are split along it, and XLA all-reduces the gradients: the same
maths as one device.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax.engine._config import (
    SCHEDULE_FREE,
    Config,
    ConfigError,
    optimizer_factory,
    resolve_average,
    resolve_train,
    schedule_of,
    train_steps,
)
from lrjax.engine._data import Dataset, from_arrays, load_dataset
from lrjax.engine._evaluate import eval_batches, evaluate
from lrjax.engine._models import ModelStructure, model_structure
from lrjax.engine._records import COLUMNS
from lrjax.engine._runner import Source, advance
from lrjax.engine._task import Task, make_task
from lrjax.engine._util import put_global, seed_key, unalias
from lrjax.optim import accumulate, current_hyperparams, effective_batch_size, inject, reduce_on_plateau, scale_lr
from lrjax.schedules import Schedule

__all__ = ["TrainState", "Average", "Experiment", "build_experiment", "build_optimizer", "make_schedule",
           "momentum_arg", "COLUMNS", "load_data"]


class TrainState(NamedTuple):
    """Everything a run carries from step to step (a pytree).

    ``step``: micro-steps done (int32). ``params``: the model's ``nnx.Param`` values as a nested dict
    (``nnx.merge(graphdef, params)`` rebuilds the model). ``opt_state``: the optax state, schedules
    inside. ``rng``: the run's raw uint32 PRNG key; the step never splits it (a stochastic layer of your
    own takes ``jax.random.fold_in(rng, step)``, the same after a resume; NNX layers such as ``Dropout``
    keep their own streams in ``extra``). ``skipped``: updates skipped because the loss or gradient was
    not finite (``on_nonfinite: skip``). ``extra``: the model's state that is not a parameter (BatchNorm
    statistics, NNX RNG counters), ``{}`` for the built-in models. ``average``: the averaged weights
    (:class:`Average`, ``train.average``), ``None`` when not configured.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    skipped: jax.Array
    extra: Any = None
    average: Any = None


class Average(NamedTuple):
    """Averaged weights in the train state (``train.average``; a pytree, vmappable: a sweep stacks it).

    After each optimizer update :math:`u` (the count of the optimizer state, so skipped micro-steps and
    accumulation micro-steps do not count) with parameters :math:`\theta_u` — the *evaluated* ones
    (:meth:`Experiment.eval_params`: schedule-free's averaged point) — and :math:`u > \mathit{start}`:

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

    def update(self, params: Any, updates: jax.Array, applied: jax.Array) -> "Average":
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


# ----------------------------------------------------------------------------- optimizer

def _spec(spec: Any, config: Config, num_examples: int | None, where: str) -> Schedule:
    return schedule_of(spec, where, total_steps=train_steps(config, num_examples), batch_size=config.data.batch_size,
                       accumulation_steps=config.optimizer.accumulation_steps, num_examples=num_examples)


def make_schedule(config: Config, *, num_examples: int | None = None) -> Schedule:
    """The learning-rate schedule of ``config``: durations resolved to optimizer steps (``"10%"``,
    ``"2 epochs"``, via :func:`lrjax.to_steps`), then batch-size scaling (:func:`lrjax.scale_lr`) from
    ``optimizer.base_batch_size`` to the effective batch (batch x accumulation x processes)."""
    sched = _spec(config.schedule, config, num_examples, "schedule")
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


def _momentum_default(name: str) -> float | None:
    """The factory's default momentum (reported when momentum is not scheduled), or None."""
    key = momentum_arg(name)
    if key is None:
        return None
    default = inspect.signature(optimizer_factory(name)).parameters[key].default
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None


def build_optimizer(config: Config, schedule: Schedule, *, num_examples: int | None = None,
                    momentum: Schedule | None = None) -> optax.GradientTransformation:
    """Optax optimizer ``config.optimizer.name`` with every hyperparameter in its state.

    ``lrjax.inject(optax.<name>, learning_rate=schedule, **args)`` (``optax.contrib.<name>`` for the
    schedule-free ones, :func:`~lrjax.engine._config.optimizer_factory`; plus ``plateau=`` when configured),
    after optional global-norm clipping, inside optional gradient accumulation (:func:`lrjax.accumulate`:
    the schedule advances once per applied update). With ``optimizer.cycle_momentum``, ``momentum`` (default:
    the schedule's momentum companion) drives the optimizer's momentum argument (:func:`momentum_arg`).
    """
    o = config.optimizer
    args: dict[str, Any] = {}
    for k, v in o.args.items():
        args[k] = _spec(v, config, num_examples, f"optimizer.args.{k}") if isinstance(v, dict) else v
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
        tx = inject(optimizer_factory(o.name), learning_rate=schedule, plateau=plateau, **args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer.args: {e}") from None
    if o.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(o.clip_norm), tx)
    if o.accumulation_steps > 1:
        tx = accumulate(tx, o.accumulation_steps)
    return tx


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
    from lrjax.optim import InjectState

    return find_state(opt_state, InjectState, "update_count", "lrjax.inject state").count


def schedule_free_state(opt_state: Any) -> Any:
    """The ``optax.contrib.ScheduleFreeState`` inside an optimizer state: what
    ``optax.contrib.schedule_free_eval_params`` needs."""
    return find_state(opt_state, optax.contrib.ScheduleFreeState, "schedule_free_state",
                      "optax.contrib.ScheduleFreeState")


# ----------------------------------------------------------------------------- data

def load_data(config: Config, data: Any = None) -> Dataset:
    """The config's data (or ``data``: a :class:`Dataset` or a mapping of arrays) with its validation split
    (``data.validation_fraction``; ``null`` counts as 0 here — see :func:`lrjax.engine.with_validation`)."""
    d = config.data
    seed = config.train.seed if d.seed is None else d.seed
    vf = d.validation_fraction or 0.0
    if data is None:
        return load_dataset(d.source, seed=seed, test_fraction=d.test_fraction, normalize=d.normalize,
                            validation_fraction=vf)
    return from_arrays(data, validation_fraction=vf, seed=seed)


# ----------------------------------------------------------------------------- the experiment

@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
    """A built run: data, model structure, task, optimizer and the pure step functions (see module docs)."""

    config: Config
    data: Dataset
    model: ModelStructure
    task: Task
    tx: optax.GradientTransformation
    schedule: Schedule
    mesh: Mesh
    steps: int                # optimizer updates in the run
    accumulation_steps: int   # micro-steps per update
    momentum_key: str | None
    momentum_default: float | None
    averaging: tuple[str, int, float | None] | None = None  # train.average resolved: (kind, start, decay)

    @property
    def schedule_free(self) -> bool:
        """The optimizer is schedule-free: evaluations use its averaged point (:meth:`eval_params`)."""
        return self.config.optimizer.name in SCHEDULE_FREE

    # -- sizes and shardings ---------------------------------------------------
    @property
    def micro_steps(self) -> int:
        return self.steps * self.accumulation_steps

    @property
    def graphdef(self) -> Any:
        return self.model.graphdef

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @property
    def batch_sharding(self) -> NamedSharding:
        """Rows of a batch split over the devices."""
        return NamedSharding(self.mesh, P("data"))

    def replicate(self, tree: Any) -> Any:
        """Put ``tree`` on every device of the mesh (parameters, optimizer state)."""
        return put_global(tree, self.replicated)

    # -- pure functions -----------------------------------------------------------
    def init_state(self, key: jax.Array) -> TrainState:
        """The initial state from raw key data (``seed_key(seed)``); pure: jit/vmap/eval_shape it freely.
        Concrete calls run the model's one compiled init program, so train, sweep and range test start
        from identical parameters."""
        if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        params, extra, rng = self.model.init(key)
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params),
                           rng=rng, skipped=jnp.zeros((), jnp.int32), extra=extra)
        if self.averaging is not None:
            kind, start, decay = self.averaging
            avg = jax.tree.map(jnp.copy, self.eval_params(state))
            state = state._replace(average=Average(
                params=avg, count=jnp.zeros((), jnp.int32), start=jnp.asarray(start, jnp.int32),
                decay=jnp.asarray(0.0 if decay is None else decay, jnp.float32), ema=jnp.asarray(kind == "ema")))
        return state

    def train_step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
        """One micro-step: loss, gradient, optimizer update; ``metrics`` are scalars (``COLUMNS``)."""
        if self.mesh.size > 1:
            batch = jax.lax.with_sharding_constraint(batch, self.batch_sharding)
        x, y = batch["x"], batch["y"]

        def loss_fn(params):
            out, extra = self.model.apply(params, state.extra, x, train=True)
            return self.task.batch_loss(out, y), (out, extra)

        (loss, (out, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        skipped = state.skipped
        average = state.average
        if average is not None:  # structure: averaging configured or not
            before, after = update_count(state.opt_state), update_count(opt_state)
            evaluated = self.eval_params(state._replace(params=params, opt_state=opt_state))
            average = average.update(evaluated, after, after != before)
        if self.config.train.on_nonfinite == "skip":  # structure, not a traced branch: both sides computed
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
            params, opt_state, extra, average = keep((params, opt_state, extra, average),
                                                     (state.params, state.opt_state, state.extra, state.average))
            skipped = skipped + (~finite).astype(jnp.int32)
        hp = current_hyperparams(opt_state)
        metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite,
                   "lr": jnp.asarray(hp.get("learning_rate", jnp.nan), jnp.float32), **self.task.train_metrics(out, y)}
        if self.momentum_key is not None and self.momentum_key in hp:
            metrics["momentum"] = jnp.asarray(hp[self.momentum_key], jnp.float32)
        elif self.momentum_default is not None:  # not scheduled: the optimizer's constant default
            metrics["momentum"] = jnp.float32(self.momentum_default)
        new = TrainState(step=state.step + 1, params=params, opt_state=opt_state, rng=state.rng, skipped=skipped,
                         extra=extra, average=average)
        return new, metrics

    def eval_params(self, state: TrainState) -> Any:
        """The parameters an evaluation uses: the trained ones; for a schedule-free optimizer its averaged
        point :math:`x` (``optax.contrib.schedule_free_eval_params``), not the gradient point :math:`y`."""
        if self.schedule_free:
            return optax.contrib.schedule_free_eval_params(schedule_free_state(state.opt_state), state.params)
        return state.params

    def eval_sums(self, state: TrainState, batch: dict[str, jax.Array], params: Any = None) -> dict[str, jax.Array]:
        """Metric sums over a padded batch (``mask`` marks real rows): the model in evaluation mode, with
        ``params`` (default :meth:`eval_params`) and the current model state (``state.extra``)."""
        params = self.eval_params(state) if params is None else params
        out, _ = self.model.apply(params, state.extra, batch["x"], train=False)
        return self.task.eval_sums(out, batch["y"], batch["mask"])

    def evaluate_arrays(self, state: TrainState, batches: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """The metrics (``task.metrics``) of ``state`` on padded batches (pure, vmappable). With averaged
        weights (``state.average``) also ``avg_<metric>`` for them: NaN until an update has been averaged.
        The average is evaluated with the current model state (BatchNorm statistics of the trained weights,
        not recomputed for the average as PyTorch's ``update_bn`` would)."""
        metrics = self.task.summarize(evaluate(self.eval_sums, state, batches))
        if state.average is not None:
            avg = state.average
            sums = evaluate(lambda st, b: self.eval_sums(st, b, params=avg.params), state, batches)
            started = avg.count > 0
            metrics.update({f"avg_{k}": jnp.where(started, v, jnp.nan)
                            for k, v in self.task.summarize(sums).items()})
        return metrics

    # -- data on the devices -----------------------------------------------------
    def source(self, index: np.ndarray, offset: int = 0) -> Source:
        """The training arrays (on the devices once, replicated) with ``index`` rows of example indices
        (micro-batch ``offset + r`` is row ``r``), split along the batch axis over the devices."""
        idx = put_global(np.asarray(index, np.int32), NamedSharding(self.mesh, P(None, "data")))
        return Source(self._train_arrays, idx, np.int32(offset))

    @functools.cached_property
    def _train_arrays(self) -> dict[str, jax.Array]:
        """The training arrays, replicated on the mesh (put there once)."""
        return self.replicate({"x": self.data.x_train, "y": self.data.y_train})

    def eval_data(self, split: str) -> dict[str, jax.Array]:
        """A split (``"val"``, ``"test"``, ``"train"``) as padded batches on the devices (put there once)."""
        if split not in self._eval_arrays:
            x, y = self.data.split(split)
            b = eval_batches(x, y, self.config.data.eval_batch_size, self.mesh.size)
            self._eval_arrays[split] = put_global(b, NamedSharding(self.mesh, P(None, "data")))
        return self._eval_arrays[split]

    @functools.cached_property
    def _eval_arrays(self) -> dict[str, dict[str, jax.Array]]:
        return {}

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """What an evaluation reports: ``("val", "test")`` with a validation split, else ``("test",)``."""
        return ("val", "test") if self.data.has_validation else ("test",)

    # -- compiled programs ------------------------------------------------------------
    def advance(self, state: TrainState, source: Source, start: int, stop: int, *, rows: int | None = None
                ) -> tuple[TrainState, jax.Array, jax.Array]:
        """Micro-steps ``start .. stop - 1`` in one compiled call (state donated); returns ``(state, table,
        steps_run)`` with one row of ``COLUMNS`` per micro-step. One program per ``rows`` (default: the span)."""
        rows = int(stop - start) if rows is None else int(rows)
        fn = self._programs.get(("advance", rows))
        if fn is None:
            fn = self._programs[("advance", rows)] = jax.jit(
                functools.partial(advance, self.train_step, COLUMNS, rows=rows), donate_argnums=0,
                out_shardings=(self.replicated, self.replicated, self.replicated))
        return fn(state, source, np.int32(start), np.int32(stop))

    def evaluate(self, state: TrainState, split: str = "test") -> dict[str, jax.Array]:
        """The metrics of ``state`` on a split, as device scalars (no host sync)."""
        fn = self._programs.get("evaluate")
        if fn is None:
            fn = self._programs["evaluate"] = jax.jit(self.evaluate_arrays, out_shardings=self.replicated)
        return fn(state, self.eval_data(split))

    @functools.cached_property
    def _programs(self) -> dict:
        return {}

    def initial_state(self, seed: int) -> TrainState:
        """``init_state(seed_key(seed))`` placed on the mesh, ready to be donated."""
        return self.replicate(unalias(self.init_state(seed_key(seed))))


def build_experiment(config: Config, *, model: Callable | None = None, loss: str | Callable | None = None,
                     data: Any = None, devices: Any = None, schedule: Schedule | None = None,
                     momentum: Schedule | None = None) -> Experiment:
    """Build the experiment of ``config`` (see the module docs).

    Args:
      config: a validated :class:`~lrjax.engine.Config`.
      model: a factory ``(rngs, **kw) -> nnx.Module`` used instead of ``config.model``.
      loss: ``"cross_entropy"``, ``"mse"``, ``"MODULE:NAME"`` or a function ``(outputs, targets) -> losses``,
        used instead of ``config.loss``.
      data: a :class:`~lrjax.engine.Dataset` or a mapping with ``x_train, y_train, x_test, y_test`` arrays,
        used instead of loading ``config.data.source``.
      devices: the devices of the data-parallel mesh (default: all).
      schedule: the learning-rate schedule instead of the config's (the sweep passes a :class:`lrjax.Switch`,
        the range test its ramp).
      momentum: with ``optimizer.cycle_momentum``, the momentum schedule instead of ``schedule.momentum``.

    Raises :class:`ConfigError` for what is impossible for this data (a batch larger than the training
    set, a batch that does not split over the devices, a loss that does not fit the targets).

    >>> from lrjax.engine import build_experiment, load_config, seed_key
    >>> exp = build_experiment(load_config(None, ["train.steps=10", "model.hidden=[16]"]))
    >>> state = exp.init_state(seed_key(0))
    >>> state, metrics = exp.train_step(state, {"x": exp.data.x_train[:64], "y": exp.data.y_train[:64]})
    >>> sorted(metrics)
    ['accuracy', 'finite', 'grad_norm', 'loss', 'lr', 'momentum']
    """
    ds = load_data(config, data)
    config = resolve_train(config, ds.num_train)  # "5 epochs" in updates: exp.config holds what the run follows
    d = config.data
    if d.batch_size > ds.num_train:
        raise ConfigError(
            f"data.batch_size={d.batch_size} is larger than the training set of {ds.name!r} "
            f"({ds.num_train} examples); use at most {ds.num_train}"
        )
    devs = np.asarray(jax.devices() if devices is None else devices)
    if d.batch_size % devs.size:
        raise ConfigError(
            f"data.batch_size={d.batch_size} does not split over {devs.size} devices; use a multiple of {devs.size}"
        )
    mesh = Mesh(devs.reshape(-1), ("data",))
    structure = model_structure(config.model if model is None else model, ds.input_shape, ds.num_outputs)
    task = make_task(config.loss if loss is None else loss, targets_dtype=ds.y_train.dtype,
                     targets_shape=tuple(ds.y_train.shape[1:]), num_outputs=ds.num_outputs)
    if schedule is None:
        schedule = make_schedule(config, num_examples=ds.num_train)
    tx = build_optimizer(config, schedule, num_examples=ds.num_train, momentum=momentum)
    name = config.optimizer.name
    return Experiment(config=config, data=ds, model=structure, task=task, tx=tx, schedule=schedule, mesh=mesh,
                      steps=config.train.steps, accumulation_steps=config.optimizer.accumulation_steps,
                      momentum_key=momentum_arg(name), momentum_default=_momentum_default(name),
                      averaging=resolve_average(config, num_examples=ds.num_train))
