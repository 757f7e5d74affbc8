"""The sweep engine: configurations that share a structure train together under ``jax.vmap``.

Each configuration is built with :func:`lrjax.engine.build_experiment`; its
:class:`~lrjax.engine.TrainState` comes from its own ``init_state(seed_key(train.seed))``, exactly as
``lrjax train`` makes it. Configurations whose states have the same tree structure, shapes and dtypes,
and whose configs agree on everything that is not a state leaf (model, data shapes, optimizer name and
static arguments, run length, cadences) form a *group*: their states are stacked along a new leading
axis and the engine's runner (:func:`lrjax.engine.advance`) runs under ``jax.vmap`` over them,

.. math:: s^{(k)}_{t+1} = \\mathrm{train\\_step}(s^{(k)}_t, B^{(k)}_t), \\qquad k = 1..K,

where :math:`B^{(k)}_t` is the batch ``lrjax train`` would give configuration ``k`` at micro-step
:math:`t` (the seeded :class:`~lrjax.engine.BatchIterator` of its ``train.seed``), gathered on the device
(:func:`lrjax.engine.batch_at`; shared when every member has the same seed and data).

One compiled program runs a *segment*: the runner up to the next evaluation or decision point, the
engine's evaluation on the validation split and the test set (vmapped), and, with a plateau, the
validation loss fed to each optimizer; any run length and cadence compile once per group and chunk size.
A group larger than ``max_parallel`` is cut into equal chunks (padded by repeating a member, whose copy
is dropped); on CPU devices, without ``max_parallel``, a chunk holds as many configurations as keep their
states within half the last-level cache. With several devices the configuration axis is sharded over
them (``Mesh(devices, ('config',))``; on a CPU host :func:`use_cpu_cores` makes one device per core); on
several hosts (after ``jax.distributed.initialize()``) the same code runs on the global mesh.

Strategies (:class:`~lrjax.sweep.Strategy`) decide at *stages*: successive halving drops the worst
configurations at each rung — their rows leave the stacked state (a gather of the survivors into
chunks sized for the survivors, whose programs are compiled once per size) — and population-based
training copies the state of a good member into a bad one (an on-device gather of parameters and
optimizer state, schedule included) and multiplies hyperparameter leaves, without recompiling. Every
decision reads the *validation* metric, never the test set.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import math
import os
import re
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax.engine import COLUMNS, Config, Experiment, Source, advance, build_experiment, seed_key
from lrjax.engine._build import load_data, momentum_arg
from lrjax.engine._config import with_validation
from lrjax.engine._data import BatchIterator, Dataset
from lrjax.engine._evaluate import eval_batches
from lrjax.engine._records import COLUMN_INDEX as _COL
from lrjax.engine._records import eval_record, is_better, selection_key, train_record
from lrjax.engine._util import fetch, frozen_heap, put_global, stack_trees
from lrjax.optim import InjectState, observe_metric
from lrjax.schedules import Schedule, Switch, to_spec
from lrjax.sweep._spec import Strategy, SweepError

__all__ = ["ConfigResult", "train_many", "eval_points", "log_points", "use_cpu_cores"]


@dataclasses.dataclass
class ConfigResult:
    """What a sweep learned about one configuration.

    ``records``: rows in the format of ``lrjax train``'s ``metrics.jsonl`` (train windows and evaluations
    with ``val_*`` and ``test_*`` metrics); ``status``: ``completed``, ``pruned`` (successive halving
    stopped it at update ``stopped_at``) or ``nonfinite`` (``nonfinite_step``: the first update with a
    non-finite loss; the records stop before it); ``group``: index of the compiled group it trained in;
    ``time_s``: wall time of the sweep up to its last segment (compilation included, shared);
    ``rates``: the learning rate used by every update it trained; ``state``: the final TrainState when
    asked for. Population-based training adds ``lineage`` (its exploits) and ``schedule_spec`` (the rate
    schedule it effectively followed, an lrjax spec that re-trains it alone).
    """

    label: str
    config: Config
    records: list[dict[str, Any]]
    final_train: dict[str, Any]
    final_eval: dict[str, Any]
    best_eval: dict[str, Any] | None
    status: str
    nonfinite_step: int | None
    group: int
    chunk_size: int
    time_s: float
    rates: np.ndarray
    state: Any = None
    stopped_at: int | None = None
    lineage: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    schedule_spec: dict[str, Any] | None = None
    steps_trained: int = 0


# ----------------------------------------------------------------------------- cadences

def _points(every: int, steps: int) -> list[int]:
    pts = list(range(every, steps + 1, every))
    if not pts or pts[-1] != steps:
        pts.append(steps)
    return pts


def eval_points(cfg: Config) -> list[int]:
    """Updates after which ``lrjax train`` evaluates: multiples of ``eval_every`` and the last one."""
    return _points(cfg.train.eval_every, cfg.train.steps)


def log_points(cfg: Config) -> list[int]:
    """Updates after which ``lrjax train`` logs train metrics."""
    return _points(cfg.train.log_every, cfg.train.steps)


# ----------------------------------------------------------------------------- grouping

def _data_key(cfg: Config) -> tuple:
    d = cfg.data
    seed = cfg.train.seed if d.seed is None else d.seed
    # splits drawn with the seed (digits' test split, the validation split) depend on it; files do not
    seeded = d.source == "digits" or bool(d.validation_fraction)
    return (d.source, seed if seeded else None, d.test_fraction, d.normalize, d.validation_fraction)


def _static_args(cfg: Config) -> str:
    """Optimizer arguments that are not state leaves (ints, bools, strings): they change the program."""
    st = {k: v for k, v in cfg.optimizer.args.items()
          if not isinstance(v, (float, dict)) or isinstance(v, bool)}
    return json.dumps(st, sort_keys=True, default=str)


def _state_shapes(exp: Experiment) -> Any:
    return jax.eval_shape(exp.init_state, jax.ShapeDtypeStruct((2,), jnp.uint32))


def _structure(tree: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    try:
        hash(treedef)
        tdef: Any = treedef
    except TypeError:  # pragma: no cover - unhashable aux data somewhere
        tdef = str(treedef)
    return tdef, tuple((x.shape, str(x.dtype)) for x in leaves)


def _config_key(exp: Experiment) -> tuple:
    c = exp.config
    d, o, t = c.data, c.optimizer, c.train
    return (
        d.source, d.batch_size, d.test_fraction, d.normalize, d.validation_fraction, d.eval_batch_size,
        exp.data.input_shape, exp.data.num_train, int(exp.data.x_test.shape[0]), c.model, c.loss, o.name,
        o.clip_norm, o.accumulation_steps, o.cycle_momentum, o.batch_scaling, _static_args(c), t.steps,
        t.log_every, t.eval_every, t.on_nonfinite, json.dumps(c.plateau, sort_keys=True), id(exp.model),
    )


def group_key(exp: Experiment, shapes: Any = None) -> tuple:
    """Everything that must agree for two experiments to share one compiled vmapped program."""
    return _config_key(exp) + _structure(_state_shapes(exp) if shapes is None else shapes)


def _family_key(exp: Experiment, shapes: Any) -> tuple:
    """:func:`group_key` with the learning-rate schedule (and the momentum that follows it) left out:
    experiments that differ only in their schedule's family or static options."""
    slots = {"learning_rate"}
    if exp.config.optimizer.cycle_momentum:
        slots.add(momentum_arg(exp.config.optimizer.name))

    def blank(node: Any) -> Any:
        if isinstance(node, InjectState):
            return node._replace(hyperparams={k: (None if k in slots else v) for k, v in node.hyperparams.items()})
        return node

    return _config_key(exp) + _structure(jax.tree.map(blank, shapes, is_leaf=lambda x: isinstance(x, InjectState)))


def _switch_families(exps: list[Experiment], build: Callable[[Experiment, Schedule], Experiment]) -> list[tuple]:
    """Group keys after giving experiments that differ only in their schedule family one structure.

    Within such a set, each family (a distinct schedule structure) is a branch of a :class:`lrjax.Switch`;
    every member is rebuilt with ``Switch(branches, index=its family)``, its own schedule in its own
    branch and one member's schedule of each other family in the others (evaluated and discarded). Its
    rates are then its own schedule's, and the set trains in one compiled program.
    """
    shapes = [_state_shapes(e) for e in exps]
    keys = [group_key(e, s) for e, s in zip(exps, shapes)]
    sets: dict[tuple, list[int]] = {}
    for i, (e, s) in enumerate(zip(exps, shapes)):
        sets.setdefault(_family_key(e, s), []).append(i)
    for members in sets.values():
        families: dict[tuple, list[int]] = {}
        for i in members:
            families.setdefault(keys[i], []).append(i)
        if len(families) < 2:
            continue
        templates = tuple(exps[idx[0]].schedule for idx in families.values())
        for j, idx in enumerate(families.values()):
            for i in idx:
                branches = templates[:j] + (exps[i].schedule,) + templates[j + 1:]
                exps[i] = build(exps[i], Switch(branches, index=j))
                keys[i] = group_key(exps[i])
    return keys


# ----------------------------------------------------------------------------- the compiled segment

def _segment_program(exp: Experiment, *, rows: int, data_stacked: bool, index_stacked: bool,
                     splits: tuple[str, ...], mesh: Mesh) -> Callable:
    """``segment(states, source, start, stop, evals, observe) -> (states, table, metrics)``: the runner from
    micro-step ``start`` to ``stop`` for every stacked state, the evaluation of every split, and (with a
    plateau, when ``observe``: ``stop`` is one of ``lrjax train``'s evaluation points, not a checkpoint or a
    strategy's stage alone) the selection split's loss fed to each optimizer — one compiled program."""
    src_axes = Source(arrays=0 if data_stacked else None, index=0 if index_stacked else None, offset=None)
    ev_axis = 0 if data_stacked else None
    plateau = exp.config.plateau is not None
    select = "val" if "val" in splits else "test"

    def segment(states, source, start, stop, evals, observe):
        def one(st, src):
            return advance(exp.train_step, COLUMNS, st, src, start, stop, rows=rows)[:2]

        states, table = jax.vmap(one, in_axes=(0, src_axes))(states, source)
        metrics = {s: jax.vmap(exp.evaluate_arrays, in_axes=(0, ev_axis))(states, evals[s]) for s in splits}
        if plateau:
            fed = lambda st, v: st._replace(opt_state=observe_metric(st.opt_state, v))  # noqa: E731
            states = jax.lax.cond(observe, lambda s: jax.vmap(fed)(s, metrics[select]["loss"]), lambda s: s, states)
        return states, table, metrics

    stacked = NamedSharding(mesh, P("config"))
    return jax.jit(segment, donate_argnums=0, out_shardings=(stacked, stacked, stacked))


# ----------------------------------------------------------------------------- chunks

def use_cpu_cores(count: int | None = None) -> int:
    """Give JAX's CPU backend one device per core, so that a sweep's configurations train in parallel.

    XLA shows a host CPU as one device, and a sweep's small operations keep it to about one core.
    With one device per core, :func:`train_many` shards the configuration axis over them: each core
    trains its share of the configurations, with no communication between them. The ``lrjax sweep``
    command calls it first.

    It has to run before JAX starts its backends (before the first computation), and it leaves a count
    you chose alone (``JAX_NUM_CPU_DEVICES``/``jax_num_cpu_devices`` or
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N``). Accelerators are not affected.

    Args:
      count: CPU devices to create (default: the cores this process may run on).

    Returns:
      The CPU device count it set, or 0 when it changed nothing (count chosen already, backends
      already started, or a single core).

    >>> import jax, lrjax.sweep                      # doctest: +SKIP
    >>> lrjax.sweep.use_cpu_cores()                   # doctest: +SKIP
    2
    """
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"use_cpu_cores: count must be a positive integer or None, got count={count!r}")
    chosen = getattr(jax.config, "jax_num_cpu_devices", None)  # the option exists from jax 0.4.38 on
    if chosen != -1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return 0
    try:
        n = count or len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        n = count or os.cpu_count() or 1
    if n < 2 and count is None:
        return 0
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backends are up: too late to change the device count
        return 0
    return n


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _chunks(n: int, max_parallel: int | None, ndev: int) -> tuple[int, int, int]:
    """(chunks, chunk size, devices): equal chunks of at most ``max_parallel`` configurations, each a
    multiple of the devices it is sharded over (fewer devices when ``max_parallel`` is below their count)."""
    mp = n if max_parallel is None else max(1, min(max_parallel, n))
    nd = min(ndev, mp)
    if max_parallel is not None:
        mp = mp // nd * nd  # a chunk never exceeds max_parallel
    size = _ceil_div(_ceil_div(n, _ceil_div(n, mp)), nd) * nd  # equal chunks, each a multiple of nd
    return _ceil_div(n, size), size, nd


def _last_level_cache() -> int | None:
    """Bytes of the largest CPU cache of core 0 (Linux sysfs), or None where it cannot be read."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as fh:
                text = fh.read().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def _cache_bound(exp: Experiment, devs: list[Any], n: int) -> int | None:
    """On CPU devices, how many configurations fit one compiled call: as many as keep their train states
    and gradients within half the last-level cache (at least one per device); None elsewhere.

    A CPU runs a chunk's updates out of its caches; past them each update streams the states from
    memory (``benchmarks/RESULTS.md``). Accelerators get the whole group.
    """
    if devs[0].platform != "cpu":
        return None
    cache = _last_level_cache()
    if not cache:
        return None
    shapes = _state_shapes(exp)
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))  # noqa: E731
    per_config = nbytes(shapes) + nbytes(shapes.params)
    bound = max(len(devs), cache // 2 // max(per_config, 1))
    return bound if bound < n else None


# ----------------------------------------------------------------------------- bookkeeping

@dataclasses.dataclass
class _Member:
    """One configuration's progress: its host copies of metric rows and evaluations."""

    index: int
    label: str
    exp: Experiment
    group: int
    rows: list[np.ndarray] = dataclasses.field(default_factory=list)   # micro-step rows, in order
    evals: dict[int, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)  # step -> split -> m
    alive: bool = True
    stopped_at: int | None = None
    chunk_size: int = 0
    time_s: float = 0.0
    lineage: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    schedules: list[tuple[int, Any]] = dataclasses.field(default_factory=list)  # (from step, lr schedule)


@dataclasses.dataclass
class _Chunk:
    """Stacked states of some members of a group on the devices (``ids``: member indices, padded)."""

    ids: list[int]
    states: Any
    pending: list[tuple[int, int, Any, Any]] = dataclasses.field(default_factory=list)  # (lo, hi, table, metrics)


class _Group:
    """Configurations of one structure: their data on the devices, programs per chunk size, chunks."""

    def __init__(self, gi: int, members: list[_Member], devs: list[Any], max_parallel: int | None):
        self.gi, self.members, self.devs = gi, members, devs
        self.lead = members[0].exp
        self.max_parallel = max_parallel if max_parallel is not None else _cache_bound(self.lead, devs, len(members))
        self.data_shared = all(m.exp.data is self.lead.data for m in members)
        self.seeds_shared = len({m.exp.config.train.seed for m in members}) == 1
        self.splits = self.lead.eval_splits
        self.cpu = devs[0].platform == "cpu"
        self.programs: dict[int, Callable] = {}
        self.compiled: set[int] = set()
        self.compile_s = 0.0
        self.chunks: list[_Chunk] = []
        self.sizes: list[int] = []
        self._index: dict[int, np.ndarray] = {}
        self._evals: dict[int, dict[str, dict[str, np.ndarray]]] = {}
        self._shared: Any = None

    @property
    def accum(self) -> int:
        return self.lead.accumulation_steps

    def index_of(self, m: _Member) -> np.ndarray:
        """The member's micro-batch indices for the whole run (``lrjax train``'s batches)."""
        s = m.exp.config.train.seed
        if s not in self._index:
            it = BatchIterator(m.exp.data.num_train, m.exp.config.data.batch_size, s)
            self._index[s] = it.take(m.exp.micro_steps).astype(np.int32)
        return self._index[s]

    def evals_of(self, m: _Member) -> dict[str, dict[str, np.ndarray]]:
        key = id(m.exp.data)
        if key not in self._evals:
            bs = m.exp.config.data.eval_batch_size
            self._evals[key] = {s: eval_batches(*m.exp.data.split(s), bs) for s in self.splits}
        return self._evals[key]

    def mesh(self, size: int) -> Mesh:
        nd = min(len(self.devs), size)
        while size % nd:
            nd -= 1
        return Mesh(np.asarray(self.devs[:nd]), ("config",))

    def program(self, size: int, rows: int) -> Callable:
        if size not in self.programs:
            self.programs[size] = _segment_program(self.lead, rows=rows, data_stacked=not self.data_shared,
                                                   index_stacked=not self.seeds_shared, splits=self.splits,
                                                   mesh=self.mesh(size))
        return self.programs[size]

    def inputs(self, ids: list[int], members: list[_Member]) -> tuple[Source, dict]:
        """The chunk's data source and evaluation batches on its mesh (shared ones put there once)."""
        mesh = self.mesh(len(ids))
        stacked, repl = NamedSharding(mesh, P("config")), NamedSharding(mesh, P())
        ms = [members[i] for i in ids]
        if self.data_shared:
            key = ("shared", mesh.devices.size)
            if self._shared is None or self._shared[0] != key:
                d = self.lead.data
                arrays = put_global({"x": d.x_train, "y": d.y_train}, repl)
                evals = put_global(self.evals_of(ms[0]), repl)
                self._shared = (key, arrays, evals)
            arrays, evals = self._shared[1], self._shared[2]
        else:
            arrays = put_global(stack_trees([{"x": m.exp.data.x_train, "y": m.exp.data.y_train} for m in ms]),
                                stacked)
            evals = put_global(stack_trees([self.evals_of(m) for m in ms]), stacked)
        index = (put_global(self.index_of(ms[0]), repl) if self.seeds_shared
                 else put_global(np.stack([self.index_of(m) for m in ms]), stacked))
        return Source(arrays, index, np.int32(0)), evals

    def place(self, ids: list[int], states: Any) -> Any:
        return put_global(states, NamedSharding(self.mesh(len(ids)), P("config")))

    def rechunk(self, alive: list[int], size: int | None = None) -> list[list[int]]:
        """Alive members in equal chunks of ``size`` (default: :func:`_chunks`' layout; a multiple of the
        devices each), the last padded by repeating its last member."""
        if not alive:
            return []
        if size is None:
            count, size, _ = _chunks(len(alive), self.max_parallel, len(self.devs))
        else:
            count = _ceil_div(len(alive), size)
        out = []
        for c in range(count):
            part = alive[c * size:(c + 1) * size]
            out.append(part + [part[-1]] * (size - len(part)))
        return out


# ----------------------------------------------------------------------------- records

def _records(cfg: Config, rows: np.ndarray, evals: dict[int, dict], accum: int, classification: bool,
             stop: int) -> tuple[list, int | None]:
    """Rows like ``metrics.jsonl`` from per-micro-step rows ``(S, C)`` and evaluations by step, up to
    update ``stop``; the first update with a non-finite loss in ``stop`` mode (the records end before the
    log that holds it, as ``lrjax train`` raises there)."""
    finite = rows[:, _COL["finite"]] > 0.5
    bad = np.flatnonzero(~finite)
    stop_mode = cfg.train.on_nonfinite == "stop"
    bad_update = int(bad[0]) // accum + 1 if (stop_mode and bad.size) else None
    out: list[tuple[int, int, dict]] = []
    prev = 0
    for p in log_points(cfg):
        if p > stop:
            break
        lo, hi = prev * accum, p * accum
        prev = p
        if bad_update is not None and hi > (bad_update - 1) * accum:
            break
        skipped = int((~finite[:hi]).sum()) if cfg.train.on_nonfinite == "skip" else None
        out.append((p, 0, train_record(p, rows[lo:hi], skipped, classification)))
    for p in eval_points(cfg):
        if p > stop or (bad_update is not None and p >= bad_update):
            break
        if p in evals:
            out.append((p, 1, eval_record(p, evals[p])))
    out.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in out], bad_update


def _summarise(records: list[dict], key: str, higher: bool) -> tuple[dict, dict, dict | None]:
    train = [r for r in records if "train_loss" in r]
    evals = [r for r in records if "train_loss" not in r]
    best = None
    for r in evals:
        if is_better(r.get(key), (best or {}).get(key), higher):
            best = r
    return (train[-1] if train else {}), (evals[-1] if evals else {}), best


# ----------------------------------------------------------------------------- strategies

_PATH_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _leaf_pattern(key: str) -> re.Pattern:
    """The key-path regex of the optimizer-state leaf a config key names (through Switch branches)."""
    parts = key.split(".")
    if parts[0] == "schedule":
        hp, rest = "learning_rate", parts[1:]
    else:  # optimizer.args.<name>[...]
        hp, rest = parts[2], parts[3:]
    if not all(_PATH_PART.match(p) for p in [hp, *rest]):
        raise SweepError(f"strategy.explore.{key}: not a dotted key of names")
    tail = "".join(rf"\.{re.escape(p)}" for p in rest)
    return re.compile(rf"\.hyperparams\['{re.escape(hp)}'\](?:\.branches\[\d+\])?{tail}$")


def _explore_leaves(opt_state: Any, key: str) -> list[str]:
    """Key paths (``jax.tree_util.keystr``) of the numeric leaves ``key`` names in an optimizer state."""
    pat = _leaf_pattern(key)
    found = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        ks = jax.tree_util.keystr(path)
        if pat.search(ks) and np.issubdtype(np.dtype(leaf.dtype), np.floating):
            found.append(ks)
    return found


def _check_explore(strategy: Strategy, exp: Experiment) -> None:
    """Every explore key names a numeric leaf of the state, or a SweepError says what the state holds."""
    shapes = _state_shapes(exp)
    for key, _ in strategy.explore:
        if key == "optimizer.args.b1" and exp.config.optimizer.name.startswith("schedule_free"):
            raise SweepError(f"strategy.explore.{key}: a schedule-free optimizer keeps b1 constant (it recovers "
                             "its evaluation point with it); explore the rate or the weight decay instead")
        if not _explore_leaves(shapes.opt_state, key):
            hp = [k for k in (jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(
                shapes.opt_state)[0]) if ".hyperparams[" in k]
            names = sorted({re.sub(r"^.*\.hyperparams\['([^']+)'\](?:\.branches\[\d+\])?", r"\1", k) for k in hp})
            raise SweepError(
                f"strategy.explore.{key}: not a numeric leaf of the train state; the optimizer state holds "
                f"{', '.join(names[:12]) or 'no hyperparameters'} (as schedule.<field...> for learning_rate and "
                "optimizer.args.<name> for the others)")


def _rank_alive(members: list[_Member], ids: list[int], step: int, key: str, higher: bool) -> list[int]:
    """``ids`` best first by the selection metric at ``step`` (missing or non-finite last)."""
    def score(i: int) -> tuple:
        rec = eval_record(step, members[i].evals.get(step, {}))
        v = rec.get(key)
        return (v is None, -v if (v is not None and higher) else (v if v is not None else 0.0), i)

    return sorted(ids, key=score)


@jax.jit
def _take_rows(chunk_states: list[Any], idx: jax.Array) -> Any:
    return jax.tree.map(lambda *xs: jnp.take(jnp.concatenate(xs), idx, axis=0), *chunk_states)


def _gather(chunk_states: list[Any], pick: list[tuple[int, int]], cpu: bool) -> Any:
    """Stacked states whose row ``r`` is row ``pick[r][1]`` of chunk ``pick[r][0]``: on CPU devices a copy
    through host memory (no program to compile), elsewhere one compiled gather on the devices."""
    sizes = [jax.tree.leaves(s)[0].shape[0] for s in chunk_states]
    offsets = np.cumsum([0] + sizes[:-1])
    idx = np.asarray([offsets[c] + r for c, r in pick], np.int32)
    if cpu:
        host = fetch(chunk_states)
        return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs])[idx], *host)
    return _take_rows(chunk_states, idx)


@functools.partial(jax.jit, static_argnames=("keys",))
def _exploit_program(states: Any, idx: jax.Array, factors: tuple, keys: tuple[str, ...]) -> Any:
    take = lambda tree: jax.tree.map(lambda a: jnp.take(a, idx, axis=0), tree)  # noqa: E731
    params, opt_state, extra, average = take((states.params, states.opt_state, states.extra, states.average))
    for key, f in zip(keys, factors):
        pat = _leaf_pattern(key)

        def scale(path, leaf, pat=pat, f=f):
            if pat.search(jax.tree_util.keystr(path)) and jnp.issubdtype(leaf.dtype, jnp.floating):
                return leaf * f.reshape((-1,) + (1,) * (leaf.ndim - 1)).astype(leaf.dtype)
            return leaf

        opt_state = jax.tree_util.tree_map_with_path(scale, opt_state)
    return states._replace(params=params, opt_state=opt_state, extra=extra, average=average)


def _exploit(states: Any, src: np.ndarray, factors: dict[str, np.ndarray]) -> Any:
    """PBT on a stacked state: row ``r`` takes parameters, optimizer state, model state and averaged weights
    of row ``src[r]`` (an exact copy; its own PRNG key stays), then the leaves named in ``factors`` are
    multiplied row by row. One compiled program per population (the same shapes at every exploit)."""
    keys = tuple(factors)
    return _exploit_program(states, np.asarray(src, np.int32),
                            tuple(np.asarray(factors[k], np.float32) for k in keys), keys=keys)


def _lr_schedule(opt_state: Any) -> Any:
    """The learning-rate schedule held in an (unstacked) optimizer state."""
    found = []

    def visit(node: Any) -> Any:
        if isinstance(node, InjectState):
            found.append(node.hyperparams.get("learning_rate"))
        return node

    jax.tree.map(visit, opt_state, is_leaf=lambda x: isinstance(x, InjectState))
    return found[0] if found else None


def _effective_spec(pieces: list[tuple[int, Any]]) -> dict[str, Any] | None:
    """An lrjax spec of the rate a PBT member followed: schedule ``i`` from update ``t_i`` on, read at the
    global update count (``Sequence`` of ``Shift(s_i, t_i)``)."""
    specs = []
    for t, sched in pieces:
        if not isinstance(sched, Schedule):
            return None
        if isinstance(sched, Switch):
            sched = sched.branches[int(np.asarray(sched.index))]
        spec = to_spec(sched)
        specs.append(spec if t == 0 else {"name": "shift", "schedule": spec, "shift": t})
    if len(specs) == 1:
        return specs[0]
    return {"name": "sequence", "schedules": specs, "boundaries": [t for t, _ in pieces[1:]]}


def _host_row(tree: Any, r: int) -> Any:
    return jax.tree.map(lambda a: np.asarray(a)[r], tree)


# ----------------------------------------------------------------------------- the driver

def train_many(configs: Sequence[Config], *, labels: Sequence[str] | None = None, strategy: Strategy | None = None,
               model: Any = None, loss: Any = None, data: Any = None, max_parallel: int | None = None,
               devices: Sequence[Any] | None = None, keep_states: bool = False,
               on_group: Callable[[dict], None] | None = None, on_stage: Callable[[int, Any], None] | None = None,
               checkpoint_every: int | None = None, switch_families: bool = True,
               restore: Any = None) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
    """Train every config; same-structure configs together under ``jax.vmap`` in one compiled program.

    Args:
      configs: validated training configs (e.g. from :func:`lrjax.sweep.expand`).
      labels: a name per config (default ``config<i>``).
      strategy: how to spend the budget (:class:`~lrjax.sweep.Strategy`: grid, halving, pbt).
      model, loss, data: your own model factory, loss and data for every config, as for
        :func:`lrjax.train.train` (``data``: a Dataset or a mapping of arrays).
      max_parallel: at most this many configurations per compiled call (equal chunks). ``None``: a
        whole group at once on accelerators; on CPU devices as many as keep their train states and
        gradients within half the last-level cache (at least one per device).
      devices: devices to shard the configuration axis over (default: every device, all hosts).
      keep_states: return each configuration's final :class:`TrainState` (host numpy) in ``.state``.
      on_group: called with each group's info after it finishes (progress reporting).
      on_stage: called as ``on_stage(step, snapshot)`` after each stage (a strategy's decision point, or a
        multiple of ``checkpoint_every``); the snapshot — ``{"tree": stacked states and rows, "host":
        progress}`` — is what :func:`lrjax.sweep.run_sweep` checkpoints.
      checkpoint_every: also end a stage (and call ``on_stage``) every this many updates.
      switch_families: configs that differ only in their schedule's family (or its static options)
        train as one group, each schedule a branch of a :class:`lrjax.Switch` (its rates unchanged).
      restore: continue from a snapshot (``lrjax sweep --resume``): the snapshot, or a function
        ``restore(template) -> snapshot`` where ``template(host)`` gives the abstract tree to restore onto.

    Returns:
      ``(results, groups)``: one :class:`ConfigResult` per config, in input order, and per group a dict
      with ``members``, ``chunks``, ``chunk_size``, ``devices``, ``compile_s``, ``run_s``, ``time_s``,
      ``data_shared``, ``batches_shared``, ``sizes`` (chunk sizes compiled).

    >>> from lrjax.engine import load_config
    >>> cfgs = [load_config(None, [f"schedule.schedule.peak={p}", "train.steps=20", "model.hidden=[16]"])
    ...         for p in (1e-3, 3e-3)]
    >>> results, groups = train_many(cfgs)
    >>> len(groups), [float(r.rates[0]) for r in results]   # one compiled group; warmup starts at 0
    (1, [0.0, 0.0])
    >>> cfgs.append(load_config(None, ["schedule={name: constant, value: 0.01}", "train.steps=20",
    ...                                "model.hidden=[16]"]))
    >>> results, groups = train_many(cfgs)                  # two families, still one program
    >>> len(groups), float(results[2].rates[0])
    (1, 0.009999999776482582)
    """
    if labels is None:
        labels = [f"config{i}" for i in range(len(configs))]
    if len(labels) != len(configs):
        raise ValueError(f"train_many: got {len(labels)} labels for {len(configs)} configs")
    if max_parallel is not None and (isinstance(max_parallel, bool) or int(max_parallel) < 1):
        raise ValueError(f"train_many: max_parallel must be a positive integer or None, got {max_parallel!r}")
    if not configs:
        return [], []
    with frozen_heap():
        return _Sweep(list(configs), list(labels), strategy or Strategy(), model, loss, data, max_parallel,
                      devices, keep_states, on_group, on_stage, checkpoint_every, switch_families).run(restore)


class _Sweep:
    """One call of :func:`train_many`: build, group, run the stages, collect the results."""

    def __init__(self, configs, labels, strategy, model, loss, data, max_parallel, devices, keep_states, on_group,
                 on_stage, checkpoint_every, switch_families):
        self.strategy, self.keep_states, self.on_group, self.on_stage = strategy, keep_states, on_group, on_stage
        self.checkpoint_every = checkpoint_every
        self.t0 = time.perf_counter()
        self.devs = list(jax.devices() if devices is None else devices)
        one = self.devs[:1]
        datasets: dict[tuple, Dataset] = {}
        exps: list[Experiment] = []
        configs = [with_validation(c, selects=strategy.name != "grid") for c in configs]  # a strategy chooses
        for cfg in configs:
            key = _data_key(cfg)
            if key not in datasets:
                datasets[key] = load_data(cfg, data)
            exps.append(build_experiment(cfg, model=model, loss=loss, data=datasets[key], devices=one))

        def rebuild(e: Experiment, schedule: Schedule) -> Experiment:
            return build_experiment(e.config, model=model, loss=loss, data=e.data, devices=one, schedule=schedule)

        keys = _switch_families(exps, rebuild) if switch_families else [group_key(e) for e in exps]
        by_key: dict[tuple, list[int]] = {}
        for i, k in enumerate(keys):
            by_key.setdefault(k, []).append(i)
        self.members = [_Member(i, labels[i], exps[i], -1) for i in range(len(exps))]
        self.groups: list[_Group] = []
        for gi, ids in enumerate(by_key.values()):
            for i in ids:
                self.members[i].group = gi
            self.groups.append(_Group(gi, [self.members[i] for i in ids], self.devs, max_parallel))
        tasks = {(e.task.classification, e.data.has_validation) for e in exps}
        if strategy.name != "grid":
            if len(tasks) != 1:
                raise SweepError(f"strategy {strategy.name!r} ranks every configuration on one metric; the "
                                 "configurations mix classification and regression, or splits")
            for g in self.groups:
                _check_explore(strategy, g.lead)
        self.key, self.higher = selection_key(*next(iter(tasks))) if len(tasks) == 1 else selection_key(True, True)
        self.rng = np.random.default_rng([strategy.seed, 0x9B7])

    # -- running ------------------------------------------------------------------
    def _decision_points(self, g: _Group, lo: int, hi: int) -> list[int]:
        cfg = g.lead.config
        pts = {p for p in eval_points(cfg) if lo < p <= hi} | {hi}
        return sorted(pts)

    def _stages(self, steps: int) -> list[int]:
        """Where the host steps in: the strategy's decision points and, for checkpoints, every
        ``checkpoint_every`` updates."""
        pts = set(self.strategy.stages(steps))
        if self.checkpoint_every and self.on_stage is not None:
            pts |= set(range(self.checkpoint_every, steps, self.checkpoint_every))
        return sorted(pts)

    def _rows(self, g: _Group) -> int:
        """One compiled segment length per group: the longest gap between decision points (micro-steps)."""
        cfg = g.lead.config
        pts = sorted(set(eval_points(cfg)) | set(self._stages(cfg.train.steps)))
        return max(b - a for a, b in zip([0] + pts, pts)) * g.accum

    def _halving_size(self, g: _Group) -> int | None:
        """On CPUs, the one chunk size a halving sweep uses at every stage: the layout of its last survivors
        (at least one configuration per device). Every row of a CPU chunk costs its share of the time,
        so chunks sized for the last stage waste little padding anywhere, and the sweep compiles once
        instead of once per survivor count (a compilation costs about as much as a thousand
        configuration-steps of a small model). None elsewhere (accelerators pad into the first size)."""
        if self.strategy.name != "halving" or g.devs[0].platform != "cpu":
            return None
        n = len(self.members)
        for _ in self.strategy.rungs:
            n = max(1, math.floor(n * self.strategy.keep + 1e-9))
        _, own, _ = _chunks(min(n, len(g.members)), g.max_parallel, len(g.devs))
        return max(own, min(len(g.devs), len(g.members)))

    def _init_chunks(self, g: _Group) -> None:
        g.chunks = []
        for ids in g.rechunk([m.index for m in g.members], self._halving_size(g)):
            states = stack_trees([jax.device_get(self.members[i].exp.init_state(seed_key(
                self.members[i].exp.config.train.seed))) for i in ids])
            g.chunks.append(_Chunk(ids, g.place(ids, states)))
            if len(ids) not in g.sizes:
                g.sizes.append(len(ids))

    def _run_chunk(self, g: _Group, chunk: _Chunk, lo: int, hi: int) -> None:
        rows = self._rows(g)
        prog = g.program(len(chunk.ids), rows)
        source, evals = g.inputs(chunk.ids, self.members)  # not kept: one chunk's data on the devices at a time
        if len(chunk.ids) not in g.compiled:  # compile explicitly, once per chunk size (timed)
            tc = time.perf_counter()
            prog.lower(chunk.states, source, np.int32(0), np.int32(1), evals, np.bool_(False)).compile()
            g.compile_s += time.perf_counter() - tc
            g.compiled.add(len(chunk.ids))
        start = lo
        evaluated = set(eval_points(g.lead.config))
        for stop in self._decision_points(g, lo, hi):
            chunk.states, table, metrics = prog(chunk.states, source, np.int32(start * g.accum),
                                                np.int32(stop * g.accum), evals, np.bool_(stop in evaluated))
            chunk.pending.append((start, stop, table, metrics))
            start = stop

    def _collect(self, g: _Group, chunk: _Chunk) -> None:
        """Fetch a chunk's pending tables and evaluations into its members' host records."""
        if not chunk.pending:
            return
        host = fetch([(t, m) for _, _, t, m in chunk.pending])
        now = time.perf_counter() - self.t0
        seen = set()
        for r, i in enumerate(chunk.ids):
            if i in seen:
                continue  # a padding copy
            seen.add(i)
            m = self.members[i]
            for (lo, hi, _, _), (table, metrics) in zip(chunk.pending, host):
                m.rows.append(np.asarray(table[r][: (hi - lo) * g.accum]))
                m.evals[hi] = {s: {k: float(v[r]) for k, v in vals.items()} for s, vals in metrics.items()}
            m.chunk_size, m.time_s = len(chunk.ids), round(now, 3)
        chunk.pending = []

    def run(self, restore: Any) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
        if self.strategy.name == "grid" and restore is None and self.on_stage is None:
            return self._run_grid()  # one chunk on the devices at a time, nothing to decide or save
        if callable(restore):
            restore = restore(self.template)
        return self._run_stages(restore)

    def _run_grid(self) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
        infos = []
        for g in self.groups:
            t_group = time.perf_counter()
            steps = g.lead.config.train.steps
            run_s = 0.0
            count, size, _ = _chunks(len(g.members), g.max_parallel, len(self.devs))
            for ids in g.rechunk([m.index for m in g.members]):
                states = stack_trees([jax.device_get(self.members[i].exp.init_state(
                    seed_key(self.members[i].exp.config.train.seed))) for i in ids])
                chunk = _Chunk(ids, g.place(ids, states))
                if size not in g.sizes:
                    g.sizes.append(size)
                jax.block_until_ready(chunk.states)
                t_run = time.perf_counter()
                self._run_chunk(g, chunk, 0, steps)
                self._collect(g, chunk)
                run_s += time.perf_counter() - t_run
                g.chunks.append(chunk)
                if not self.keep_states:
                    chunk.states = None
            infos.append(self._group_info(g, count, size, t_group, run_s))
            if self.on_group is not None:
                self.on_group(infos[-1])
        for m in self.members:
            m.schedules = [(0, m.exp.schedule)]
        return self._results(), infos

    def _group_info(self, g: _Group, count: int, size: int, t_group: float, run_s: float) -> dict[str, Any]:
        return {"group": g.gi, "members": [m.label for m in g.members], "chunks": count, "chunk_size": size,
                "devices": int(g.mesh(size).devices.size), "compile_s": round(g.compile_s, 3),
                "run_s": round(max(run_s - g.compile_s, 0.0), 4), "time_s": round(time.perf_counter() - t_group, 3),
                "data_shared": g.data_shared, "batches_shared": g.data_shared and g.seeds_shared,
                "sizes": list(g.sizes)}

    def _run_stages(self, restore: Any) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
        steps = max(g.lead.config.train.steps for g in self.groups)
        decisions = set(self.strategy.stages(steps)[:-1])
        stages = self._stages(steps)
        t_groups = {g.gi: 0.0 for g in self.groups}
        lo = 0
        if restore is not None:
            lo = self._restore(restore)
        else:
            for g in self.groups:
                self._init_chunks(g)
                for m in g.members:
                    m.schedules = [(0, m.exp.schedule)]
        for hi in stages:
            if hi <= lo:
                continue
            for g in self.groups:
                t = time.perf_counter()
                end = min(hi, g.lead.config.train.steps)
                if end > lo:
                    for chunk in g.chunks:
                        self._run_chunk(g, chunk, lo, end)
                    for chunk in g.chunks:
                        self._collect(g, chunk)
                t_groups[g.gi] += time.perf_counter() - t
            if hi in decisions:
                if self.strategy.name == "halving":
                    self._halve(hi)
                else:
                    self._pbt(hi)
            lo = hi
            if self.on_stage is not None:
                self.on_stage(hi, self.snapshot(hi))
        infos = []
        for g in self.groups:
            size = g.sizes[0] if g.sizes else 0
            infos.append(self._group_info(g, len(g.chunks), size, time.perf_counter() - t_groups[g.gi], t_groups[g.gi]))
            infos[-1]["time_s"] = round(t_groups[g.gi], 3)
            if self.on_group is not None:
                self.on_group(infos[-1])
        return self._results(), infos

    # -- strategies ------------------------------------------------------------------
    def _survivor_size(self, g: _Group, n: int) -> int:
        """The chunk size for ``n`` survivors. On CPUs the one size of :meth:`_halving_size` (several chunks
        when there are more survivors than it holds); on accelerators the smallest size compiled already
        that holds them, padded (the extra rows run in parallel; a compilation costs seconds), else their
        own layout. Deterministic (the sizes so far are part of a checkpoint), so a resumed sweep computes
        exactly what an uninterrupted one does."""
        fixed = self._halving_size(g)
        if fixed is not None:
            return fixed
        _, own, _ = _chunks(n, g.max_parallel, len(g.devs))
        reuse = [s for s in g.sizes if s >= own]
        return min(reuse) if reuse else own

    def _halve(self, step: int) -> None:
        alive = [m.index for m in self.members if m.alive]
        ranked = _rank_alive(self.members, alive, step, self.key, self.higher)
        keep = max(1, math.floor(len(alive) * self.strategy.keep + 1e-9))
        for i in ranked[keep:]:
            self.members[i].alive, self.members[i].stopped_at = False, step
        survivors = set(ranked[:keep])
        for g in self.groups:
            pos = {i: (c, r) for c, ch in enumerate(g.chunks) for r, i in enumerate(ch.ids)}
            alive_g = [m.index for m in g.members if m.index in survivors]
            size = self._survivor_size(g, len(alive_g)) if alive_g else None
            new = []
            for ids in g.rechunk(alive_g, size):
                states = g.place(ids, _gather([ch.states for ch in g.chunks], [pos[i] for i in ids], g.cpu))
                new.append(_Chunk(ids, states))
                if len(ids) not in g.sizes:
                    g.sizes.append(len(ids))
            g.chunks = new

    def _pbt(self, step: int) -> None:
        q = self.strategy.quantile
        for g in self.groups:
            pos = {i: (c, r) for c, ch in enumerate(g.chunks) for r, i in enumerate(ch.ids)}
            ids = [m.index for m in g.members]
            n = int(len(ids) * q)
            if n < 1:
                continue
            ranked = _rank_alive(self.members, ids, step, self.key, self.higher)
            top, bottom = ranked[:n], ranked[-n:]
            src = {i: i for i in ids}
            factors = {k: {i: 1.0 for i in ids} for k, _ in self.strategy.explore}
            for b in bottom:
                src[b] = int(top[self.rng.integers(len(top))])
                for k, choices in self.strategy.explore:
                    factors[k][b] = float(choices[self.rng.integers(len(choices))])
            flat = _gather([ch.states for ch in g.chunks], [pos[i] for i in ids], g.cpu)
            where = {i: r for r, i in enumerate(ids)}
            new_flat = _exploit(flat, np.asarray([where[src[i]] for i in ids]),
                                {k: np.asarray([f[i] for i in ids], np.float32) for k, f in factors.items()})
            host = fetch(new_flat) if g.cpu else None  # CPUs: rows re-sliced in host memory, as _gather does
            for ch in g.chunks:
                rows = np.asarray([where[i] for i in ch.ids], np.int32)
                ch.states = g.place(ch.ids, jax.tree.map(lambda a, rows=rows: np.asarray(a)[rows], host) if g.cpu
                                    else _take_rows([new_flat], rows))
            host_hp = host.opt_state if g.cpu else fetch(new_flat.opt_state)
            for b in bottom:
                m = self.members[b]
                opt = _host_row(host_hp, where[b])
                flat_opt = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(opt)[0]}
                values = {}
                for k, _ in self.strategy.explore:
                    leaves = _explore_leaves(opt, k)
                    values[k] = float(np.asarray(flat_opt[leaves[0]])) if leaves else None
                m.lineage.append({"step": step, "member": m.label, "copied": self.members[src[b]].label,
                                  "values": values})
                m.schedules.append((step, _lr_schedule(opt)))

    # -- checkpoints --------------------------------------------------------------------
    def snapshot(self, step: int) -> dict[str, Any]:
        """Everything needed to continue after ``step``: chunk states (device) and host progress."""
        host = {
            "step": step,
            "rng": self.rng.bit_generator.state,
            "members": [{"alive": m.alive, "stopped_at": m.stopped_at, "lineage": m.lineage,
                         "evals": {str(k): v for k, v in m.evals.items()}, "chunk_size": m.chunk_size,
                         "time_s": m.time_s, "pieces": [t for t, _ in m.schedules]} for m in self.members],
            "chunks": [[ch.ids for ch in g.chunks] for g in self.groups],
            "sizes": [g.sizes for g in self.groups],
        }
        tree = {"states": [[ch.states for ch in g.chunks] for g in self.groups],
                "rows": [np.concatenate(m.rows) if m.rows else np.zeros((0, len(COLUMNS)), np.float32)
                         for m in self.members],
                "schedules": [[s for _, s in m.schedules] for m in self.members]}
        return {"host": host, "tree": tree}

    def template(self, host: dict[str, Any]) -> dict[str, Any]:
        """The abstract tree of a snapshot described by ``host`` (for restoring onto)."""
        states = []
        for g, chunk_ids in zip(self.groups, host["chunks"]):
            shapes = _state_shapes(g.lead)
            states.append([jax.tree.map(lambda x, n=len(ids): jax.ShapeDtypeStruct((n, *x.shape), x.dtype), shapes)
                           for ids in chunk_ids])
        rows = []
        for m, mh in zip(self.members, host["members"]):
            done = (mh["stopped_at"] if mh["stopped_at"] is not None else host["step"]) * m.exp.accumulation_steps
            rows.append(jax.ShapeDtypeStruct((done, len(COLUMNS)), np.float32))
        schedules = [[jax.eval_shape(lambda s=m.exp.schedule: s) for _ in mh["pieces"]]
                     for m, mh in zip(self.members, host["members"])]
        return {"states": states, "rows": rows, "schedules": schedules}

    def _restore(self, snap: dict[str, Any]) -> int:
        host, tree = snap["host"], snap["tree"]
        self.rng.bit_generator.state = host["rng"]
        for m, mh, rows, scheds in zip(self.members, host["members"], tree["rows"], tree["schedules"]):
            m.alive, m.stopped_at, m.lineage = mh["alive"], mh["stopped_at"], list(mh["lineage"])
            m.evals = {int(k): v for k, v in mh["evals"].items()}
            m.chunk_size, m.time_s = mh["chunk_size"], mh["time_s"]
            m.rows = [np.asarray(rows)]
            m.schedules = list(zip(mh["pieces"], scheds))
        for g, chunk_ids, states, sizes in zip(self.groups, host["chunks"], tree["states"], host["sizes"]):
            g.sizes = list(sizes)
            g.chunks = [_Chunk(list(ids), g.place(list(ids), st))
                        for ids, st in zip(chunk_ids, states)]
        return int(host["step"])

    # -- results ------------------------------------------------------------------------
    def _results(self) -> list[ConfigResult]:
        final_states: dict[int, Any] = {}
        if self.keep_states:
            for g in self.groups:
                for ch in g.chunks:
                    if ch.states is None:
                        continue
                    host = fetch(ch.states)
                    for r, i in enumerate(ch.ids):
                        final_states.setdefault(i, _host_row(host, r))
        out = []
        for m in self.members:
            cfg = m.exp.config
            rows = np.concatenate(m.rows) if m.rows else np.zeros((0, len(COLUMNS)), np.float32)
            stop = m.stopped_at if m.stopped_at is not None else cfg.train.steps
            recs, bad = _records(cfg, rows, m.evals, m.exp.accumulation_steps, m.exp.task.classification, stop)
            ft, fe, be = _summarise(recs, self.key, self.higher)
            status = "nonfinite" if bad is not None else ("pruned" if m.stopped_at is not None else "completed")
            accum = m.exp.accumulation_steps
            out.append(ConfigResult(
                label=m.label, config=cfg, records=recs, final_train=ft, final_eval=fe if bad is None else {},
                best_eval=be, status=status, nonfinite_step=bad, group=m.group, chunk_size=m.chunk_size,
                time_s=m.time_s, rates=rows[accum - 1::accum, _COL["lr"]].copy(), state=final_states.get(m.index),
                stopped_at=m.stopped_at, lineage=list(m.lineage),
                schedule_spec=_effective_spec(m.schedules) if self.strategy.name == "pbt" else None,
                steps_trained=len(rows) // accum))
        return out
