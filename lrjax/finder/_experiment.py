"""Range tests on a training config (``lrjax find-lr``, ``lrjax train --find-lr``).

Uses the training package's public API only: :func:`lrjax.train.build_experiment` for the data,
the model structure, the initial parameters (same seed as ``lrjax train``) and the loss (its pure
``eval_step``), :class:`lrjax.train.BatchIterator` for the batches the run would see, and
:func:`lrjax.train.build_optimizer` for the config's optimizer (clipping and hyperparameters
included) with the ramp in place of the schedule. Differences from the training run, on purpose:

* no plateau (nothing feeds it during a sweep);
* ``cycle_momentum``: the momentum is held at its value at step 0 (the one-cycle/cyclic
  companion's start), since the sweep's ramp has no momentum companion;
* gradient accumulation is done by the sweep (mean gradient of the micro-batches per update),
  so the ramp counts optimizer updates, as the run's schedule does.

The rate found is the rate to use at the config's effective batch; :func:`with_peak` sets the
schedule's peak to it (accounting for ``optimizer.batch_scaling``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.finder._parallel import ParallelRangeResult, parallel_range_test
from lrjax.finder._sweep import RangeTestResult, from_schedule, lr_range_test

__all__ = ["ConfigRangeTest", "range_test_config", "with_peak", "METHODS"]

METHODS = ("steepest", "minimum", "valley", "parallel")
# Keys that are a schedule's peak rate, per family (the outermost rate-valued argument).
_PEAK_KEYS = {"cosine_decay": "peak", "warmup_stable_decay": "peak", "cosine_restarts": "peak",
              "inverse_sqrt": "peak", "tanh_decay": "peak", "one_cycle": "max_lr", "cyclic": "max_lr",
              "constant": "value", "exponential": "init_value", "step_decay": "init_value",
              "multi_step": "init_value", "polynomial": "init_value", "inverse_time": "init_value"}


@dataclasses.dataclass(frozen=True)
class ConfigRangeTest:
    """The sequential sweep and (optionally) the parallel grid run on a config."""

    sweep: RangeTestResult | None
    grid: ParallelRangeResult | None
    settings: dict[str, Any]

    def suggestion(self, method: str = "steepest") -> float:
        """The rate ``method`` suggests (``parallel``: the grid's best); ValueError with the reason if none."""
        if method not in METHODS:
            from lrjax._checks import closest

            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got method={method!r}"
                             f"{closest(method, METHODS)}")
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


def _sweep_config(config: Any) -> Any:
    """The config's optimizer for a sweep: no plateau, no accumulation wrapper, momentum held."""
    o = config.optimizer
    args = dict(o.args)
    if o.cycle_momentum:
        from lrjax.train import make_schedule

        mom = getattr(make_schedule(config), "momentum", None)
        key = "momentum" if o.name in ("sgd", "rmsprop", "lars") else "b1"
        if mom is not None:
            args[key] = float(mom(0))
    opt = dataclasses.replace(o, args=args, cycle_momentum=False, accumulation_steps=1)
    return dataclasses.replace(config, optimizer=opt, plateau=None)


def _stacked_batches(data: Any, batch_size: int, seed: int, count: int) -> dict[str, np.ndarray]:
    """The first ``count`` training batches of the run, stacked: ``{"x": (count, B, ...), "y": (count, B)}``."""
    from lrjax.train import BatchIterator

    it = BatchIterator(data.num_train, batch_size, seed)
    idx = np.stack([it.next_indices() for _ in range(count)])
    return {"x": data.x_train[idx], "y": data.y_train[idx]}


def range_test_config(
    config: Any,
    *,
    data: Any = None,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    diverge_factor: float | None = 4.0,
    parallel_rates: int = 0,
    parallel_steps: int = 50,
    parallel_min_lr: float | None = None,
    parallel_max_lr: float | None = None,
) -> ConfigRangeTest:
    """Run the range test(s) on a training config's model, data and optimizer.

    Args:
      config: a :class:`lrjax.train.Config` (``lrjax.train.load_config(...)``).
      data: an already loaded :class:`lrjax.train.Dataset` (default: the config's).
      min_lr, max_lr, num_steps, mode, smoothing, diverge_factor: the sequential sweep
        (``num_steps=0`` skips it).
      parallel_rates, parallel_steps: the parallel grid (0 rates skips it), ranked by the
        loss on the first ``data.eval_batch_size`` test examples.
      parallel_min_lr, parallel_max_lr: the grid's range (default: the sweep's).

    Returns:
      a :class:`ConfigRangeTest`.
    """
    from lrjax.train import TrainState, build_experiment, build_optimizer, seed_key

    cfg = _sweep_config(config)
    exp = build_experiment(cfg, data)
    k = int(config.optimizer.accumulation_steps)
    seed = int(config.train.seed)
    params = exp.init_state(seed_key(seed)).params
    eval_step = exp.eval_step

    def loss_fn(p, batch):
        state = TrainState(step=jnp.int32(0), params=p, opt_state=None, rng=None, skipped=None)
        mask = jnp.ones(batch["y"].shape[0], jnp.float32)
        m = eval_step(state, {"x": batch["x"], "y": batch["y"], "mask": mask})
        return m["loss_sum"] / m["count"]

    num_examples = exp.data.num_train
    optimizer = from_schedule(lambda s: build_optimizer(cfg, s, num_examples=num_examples))
    bs = cfg.data.batch_size
    n_sweep = int(num_steps)
    n_grid = int(parallel_steps) if parallel_rates else 0
    batches = _stacked_batches(exp.data, bs, seed, max(n_sweep, n_grid, 1) * k)
    settings = dict(config_name=config.name, data=exp.data.name, optimizer=config.optimizer.name,
                    batch_size=bs, accumulation_steps=k, seed=seed)
    sweep = None
    if n_sweep:
        sweep = lr_range_test(loss_fn, params, optimizer, batches, min_lr=min_lr, max_lr=max_lr,
                              num_steps=n_sweep, mode=mode, smoothing=smoothing, diverge_factor=diverge_factor,
                              accumulation_steps=k)
    grid = None
    if parallel_rates:
        ne = min(cfg.data.eval_batch_size, len(exp.data.y_test))
        eval_data = {"x": jnp.asarray(exp.data.x_test[:ne]), "y": jnp.asarray(exp.data.y_test[:ne])}
        grid = parallel_range_test(
            loss_fn, params, optimizer, {kk: v[: n_grid * k] for kk, v in batches.items()},
            min_lr=min_lr if parallel_min_lr is None else parallel_min_lr,
            max_lr=max_lr if parallel_max_lr is None else parallel_max_lr,
            num_rates=int(parallel_rates), num_steps=n_grid, diverge_factor=diverge_factor,
            accumulation_steps=k, eval_fn=loss_fn, eval_data=eval_data)
    return ConfigRangeTest(sweep, grid, settings)


def _schedule_max(config: Any) -> float:
    """The largest rate the config's schedule reaches over the run (batch scaling included)."""
    from lrjax.train import make_schedule

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
    from lrjax.train import config_from_dict, config_to_dict

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
