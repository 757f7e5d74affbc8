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
    resolve_train,
    run_name,
    train_counts,
    train_steps,
    with_validation,
)
from lrjax.engine._data import BatchIterator, DataError, Dataset, from_arrays, load_dataset
from lrjax.engine._evaluate import eval_batches, evaluate
from lrjax.engine._runner import Monitor, Source, advance, batch_at
from lrjax.engine._util import enable_compilation_cache, seed_key

_LAZY = {
    "MLP": "_models", "CNN": "_models", "ResNet": "_models", "make_model": "_models", "init_params": "_models",
    "model_structure": "_models", "ModelStructure": "_models",
    "Task": "_task", "make_task": "_task",
    "Average": "_build", "Experiment": "_build", "TrainState": "_build", "build_experiment": "_build", "build_optimizer": "_build",
    "make_schedule": "_build", "COLUMNS": "_build", "load_data": "_build",
}

__all__ = [
    "Average", "BatchIterator", "CNN", "COLUMNS", "Config", "ConfigError", "DataConfig", "DataError", "Dataset", "Experiment",
    "MLP", "ModelConfig", "ModelStructure", "Monitor", "OptimizerConfig", "ResNet", "Source", "Task",
    "SelectionOnTestSetWarning", "TrainConfig", "TrainState", "advance", "apply_overrides", "batch_at",
    "build_experiment", "build_optimizer", "config_from_dict", "config_to_dict", "enable_compilation_cache",
    "eval_batches", "evaluate", "from_arrays", "init_params", "load_config", "load_data", "load_dataset", "make_model",
    "make_schedule", "make_task", "model_structure", "resolve_train", "run_name", "seed_key", "train_counts",
    "train_steps", "with_validation",
]


def __getattr__(name: str) -> Any:  # PEP 562: flax and optax load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(f"lrjax.engine.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lrjax.engine' has no attribute {name!r}")
