"""The functional core: an :class:`Experiment` with pure ``init_state``, ``train_step`` and ``eval_step``.

``build_experiment(config)`` loads the data, builds the model structure (an NNX graphdef) and the optax
transformation, and returns functions that close over *structure only*:

* ``init_state(key) -> TrainState`` — parameters, optimizer state (the schedules live inside it as
  pytree leaves), PRNG key, step counter.
* ``train_step(state, batch) -> (state, metrics)`` — one micro-step: loss, gradient, optimizer update.
  Pure, jittable, donate-able; ``metrics`` is a dict of device scalars (``loss``, ``accuracy``,
  ``grad_norm``, ``lr`` and ``momentum`` actually used, ``finite``).
* ``eval_step(state, batch) -> metrics`` — sums (``loss_sum``, ``correct``, ``count``) over a padded
  batch with a ``mask``, so a test set of any size is evaluated with one compiled program.

Because every hyperparameter is a leaf of ``state`` (never a closure constant), the same compiled
``train_step`` serves any peak rate or warmup length, and ``jax.vmap`` runs a stack of states whose
schedules differ::

    exp = build_experiment(config)
    keys = jax.random.split(jax.random.key(0), 4)
    states = jax.vmap(exp.init_state)(keys)            # or stack states built from different configs
    states, metrics = jax.vmap(exp.train_step, in_axes=(0, None))(states, batch)

Data parallelism: ``exp.mesh`` spans every device along axis ``"data"``; ``exp.shard_batch`` puts a
host batch on it sharded along the batch axis and ``exp.replicate`` puts a state on every device. The
jitted step (``exp.jit_train_step``) then all-reduces the gradients: the same maths as one device.

Loss: mean softmax cross-entropy. Accuracy: mean of ``argmax(logits) == label``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import lrjax
from lrjax.schedules import Schedule, from_spec
from lrjax.train import _models
from lrjax.train._config import Config, ConfigError, resolve_durations
from lrjax.train._data import Dataset, load_dataset
from lrjax.train._models import make_model

__all__ = ["TrainState", "Experiment", "build_experiment", "build_optimizer", "make_schedule", "seed_key"]


class TrainState(NamedTuple):
    """Everything a run carries from step to step (a pytree).

    ``step``: micro-steps done (int32). ``params``: the model's parameters as a nested dict of arrays
    (``nnx.to_pure_dict`` of its ``nnx.Param`` state; ``nnx.merge(exp.graphdef, params)`` rebuilds the
    model). ``opt_state``: the
    optax state, schedules inside. ``rng``: the run's raw uint32 PRNG key; the step never splits it (the
    built-in models draw nothing, and a split would be a threefry program in every step): a stochastic
    layer takes the step's key as ``jax.random.fold_in(rng, step)``, which is the same after a resume.
    ``skipped``: steps
    whose update was skipped because the loss or gradient was not finite (``on_nonfinite: skip``).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    skipped: jax.Array


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A built run: data, model structure, optimizer and the pure step functions (see module docs)."""

    config: Config
    data: Dataset
    graphdef: Any
    tx: optax.GradientTransformation
    schedule: Schedule
    init_state: Callable[[jax.Array], TrainState]
    init_params: Callable[[jax.Array], tuple[Any, jax.Array]]
    train_step: Callable[[TrainState, dict], tuple[TrainState, dict]]
    eval_step: Callable[[TrainState, dict], dict]
    mesh: Mesh
    steps: int                # optimizer updates in the run
    accumulation_steps: int   # micro-steps per update

    @property
    def micro_steps(self) -> int:
        return self.steps * self.accumulation_steps

    @property
    def batch_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, P("data"))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @functools.cached_property
    def jit_train_step(self) -> Callable:
        """``train_step`` jitted with the state donated, batch sharded, state replicated."""
        return jax.jit(self.train_step, donate_argnums=0,
                       in_shardings=(self.replicated, self.batch_sharding),
                       out_shardings=self.replicated)

    @functools.cached_property
    def jit_init_state(self) -> Callable:
        """``init_state`` with a replicated, donation-ready result.

        Parameters come from ``init_params`` (one compiled program); ``tx.init`` stays outside that program on
        purpose (``lrjax.inject`` compiles its own init with the schedules as arguments): closing over
        the optimizer would bake the schedule's values into the program as constants, and a run with a
        new peak rate would compile again.
        """
        def init(key: jax.Array) -> TrainState:
            params, rng = self.init_params(key)
            state = TrainState(step=np.zeros((), np.int32), params=params, opt_state=self.tx.init(params),
                               rng=rng, skipped=np.zeros((), np.int32))
            return self.replicate(_unalias(state))

        return init

    @functools.cached_property
    def jit_eval_step(self) -> Callable:
        return jax.jit(self.eval_step, in_shardings=(self.replicated, self.batch_sharding),
                       out_shardings=self.replicated)

    def replicate(self, tree: Any) -> Any:
        """Put ``tree`` on every device of the mesh (parameters, optimizer state)."""
        return put_global(tree, self.replicated)

    def shard_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Put a host batch on the mesh, split along the batch axis."""
        if self.multi_host:  # pragma: no cover - multi-host
            # every host holds the whole global batch (same seeded iterator); each device takes its rows
            return {k: jax.make_array_from_process_local_data(self.batch_sharding, v, v.shape)
                    for k, v in batch.items()}
        return jax.device_put(batch, self.batch_sharding)

    @functools.cached_property
    def multi_host(self) -> bool:
        return jax.process_count() > 1

    def eval_batches(self, x: np.ndarray, y: np.ndarray):
        """Host batches of ``data.eval_batch_size`` (last one padded, ``mask`` marks real rows)."""
        bs = min(self.config.data.eval_batch_size, len(y))
        bs = -(-bs // self.mesh.size) * self.mesh.size
        for start in range(0, len(y), bs):
            xb, yb = x[start:start + bs], y[start:start + bs]
            n = len(yb)
            mask = np.ones(bs, np.float32)
            if n < bs:
                pad = bs - n
                xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
                yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
                mask[n:] = 0.0
            yield {"x": xb, "y": yb, "mask": mask}

    def evaluate(self, state: TrainState, split: str = "test") -> dict[str, jax.Array]:
        """Mean loss and accuracy over a split, as device scalars (no host sync)."""
        x, y = ((self.data.x_test, self.data.y_test) if split == "test"
                else (self.data.x_train, self.data.y_train))
        total = None
        for b in self.eval_batches(x, y):
            m = self.jit_eval_step(state, self.shard_batch(b))
            total = m if total is None else _add(total, m)
        return _means(total)


def _params_from_spec(spec: tuple, key: jax.Array) -> tuple[Any, jax.Array]:
    """``(params, rng)`` for the parameter structure ``spec = (treedef, ((shape, dtype), ...))``."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    treedef, leaves = spec
    abstract = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in leaves])
    pkey, rng = jax.random.split(key)
    # A plain nested dict of arrays (nnx.merge takes it back): cheaper to flatten on every step
    # than nnx.State's Variable objects, and checkpoints read as plain dicts.
    return _models.init_params(abstract, pkey), rng


# One compiled program per parameter structure, shared by every experiment (a sweep of 16 configs
# builds 16 experiments of one model).
_params_program = jax.jit(_params_from_spec, static_argnums=0)


@functools.lru_cache(maxsize=32)
def _model_structure(model: Any, input_shape: tuple, num_classes: int) -> tuple[Any, tuple]:
    """``(graphdef, params spec)`` of a model config for this data, traced once (a sweep builds many
    experiments of one model)."""
    abstract = nnx.eval_shape(lambda: make_model(model, input_shape, num_classes, nnx.Rngs(0)))
    graphdef, params = nnx.split(abstract, nnx.Param)
    leaves, treedef = jax.tree.flatten(nnx.to_pure_dict(params))
    return graphdef, (treedef, tuple((tuple(x.shape), np.dtype(x.dtype)) for x in leaves))


def put_global(tree: Any, sharding: NamedSharding) -> Any:
    """Put ``tree`` (the same values on every process) on ``sharding``'s mesh, on one host or several.

    On one host this is ``jax.device_put``. Across hosts ``device_put`` would first check that every host
    passed equal values (which fails on NaN), so each device's part is cut from the host copy instead;
    arrays already on ``sharding`` are kept.
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x: Any) -> Any:  # pragma: no cover - multi-host (tests/train/test_multihost.py, subprocesses)
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        a = np.asarray(x)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    return jax.tree.map(put, tree)


def seed_key(seed: int) -> np.ndarray:
    """The raw uint32 key data of ``jax.random.key(seed)``, computed on the host (no device program)."""
    if 0 <= seed < 2**31:
        return np.array([0, seed], np.uint32)
    return np.asarray(jax.random.key_data(jax.random.key(seed)))


def _unalias(tree: Any) -> Any:
    """Copy every array that appears more than once in ``tree``, so the tree can be donated.

    Eager code (``tx.init``, a restored checkpoint, ``lrjax.observe_metric`` outside jit, a schedule and
    its momentum companion sharing leaves) can put one buffer at two places; XLA refuses to donate it
    twice.
    """
    seen: set[int] = set()

    def fix(x: Any) -> Any:
        if isinstance(x, jax.Array):
            if id(x) in seen:
                return jnp.copy(x)
            seen.add(id(x))
        return x

    return jax.tree.map(fix, tree)


@jax.jit
def _add(a: dict, b: dict) -> dict:
    return jax.tree.map(jnp.add, a, b)


@jax.jit
def _means(total: dict) -> dict:
    return {"loss": total["loss_sum"] / total["count"], "accuracy": total["correct"] / total["count"]}


# ----------------------------------------------------------------------------- optimizer

def make_schedule(config: Config, *, num_examples: int | None = None) -> Schedule:
    """The learning-rate schedule of ``config``: durations resolved to optimizer steps (``"10%"``,
    ``"2 epochs"``, via :func:`lrjax.to_steps`), then batch-size scaling (:func:`lrjax.scale_lr`) from
    ``optimizer.base_batch_size`` to the effective batch (batch x accumulation x processes)."""
    sched = _spec(config.schedule, config, num_examples, "schedule")
    o = config.optimizer
    if o.batch_scaling != "none":
        batch = lrjax.effective_batch_size(config.data.batch_size, jax.process_count(), o.accumulation_steps)
        sched = lrjax.scale_lr(sched, o.base_batch_size, batch, o.batch_scaling, optimizer=o.name)
    return sched


def _spec(spec: Any, config: Config, num_examples: int | None, where: str) -> Schedule:
    try:
        resolved = resolve_durations(spec, total_steps=config.train.steps, batch_size=config.data.batch_size,
                                     accumulation_steps=config.optimizer.accumulation_steps,
                                     num_examples=num_examples, where=where)
        return from_spec(resolved, where=where)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


# Name of the momentum-like argument per optimizer (None: it has none).
_MOMENTUM_ARG = {"sgd": "momentum", "rmsprop": "momentum", "lars": "momentum", "noisy_sgd": None,
                 "adagrad": None, "adadelta": None, "fromage": None, "sm3": "b1", "adafactor": None,
                 "novograd": "b1", "optimistic_gradient_descent": None}


def _momentum_arg(name: str) -> str | None:
    return _MOMENTUM_ARG.get(name, "b1")


def _momentum_default(name: str) -> float | None:
    """The factory's default momentum (reported when momentum is not scheduled), or None."""
    import inspect

    key = _momentum_arg(name)
    if key is None:
        return None
    default = inspect.signature(getattr(optax, name)).parameters[key].default
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None


def build_optimizer(config: Config, schedule: Schedule, *, num_examples: int | None = None
                    ) -> optax.GradientTransformation:
    """Optax optimizer ``config.optimizer.name`` with every hyperparameter in its state.

    ``lrjax.inject(optax.<name>, learning_rate=schedule, **args)`` (plus ``plateau=`` when configured),
    after optional global-norm clipping, inside optional gradient accumulation (:func:`lrjax.accumulate`:
    the schedule advances once per applied update).
    """
    o = config.optimizer
    args: dict[str, Any] = {}
    for k, v in o.args.items():
        where = f"optimizer.args.{k}"
        args[k] = _spec(v, config, num_examples, where) if isinstance(v, dict) else v
    if o.cycle_momentum:
        mom = getattr(schedule, "momentum", None)
        if mom is None:
            raise ConfigError(
                "optimizer.cycle_momentum needs a schedule with a momentum companion (one_cycle, cyclic), "
                f"got schedule.name={config.schedule.get('name')!r}"
            )
        key = _momentum_arg(o.name)
        if key is None:
            raise ConfigError(f"optimizer.cycle_momentum: optimizer {o.name!r} has no momentum argument")
        args[key] = mom
    plateau = None
    if config.plateau is not None:
        try:
            plateau = lrjax.reduce_on_plateau(**config.plateau)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"plateau: {e}") from None
    try:
        tx = lrjax.inject(getattr(optax, o.name), learning_rate=schedule, plateau=plateau, **args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer.args: {e}") from None
    if o.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(o.clip_norm), tx)
    if o.accumulation_steps > 1:
        tx = lrjax.accumulate(tx, o.accumulation_steps)
    return tx


def current_hyperparams(opt_state: Any) -> dict[str, jax.Array]:
    """Hyperparameter values used by the last update (``learning_rate``, ``b1``/``momentum``, ...)."""
    return dict(lrjax.current_hyperparams(opt_state))


# ----------------------------------------------------------------------------- steps

def _loss_and_logits(graphdef, params, x, y):
    logits = nnx.merge(graphdef, params)(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
    return loss, logits


def _make_train_step(graphdef, tx, momentum_key: str | None, momentum_default: float | None,
                     skip_nonfinite: bool):
    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        x, y = batch["x"], batch["y"]

        def loss_fn(params):
            loss, logits = _loss_and_logits(graphdef, params, x, y)
            return loss.mean(), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        skipped = state.skipped
        if skip_nonfinite:  # structure, not a traced branch: both sides are computed, one is kept
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
            params = keep(params, state.params)
            opt_state = keep(opt_state, state.opt_state)
            skipped = skipped + (~finite).astype(jnp.int32)
        hp = current_hyperparams(opt_state)
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32)),
            "grad_norm": grad_norm,
            "lr": jnp.asarray(hp.get("learning_rate", jnp.nan), jnp.float32),
            "finite": finite,
        }
        if momentum_key is not None and momentum_key in hp:
            metrics["momentum"] = jnp.asarray(hp[momentum_key], jnp.float32)
        elif momentum_default is not None:  # not scheduled: the optimizer's constant default
            metrics["momentum"] = jnp.float32(momentum_default)
        new = TrainState(step=state.step + 1, params=params, opt_state=opt_state, rng=state.rng, skipped=skipped)
        return new, metrics

    return train_step


def _make_eval_step(graphdef):
    def eval_step(state: TrainState, batch: dict) -> dict:
        loss, logits = _loss_and_logits(graphdef, state.params, batch["x"], batch["y"])
        mask = batch["mask"]
        correct = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
        return {"loss_sum": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}

    return eval_step


def build_experiment(config: Config, data: Dataset | None = None, *, devices: Any = None,
                     schedule: Schedule | None = None) -> Experiment:
    """Load the data (unless given), build model structure, optimizer and the pure step functions.

    ``schedule`` replaces the learning-rate schedule the config describes (the sweep engine passes a
    :class:`lrjax.Switch` of it, so that different families share one structure).

    Raises :class:`ConfigError` for values that are impossible for this data (a batch larger than the
    training set, a batch that does not split over the devices).

    >>> import jax
    >>> from lrjax.train import build_experiment, load_config
    >>> exp = build_experiment(load_config(None, ["train.steps=10"]))
    >>> state = exp.init_state(jax.random.key(0))
    >>> state, metrics = exp.train_step(state, {"x": exp.data.x_train[:64], "y": exp.data.y_train[:64]})
    >>> sorted(metrics)
    ['accuracy', 'finite', 'grad_norm', 'loss', 'lr', 'momentum']
    """
    d = config.data
    if data is None:
        from lrjax.train._data import DataError

        try:
            data = load_dataset(d.source, seed=config.train.seed, test_fraction=d.test_fraction,
                                normalize=d.normalize)
        except DataError:
            raise
    if d.batch_size > data.num_train:
        raise ConfigError(
            f"data.batch_size={d.batch_size} is larger than the training set of {data.name!r} "
            f"({data.num_train} examples); use at most {data.num_train}"
        )
    devs = np.asarray(jax.devices() if devices is None else devices)
    if d.batch_size % devs.size:
        raise ConfigError(
            f"data.batch_size={d.batch_size} does not split over {devs.size} devices; use a multiple of {devs.size}"
        )
    mesh = Mesh(devs.reshape(-1), ("data",))
    try:
        graphdef, spec = _model_structure(config.model, tuple(data.input_shape), int(data.num_classes))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if schedule is None:
        schedule = make_schedule(config, num_examples=data.num_train)
    tx = build_optimizer(config, schedule, num_examples=data.num_train)
    make_params = functools.partial(_params_from_spec, spec)
    compiled_params = functools.partial(_params_program, spec)

    def init_params(key: jax.Array) -> tuple[Any, jax.Array]:
        """``(params, rng)`` from a key: structure only. Concrete calls (train, sweep, range test, resume)
        all run one compiled program, so their parameters are identical; inside someone else's trace
        (jit, vmap, eval_shape) it is traced inline."""
        return (make_params if isinstance(key, jax.core.Tracer) else compiled_params)(key)

    def init_state(key: jax.Array) -> TrainState:
        params, rng = init_params(key)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng,
                          skipped=jnp.zeros((), jnp.int32))

    name = config.optimizer.name
    train_step = _make_train_step(graphdef, tx, _momentum_arg(name), _momentum_default(name),
                                  config.train.on_nonfinite == "skip")
    return Experiment(config=config, data=data, graphdef=graphdef, tx=tx, schedule=schedule,
                      init_state=init_state, init_params=init_params, train_step=train_step,
                      eval_step=_make_eval_step(graphdef),
                      mesh=mesh, steps=config.train.steps,
                      accumulation_steps=config.optimizer.accumulation_steps)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep Python's cyclic GC off the objects that exist before a run (jax, flax, orbax, the data:
    hundreds of thousands of them) until it ends. A full collection of that heap in the middle of
    compilation costs ~0.15 s on a 2-core CPU; afterwards they are collectable again. Inside a heap that
    is frozen already (a sweep calling ``train``, or the caller's own ``gc.freeze()``) it does nothing,
    so it never unfreezes objects someone else froze."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
