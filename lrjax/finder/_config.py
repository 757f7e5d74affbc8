"""Range tests on a training config (``lrjax find-lr``, ``lrjax train --find-lr``), on the engine.

The config's experiment is built by :func:`lrjax.engine.build_experiment` with the ramp in place of its
schedule — the same data, model (built-in or your own factory), loss, initial parameters (same seed),
optimizer (clipping, hyperparameters, gradient accumulation) and batches as ``lrjax train`` — and its
``train_step`` runs in the engine's runner with the range test's monitor. Differences from the training
run, on purpose:

* no plateau (nothing feeds it during a range test);
* ``cycle_momentum``: the momentum is held at its value at step 0 (the one-cycle/cyclic companion's
  start), since the ramp has no momentum companion.

The parallel test trains ``parallel_rates`` constant rates at once (the runner under ``jax.vmap``) and
ranks them on the *validation* split (``data.validation_fraction``, 0.1 by default here): the ranking
chooses, so it never looks at the test set.

The rate found is the rate to use at the config's effective batch; :func:`with_peak` sets the
schedule's peak to it (accounting for ``optimizer.batch_scaling``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import choice, integer
from lrjax._rundir import atomic_write_json
from lrjax.engine import (
    COLUMNS,
    Config,
    Experiment,
    Flags,
    build_experiment,
    compile_segment,
    config_from_dict,
    config_to_dict,
    initial_states,
    make_schedule,
    run_name,
    stacked_axes,
    with_validation,
)
from lrjax.finder._plot import plot_both
from lrjax.finder._range import (
    DEFAULT_MIN_LR,
    RangeMonitor,
    check_diverge_factor,
    check_rates,
    check_smoothing,
    curve,
    factor_setting,
    parallel_result,
    range_schedule,
    rate_grid,
    sweep_result,
)
from lrjax.finder._result import ParallelRangeResult, RangeTestResult
from lrjax.finder._suggest import default_smoothing
from lrjax.schedules import Constant, Schedule

__all__ = ["ConfigRangeTest", "range_test_config", "with_peak", "find_lr_for_run", "METHODS"]

METHODS = ("steepest", "minimum", "valley", "parallel")
# Keys that are a schedule's peak rate, per family (the outermost rate-valued argument).
_PEAK_KEYS = {"cosine_decay": "peak", "warmup_stable_decay": "peak", "cosine_restarts": "peak",
              "inverse_sqrt": "peak", "tanh_decay": "peak", "one_cycle": "max_lr", "cyclic": "max_lr",
              "constant": "value", "exponential": "init_value", "step_decay": "init_value",
              "multi_step": "init_value", "polynomial": "init_value", "inverse_time": "init_value"}
# The curve in a table of the engine's metric columns followed by the monitor's.
_CURVE = (COLUMNS.index("lr"), len(COLUMNS), len(COLUMNS) + 1, len(COLUMNS) + 2)


@dataclasses.dataclass(frozen=True)
class ConfigRangeTest:
    """The sequential test and (optionally) the parallel grid run on a config."""

    sweep: RangeTestResult | None
    grid: ParallelRangeResult | None
    settings: dict[str, Any]

    def suggestion(self, method: str = "steepest") -> float:
        """The rate ``method`` suggests (``parallel``: the grid's best); ValueError with the reason if none."""
        choice("", "method", method, METHODS)
        if method == "parallel":
            if self.grid is None:
                raise ValueError("method='parallel' needs the parallel range test (parallel_rates > 0)")
            return self.grid.best_lr
        if self.sweep is None:
            raise ValueError(f"method={method!r} needs the sequential sweep (num_steps > 0)")
        return self.sweep.suggestion(method)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": dict(self.settings),
                "sweep": None if self.sweep is None else self.sweep.to_dict(),
                "parallel": None if self.grid is None else self.grid.to_dict()}

    def save(self, out_dir: str, method: str, prefix: str = "range_test") -> dict[str, str]:
        """``<prefix>.json`` (everything, and the chosen rate or why there is none) and ``<prefix>.png``
        (the curve; the grid beside it when run) in ``out_dir``. Returns the paths."""
        try:
            chosen, reason = self.suggestion(method), ""
        except ValueError as e:
            chosen, reason = None, str(e)
        os.makedirs(out_dir, exist_ok=True)
        d = self.to_dict()
        d["chosen"] = {"method": method, "lr": chosen, "message": reason}
        paths = {"json": os.path.join(out_dir, f"{prefix}.json"), "png": os.path.join(out_dir, f"{prefix}.png")}
        atomic_write_json(paths["json"], d, indent=1)  # never a half-written file under the name
        name = self.settings.get("config_name", "")
        if self.sweep is not None and self.grid is not None:
            plot_both(self.sweep, self.grid, paths["png"])
        elif self.sweep is not None:
            self.sweep.plot(paths["png"], title=f"range test: {name}")
        else:
            self.grid.plot(paths["png"], title=f"parallel range test: {name}")
        return paths


def _range_config(config: Config) -> Config:
    """The config as the range test runs it: no plateau (nothing feeds it during the test)."""
    return dataclasses.replace(config, plateau=None)


def _held_momentum(config: Config) -> Schedule | None:
    """With ``cycle_momentum``, the momentum companion's value at step 0, held constant."""
    if not config.optimizer.cycle_momentum:
        return None
    mom = getattr(make_schedule(config), "momentum", None)
    return None if mom is None else Constant(float(mom(0)))


def range_test_config(
    config: Config,
    *,
    model: Any = None,
    loss: Any = None,
    data: Any = None,
    min_lr: float = DEFAULT_MIN_LR,
    max_lr: float = 1.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float | None = None,
    diverge_factor: float | None = 4.0,
    parallel_rates: int = 0,
    parallel_steps: int = 50,
    parallel_min_lr: float | None = None,
    parallel_max_lr: float | None = None,
) -> ConfigRangeTest:
    """Run the range test(s) on a training config's model, loss, data and optimizer.

    Args:
      config: a :class:`lrjax.engine.Config` (``lrjax.engine.load_config(...)``).
      model, loss, data: your own factory, loss and arrays/Dataset, as for :func:`lrjax.train.train`.
      min_lr, max_lr, num_steps, mode, smoothing, diverge_factor: the sequential test
        (``num_steps=0`` skips it).
      parallel_rates, parallel_steps: the parallel grid (0 rates skips it), ranked by the loss on the
        validation split.
      parallel_min_lr, parallel_max_lr: the grid's range (default: the sequential test's).

    Returns:
      a :class:`ConfigRangeTest`.
    """
    n_sweep = integer("range_test_config", "num_steps", num_steps, lo=0)
    n_rates = integer("range_test_config", "parallel_rates", parallel_rates, lo=0)
    if n_sweep == 1:
        raise ValueError("range_test_config: num_steps must be 0 (no sequential test) or >= 2, got num_steps=1")
    if n_rates == 1:
        raise ValueError("range_test_config: parallel_rates must be 0 (no parallel test) or >= 2, got 1")
    if not n_sweep and not n_rates:
        raise ValueError("range_test_config: nothing to run: num_steps=0 and parallel_rates=0")
    n_grid = integer("range_test_config", "parallel_steps", parallel_steps, lo=1) if n_rates else 0
    ramp = range_schedule(min_lr, max_lr, n_sweep, mode) if n_sweep else None
    beta = check_smoothing(default_smoothing(n_sweep) if smoothing is None else smoothing)
    factor = check_diverge_factor(diverge_factor)
    cfg = with_validation(_range_config(config), selects=bool(n_rates))
    held = _held_momentum(cfg)
    k = int(cfg.optimizer.accumulation_steps)
    seed = int(cfg.train.seed)

    def experiment(schedule: Schedule, ds: Any) -> Experiment:
        return build_experiment(cfg, model=model, loss=loss, data=ds, schedule=schedule, devices=jax.devices()[:1],
                                momentum=held)

    first = experiment(ramp if ramp is not None else Constant(1.0), data)
    ds = first.data
    settings = dict(config_name=cfg.name or run_name(cfg, ds.name), data=ds.name, optimizer=cfg.optimizer.name,
                    batch_size=cfg.data.batch_size, accumulation_steps=k, seed=seed)
    m0 = RangeMonitor.start(beta, factor)
    sweep = None
    if n_sweep:
        prog = compile_segment(first.segment(n_sweep * k, monitor=RangeMonitor(k), splits=()),
                               out_shardings=first.replicated)
        out = prog(first.initial_state(seed), first.source(first.run_index(n_sweep * k, seed)), 0, n_sweep * k, mstate=m0)
        sweep = sweep_result(curve(jax.device_get(out.table), int(out.steps), k, _CURVE), min_lr=min_lr,
                             max_lr=max_lr, num_steps=n_sweep, mode=mode, smoothing=beta, factor=factor,
                             accumulation_steps=k)
    grid = None
    if n_rates:
        lo, hi = check_rates(min_lr if parallel_min_lr is None else parallel_min_lr,
                             max_lr if parallel_max_lr is None else parallel_max_lr)
        rates = rate_grid(lo, hi, n_rates)
        exps = [experiment(Constant(float(r)), ds) for r in rates]
        states = initial_states(exps)
        split = exps[0].selection_split  # the ranking chooses: the validation split, never the test set
        metric = "accuracy" if exps[0].task.classification else "loss"
        seg = exps[0].segment(n_grid * k, monitor=RangeMonitor(k), splits=(split,))
        prog = compile_segment(seg, in_axes=stacked_axes(arrays=False, index=False, evals=False), keep_state=False)
        source, evals, flags = first.source(first.run_index(n_grid * k, seed)), {split: exps[0].eval_data(split)}, Flags(evaluate=True)
        ev0 = jax.device_get(prog(states, source, 0, 0, evals, flags, m0).metrics[split][metric][0])  # no update yet
        out = jax.device_get(prog(states, source, 0, n_grid * k, evals, flags, m0))
        grid = parallel_result(rates, out.table, out.steps, out.mstate.code, out.metrics[split][metric], ev0, k,
                               n_grid, metric == "accuracy", 0.5,
                               dict(min_lr=lo, max_lr=hi, num_rates=n_rates, num_steps=n_grid, smoothing=beta,
                                    diverge_factor=factor_setting(factor), accumulation_steps=k,
                                    slow_fraction=0.5, higher_is_better=metric == "accuracy", schedule="constant",
                                    ranked_on=f"{split}_{metric}"), _CURVE)
    return ConfigRangeTest(sweep, grid, settings)


def _schedule_max(config: Any) -> float:
    """The largest rate the config's schedule reaches over the run (batch scaling included)."""
    sched = make_schedule(config)
    steps = int(config.train.steps)
    values = np.asarray(jax.device_get(sched(jnp.arange(steps))), dtype=np.float64)
    return float(np.max(values))


def _round(x: float) -> float:
    """7 significant digits: float32 noise off the written config, well inside the 1e-5 check."""
    return float(f"{x:.7g}")


def with_peak(config: Any, lr: float, *, method: str = "steepest", record: dict[str, Any] | None = None) -> Any:
    """``config`` with its schedule rescaled so the largest rate of the run is ``lr``.

    When the schedule (or the one a ``warmup`` wraps) has a peak argument (``peak``, ``max_lr``,
    ``value``, ``init_value``) whose value sets the maximum, that argument is changed; otherwise
    the schedule is wrapped in ``{name: scale, factor: ...}``. Either way the new maximum is
    checked to be ``lr`` (to float32 precision). ``record`` (if the config schema has a
    ``find_lr`` field) notes where the rate came from.
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"with_peak: lr must be a finite rate > 0, got lr={lr!r}")
    current = _schedule_max(config)
    if not current > 0:
        raise ValueError("with_peak: the schedule never exceeds 0 over the run, so it has no peak to set")
    factor = lr / current
    d = config_to_dict(config)
    spec = copy.deepcopy(d["schedule"])
    node = spec["schedule"] if spec.get("name") == "warmup" and isinstance(spec.get("schedule"), dict) else spec
    key = _PEAK_KEYS.get(node.get("name"))
    new = None
    if key is not None and isinstance(node.get(key), (int, float)) and not isinstance(node.get(key), bool):
        node[key] = _round(float(node[key]) * factor)
        try:
            cand = config_from_dict(dict(d, schedule=spec))
            if math.isclose(_schedule_max(cand), lr, rel_tol=1e-5):
                new = cand
        except ValueError:
            pass
    if new is None:
        new = config_from_dict(dict(d, schedule={"name": "scale", "factor": _round(factor),
                                                 "schedule": copy.deepcopy(d["schedule"])}))
    got = _schedule_max(new)
    if not math.isclose(got, lr, rel_tol=1e-5):  # pragma: no cover - guards the rescaling logic
        raise RuntimeError(f"with_peak: rescaled schedule peaks at {got!r}, expected {lr!r}")
    if record is not None and "find_lr" in {f.name for f in dataclasses.fields(new)}:
        new = dataclasses.replace(new, find_lr=dict(record, method=method, lr=float(lr)))
    return new


def find_lr_for_run(config: Config, method: str = "steepest", out_dir: str | None = None, *, model: Any = None,
                    loss: Any = None, data: Any = None, **kwargs: Any) -> Config:
    """What ``lrjax train --find-lr METHOD`` does before training: run the range test on ``config``
    (``method="parallel"`` adds an 8-rate parallel test), write ``range_test.json``/``range_test.png`` to
    ``out_dir``, and return the config with its schedule's peak set to the suggested rate (the choice
    recorded in ``config.find_lr``).

    Raises ValueError (with the reason) when the method suggests no rate.
    """
    choice("--find-lr", "method", method, METHODS)
    if method == "parallel":
        kwargs.setdefault("parallel_rates", 8)
    result = range_test_config(config, model=model, loss=loss, data=data, **kwargs)
    if out_dir is not None:
        result.save(out_dir, method)
    try:
        chosen = result.suggestion(method)
    except ValueError as e:
        raise ValueError(f"--find-lr {method}: {e}") from None
    sweep = result.sweep
    record = {"stop_reason": sweep.stop_reason if sweep is not None else None,
              "min_lr": kwargs.get("min_lr", DEFAULT_MIN_LR), "max_lr": kwargs.get("max_lr", 1.0),
              "num_steps": kwargs.get("num_steps", 100)}
    return with_peak(config, chosen, method=method, record=record)
