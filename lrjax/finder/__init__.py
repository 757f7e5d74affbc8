"""Learning-rate range tests: the sequential ramp, the parallel grid, suggestions, and the config entry
point (``lrjax find-lr``), all on the engine's runner (:mod:`lrjax.engine`).

>>> import lrjax
>>> sorted(lrjax.finder.SUGGESTIONS)
['minimum', 'steepest', 'valley']
"""

from lrjax.finder._range import FromSchedule, from_schedule, lr_range_test, parallel_range_test, range_schedule
from lrjax.finder._result import ParallelRangeResult, RangeTestResult
from lrjax.finder._suggest import (
    LABELS,
    SUGGESTIONS,
    Suggestion,
    default_smoothing,
    loss_noise,
    minimum,
    steepest,
    suggest,
    valley,
)

__all__ = [
    "FromSchedule",
    "LABELS",
    "ParallelRangeResult",
    "RangeTestResult",
    "SUGGESTIONS",
    "Suggestion",
    "default_smoothing",
    "find_lr_for_run",
    "from_schedule",
    "loss_noise",
    "lr_range_test",
    "minimum",
    "parallel_range_test",
    "range_schedule",
    "range_test_config",
    "steepest",
    "suggest",
    "valley",
    "with_peak",
]


def __getattr__(name: str):  # PEP 562: the config entry points load the training stack (flax) on first use
    if name in ("range_test_config", "with_peak", "find_lr_for_run", "ConfigRangeTest"):
        from lrjax.finder import _config  # noqa: PLC0415 - PEP 562 lazy export: the config entry points load flax

        return getattr(_config, name)
    raise AttributeError(f"module 'lrjax.finder' has no attribute {name!r}")
