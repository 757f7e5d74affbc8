"""Training runs: :func:`train` (what ``lrjax train`` calls), its hooks, checkpoints and run directories.

Import it explicitly (``import lrjax.train``); ``import lrjax`` stays light and never loads flax. The
config, data, models and the compiled runner live in :mod:`lrjax.engine` (shared with the sweep and the
range test); the names a training script needs are re-exported here::

    from lrjax.train import load_config, train

    summary = train(load_config("configs/cosine.yaml", ["train.steps=200"]))
    summary = train(load_config(None, ["loss=mse"]), model=my_factory, data={"x_train": ..., ...})
"""

from lrjax.engine import (
    BatchIterator,
    Checkpointer,
    Config,
    ConfigError,
    DataError,
    Dataset,
    build_experiment,
    enable_compilation_cache,
    load_config,
    load_dataset,
)
from lrjax.train._hooks import CheckpointHook, EvalHook, Hook, LogHook, ProgressHook, TensorBoardHook
from lrjax.train._loop import NonFiniteLossError, Run, load_checkpoint, load_run_config, train
from lrjax.train._report import format_summary, plot_run, read_metrics

__all__ = [
    "BatchIterator", "CheckpointHook", "Checkpointer", "Config", "ConfigError", "DataError", "Dataset", "EvalHook",
    "Hook", "LogHook", "NonFiniteLossError", "ProgressHook", "Run", "TensorBoardHook",
    "build_experiment", "enable_compilation_cache", "format_summary", "load_checkpoint", "load_config",
    "load_dataset", "load_run_config", "plot_run", "read_metrics", "train",
]
