"""Sweep recipes: a base training config, a list of configurations and/or a grid, expanded to configs.

A sweep file is YAML::

    name: warmup-cosine-grid
    base: ../warmup_cosine.yaml          # a training config (path relative to this file); optional
    config: {train: {steps: 300}}        # overrides of the base, nested like a training config
    configs:                             # an explicit list (each one a label and its overrides)
      - {label: constant, schedule: {name: constant, value: 3.0e-3}}
      - {label: cosine, schedule: {name: cosine_decay, peak: 3.0e-3, decay_steps: 100%}}
    grid:                                # dotted key -> values; the cartesian product, times the list
      optimizer.args.weight_decay: [0.0, 1.0e-4]
      train.seed: [0, 1]
    target: {metric: accuracy, value: 0.95}   # "steps to target" column (on the validation split)
    rank_by: accuracy                    # the final validation metric that names the winner (or loss)
    max_parallel: 16                     # configurations trained at once (chunks beyond that)
    strategy: {name: halving, rungs: [100, 300], keep: 0.25}   # or grid (default), or pbt

Configuration ``i`` of the list, crossed with grid point ``j``, is: the base, then ``config``, then the
list entry, then the grid values. Overrides merge into nested sections, except ``schedule``,
``plateau`` and ``optimizer.args``, which an override replaces as a whole (a new family must not
inherit the old family's keys). Keys may also be dotted (``schedule.peak: 1.0e-3``).

>>> from lrjax.sweep import expand, sweep_from_dict
>>> spec = sweep_from_dict({"grid": {"schedule.schedule.peak": [1e-3, 3e-3], "train.seed": [0, 1]},
...                         "config": {"train": {"steps": 20}}})
>>> [c.label for c in expand(spec)]
['peak=0.001 seed=0', 'peak=0.001 seed=1', 'peak=0.003 seed=0', 'peak=0.003 seed=1']
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from collections.abc import Mapping
from typing import Any

from lrjax._checks import closest, integer, number
from lrjax._rundir import safe_name
from lrjax.engine import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    parse_override,
    read_yaml_mapping,
    with_validation,
)
from lrjax.sweep._errors import SweepError
from lrjax.sweep.strategies import registry

__all__ = ["SweepError", "SweepSpec", "SweepConfig", "Target", "load_sweep", "sweep_from_dict", "expand"]


_REPLACE = {("schedule",), ("plateau",), ("optimizer", "args")}
# Metrics a sweep ranks on and targets, measured on the validation split (the test set without one).
# ``eval_accuracy``/``eval_loss`` are the names of earlier versions.
_METRICS = {"accuracy": "max", "loss": "min", "r2": "max"}
_ALIASES = {"eval_accuracy": "accuracy", "eval_loss": "loss", "val_accuracy": "accuracy", "val_loss": "loss",
            "val_r2": "r2"}
_TOP_KEYS = ("name", "base", "config", "configs", "grid", "target", "rank_by", "max_parallel", "strategy")


def _metric(value: Any, where: str) -> str:
    m = _ALIASES.get(value, value)
    if m not in _METRICS:
        raise SweepError(f"{where} must be one of {', '.join(_METRICS)}, got {where}={value!r}"
                         f"{closest(str(value), _METRICS)}")
    return m


@dataclasses.dataclass(frozen=True)
class Target:
    """``steps to target``: the first evaluated update where ``metric`` (on the validation split, the test
    set without one) reaches ``value`` (``>=`` for accuracy and R², ``<=`` for a loss)."""

    metric: str = "accuracy"
    value: float = 0.95

    @property
    def mode(self) -> str:
        return _METRICS[self.metric]


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file (see the module docs). ``base`` is the merged training-config dict."""

    name: str = "sweep"
    base: dict[str, Any] = dataclasses.field(default_factory=dict)
    configs: tuple[dict[str, Any], ...] = ()
    grid: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    target: Target = dataclasses.field(default_factory=Target)
    rank_by: str = ""      # accuracy, loss or r2 (default: accuracy for classification, else loss)
    max_parallel: int | None = None
    strategy: Any = None   # the raw ``strategy`` mapping; validated by :func:`strategy_of` against the configs
    root: str | None = None  # the sweep file's folder (model and loss modules are looked up there first)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """One configuration of a sweep: its label, the swept values and the validated training config."""

    label: str
    values: dict[str, Any]
    config: Config


# ----------------------------------------------------------------------------- merging

def _set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise SweepError(f"{where}: a dotted key like 'schedule.peak' was expected, got {key!r}")
    node = data
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        elif not isinstance(nxt, dict):
            raise SweepError(f"{where}: {'.'.join(parts[:i + 1])} is {nxt!r}, not a mapping, so {key!r} cannot be set")
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def merge(base: dict[str, Any], over: Mapping[str, Any], where: str, _path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``base`` with ``over`` applied: nested dicts merge, ``schedule``/``plateau``/``optimizer.args``
    are replaced whole, dotted keys set one value."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        k = str(k)
        if "." in k:
            _set_dotted(out, k, v, where)  # relative to this level
            continue
        path = _path + (k,)
        if isinstance(v, Mapping) and isinstance(out.get(k), dict) and path not in _REPLACE:
            out[k] = merge(out[k], v, where, path)
        else:
            out[k] = copy.deepcopy(dict(v) if isinstance(v, Mapping) else v)
    return out


# ----------------------------------------------------------------------------- parsing

def _read_yaml(path: str) -> dict[str, Any]:
    return read_yaml_mapping(path, "sweep", "configs/sweeps/schedules.yaml", SweepError)


def sweep_from_dict(data: Mapping[str, Any], *, root: str | None = None) -> SweepSpec:
    """Validate a sweep dict (keys: name, base, config, configs, grid, target, rank_by, max_parallel).

    ``root``: the directory a relative ``base`` path is read from (the sweep file's own directory).
    """
    if not isinstance(data, Mapping):
        raise SweepError(f"a sweep must be a mapping, got {type(data).__name__}: {data!r}")
    for k in data:
        if k not in _TOP_KEYS:
            raise SweepError(f"unknown sweep key {k!r}{closest(str(k), _TOP_KEYS)}; valid keys: {', '.join(_TOP_KEYS)}")
    name = data.get("name", "sweep")
    if not isinstance(name, str) or not name:
        raise SweepError(f"name must be a non-empty string, got name={name!r}")
    base: dict[str, Any] = {}
    if data.get("base") is not None:
        b = data["base"]
        if isinstance(b, str):
            path = b if os.path.isabs(b) or root is None else os.path.join(root, b)
            base = _read_yaml(path)
        elif isinstance(b, Mapping):
            base = copy.deepcopy(dict(b))
        else:
            raise SweepError(f"base must be a path to a training config or a mapping, got base={b!r}")
    cfg = data.get("config") or {}
    if not isinstance(cfg, Mapping):
        raise SweepError(f"config must be a mapping of training-config overrides, got config={cfg!r}")
    # every default filled in first, so a dotted key (schedule.schedule.peak) edits the default schedule
    base = merge(merge(config_to_dict(Config()), base, "base"), cfg, "config")

    entries = data.get("configs") or []
    if not isinstance(entries, list):
        raise SweepError(f"configs must be a list of mappings (label + overrides), got configs={entries!r}")
    out_entries = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise SweepError(f"configs[{i}] must be a mapping (label + overrides), got {e!r}")
        lab = e.get("label", f"config{i}")
        if not isinstance(lab, str) or not lab:
            raise SweepError(f"configs[{i}].label must be a non-empty string, got label={lab!r}")
        out_entries.append(dict(e, label=lab))
    labels = [e["label"] for e in out_entries]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise SweepError(f"configs: labels must be unique, got {', '.join(map(repr, dup))} more than once")

    grid_in = data.get("grid") or {}
    if not isinstance(grid_in, Mapping):
        raise SweepError(f"grid must map dotted keys to lists of values, got grid={grid_in!r}")
    grid: dict[str, tuple[Any, ...]] = {}
    for k, v in grid_in.items():
        if not isinstance(v, list) or not v:
            raise SweepError(f"grid.{k} must be a non-empty list of values, got grid.{k}={v!r}")
        grid[str(k)] = tuple(v)

    tgt = data.get("target") or {}
    if not isinstance(tgt, Mapping) or set(tgt) - {"metric", "value"}:
        raise SweepError(f"target must be a mapping with 'metric' and 'value', got target={tgt!r}")
    metric = _metric(tgt.get("metric", "accuracy"), "target.metric")
    value = tgt.get("value", {"accuracy": 0.95, "loss": 0.1, "r2": 0.9}[metric])
    value = number("", "target.value", value, error=SweepError)
    rank_by = data.get("rank_by")
    if rank_by is not None:
        rank_by = _metric(rank_by, "rank_by")
    mp = data.get("max_parallel")
    if mp is not None:
        mp = integer("", "max_parallel", mp, lo=1, error=SweepError)  # or null: the engine's layout
    strategy = data.get("strategy")
    if strategy is not None and not isinstance(strategy, (Mapping, str)):
        raise SweepError(f"strategy must be a mapping with a name ({', '.join(registry())}), got strategy={strategy!r}")
    return SweepSpec(name=name, base=base, configs=tuple(out_entries), grid=grid,
                     target=Target(metric, float(value)), rank_by=rank_by or "", max_parallel=mp,
                     strategy=copy.deepcopy(strategy), root=root)


def load_sweep(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read a sweep YAML; ``overrides`` (``key=value``, value parsed as YAML) apply to the sweep file itself,
    e.g. ``config.train.steps=100``, ``max_parallel=4`` or ``grid.train.seed=[0,1,2]`` (a grid key is the
    whole dotted config path after ``grid.``; it replaces or adds that axis)."""
    p = os.fspath(path)
    data = _read_yaml(p)
    grid_items = [o for o in overrides if o.split("=", 1)[0].strip().startswith("grid.")]
    try:
        rest = [o for o in overrides if o not in grid_items]
        if rest:
            data = apply_overrides(data, rest)
        axes = dict(parse_override(o) for o in grid_items)
    except ConfigError as e:
        raise SweepError(str(e)) from None
    if axes:
        grid = data.get("grid")
        data = {**data, "grid": {**(grid if isinstance(grid, Mapping) else {}),
                                 **{k[len("grid."):]: v for k, v in axes.items()}}}
    return sweep_from_dict(data, root=os.path.dirname(os.path.abspath(p)))


# ----------------------------------------------------------------------------- expansion

def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, Mapping):
        return str(v.get("name", "spec"))
    return str(v)


def _grid_names(keys: list[str]) -> dict[str, str]:
    """Shortest unique suffix of each dotted key (``schedule.schedule.peak`` -> ``peak``)."""
    names = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if sum(1 for o in keys if o == cand or o.endswith("." + cand)) == 1:
                names[k] = cand
                break
        else:  # pragma: no cover - duplicate keys cannot exist in a mapping
            names[k] = k
    return names


def safe_label(label: str) -> str:
    """A label as a file name (``configs/<label>.yaml``, ``metrics/<label>.jsonl``) and as its configuration's
    run name: :func:`lrjax._rundir.safe_name`, silently (labels hold spaces by design).

    >>> safe_label("peak=0.001 seed=0"), safe_label("../x")
    ('peak=0.001_seed=0', 'x')
    """
    return safe_name(label, fallback="config", what=None)


def expand(spec: SweepSpec) -> list[SweepConfig]:
    """Every configuration of the sweep (list x grid), validated; errors name the configuration.

    A sweep chooses, so each configuration's ``data.validation_fraction`` resolves to 0.1 when unset
    (:func:`lrjax.engine.with_validation`); an explicit 0 warns that the test set selects.
    """
    entries = list(spec.configs) or [{"label": ""}]
    keys = list(spec.grid)
    names = _grid_names(keys)
    points = list(itertools.product(*(spec.grid[k] for k in keys))) if keys else [()]
    out: list[SweepConfig] = []
    for e in entries:
        over = {k: v for k, v in e.items() if k != "label"}
        for pt in points:
            data = merge(spec.base, over, f"configs[{e['label']!r}]")
            values: dict[str, Any] = {}
            for k, v in zip(keys, pt):
                _set_dotted(data, k, v, f"grid.{k}")
                values[k] = v
            label = " ".join(x for x in [e["label"]] + [f"{names[k]}={_short(v)}" for k, v in values.items()] if x)
            label = label or "config0"
            data["name"] = safe_label(label)
            try:
                cfg = with_validation(config_from_dict(data, root=spec.root), selects=True)
            except ConfigError as err:
                raise SweepError(f"configuration {label!r}: {err}") from None
            out.append(SweepConfig(label=label, values=values, config=cfg))
    labels = [c.label for c in out]
    if len(set(map(safe_label, labels))) != len(labels):
        raise SweepError("two configurations got the same label; give the configs entries distinct labels")
    return out


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """The sweep as a YAML-safe dict (written to the run directory)."""
    return {"name": spec.name, "config": spec.base, "configs": [dict(e) for e in spec.configs],
            "grid": {k: list(v) for k, v in spec.grid.items()},
            "target": {"metric": spec.target.metric, "value": spec.target.value},
            "rank_by": spec.rank_by or None, "max_parallel": spec.max_parallel, "strategy": spec.strategy}
