"""lrjax: learning-rate schedules as jit-compilable pytrees, and the training runs that use them.

The schedule core imports only jax and numpy; the training stack (flax, orbax)
and plotting (matplotlib) are imported lazily by the CLI and :mod:`lrjax.plot`.

>>> import lrjax
>>> sched = lrjax.Warmup(lrjax.CosineDecay(peak=1e-3, decay_steps=900), warmup_steps=100)
>>> round(float(sched(100)), 6)
0.001
"""

from lrjax.optim import (  # optax integration (optim helper)
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
    Polynomial,
    Product,
    Scale,
    Schedule,
    Sequence,
    StepDecay,
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
