"""``run_sweep``: expand a sweep, train it (:func:`train_many`), write the run directory.

Run directory::

    run_dir/
      sweep.yaml              the sweep as run (base config merged in)
      configs/<label>.yaml    each configuration's resolved training config: `lrjax train` on it
                              reproduces that configuration alone
      metrics/<label>.jsonl   its curves, in the format of `lrjax train`'s metrics.jsonl
      results.csv, results.md the table, best first
      sweep.png               rates, train loss, eval loss, eval accuracy of every configuration
      summary.json            the winner, groups (compilations, chunk sizes, timings), the table
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Sequence

import jax

from lrjax.sweep._engine import ConfigResult, train_many
from lrjax.sweep._report import plot_sweep, rank, table_rows, to_csv, to_markdown
from lrjax.sweep._spec import SweepConfig, SweepSpec, expand, load_sweep, safe_label, spec_to_dict

__all__ = ["SweepResult", "run_sweep"]


@dataclasses.dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`: per-config results, the table (best first), the winner."""

    spec: SweepSpec
    configs: list[SweepConfig]
    results: list[ConfigResult]
    rows: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    winner: str
    run_dir: str | None
    time_s: float

    def markdown(self) -> str:
        return to_markdown(self.rows)


def _default_dir(name: str) -> str:
    from lrjax.train._loop import default_run_dir

    return default_run_dir(f"sweep-{safe_label(name)}")


def run_sweep(spec: SweepSpec | str | os.PathLike, *, out_dir: str | None = None, overrides: Sequence[str] = (),
              max_parallel: int | None = None, devices: Sequence[Any] | None = None, plot: bool = True,
              write: bool = True, verbose: bool = True, switch_families: bool = True) -> SweepResult:
    """Train every configuration of ``spec`` (a :class:`SweepSpec` or a sweep YAML path) and report.

    ``max_parallel`` overrides the spec's. ``write=False`` keeps everything in memory (no run dir).
    ``switch_families``: as in :func:`train_many` (``False``: one compiled group per schedule family).

    >>> from lrjax.sweep import run_sweep, sweep_from_dict
    >>> spec = sweep_from_dict({"config": {"train": {"steps": 30}, "model": {"hidden": [32]}},
    ...                         "grid": {"schedule.schedule.peak": [3e-3, 1e-2]}})
    >>> res = run_sweep(spec, write=False, verbose=False)
    >>> res.winner in ("peak=0.003", "peak=0.01")
    True
    """
    t0 = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec, overrides)
    configs = expand(spec)
    mp = max_parallel if max_parallel is not None else spec.max_parallel
    say = print if verbose and jax.process_index() == 0 else (lambda *a, **k: None)
    devs = list(jax.devices() if devices is None else devices)
    say(f"lrjax sweep: {spec.name}: {len(configs)} configurations, {len(devs)} {devs[0].platform} device(s)")

    def on_group(info: dict) -> None:
        say(f"  group {info['group']}: {len(info['members'])} configs in {info['chunks']} chunk(s) of "
            f"{info['chunk_size']} on {info['devices']} device(s), compile {info['compile_s']:.2f} s, "
            f"total {info['time_s']:.2f} s")

    results, groups = train_many([c.config for c in configs], labels=[c.label for c in configs],
                                 max_parallel=mp, devices=devices, on_group=on_group,
                                 switch_families=switch_families)
    rows = table_rows(results, [c.values for c in configs], spec.target, spec.rank_by)
    best = rank(results, spec.rank_by)[0]
    winner = results[best].label
    total = time.perf_counter() - t0
    run_dir = None
    if write and jax.process_index() == 0:
        run_dir = out_dir or _default_dir(spec.name)
        _write(run_dir, spec, configs, results, rows, groups, winner, best, total, plot)
    say("")
    say(to_markdown(rows[: min(len(rows), 20)]))
    v = results[best].final_eval.get(spec.rank_by)
    say(f"winner: {winner}  (final {spec.rank_by} {v:.4f})" if v is not None else f"winner: {winner}")
    if run_dir:
        say(f"run dir: {os.path.abspath(run_dir)}")
    return SweepResult(spec, configs, results, rows, groups, winner, run_dir, round(total, 3))


def _write(run_dir: str, spec: SweepSpec, configs: list[SweepConfig], results: list[ConfigResult],
           rows: list[dict[str, Any]], groups: list[dict[str, Any]], winner: str, best: int, total: float,
           plot: bool) -> None:
    import yaml

    from lrjax.train._config import config_to_dict

    os.makedirs(os.path.join(run_dir, "configs"), exist_ok=True)
    os.makedirs(os.path.join(run_dir, "metrics"), exist_ok=True)
    with open(os.path.join(run_dir, "sweep.yaml"), "w") as fh:
        yaml.safe_dump(spec_to_dict(spec), fh, sort_keys=False)
    for c, r in zip(configs, results):
        name = safe_label(c.label)
        with open(os.path.join(run_dir, "configs", f"{name}.yaml"), "w") as fh:
            yaml.safe_dump(config_to_dict(c.config), fh, sort_keys=False)
        with open(os.path.join(run_dir, "metrics", f"{name}.jsonl"), "w") as fh:
            for rec in r.records:
                fh.write(json.dumps(rec, allow_nan=False) + "\n")
    with open(os.path.join(run_dir, "results.csv"), "w") as fh:
        fh.write(to_csv(rows))
    with open(os.path.join(run_dir, "results.md"), "w") as fh:
        fh.write(f"# {spec.name}\n\nWinner: **{winner}** (by final {spec.rank_by}).\n\n{to_markdown(rows)}")
    fig = None
    if plot:
        fig = plot_sweep(results, os.path.join(run_dir, "sweep.png"), winner=best, title=f"{spec.name} — winner: {winner}")
    summary = {
        "name": spec.name,
        "winner": winner,
        "rank_by": spec.rank_by,
        "winner_final_eval": results[best].final_eval,
        "winner_config": f"configs/{safe_label(winner)}.yaml",
        "configurations": len(configs),
        "groups": [{k: v for k, v in g.items()} for g in groups],
        "compilations": len(groups),
        "time_s": round(total, 3),
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "figure": os.path.basename(fig) if fig else None,
        "table": rows,
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
