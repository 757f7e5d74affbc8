"""``run_sweep``: expand a sweep, train it (:func:`train_many`), write the run directory; resume one.

Run directory::

    run_dir/
      sweep.yaml              the sweep as run (base config merged in)
      configs/<label>.yaml    each configuration's resolved training config: `lrjax train` on it
                              reproduces that configuration alone
      metrics/<label>.jsonl   its curves, in the format of `lrjax train`'s metrics.jsonl
      results.csv, results.md the table, best first (val_* chose, test_* measured)
      sweep.png               rates, train loss, validation loss and metric of every configuration
      summary.json            the winner, strategy, configuration-steps, compilations, groups, lineage, table
      winner_schedule.yaml    population-based training: the winner's effective schedule (an lrjax spec)
      <figures>               a strategy's own (a cooldown study's horizons.png)
      checkpoints/            the stacked states and the progress after each stage (``--resume``)

The directory is locked while a process writes it (:func:`lrjax._rundir.lock_run_dir`); a new sweep
refuses a directory that already holds one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from typing import Any

import jax

import lrjax._yaml as _yaml
from lrjax._rundir import atomic_write_json, atomic_write_text, check_writable, lock_run_dir, safe_name
from lrjax.engine import Checkpointer, ConfigError, DataError, config_to_dict, default_run_dir, read_yaml_mapping
from lrjax.sweep._driver import ConfigResult, train_many
from lrjax.sweep._report import console_table, plot_sweep, rank, table_rows, to_csv, to_markdown
from lrjax.sweep._spec import (
    SweepConfig,
    SweepError,
    SweepSpec,
    expand,
    load_sweep,
    safe_label,
    spec_to_dict,
    sweep_from_dict,
)
from lrjax.sweep.strategies import known_lengths, strategy_of

__all__ = ["SweepResult", "run_sweep", "resumed_spec"]


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
    config_steps: int = 0

    def markdown(self) -> str:
        return to_markdown(self.rows)


def _yaml_dump(data: Any) -> str:
    return _yaml.dump(data)


def _checkpointed(run_dir: str) -> bool:
    """Whether a sweep in ``run_dir`` saved a checkpoint (what ``--resume`` continues from)."""
    d = os.path.join(run_dir, "checkpoints")
    return os.path.isdir(d) and any(not n.startswith(".") for n in os.listdir(d))


def _checkpoint_points(configs: list[SweepConfig]) -> int | None:
    """The snapshot cadence in updates: the smallest ``train.checkpoint_every`` (durations counted where they
    are known before the data loads)."""
    every = set()
    for c in configs:
        v = (known_lengths(c.config) or c.config).train.checkpoint_every
        if not isinstance(v, str):
            every.add(int(v))
    return min(every) if every else None


def run_sweep(spec: SweepSpec | str | os.PathLike | None = None, *, out_dir: str | None = None,
              overrides: Sequence[str] = (), max_parallel: int | None = None, devices: Sequence[Any] | None = None,
              plot: bool = True, write: bool = True, verbose: bool = True, switch_families: bool = True,
              model: Any = None, loss: Any = None, data: Any = None, resume: str | None = None) -> SweepResult:
    """Train every configuration of ``spec`` (a :class:`SweepSpec` or a sweep YAML path) and report.

    ``max_parallel`` overrides the spec's. ``write=False`` keeps everything in memory (no run dir, no
    checkpoints). ``model``, ``loss``, ``data``: your own factory, loss and data for every configuration.
    ``resume``: a run directory of an interrupted sweep to finish (its saved sweep is used; the result is
    the one an uninterrupted sweep gives).

    >>> from lrjax.sweep import run_sweep, sweep_from_dict
    >>> spec = sweep_from_dict({"config": {"train": {"steps": 30}, "model": {"hidden": [32]}},
    ...                         "grid": {"schedule.schedule.peak": [3e-3, 1e-2]}})
    >>> res = run_sweep(spec, write=False, verbose=False)
    >>> res.winner in ("peak=0.003", "peak=0.01")
    True
    """
    t0 = time.perf_counter()
    if resume is not None:
        spec = resumed_spec(resume)
        out_dir, write = resume, True
    elif not isinstance(spec, SweepSpec):
        if spec is None:
            raise SweepError("run_sweep: give a sweep (a SweepSpec or a YAML path) or resume=<run dir>")
        spec = load_sweep(spec, overrides)
    configs = expand(spec)
    strategy = strategy_of(spec, configs)
    mp = max_parallel if max_parallel is not None else spec.max_parallel
    primary = jax.process_index() == 0
    say = print if verbose and primary else (lambda *a, **k: None)
    devs = list(jax.devices() if devices is None else devices)
    run_dir = None
    if write:
        run_dir = out_dir or default_run_dir(f"sweep-{safe_name(spec.name, fallback='sweep', what='sweep name')}")
        created = resume is None and not os.path.exists(run_dir)
        check_writable(run_dir, create=True, what="lrjax sweep")
        if resume is None and os.path.exists(os.path.join(run_dir, "sweep.yaml")):
            raise FileExistsError(f"{run_dir} already holds a sweep; use --resume {run_dir} or another --out")
    say(f"lrjax sweep: {spec.name}: {len(configs)} configurations, strategy {strategy.name}, "
        f"{len(devs)} {devs[0].platform} device(s)")

    def on_group(info: dict) -> None:
        say(f"  group {info['group']}: {len(info['members'])} configs in {info['chunks']} chunk(s) of "
            f"{info['chunk_size']} on {info['devices']} device(s), compile {info['compile_s']:.2f} s, "
            f"total {info['time_s']:.2f} s")

    kw = dict(labels=[c.label for c in configs], strategy=strategy, model=model, loss=loss, data=data,
              max_parallel=mp, devices=devices, on_group=on_group, switch_families=switch_families)
    if run_dir is None:
        results, groups = train_many([c.config for c in configs], **kw)
    else:
        try:
            with lock_run_dir(run_dir, "lrjax sweep") if primary else contextlib.nullcontext():
                results, groups = _train_checkpointed(run_dir, spec, configs, kw, resume is not None, say)
        except (ConfigError, DataError, SweepError, TypeError, ValueError):
            # refused input (data that does not load, a config the data contradicts) before the first checkpoint:
            # the run directory this call made holds nothing worth keeping
            if created and primary and not _checkpointed(run_dir):
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
    rank_by = spec.rank_by or results[0].metric
    # a strategy may train several members of one configuration (a trunk and its cooldowns): each row shows
    # the swept values of the configuration it comes from
    values = [configs[r.origin].values if 0 <= r.origin < len(configs) else {} for r in results]
    rows = strategy.table(table_rows(results, values, spec.target, rank_by), results)
    best = rank(results, rank_by)[0]
    winner = results[best].label
    total = time.perf_counter() - t0
    config_steps = sum(r.steps_trained + r.scratch_steps for r in results)
    if run_dir is not None and primary:
        _write(run_dir, spec, strategy, configs, results, rows, groups, winner, best, total, plot, rank_by,
               config_steps)
    if verbose and primary:
        say("")
        say(console_table(results, rows, rank_by, num_selection=results[0].selection_size,
                          explore=strategy.reported_keys()))
    top = next((r for r in rows if r.get("label") == winner), rows[0] if rows else {})
    key = next((k for k in (f"val_{rank_by}", f"test_{rank_by}") if k in top), None)
    v = top.get(key) if key else None
    say(f"winner: {winner}  ({key} {v:.4f})" if v is not None else f"winner: {winner}")
    if run_dir:
        say(f"run dir: {os.path.abspath(run_dir)} (full table: results.md, results.csv)")
    return SweepResult(spec, configs, results, rows, groups, winner, run_dir, round(total, 3), config_steps)


# What run_sweep writes to sweep.yaml (spec_to_dict and the root): a resume reads nothing else.
_SAVED_KEYS = ("name", "config", "configs", "grid", "target", "rank_by", "max_parallel", "strategy", "root")


def resumed_spec(run_dir: str) -> SweepSpec:
    """The sweep saved in ``run_dir/sweep.yaml``; a :class:`SweepError` naming the file when it is missing
    keys that :func:`run_sweep` writes (empty, truncated, or not written by it) or does not validate."""
    path = os.path.join(run_dir, "sweep.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a sweep run directory (no sweep.yaml); expected the --out of an "
                                "earlier `lrjax sweep`")

    data = read_yaml_mapping(path, "sweep", "runs/<sweep>/sweep.yaml", SweepError)
    missing = [k for k in ("name", "config") if k not in data]
    if missing or not isinstance(data.get("config"), dict):
        what = "is empty" if not data else f"lacks {', '.join(missing)}" if missing else "has no config mapping"
        raise SweepError(f"{path} {what}: not the sweep that `lrjax sweep` saved (it writes "
                         f"{', '.join(_SAVED_KEYS)}); cannot resume from it")
    root = data.pop("root", None)
    if root is not None and not isinstance(root, str):
        raise SweepError(f"{path}: root must be the sweep file's folder (a string), got root={root!r}")
    try:
        return sweep_from_dict(data, root=root)
    except SweepError as e:
        raise SweepError(f"{path}: {e}") from None


def _train_checkpointed(run_dir: str, spec: SweepSpec, configs: list[SweepConfig], kw: dict, resuming: bool,
                        say: Any = print):
    """:func:`train_many` with a checkpoint after every stage; when resuming, from the newest readable one
    (an unreadable newest checkpoint, its metadata or its arrays, falls back to the one before with a
    :class:`~lrjax.engine._checkpoint.CheckpointFallbackWarning`; ``say`` names the step resumed from)."""
    os.makedirs(run_dir, exist_ok=True)
    if not resuming and jax.process_index() == 0:
        atomic_write_text(os.path.join(run_dir, "sweep.yaml"), _yaml_dump({**spec_to_dict(spec), "root": spec.root}))
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=2)
    try:
        restore = None

        def on_stage(step: int, snap: dict) -> None:
            ckpt.save(step, snap["tree"], snap["host"])

        if resuming and ckpt.latest_step() is not None:
            def restore(template):
                tree, meta = ckpt.restore(template=template)
                say(f"lrjax sweep: resuming from the checkpoint at update {ckpt.restored_step}")
                return {"host": meta, "tree": tree}
        results, groups = train_many([c.config for c in configs], on_stage=on_stage, restore=restore,
                                     checkpoint_every=_checkpoint_points(configs), **kw)
    finally:
        ckpt.close()
    return results, groups


def _write(run_dir: str, spec: SweepSpec, strategy: Any, configs: list[SweepConfig], results: list[ConfigResult],
           rows: list[dict[str, Any]], groups: list[dict[str, Any]], winner: str, best: int, total: float,
           plot: bool, rank_by: str, config_steps: int) -> None:
    os.makedirs(os.path.join(run_dir, "configs"), exist_ok=True)
    os.makedirs(os.path.join(run_dir, "metrics"), exist_ok=True)
    for r in results:
        name = safe_label(r.label)
        atomic_write_text(os.path.join(run_dir, "configs", f"{name}.yaml"), _yaml_dump(config_to_dict(r.config)))
        atomic_write_text(os.path.join(run_dir, "metrics", f"{name}.jsonl"),
                          "".join(json.dumps(rec, allow_nan=False) + "\n" for rec in r.records))
    atomic_write_text(os.path.join(run_dir, "results.csv"), to_csv(rows))
    split = "validation" if any(k.startswith("val_") for k in (rows[0] if rows else {})) else "test (no validation split)"
    atomic_write_text(os.path.join(run_dir, "results.md"),
                      f"# {spec.name}\n\nWinner: **{winner}** (by final {split} {rank_by}; strategy "
                      f"{strategy.name}).\n\n{to_markdown(rows)}")
    fig = None
    if plot:
        try:
            fig = plot_sweep(results, os.path.join(run_dir, "sweep.png"), winner=best,
                             title=f"{spec.name} — winner: {winner}")
        except Exception as e:  # noqa: BLE001 - the results are written; a figure is not worth failing for

            warnings.warn(f"lrjax sweep: could not draw sweep.png: {type(e).__name__}: {e}", RuntimeWarning,
                          stacklevel=2)
    figures = strategy.figures(results, run_dir, spec.name) if plot else []
    winner_schedule = None
    if results[best].schedule_spec is not None:
        winner_schedule = "winner_schedule.yaml"
        atomic_write_text(os.path.join(run_dir, winner_schedule), _yaml_dump(results[best].schedule_spec))
    summary = {
        "name": spec.name,
        "winner": winner,
        "rank_by": rank_by,
        "strategy": strategy.to_dict(),
        "winner_final_eval": results[best].final_eval,
        "winner_config": f"configs/{safe_label(winner)}.yaml",
        "winner_schedule": winner_schedule,
        "configurations": len(configs),
        "runs": len(results),
        "config_steps": config_steps,
        "groups": [dict(g) for g in groups],
        "compilations": sum(len(g.get("sizes") or [1]) for g in groups),
        "time_s": round(total, 3),
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "figure": os.path.basename(fig) if fig else None,
        **({"figures": figures} if figures else {}),
        "lineage": [e for r in results for e in r.lineage],
        **strategy.summary(results),
        "table": rows,
    }
    atomic_write_json(os.path.join(run_dir, "summary.json"), summary)
