"""The training toolkit: config schema, data, models, pure steps, loop, hooks, checkpoints.

Import it explicitly (``import lrjax.train``); ``import lrjax`` stays light and never loads flax.

The functional core, for tools that build on it (range test, vmapped sweeps)::

    import jax
    from lrjax.train import build_experiment, load_config

    exp = build_experiment(load_config("configs/cosine.yaml", ["train.steps=200"]))
    state = exp.replicate(exp.init_state(jax.random.key(0)))   # TrainState pytree
    batch = exp.shard_batch({"x": exp.data.x_train[:64], "y": exp.data.y_train[:64]})
    state, metrics = exp.jit_train_step(state, batch)          # donated, no host sync
    print(exp.evaluate(state))                                  # {'loss': ..., 'accuracy': ...}

``exp.init_state(key) -> TrainState``, ``exp.train_step(state, batch) -> (state, metrics)`` and
``exp.eval_step(state, batch) -> metrics`` are pure and close over structure only (model graphdef,
optimizer structure): every schedule and optimizer hyperparameter is a leaf of the state, so
``jax.vmap`` runs stacked states whose schedules differ, and changing a value never recompiles.

The whole run: :func:`train` (what ``lrjax train`` calls).
"""

from lrjax.train._config import (
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
)
from lrjax.train._data import BatchIterator, DataError, Dataset, load_dataset
from lrjax.train._models import CNN, MLP, ResNet, init_params, make_model
from lrjax.train._step import (
    Experiment,
    TrainState,
    build_experiment,
    build_optimizer,
    current_hyperparams,
    make_schedule,
    seed_key,
)

__all__ = [
    "BatchIterator", "CNN", "Config", "ConfigError", "DataConfig", "DataError", "Dataset", "Experiment", "MLP",
    "ModelConfig", "OptimizerConfig", "ResNet", "TrainConfig", "TrainState", "apply_overrides",
    "build_experiment", "build_optimizer", "config_from_dict", "config_to_dict", "current_hyperparams",
    "load_config", "load_dataset", "init_params", "make_model", "make_schedule", "seed_key",
]
from lrjax.train._checkpoint import Checkpointer
from lrjax.train._hooks import CheckpointHook, EvalHook, Hook, LogHook, PlateauHook, ProgressHook, TensorBoardHook
from lrjax.train._loop import (
    NonFiniteLossError,
    Run,
    enable_compilation_cache,
    load_checkpoint,
    load_run_config,
    train,
)
from lrjax.train._report import format_summary, plot_run, read_metrics

__all__ += [
    "Checkpointer", "CheckpointHook", "EvalHook", "Hook", "LogHook", "NonFiniteLossError", "PlateauHook",
    "ProgressHook", "Run", "TensorBoardHook", "enable_compilation_cache", "format_summary", "load_checkpoint",
    "load_run_config",
    "plot_run", "read_metrics", "train",
]
