"""Where a sweep's configurations run: devices, chunks of stacked states, and their data on the devices.

A group larger than ``max_parallel`` is cut into equal chunks (padded by repeating a member, whose copy is
dropped); on CPU devices, without ``max_parallel``, a chunk holds as many configurations as keep their
states within half the last-level cache. With several devices the configuration axis is sharded over them
(``Mesh(devices, ('config',))``; on a CPU host :func:`use_cpu_cores` makes one device per core); on
several hosts (after ``jax.distributed.initialize()``) the same code runs on the global mesh.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax._checks import integer
from lrjax.engine import (
    Experiment,
    Program,
    Source,
    compile_segment,
    put_global,
    split_batches,
    stack_trees,
    stacked_axes,
    train_arrays,
)
from lrjax.sweep._groups import state_shapes

__all__ = ["use_cpu_cores", "chunk_layout", "ceil_div", "last_level_cache", "cache_bound", "Member", "Chunk", "Group"]


def use_cpu_cores(count: int | None = None) -> int:
    """Give JAX's CPU backend one device per core, so that a sweep's configurations train in parallel.

    XLA shows a host CPU as one device, and a sweep's small operations keep it to about one core.
    With one device per core, :func:`~lrjax.sweep.train_many` shards the configuration axis over them: each
    core trains its share of the configurations, with no communication between them. The ``lrjax sweep``
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
    if count is not None:
        count = integer("use_cpu_cores", "count", count, lo=1)
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


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def chunk_layout(n: int, max_parallel: int | None, ndev: int) -> tuple[int, int, int]:
    """(chunks, chunk size, devices): equal chunks of at most ``max_parallel`` configurations, each a
    multiple of the devices it is sharded over (fewer devices when ``max_parallel`` is below their count)."""
    mp = n if max_parallel is None else max(1, min(max_parallel, n))
    nd = min(ndev, mp)
    if max_parallel is not None:
        mp = mp // nd * nd  # a chunk never exceeds max_parallel
    size = ceil_div(ceil_div(n, ceil_div(n, mp)), nd) * nd  # equal chunks, each a multiple of nd
    return ceil_div(n, size), size, nd


def last_level_cache(pattern: str = "/sys/devices/system/cpu/cpu0/cache/index*/size") -> int | None:
    """Bytes of the largest CPU cache of core 0 (Linux sysfs), or None where it cannot be read."""
    sizes = []
    for path in glob.glob(pattern):
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


def cache_bound(exp: Experiment, devs: list[Any], n: int) -> int | None:
    """On CPU devices, how many configurations fit one compiled call: as many as keep their train states
    and gradients within half the last-level cache (at least one per device); None elsewhere.

    A CPU runs a chunk's updates out of its caches; past them each update streams the states from
    memory (``benchmarks/RESULTS.md``). Accelerators get the whole group.
    """
    if devs[0].platform != "cpu":
        return None
    cache = last_level_cache()
    if not cache:
        return None
    shapes = state_shapes(exp)
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))  # noqa: E731
    per_config = nbytes(shapes) + nbytes(shapes.params)
    bound = max(len(devs), cache // 2 // max(per_config, 1))
    return bound if bound < n else None


@dataclasses.dataclass
class Member:
    """One member's progress: its host copies of metric rows and evaluations (``origin``, ``role``,
    ``owner``: from the strategy's :class:`~lrjax.sweep.strategies.Plan`)."""

    index: int
    label: str
    exp: Experiment
    group: int
    origin: int = -1
    role: Any = None
    owner: int | None = None           # a hidden scratch member: the member it serves
    rows: list[np.ndarray] = dataclasses.field(default_factory=list)   # micro-step rows, in order
    evals: dict[int, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)  # step -> split -> m
    alive: bool = True
    stopped_at: int | None = None
    status: str | None = None          # how a member that left the stacked state ended (pruned, ...)
    chunk_size: int = 0
    time_s: float = 0.0
    inherited: int = 0                 # leading micro-step rows copied from the member it was forked from
    earlier: int = 0                   # micro-steps trained before it last started again from a copy
    lineage: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    schedules: list[tuple[int, Any]] = dataclasses.field(default_factory=list)  # (from step, lr schedule)


@dataclasses.dataclass
class Chunk:
    """Stacked states of some members of a group on the devices (``ids``: member indices, padded)."""

    ids: list[int]
    states: Any
    pending: list[tuple[int, int, bool, Any, Any]] = dataclasses.field(default_factory=list)
    # (lo, hi, evaluated, table, metrics) of segments not yet fetched


class Group:
    """Configurations of one structure: their data on the devices, programs per chunk size, chunks."""

    def __init__(self, gi: int, members: list[Member], devs: list[Any], max_parallel: int | None):
        self.gi, self.members, self.devs = gi, members, devs
        self.lead = members[0].exp
        self.max_parallel = max_parallel if max_parallel is not None else cache_bound(self.lead, devs, len(members))
        self.data_shared = all(m.exp.data is self.lead.data for m in members)
        self.seeds_shared = len({m.exp.config.train.seed for m in members}) == 1
        self.splits = self.lead.eval_splits
        self.cpu = devs[0].platform == "cpu"
        self.programs: dict[int, Program] = {}
        self.compiled: set[int] = set()
        self.compile_s = 0.0
        self.chunks: list[Chunk] = []
        self.sizes: list[int] = []
        self._index: dict[int, np.ndarray] = {}
        self._evals: dict[int, dict[str, dict[str, np.ndarray]]] = {}
        self._shared: Any = None

    @property
    def accum(self) -> int:
        return self.lead.accumulation_steps

    @property
    def last(self) -> int:
        """The group's last update: the longest member's ``train.steps``."""
        return max(m.exp.config.train.steps for m in self.members)

    def index_of(self, m: Member) -> np.ndarray:
        """What picks the micro-batches of the member's seed for the group's whole run (``lrjax train``'s: the
        example indices, a shorter run of that seed taking their beginning; or a text stream's key)."""
        s = m.exp.config.train.seed
        if s not in self._index:
            self._index[s] = m.exp.run_index(self.last * self.accum, s)
        return self._index[s]

    def evals_of(self, m: Member) -> dict[str, dict[str, np.ndarray]]:
        key = id(m.exp.data)
        if key not in self._evals:
            self._evals[key] = split_batches(m.exp.data, self.splits, m.exp.config.data.eval_batch_size)
        return self._evals[key]

    def mesh(self, size: int) -> Mesh:
        nd = min(len(self.devs), size)
        while size % nd:
            nd -= 1
        return Mesh(np.asarray(self.devs[:nd]), ("config",))

    def program(self, size: int, rows: int) -> Program:
        """The group's compiled segment for chunks of ``size`` members: the lead's segment, vmapped."""
        if size not in self.programs:
            axes = stacked_axes(arrays=not self.data_shared, index=not self.seeds_shared, evals=not self.data_shared)
            self.programs[size] = compile_segment(self.lead.segment(rows, splits=self.splits), in_axes=axes,
                                                  out_shardings=NamedSharding(self.mesh(size), P("config")))
        return self.programs[size]

    def inputs(self, ids: list[int], members: list[Member]) -> tuple[Source, dict]:
        """The chunk's data source and evaluation batches on its mesh (shared ones put there once)."""
        mesh = self.mesh(len(ids))
        stacked, repl = NamedSharding(mesh, P("config")), NamedSharding(mesh, P())
        ms = [members[i] for i in ids]
        if self.data_shared:
            key = ("shared", mesh.devices.size)
            if self._shared is None or self._shared[0] != key:
                self._shared = (key, put_global(train_arrays(self.lead.data), repl),
                                put_global(self.evals_of(ms[0]), repl))
            arrays, evals = self._shared[1], self._shared[2]
        else:
            arrays = put_global(stack_trees([train_arrays(m.exp.data) for m in ms]), stacked)
            evals = put_global(stack_trees([self.evals_of(m) for m in ms]), stacked)
        index = (put_global(self.index_of(ms[0]), repl) if self.seeds_shared
                 else put_global(np.stack([self.index_of(m) for m in ms]), stacked))
        return Source(arrays, index, np.int32(0)), evals

    def place(self, ids: list[int], states: Any) -> Any:
        return put_global(states, NamedSharding(self.mesh(len(ids)), P("config")))

    def rechunk(self, alive: list[int], size: int | None = None) -> list[list[int]]:
        """Alive members in equal chunks of ``size`` (default: :func:`chunk_layout`; a multiple of the
        devices each), the last padded by repeating its last member."""
        if not alive:
            return []
        if size is None:
            count, size, _ = chunk_layout(len(alive), self.max_parallel, len(self.devs))
        else:
            count = ceil_div(len(alive), size)
        out = []
        for c in range(count):
            part = alive[c * size:(c + 1) * size]
            out.append(part + [part[-1]] * (size - len(part)))
        return out
