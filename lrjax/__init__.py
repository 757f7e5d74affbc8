"""lrjax: learning-rate schedules as jit-compilable pytrees, and the training runs that use them.

The names below load on first use (PEP 562): ``import lrjax`` itself imports nothing heavy, the schedule
core then needs only jax and numpy, and the training stack (flax, orbax) and plotting (matplotlib) load
only in :mod:`lrjax.engine`, :mod:`lrjax.train`, :mod:`lrjax.sweep`, the commands and :mod:`lrjax.plot`.
(The command line installs its Ctrl-C handling before anything heavy is imported.)

>>> import lrjax
>>> sched = lrjax.Warmup(lrjax.CosineDecay(peak=1e-3, decay_steps=900), warmup_steps=100)
>>> round(float(sched(100)), 6)
0.001
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it (imported when the name is first used)
_EXPORTS: dict[str, str] = {
    "lr_range_test": "lrjax.finder",
    "parallel_range_test": "lrjax.finder",
    "ParallelRangeResult": "lrjax.finder",
    "RangeTestResult": "lrjax.finder",
    "accumulate": "lrjax.optim",
    "current_hyperparams": "lrjax.optim",
    "effective_batch_size": "lrjax.optim",
    "inject": "lrjax.optim",
    "InjectState": "lrjax.optim",
    "lr_scale_factor": "lrjax.optim",
    "observe_metric": "lrjax.optim",
    "PlateauConfig": "lrjax.optim",
    "PlateauState": "lrjax.optim",
    "reduce_on_plateau": "lrjax.optim",
    "replace_schedule": "lrjax.optim",
    "scale_by_schedule": "lrjax.optim",
    "scale_lr": "lrjax.optim",
    "ScaleByScheduleState": "lrjax.optim",
    "set_hyperparams": "lrjax.optim",
    "steps_per_epoch": "lrjax.optim",
    "to_steps": "lrjax.optim",
    "with_hyperparams": "lrjax.optim",
    "Affine": "lrjax.schedules",
    "Anneal": "lrjax.schedules",
    "as_step": "lrjax.schedules",
    "Clamp": "lrjax.schedules",
    "Constant": "lrjax.schedules",
    "CosineDecay": "lrjax.schedules",
    "CosineRestarts": "lrjax.schedules",
    "Cyclic": "lrjax.schedules",
    "Exponential": "lrjax.schedules",
    "from_spec": "lrjax.schedules",
    "InverseSqrt": "lrjax.schedules",
    "InverseTime": "lrjax.schedules",
    "Lambda": "lrjax.schedules",
    "Linear": "lrjax.schedules",
    "load_spec": "lrjax.schedules",
    "MomentumOf": "lrjax.schedules",
    "MultiStep": "lrjax.schedules",
    "OneCycle": "lrjax.schedules",
    "PiecewiseConstant": "lrjax.schedules",
    "Polynomial": "lrjax.schedules",
    "Product": "lrjax.schedules",
    "registered_schedules": "lrjax.schedules",
    "Scale": "lrjax.schedules",
    "Schedule": "lrjax.schedules",
    "Sequence": "lrjax.schedules",
    "Shift": "lrjax.schedules",
    "StepDecay": "lrjax.schedules",
    "Switch": "lrjax.schedules",
    "Table": "lrjax.schedules",
    "TanhDecay": "lrjax.schedules",
    "to_spec": "lrjax.schedules",
    "Warmup": "lrjax.schedules",
    "WarmupStableDecay": "lrjax.schedules",
}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from lrjax.finder import ParallelRangeResult, RangeTestResult, lr_range_test, parallel_range_test  # noqa: F401
    from lrjax.optim import (  # noqa: F401
        InjectState,
        PlateauConfig,
        PlateauState,
        ScaleByScheduleState,
        accumulate,
        current_hyperparams,
        effective_batch_size,
        inject,
        lr_scale_factor,
        observe_metric,
        reduce_on_plateau,
        replace_schedule,
        scale_by_schedule,
        scale_lr,
        set_hyperparams,
        steps_per_epoch,
        to_steps,
        with_hyperparams,
    )
    from lrjax.schedules import (  # noqa: F401
        Affine,
        Anneal,
        Clamp,
        Constant,
        CosineDecay,
        CosineRestarts,
        Cyclic,
        Exponential,
        InverseSqrt,
        InverseTime,
        Lambda,
        Linear,
        MomentumOf,
        MultiStep,
        OneCycle,
        PiecewiseConstant,
        Polynomial,
        Product,
        Scale,
        Schedule,
        Sequence,
        Shift,
        StepDecay,
        Switch,
        Table,
        TanhDecay,
        Warmup,
        WarmupStableDecay,
        as_step,
        from_spec,
        load_spec,
        registered_schedules,
        to_spec,
    )

__version__ = "0.1.0"

__all__ = sorted([*_EXPORTS, "__version__"], key=str.lower)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrjax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
