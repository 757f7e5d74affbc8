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
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax.engine._config import SCHEDULE_FREE, Config, ConfigError, resolve_average, resolve_train
from lrjax.engine._data import BatchIterator, Dataset, from_arrays, load_dataset
from lrjax.engine._evaluate import eval_batches, evaluate
from lrjax.engine._models import ModelStructure, check_model_outputs, model_label, model_structure
from lrjax.engine._optimizer import (
    build_optimizer,
    make_schedule,
    momentum_arg,
    momentum_default,
    schedule_free_state,
)
from lrjax.engine._program import Flags, Program, Segment, compile_segment
from lrjax.engine._records import COLUMNS
from lrjax.engine._runner import Monitor, Source, batch_at
from lrjax.engine._step import Average, TrainState, train_step
from lrjax.engine._task import Task, make_task
from lrjax.engine._text import text_batch, text_dataset
from lrjax.engine._util import put_global, seed_key, stack_trees, unalias
from lrjax.schedules import Schedule

__all__ = ["Experiment", "build_experiment", "load_data", "initial_states", "train_arrays", "split_batches"]


# ----------------------------------------------------------------------------- data

def load_data(config: Config, data: Any = None) -> Dataset:
    """The config's data (or ``data``: a :class:`Dataset` or a mapping of arrays) with its validation split
    (``data.validation_fraction``; ``null`` counts as 0 here — see :func:`lrjax.engine.with_validation`)."""
    d = config.data
    seed = config.train.seed if d.seed is None else d.seed
    vf = d.validation_fraction or 0.0
    if data is None and d.source == "text":
        return text_dataset(d.path, context=d.context, validation_fraction=vf, test_fraction=d.test_fraction,
                            seed=seed, eval_windows_count=d.eval_windows)
    if data is None:
        return load_dataset(d.source, seed=seed, test_fraction=d.test_fraction, normalize=d.normalize,
                            validation_fraction=vf, trust_pickle=d.trust_pickle, num_classes=d.num_classes)
    return from_arrays(data, validation_fraction=vf, seed=seed, num_classes=d.num_classes)


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
        state = TrainState.create(params, self.tx, rng=rng, extra=extra)
        if self.averaging is not None:
            state = state._replace(average=Average.create(self.eval_params(state), *self.averaging))
        return state

    def forward(self, params: Any, extra: Any, x: jax.Array, *, train: bool) -> tuple[jax.Array, Any]:
        """``(outputs, new extra)`` of the model on ``x``. With ``train.precision: bf16`` the parameters and
        float inputs are cast to bfloat16 for the computation (the gradient flows back to the float32
        parameters through the cast), the outputs come back as float32 and the model state keeps its dtypes."""
        if self.config.train.precision != "bf16":
            return self.model.apply(params, extra, x, train=train)
        half = lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a  # noqa: E731
        out, new = self.model.apply(jax.tree.map(half, params), extra, half(x), train=train)
        return out.astype(jnp.float32), jax.tree.map(lambda n, o: n.astype(o.dtype), new, extra)

    def loss(self, params: Any, extra: Any, batch: dict[str, jax.Array]) -> tuple[jax.Array, tuple[dict, Any]]:
        """The step's loss function (:data:`lrjax.engine._step.LossFn`): the model in training mode on
        ``batch["x"]`` (:meth:`forward`), the task's loss against ``batch["y"]``, its training metrics."""
        out, extra = self.forward(params, extra, batch["x"], train=True)
        return self.task.batch_loss(out, batch["y"]), (self.task.train_metrics(out, batch["y"]), extra)

    def train_step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
        """One micro-step: the engine's one step (:func:`lrjax.engine._step.train_step`) with this
        experiment's loss, optimizer and rules; ``metrics`` are scalars (``COLUMNS``)."""
        if self.mesh.size > 1:
            batch = jax.lax.with_sharding_constraint(batch, self.batch_sharding)
        return train_step(state, batch, loss_fn=self.loss, tx=self.tx,
                          skip_nonfinite=self.config.train.on_nonfinite == "skip", momentum_key=self.momentum_key,
                          momentum_default=self.momentum_default, eval_params=self.eval_params)

    def eval_params(self, state: TrainState) -> Any:
        r"""The parameters an evaluation uses: the trained ones; for a schedule-free optimizer its averaged
        point :math:`x` (``optax.contrib.schedule_free_eval_params``), not the gradient point :math:`y`."""
        if self.schedule_free:
            return optax.contrib.schedule_free_eval_params(schedule_free_state(state.opt_state), state.params)
        return state.params

    def eval_sums(self, state: TrainState, batch: dict[str, jax.Array], params: Any = None) -> dict[str, jax.Array]:
        """Metric sums over a padded batch (``mask`` marks real rows): the model in evaluation mode, with
        ``params`` (default :meth:`eval_params`) and the current model state (``state.extra``)."""
        params = self.eval_params(state) if params is None else params
        out, _ = self.forward(params, state.extra, batch["x"], train=False)
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

    @property
    def num_parameters(self) -> int:
        """The model's trainable parameters (a count of the ``nnx.Param`` values)."""
        return int(sum(math.prod(x.shape) for x in jax.tree.leaves(self.model.params)))

    def describe(self) -> str:
        """One line saying what trains: data, model and its size, optimizer, updates."""
        d = self.data
        what = (f"{d.info['num_bytes']:,} bytes of text, windows of {d.context}" if d.info and "num_bytes" in d.info
                else f"{d.num_train:,} training examples")
        m = self.config.model
        return (f"{d.name} ({what}), model {m.factory or m.kind} ({self.num_parameters:,} parameters), "
                f"{self.config.optimizer.name}, {self.steps} updates of {self.config.data.batch_size}")

    # -- what an evaluation reports, and what chooses --------------------------------
    @property
    def eval_splits(self) -> tuple[str, ...]:
        """What an evaluation reports: ``("val", "test")`` with a validation split, else ``("test",)``."""
        return ("val", "test") if self.data.has_validation else ("test",)

    @property
    def selection_split(self) -> str:
        """The split whatever chooses looks at (the best evaluation, reduce-on-plateau, a sweep's ranking):
        ``val`` when there is one, else ``test``."""
        return "val" if self.data.has_validation else "test"

    # -- data on the devices -----------------------------------------------------
    @functools.cached_property
    def batch(self) -> Callable[[Source, jax.Array], Any]:
        """``(source, i) -> micro-batch i``: gathered from the training arrays by the index rows
        (:func:`~lrjax.engine.batch_at`), or for a text stream windows drawn on the device with the data key
        (:func:`~lrjax.engine._text.text_batch`)."""
        if self.data.stream is None:
            return batch_at
        return text_batch(batch_size=self.config.data.batch_size, context=self.data.context)

    def data_key(self, seed: int | None = None) -> np.ndarray:
        """A text stream's windows key (raw uint32 key data of ``seed``, default ``train.seed``: the windows
        of micro-step ``i`` are a function of it and ``i`` alone, so a resumed or swept run draws the same)."""
        seed = self.config.train.seed if seed is None else int(seed)
        return np.array([0xDA7A, seed & 0xFFFFFFFF], np.uint32)

    def run_index(self, micro_steps: int, seed: int | None = None) -> np.ndarray:
        """What picks the batches of micro-steps ``0 .. micro_steps - 1`` (the run's seed, as ``lrjax train``):
        the seeded iterator's example indices ``(micro_steps, batch)``, or a text stream's key."""
        if self.data.stream is not None:
            return self.data_key(seed)
        seed = self.config.train.seed if seed is None else seed
        return BatchIterator(self.data.num_train, self.config.data.batch_size, seed).take(micro_steps).astype(np.int32)

    def take_index(self, iterator: BatchIterator, n: int) -> np.ndarray:
        """The index of the next ``n`` micro-batches from the run's iterator (advanced), or a stream's key."""
        return self.data_key() if self.data.stream is not None else iterator.take(n)

    def source(self, index: np.ndarray, offset: int = 0) -> Source:
        """The training arrays (on the devices once, replicated) with ``index`` rows of example indices
        (micro-batch ``offset + r`` is row ``r``), split along the batch axis over the devices; for a text
        stream ``index`` is its key (:meth:`run_index`), replicated."""
        spec = P() if self.data.stream is not None else P(None, "data")
        idx = put_global(np.asarray(index, np.uint32 if self.data.stream is not None else np.int32),
                         NamedSharding(self.mesh, spec))
        return Source(self._train_arrays, idx, np.int32(offset))

    @functools.cached_property
    def _train_arrays(self) -> Any:
        """The training arrays (or a text stream), replicated on the mesh (put there once)."""
        return self.replicate(train_arrays(self.data))

    def eval_data(self, split: str) -> dict[str, jax.Array]:
        """A split (``"val"``, ``"test"``, ``"train"``) as padded batches on the devices (put there once)."""
        if split not in self._eval_arrays:
            b = split_batches(self.data, (split,), self.config.data.eval_batch_size, self.mesh.size)[split]
            self._eval_arrays[split] = put_global(b, NamedSharding(self.mesh, P(None, "data")))
        return self._eval_arrays[split]

    def eval_inputs(self) -> dict[str, dict[str, jax.Array]]:
        """Every split an evaluation reports (:attr:`eval_splits`), on the devices."""
        return {s: self.eval_data(s) for s in self.eval_splits}

    @functools.cached_property
    def _eval_arrays(self) -> dict[str, dict[str, jax.Array]]:
        return {}

    # -- compiled programs ------------------------------------------------------------
    def segment(self, rows: int, *, monitor: Monitor | None = None, splits: tuple[str, ...] | None = None
                ) -> Segment:
        """This experiment's :class:`~lrjax.engine.Segment`: its step over ``rows`` micro-steps (with an
        optional ``monitor``), its evaluation of ``splits`` (default :attr:`eval_splits`; ``()`` for none),
        and with a ``plateau`` in the config the selection split's loss fed to the optimizer. The one
        description every command compiles, alone or vmapped."""
        splits = self.eval_splits if splits is None else tuple(splits)
        observe = self.selection_split if (self.config.plateau is not None and self.selection_split in splits) else None
        return Segment(step=self.train_step, columns=COLUMNS, rows=int(rows), batch=self.batch, monitor=monitor,
                       evaluate=self.evaluate_arrays if splits else None, splits=splits, observe=observe)

    def program(self, rows: int) -> Program:
        """The compiled segment of one member over ``rows`` micro-steps, state donated (one per ``rows``)."""
        prog = self._programs.get(("segment", rows))
        if prog is None:
            prog = self._programs[("segment", rows)] = compile_segment(self.segment(rows),
                                                                        out_shardings=self.replicated)
        return prog

    def advance(self, state: TrainState, source: Source, start: int, stop: int, *, rows: int | None = None
                ) -> tuple[TrainState, jax.Array, jax.Array]:
        """Micro-steps ``start .. stop - 1`` in one compiled call (state donated), no evaluation: ``(state,
        table, steps_run)`` with one row of ``COLUMNS`` per micro-step (:meth:`program`)."""
        out = self.program(int(stop - start) if rows is None else int(rows))(state, source, start, stop,
                                                                            self.eval_inputs(), Flags())
        return out.state, out.table, out.steps

    def evaluate(self, state: TrainState, split: str = "test") -> dict[str, jax.Array]:
        """The metrics of ``state`` on a split, as device scalars (no host sync; the state is not consumed)."""
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


def train_arrays(ds: Dataset) -> Any:
    """What a batch is drawn from (host arrays): ``{"x": inputs, "y": targets}``, or a text stream."""
    return ds.stream if ds.stream is not None else {"x": ds.x_train, "y": ds.y_train}


def split_batches(ds: Dataset, splits: tuple[str, ...], batch_size: int, multiple: int = 1
                  ) -> dict[str, dict[str, np.ndarray]]:
    """Each split as the evaluation's padded batches (:func:`~lrjax.engine.eval_batches`, host arrays)."""
    return {s: eval_batches(*ds.split(s), batch_size, multiple) for s in splits}


def initial_states(exps: list[Experiment], seeds: list[int] | None = None) -> Any:
    """The initial states of ``exps`` (each from its own ``train.seed``, as ``lrjax train`` makes it),
    stacked on the host along a new leading axis: what a sweep or a parallel range test starts from."""
    seeds = [e.config.train.seed for e in exps] if seeds is None else seeds
    return stack_trees([jax.device_get(e.init_state(seed_key(s))) for e, s in zip(exps, seeds)])


def with_context(config: Config, ds: Dataset) -> Config:
    """``config`` with ``data.context`` of token windows (their length ``T``): what a duration in tokens counts
    per example. A ``.npz`` of windows gives it when ``data.context`` is unset; a ``data.context`` that is not
    the windows' length is a :class:`ConfigError`. Other data: ``config`` as it is."""
    if not ds.sequence:
        return config
    given = config.data.context
    if given is None:
        return dataclasses.replace(config, data=dataclasses.replace(config.data, context=ds.context))
    if given != ds.context:
        raise ConfigError(f"data.context={given}, but the token windows of {ds.name!r} hold {ds.context} tokens; "
                          f"set data.context={ds.context} (or leave it unset: the windows give it)")
    return config


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
    config = with_context(config, ds)
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
    check_model_outputs(structure, ds.input_shape, ds.num_outputs, classification=ds.is_classification and not ds.sequence,
                        sequence=ds.context, name=model_label(config.model if model is None else model))
    task = make_task(config.loss if loss is None else loss, targets_dtype=ds.y_train.dtype,
                     targets_shape=tuple(ds.y_train.shape[1:]), num_outputs=ds.num_outputs)
    if schedule is None:
        schedule = make_schedule(config, num_examples=ds.num_train)
    tx = build_optimizer(config, schedule, num_examples=ds.num_train, momentum=momentum)
    name = config.optimizer.name
    return Experiment(config=config, data=ds, model=structure, task=task, tx=tx, schedule=schedule, mesh=mesh,
                      steps=config.train.steps, accumulation_steps=config.optimizer.accumulation_steps,
                      momentum_key=momentum_arg(name), momentum_default=momentum_default(name),
                      averaging=resolve_average(config, num_examples=ds.num_train))
