"""Optax integration: schedules and hyperparameters that live in the optimizer state.

Re-exported flat from :mod:`lrjax`.
"""

from lrjax.optim._accumulate import accumulate, effective_batch_size, steps_per_epoch, to_steps
from lrjax.optim._inject import InjectState, inject
from lrjax.optim._plateau import PlateauConfig, PlateauState, plateau_step, reduce_on_plateau
from lrjax.optim._scaling import lr_scale_factor, scale_lr
from lrjax.optim._schedule import ScaleByScheduleState, scale_by_schedule
from lrjax.optim._state import (
    current_hyperparams,
    observe_metric,
    replace_schedule,
    set_hyperparams,
    with_hyperparams,
)

__all__ = [
    "InjectState",
    "PlateauConfig",
    "PlateauState",
    "ScaleByScheduleState",
    "accumulate",
    "current_hyperparams",
    "effective_batch_size",
    "inject",
    "lr_scale_factor",
    "observe_metric",
    "plateau_step",
    "reduce_on_plateau",
    "replace_schedule",
    "scale_by_schedule",
    "scale_lr",
    "set_hyperparams",
    "steps_per_epoch",
    "to_steps",
    "with_hyperparams",
]
