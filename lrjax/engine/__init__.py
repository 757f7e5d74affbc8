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
    parse_duration,
    resolve_train,
    run_name,
    train_counts,
    train_steps,
    with_validation,
)
from lrjax.engine._data import BatchIterator, DataError, Dataset, from_arrays, load_dataset
from lrjax.engine._evaluate import eval_batches, evaluate
from lrjax.engine._records import COLUMNS, eval_points, log_points
from lrjax.engine._runner import Monitor, Source, advance, batch_at
from lrjax.engine._util import enable_compilation_cache, seed_key

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
    "Experiment": "_build", "build_experiment": "_build", "load_data": "_build", "initial_states": "_build",
    "train_arrays": "_build", "split_batches": "_build",
}

__all__ = [
    "advance", "applied_rate", "apply_overrides", "Average", "batch_at", "BatchIterator", "build_experiment",
    "build_optimizer", "CNN", "COLUMNS", "compile_segment", "Config", "config_from_dict", "config_to_dict",
    "ConfigError", "DataConfig", "DataError", "Dataset", "enable_compilation_cache", "eval_batches", "eval_points",
    "evaluate", "Experiment", "Flags", "from_arrays", "from_schedule", "FromSchedule", "init_params",
    "initial_states", "load_config", "load_data", "load_dataset", "log_points", "parse_duration", "make_model", "make_optimizer",
    "make_schedule", "make_task", "MLP", "model_structure", "ModelConfig", "ModelStructure", "momentum_arg", "momentum_default",
    "Monitor", "OptimizerConfig", "plain_loss", "Program", "ResNet", "run_name", "schedule_free_state", "seed_key", "spec_schedule",
    "Segment", "SelectionOnTestSetWarning", "Source", "split_batches", "stacked_axes", "Task", "train_arrays", "train_counts", "train_steps", "resolve_train",
    "train_step", "TrainConfig", "TrainState", "update_count", "with_validation",
]


def __getattr__(name: str) -> Any:  # PEP 562: flax and optax load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(f"lrjax.engine.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lrjax.engine' has no attribute {name!r}")
