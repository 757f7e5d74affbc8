"""Schedule sweeps that decide: many training configurations, one compiled program per structure, a
validation split that chooses, and strategies (grid, successive halving, population-based training, cooldown
studies that fork every horizon from one run, and any strategy module of :mod:`lrjax.sweep.strategies`).

Import it explicitly (``import lrjax.sweep``); like :mod:`lrjax.train` it loads flax, so ``import lrjax``
does not import it.

>>> from lrjax.sweep import load_sweep, run_sweep                            # doctest: +SKIP
>>> res = run_sweep("configs/sweeps/warmup_cosine_grid.yaml", out_dir="runs/grid")  # doctest: +SKIP
>>> res.winner                                                              # doctest: +SKIP
'peak=0.003 warmup_steps=30'

Configurations whose train states share a tree structure (same schedule family and static options, same
model and optimizer) are stacked and trained under ``jax.vmap`` by the engine's segment program
(:mod:`lrjax.engine`); each one's result equals training it alone with ``lrjax train`` (same
initialisation, same batches). See :mod:`lrjax.sweep._driver`.
"""

from lrjax.engine import eval_points, log_points
from lrjax.sweep._driver import ConfigResult, train_many
from lrjax.sweep._layout import use_cpu_cores
from lrjax.sweep._report import plot_sweep, rank, steps_to_target, table_rows, to_csv, to_markdown
from lrjax.sweep._run import SweepResult, resumed_spec, run_sweep
from lrjax.sweep._spec import SweepConfig, SweepError, SweepSpec, Target, expand, load_sweep, sweep_from_dict
from lrjax.sweep.strategies import Copy, Decision, Plan, Strategy, parse_strategy, strategy_of

__all__ = [
    "ConfigResult", "Copy", "Decision", "Plan", "Strategy", "SweepConfig", "SweepError", "SweepResult", "SweepSpec",
    "Target",
    "eval_points", "expand", "load_sweep", "log_points", "parse_strategy", "plot_sweep", "rank", "resumed_spec", "run_sweep",
    "steps_to_target", "strategy_of", "sweep_from_dict", "table_rows", "to_csv", "to_markdown", "train_many",
    "use_cpu_cores",
]
