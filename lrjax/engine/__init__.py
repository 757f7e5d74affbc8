"""The engine under ``lrjax train``, ``lrjax sweep`` and ``lrjax find-lr``: one way from a config (or your
own model, loss and data) to compiled training.

Layers, top-down: the commands (:mod:`lrjax.cli`) call :mod:`lrjax.train`, :mod:`lrjax.sweep` and
:mod:`lrjax.finder`, which all build an :class:`Experiment` here and run its state through the one
device-side runner (:func:`advance`) and the one evaluation (:func:`evaluate`). Below the engine:
:mod:`lrjax.optim` (schedules in the optimizer state) and :mod:`lrjax.schedules`.

* config: :class:`Config` (typed schema), :func:`load_config`, :func:`config_from_dict`, :func:`with_validation`,
  :func:`train_counts` / :func:`train_steps` (``train.steps`` and the cadences in updates, durations counted)
* data: :class:`Dataset`, :func:`load_dataset`, :func:`from_arrays`, :class:`BatchIterator`
* models: :class:`MLP`, :class:`CNN`, :class:`ResNet`, :func:`make_model`, :func:`model_structure`
* task: :class:`Task`, :func:`make_task` (losses and their metrics)
* build: :func:`build_experiment`, :class:`Experiment`, :class:`TrainState`, :func:`build_optimizer`,
  :func:`make_schedule`
* run: :func:`advance`, :class:`Source`, :func:`batch_at`, :func:`evaluate`, :func:`eval_batches`

The runner and the evaluation import only jax; the rest (flax, optax) is imported when first used, so
``import lrjax`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from lrjax.engine._config import (
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    SelectionOnTestSetWarning,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    loggers,
    parse_duration,
    parse_override,
    read_yaml_mapping,
    resolve_train,
    run_name,
    train_counts,
    train_steps,
    with_validation,
)
from lrjax.engine._data import BatchIterator, DataError, Dataset, from_arrays, load_dataset
from lrjax.engine._evaluate import eval_batches, evaluate
from lrjax.engine._records import (
    COLUMN_INDEX,
    COLUMNS,
    early_stop_step,
    eval_points,
    eval_record,
    is_better,
    log_points,
    nonfinite_update,
    run_records,
    selection_key,
    summarise,
    train_record,
)
from lrjax.engine._runner import Monitor, Source, advance, batch_at
from lrjax.engine._util import (
    default_run_dir,
    enable_compilation_cache,
    fetch,
    frozen_heap,
    put_global,
    seed_key,
    stack_trees,
    unalias,
)

_LAZY = {
    "MLP": "_models", "CNN": "_models", "ResNet": "_models", "make_model": "_models", "init_params": "_models",
    "model_structure": "_models", "ModelStructure": "_models",
    "Task": "_task", "make_task": "_task",
    "Average": "_step", "TrainState": "_step", "train_step": "_step", "plain_loss": "_step",
    "FromSchedule": "_optimizer", "from_schedule": "_optimizer", "make_optimizer": "_optimizer",
    "build_optimizer": "_optimizer", "make_schedule": "_optimizer", "momentum_arg": "_optimizer",
    "applied_rate": "_optimizer", "update_count": "_optimizer", "schedule_free_state": "_optimizer",
    "find_state": "_optimizer", "spec_schedule": "_optimizer", "momentum_default": "_optimizer",
    "Segment": "_program", "Flags": "_program", "Program": "_program", "compile_segment": "_program",
    "stacked_axes": "_program",
    "Checkpointer": "_checkpoint", "CheckpointError": "_checkpoint", "CheckpointSaveError": "_checkpoint",
    "CheckpointFallbackWarning": "_checkpoint",
    "Experiment": "_build", "build_experiment": "_build", "load_data": "_build", "initial_states": "_build",
    "train_arrays": "_build", "split_batches": "_build", "with_context": "_build",
}

__all__ = [
    "advance", "applied_rate", "apply_overrides", "Average", "batch_at", "BatchIterator", "build_experiment",
    "build_optimizer", "Checkpointer", "CheckpointError", "CheckpointFallbackWarning", "CheckpointSaveError", "CNN",
    "COLUMN_INDEX", "COLUMNS", "compile_segment", "Config", "config_from_dict", "config_to_dict", "ConfigError",
    "DataConfig", "DataError", "Dataset", "default_run_dir", "early_stop_step", "enable_compilation_cache",
    "eval_batches", "eval_points", "eval_record", "evaluate", "Experiment", "fetch", "find_state", "Flags",
    "from_arrays", "from_schedule", "FromSchedule", "frozen_heap", "init_params", "initial_states", "is_better",
    "load_config", "load_data", "load_dataset", "log_points", "loggers", "make_model", "make_optimizer",
    "make_schedule", "make_task", "MLP", "model_structure", "ModelConfig", "ModelStructure", "momentum_arg",
    "momentum_default", "Monitor", "nonfinite_update", "OptimizerConfig", "parse_duration", "parse_override", "plain_loss", "Program",
    "put_global", "read_yaml_mapping", "ResNet", "resolve_train", "run_name", "run_records", "schedule_free_state",
    "seed_key", "Segment", "selection_key", "SelectionOnTestSetWarning", "Source", "spec_schedule", "split_batches",
    "stack_trees", "stacked_axes", "summarise", "Task", "train_arrays", "train_counts", "train_record", "train_step",
    "train_steps", "TrainConfig", "TrainState", "unalias", "update_count", "with_context", "with_validation",
]


def __getattr__(name: str) -> Any:  # PEP 562: flax and optax load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(f"lrjax.engine.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lrjax.engine' has no attribute {name!r}")
