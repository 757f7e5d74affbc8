"""Learning-rate range tests: the sequential sweep, the parallel grid, suggestions.

>>> import lrjax
>>> sorted(lrjax.finder.SUGGESTIONS)
['minimum', 'steepest', 'valley']
"""

from lrjax.finder._parallel import ParallelRangeResult, parallel_range_test
from lrjax.finder._suggest import SUGGESTIONS, Suggestion, loss_noise, minimum, steepest, suggest, valley
from lrjax.finder._sweep import FromSchedule, RangeTestResult, from_schedule, lr_range_test, range_schedule

__all__ = [
    "FromSchedule",
    "from_schedule",
    "ParallelRangeResult",
    "parallel_range_test",
    "RangeTestResult",
    "SUGGESTIONS",
    "Suggestion",
    "loss_noise",
    "lr_range_test",
    "minimum",
    "range_schedule",
    "steepest",
    "suggest",
    "valley",
]
