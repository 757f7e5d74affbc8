"""lrjax: learning-rate schedules as jit-compilable pytrees, and the training runs that use them.

The schedule core imports only jax and numpy; the training stack (flax, orbax)
and plotting (matplotlib) are imported lazily by the CLI and :mod:`lrjax.plot`.

>>> import lrjax
>>> sched = lrjax.Warmup(lrjax.CosineDecay(peak=1e-3, decay_steps=900), warmup_steps=100)
>>> round(float(sched(100)), 6)
0.001
"""

from lrjax.finder import (  # range tests (finder helper)
    ParallelRangeResult,
    RangeTestResult,
    lr_range_test,
    parallel_range_test,
)
from lrjax.optim import (  # optax integration (optim helper)
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
    steps_per_epoch,
    to_steps,
    with_hyperparams,
)
from lrjax.schedules import (
    Clamp,
    Constant,
    CosineDecay,
    CosineRestarts,
    Cyclic,
    Exponential,
    InverseSqrt,
    InverseTime,
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
