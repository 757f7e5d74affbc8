"""How a sweep spends its budget: one module per strategy, behind one interface (:mod:`._base`).

* ``grid`` (default): every configuration trains to the end.
* ``halving``: successive halving — at each rung the best fraction goes on.
* ``pbt``: population-based training — the bottom copies the top and perturbs its hyperparameters.
* ``cooldowns``: every horizon from one run — cooldown branches forked from a constant-rate trunk.

``anneal`` on ``halving`` and ``pbt`` ranks members on cooled copies (:mod:`._anneal`).

Every module of this package is imported here and registers its strategy: adding a strategy is adding a
module, nothing else.

>>> from lrjax.sweep.strategies import parse_strategy
>>> parse_strategy({"name": "halving", "rungs": [100, 200], "eta": 2}, steps=400, num_configs=8).to_dict()
{'name': 'halving', 'rungs': [100, 200], 'keep': 0.5}
"""

import importlib
import pkgutil

from lrjax.sweep.strategies._base import (
    Copy,
    Decision,
    Plan,
    Population,
    Strategy,
    known_lengths,
    parse_strategy,
    register,
    registry,
    strategy_of,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Copy", "Decision", "Plan", "Population", "Strategy", "known_lengths", "parse_strategy", "register", "registry",
           "strategy_of"]
