r"""The sweep driver: configurations that share a structure train together under ``jax.vmap``, and a
strategy decides between segments.

Each configuration is built with :func:`lrjax.engine.build_experiment`; its
:class:`~lrjax.engine.TrainState` comes from its own ``init_state(seed_key(train.seed))``, exactly as
``lrjax train`` makes it. Configurations of one structure form a *group* (:mod:`lrjax.sweep._groups`):
their states are stacked along a new leading axis and the engine's segment program
(:class:`lrjax.engine.Segment`, the one ``lrjax train`` runs) runs under ``jax.vmap`` over them,

.. math:: s^{(k)}_{t+1} = \mathrm{train\_step}(s^{(k)}_t, B^{(k)}_t), \qquad k = 1..K,

where :math:`B^{(k)}_t` is the batch ``lrjax train`` would give configuration ``k`` at micro-step
:math:`t` (the seeded :class:`~lrjax.engine.BatchIterator` of its ``train.seed``), gathered on the device
(shared when every member has the same seed and data). One compiled program runs a *segment* — up to the
next evaluation, decision or checkpoint — with the evaluation on the validation split and the test set
and, with a plateau, the validation loss fed to each optimizer at ``lrjax train``'s evaluation points;
any run length and cadence compile once per group and chunk size (:mod:`lrjax.sweep._layout`).

The strategy (:mod:`lrjax.sweep.strategies`) first makes its members of the configurations (one each, or
a trunk and its cooldown branches, or hidden scratch copies) and decides at its decision points, from the
*validation* metric; the driver carries its :class:`~lrjax.sweep.strategies.Decision` out on the stacked
state (:mod:`lrjax.sweep._population`: drop, keep, copy, perturb, set, fork, start), ends each member at
its own ``train.steps`` (its slot reused), snapshots after every stage and resumes from a snapshot.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from lrjax.engine import (
    COLUMN_INDEX,
    COLUMNS,
    Config,
    Dataset,
    Experiment,
    Flags,
    build_experiment,
    early_stop_step,
    eval_points,
    eval_record,
    fetch,
    frozen_heap,
    initial_states,
    load_data,
    make_schedule,
    resolve_train,
    run_records,
    seed_key,
    selection_key,
    stack_trees,
    summarise,
    with_context,
    with_validation,
)
from lrjax.schedules import Schedule
from lrjax.sweep import _groups
from lrjax.sweep._errors import SweepError
from lrjax.sweep._groups import data_key, group_key, state_shapes
from lrjax.sweep._layout import Chunk, Group, Member, chunk_layout
from lrjax.sweep._population import (
    effective_spec,
    explore_leaves,
    gather_rows,
    host_row,
    lr_schedule,
    plans,
    rebuild,
)
from lrjax.sweep.strategies import Decision, Strategy, registry

__all__ = ["ConfigResult", "train_many"]


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
    schedule it effectively followed, an lrjax spec that re-trains it alone; a cooldown study gives every
    branch's). ``steps_trained``: the updates it trained itself (a fork's inherited history not counted);
    ``scratch_steps``: the updates of hidden copies trained on its behalf (annealed ranking). ``origin``:
    the index of the input configuration it comes from; ``role``: what the strategy made of it (None: the
    configuration itself; a cooldown branch: ``{"run": "cooldown", "horizon": ..., "shape": ..., ...}``).
    ``metric``: the one that chooses (``accuracy`` for a classifier, ``loss`` otherwise: regression,
    language models); ``selection_size``: the examples of the split that chooses.
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
    metric: str = "accuracy"  # what chooses (on the validation split): accuracy for classification, else loss
    selection_size: int = 0   # examples of the split that chooses (validation, else test)
    origin: int = -1
    role: dict[str, Any] | None = None
    scratch_steps: int = 0


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
      strategy: how to spend the budget (:mod:`lrjax.sweep.strategies`: grid, halving, pbt, ...).
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
      ``(results, groups)``: one :class:`ConfigResult` per config, in input order (per member of the
      strategy's :meth:`~lrjax.sweep.strategies.Strategy.expand` when it makes several of one
      configuration, hidden scratch members left out), and per group a dict
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
    if strategy is None:
        strategy = registry()["grid"]()
    with frozen_heap():
        return _Sweep(list(configs), list(labels), strategy, model, loss, data, max_parallel, devices, keep_states,
                      on_group, on_stage, checkpoint_every, switch_families).run(restore)


class _Population:
    """The strategy's view of the members at a decision point (:class:`~lrjax.sweep.strategies.Population`):
    hidden scratch members are not listed (their strategy knows them), but can score others (``proxy``)."""

    def __init__(self, sweep: _Sweep, step: int):
        self._sweep, self.step, self.size = sweep, step, len(sweep.members)

    def alive(self) -> list[int]:
        return [m.index for m in self._sweep.members if m.alive and m.owner is None]

    def groups(self) -> list[list[int]]:
        return [[m.index for m in g.members if m.alive and m.owner is None] for g in self._sweep.groups]

    def metric(self, i: int) -> float | None:
        s = self._sweep
        return eval_record(self.step, s.members[i].evals.get(self.step, {})).get(s.key)

    def ranked(self, ids: list[int], proxy: Any = None) -> list[int]:
        proxy = proxy or {}

        def score(i: int) -> tuple:
            v = self.metric(proxy.get(i, i))
            return (v is None, -v if (v is not None and self._sweep.higher) else (v if v is not None else 0.0), i)

        return sorted(ids, key=score)

    def label(self, i: int) -> str:
        return self._sweep.members[i].label


class _Sweep:
    """One call of :func:`train_many`: build, group, run the stages, apply decisions, collect the results."""

    def __init__(self, configs, labels, strategy, model, loss, data, max_parallel, devices, keep_states, on_group,
                 on_stage, checkpoint_every, switch_families):
        self.strategy, self.keep_states, self.on_group, self.on_stage = strategy, keep_states, on_group, on_stage
        self.checkpoint_every = checkpoint_every
        self.t0 = time.perf_counter()
        self.devs = list(jax.devices() if devices is None else devices)
        one = self.devs[:1]
        datasets: dict[tuple, Dataset] = {}
        exps: list[Experiment] = []

        def dataset(cfg: Config) -> Dataset:
            key = data_key(cfg)
            if key not in datasets:
                datasets[key] = load_data(cfg, data)
            return datasets[key]

        # the strategy reads run lengths and cadences in updates: "5 epochs" or "2M tokens" counted on the data
        resolved = []
        for c in configs:
            cfg = with_validation(c, selects=strategy.selects)  # a strategy chooses
            ds = dataset(cfg)
            resolved.append(resolve_train(with_context(cfg, ds), ds.num_train))
        plans = strategy.expand(resolved, labels)  # members made of these: their splits already resolved
        for p in plans:
            cfg = p.config
            ds = dataset(cfg)
            exps.append(build_experiment(cfg, model=model, loss=loss, data=ds, devices=one,
                                         schedule=strategy.schedule(make_schedule(cfg, num_examples=ds.num_train))))

        def rebuild_exp(e: Experiment, schedule: Schedule) -> Experiment:
            return build_experiment(e.config, model=model, loss=loss, data=e.data, devices=one, schedule=schedule)

        lengths = not strategy.mixes_lengths
        keys = (_groups.switch_families(exps, rebuild_exp, lengths=lengths) if switch_families
                else [group_key(e, lengths=lengths) for e in exps])
        by_key: dict[tuple, list[int]] = {}
        for i, k in enumerate(keys):
            by_key.setdefault(k, []).append(i)
        self.members = [Member(i, p.label, exps[i], -1, origin=p.origin, role=dict(p.role) if p.role else None,
                               owner=p.owner, alive=not p.waits) for i, p in enumerate(plans)]
        self.groups: list[Group] = []
        for gi, ids in enumerate(by_key.values()):
            for i in ids:
                self.members[i].group = gi
            self.groups.append(Group(gi, [self.members[i] for i in ids], self.devs, max_parallel))
        self.evaluates = {m.index: set(eval_points(m.exp.config)) for m in self.members}
        tasks = {(e.task.classification, e.data.has_validation) for e in exps}
        self.steps = max(g.last for g in self.groups)
        self.decisions = [p for p in strategy.decision_points(self.steps) if 0 <= p < self.steps]
        self.ranks = {p for p in strategy.evaluation_points(self.steps) if 0 < p < self.steps}
        if self.decisions:
            if self.ranks and len(tasks) != 1:
                raise SweepError(f"strategy {strategy.name!r} ranks every configuration on one metric; the "
                                 "configurations mix classification and regression, or splits")
            for g in self.groups:
                strategy.check(g.lead)
        self.key, self.higher = selection_key(*next(iter(tasks))) if len(tasks) == 1 else selection_key(True, True)
        self._owns: dict[int, Any] = {}
        self._final: dict[int, Any] = {}  # final states of members that finished before the end (keep_states)

    # -- where the host steps in -------------------------------------------------------
    def _stages(self, steps: int) -> list[int]:
        """The strategy's decision points, every member's end, the end and, for checkpoints, every
        ``checkpoint_every`` updates."""
        pts = {p for p in self.decisions if 0 < p < steps} | {steps}
        pts |= {m.exp.config.train.steps for m in self.members if m.exp.config.train.steps < steps}
        pts |= {p for m in self.members if m.exp.config.train.early_stop is not None  # members that may stop
                for p in self.evaluates[m.index] if p < steps}
        if self.checkpoint_every and self.on_stage is not None:
            pts |= set(range(self.checkpoint_every, steps, self.checkpoint_every))
        return sorted(pts)

    def _segment_ends(self, g: Group, lo: int, hi: int) -> list[int]:
        return sorted({p for m in g.members for p in self.evaluates[m.index] if lo < p <= hi} | {hi})

    def _rows(self, g: Group) -> int:
        """One compiled segment length per group: the longest gap between segment ends (micro-steps)."""
        last = g.last
        pts = {p for m in g.members for p in self.evaluates[m.index]} | set(self._stages(self.steps))
        pts = sorted({p for p in pts if p <= last} | {last})
        return max(b - a for a, b in zip([0] + pts, pts)) * g.accum

    def _fixed_size(self, g: Group) -> int | None:
        """The one chunk size used at every stage, or None for the whole group's layout.

        On CPUs, for a strategy that stops members (or trains hidden copies beside them): the layout of
        the last survivors (at least one configuration per device). Every row of a CPU chunk costs its share
        of the time, so chunks sized for the last stage waste little padding anywhere, and the sweep compiles
        once instead of once per survivor count (a compilation costs about as much as a thousand
        configuration-steps of a small model). On accelerators, for a strategy that never trains every member at once (members that
        wait to be forked): the layout of the most it trains at once (:meth:`Strategy.most_alive`), padded
        (the extra rows run in parallel)."""
        n, k = len(self.members), len(g.members)
        if g.devs[0].platform == "cpu":
            shown = sum(1 for m in self.members if m.owner is None)  # hidden copies come and go beside them
            final = self.strategy.final_size(shown)
            if final >= n:
                return None
            _, own, _ = chunk_layout(min(final, k), g.max_parallel, len(g.devs))
            return max(own, min(len(g.devs), k))
        most = min(self.strategy.most_alive(n), k)
        return chunk_layout(most, g.max_parallel, len(g.devs))[1] if most < k else None

    def _survivor_size(self, g: Group, n: int) -> int:
        """The chunk size for ``n`` survivors: :meth:`_fixed_size` where there is one; on accelerators
        otherwise the smallest size compiled already that holds them, padded (the extra rows run in
        parallel; a compilation costs seconds), else their own layout. Deterministic (the sizes so far are
        part of a snapshot), so a resumed sweep computes exactly what an uninterrupted one does."""
        fixed = self._fixed_size(g)
        if fixed is not None:
            return fixed
        _, own, _ = chunk_layout(n, g.max_parallel, len(g.devs))
        reuse = [s for s in g.sizes if s >= own]
        return min(reuse) if reuse else own

    # -- running ---------------------------------------------------------------------
    def _init_chunks(self, g: Group) -> None:
        g.chunks = []
        alive = [m.index for m in g.members if m.alive]
        for ids in g.rechunk(alive, self._fixed_size(g)):
            g.chunks.append(Chunk(ids, g.place(ids, initial_states([self.members[i].exp for i in ids]))))
            if len(ids) not in g.sizes:
                g.sizes.append(len(ids))

    def _run_chunk(self, g: Group, chunk: Chunk, lo: int, hi: int) -> None:
        prog = g.program(len(chunk.ids), self._rows(g))
        source, evals = g.inputs(chunk.ids, self.members)  # not kept: one chunk's data on the devices at a time
        if len(chunk.ids) not in g.compiled:  # compile explicitly, once per chunk size (timed)
            tc = time.perf_counter()
            prog.compile(chunk.states, source, 0, 1, evals)
            g.compile_s += time.perf_counter() - tc
            g.compiled.add(len(chunk.ids))
        # evaluate where any row's own run does (or the strategy ranks); feed a plateau only where every row's
        # own run does: at the shared cadence (a member's own last update feeds nothing it trains after)
        own = [self.evaluates[i] for i in dict.fromkeys(chunk.ids)]
        evaluated, observed = set().union(*own) | self.ranks, set.intersection(*own)
        start = lo
        for stop in self._segment_ends(g, lo, hi):
            flags = Flags(evaluate=stop in evaluated, observe=stop in observed)
            out = prog(chunk.states, source, start * g.accum, stop * g.accum, evals, flags)
            chunk.states = out.state
            chunk.pending.append((start, stop, bool(flags.evaluate), out.table, out.metrics))
            start = stop

    def _collect(self, g: Group, chunk: Chunk) -> None:
        """Fetch a chunk's pending tables and evaluations into its members' host records."""
        if not chunk.pending:
            return
        host = fetch([(t, m) for *_, t, m in chunk.pending])
        now = time.perf_counter() - self.t0
        seen = set()
        for r, i in enumerate(chunk.ids):
            if i in seen:
                continue  # a padding copy
            seen.add(i)
            m = self.members[i]
            for (lo, hi, evaluated, _, _), (table, metrics) in zip(chunk.pending, host):
                m.rows.append(np.asarray(table[r][: (hi - lo) * g.accum]))
                if evaluated:
                    m.evals[hi] = {s: {k: float(v[r]) for k, v in vals.items()} for s, vals in metrics.items()}
            m.chunk_size, m.time_s = len(chunk.ids), round(now, 3)
        chunk.pending = []

    def run(self, restore: Any) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
        for m in self.members:
            m.schedules = [(0, m.exp.schedule)]
        stops = any(m.exp.config.train.early_stop is not None for m in self.members)
        if not self.decisions and restore is None and self.on_stage is None and not self.strategy.mixes_lengths \
                and not stops:
            return self._run_to_end()  # one chunk on the devices at a time, nothing to decide or save
        if callable(restore):
            restore = restore(self.template)
        return self._run_stages(restore)

    def _run_to_end(self) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
        infos = []
        for g in self.groups:
            t_group = time.perf_counter()
            run_s = 0.0
            count, size, _ = chunk_layout(len(g.members), g.max_parallel, len(self.devs))
            for ids in g.rechunk([m.index for m in g.members]):
                chunk = Chunk(ids, g.place(ids, initial_states([self.members[i].exp for i in ids])))
                if size not in g.sizes:
                    g.sizes.append(size)
                jax.block_until_ready(chunk.states)
                t_run = time.perf_counter()
                self._run_chunk(g, chunk, 0, g.lead.config.train.steps)
                self._collect(g, chunk)
                run_s += time.perf_counter() - t_run
                g.chunks.append(chunk)
                if not self.keep_states:
                    chunk.states = None
            infos.append(self._group_info(g, count, size, t_group, run_s))
            if self.on_group is not None:
                self.on_group(infos[-1])
        return self._results(), infos

    def _group_info(self, g: Group, count: int, size: int, t_group: float, run_s: float) -> dict[str, Any]:
        return {"group": g.gi, "members": [m.label for m in g.members], "chunks": count, "chunk_size": size,
                "devices": int(g.mesh(size).devices.size), "compile_s": round(g.compile_s, 3),
                "run_s": round(max(run_s - g.compile_s, 0.0), 4), "time_s": round(time.perf_counter() - t_group, 3),
                "data_shared": g.data_shared, "batches_shared": g.data_shared and g.seeds_shared,
                "sizes": list(g.sizes)}

    def _run_stages(self, restore: Any) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
        t_groups = {g.gi: 0.0 for g in self.groups}
        most = {g.gi: 0 for g in self.groups}  # the most chunks a group ran at once
        lo = 0
        if restore is not None:
            lo = self._restore(restore)
        else:
            for g in self.groups:
                self._init_chunks(g)
            self._decide(0)
        for hi in self._stages(self.steps):
            if hi <= lo:
                continue
            for g in self.groups:
                t = time.perf_counter()
                end = min(hi, g.last)
                most[g.gi] = max(most[g.gi], len(g.chunks))
                if end > lo:
                    for chunk in g.chunks:
                        self._run_chunk(g, chunk, lo, end)
                    for chunk in g.chunks:
                        self._collect(g, chunk)
                t_groups[g.gi] += time.perf_counter() - t
            self._decide(hi)
            lo = hi
            if self.on_stage is not None:
                self.on_stage(hi, self.snapshot(hi))
        infos = []
        for g in self.groups:
            size = g.sizes[0] if g.sizes else 0
            infos.append(self._group_info(g, max(most[g.gi], len(g.chunks)), size, time.perf_counter() - t_groups[g.gi],
                                          t_groups[g.gi]))
            infos[-1]["time_s"] = round(t_groups[g.gi], 3)
            if self.on_group is not None:
                self.on_group(infos[-1])
        return self._results(), infos

    # -- decisions -------------------------------------------------------------------------
    def _decide(self, step: int) -> None:
        """After update ``step``: the strategy's decision there (if it is a decision point), and the members
        whose own run ends there leave the stacked state (``completed``)."""
        decision = self.strategy.decide(_Population(self, step)) if step in self.decisions else Decision()
        for m in self.members:
            if m.alive and m.exp.config.train.steps == step:
                decision.stop.setdefault(m.index, "completed")
            elif m.alive and self._stops_early(m, step):
                decision.stop.setdefault(m.index, "early_stopped")
        while decision is not None:
            self._apply(decision, step)
            decision = decision.then

    def _stops_early(self, m: Any, step: int) -> bool:
        """Whether member ``m``'s ``train.early_stop`` ends it after update ``step``: its evaluations so far
        through the rule ``lrjax train`` follows (:func:`~lrjax.engine._records.early_stop_step`), replayed
        from its records (nothing to checkpoint); it then leaves the stacked state like a pruned member."""
        rule = m.exp.config.train.early_stop
        if rule is None or step not in self.evaluates[m.index]:
            return False
        metric = rule.metric[4:] if rule.metric.startswith("val_") else rule.metric
        state: dict[str, Any] = {}
        stop = False
        for p in sorted(k for k in m.evals if k <= step and k in self.evaluates[m.index]):
            stop = early_stop_step(state, m.evals[p].get(m.exp.selection_split, {}).get(metric), p, rule)
        return stop

    def _own(self, i: int) -> tuple[Any, Any]:
        """Member ``i``'s own plan (its schedule and hyperparameters, as its initial state holds them) and
        PRNG key."""
        if i not in self._owns:
            m = self.members[i]
            st = jax.device_get(m.exp.init_state(seed_key(m.exp.config.train.seed)))
            self._owns[i] = (plans(st.opt_state), np.asarray(st.rng))
        return self._owns[i]

    def _apply(self, decision: Decision, step: int) -> None:
        """Carry a :class:`Decision` out: stopped members leave the stacked state, copies replace rows."""
        if self.keep_states:  # a member that finished its own run keeps its final state
            done = {i for i, st in decision.stop.items() if st == "completed" and self.members[i].alive}
            for g in self.groups:
                for ch in g.chunks:
                    rows = [(r, i) for r, i in enumerate(ch.ids) if i in done and i not in self._final]
                    if rows:
                        host = fetch(ch.states)
                        self._final.update({i: host_row(host, r) for r, i in rows})
        for i, status in decision.stop.items():
            m = self.members[i]
            if m.alive:
                m.alive, m.stopped_at, m.status = False, step, status
        for g in self.groups:
            copies = {i: c for i, c in decision.copy.items() if self.members[i].group == g.gi}
            for i, c in copies.items():
                if self.members[c.src].group != g.gi:
                    raise SweepError(f"strategy {self.strategy.name!r}: {self.members[i].label!r} cannot copy "
                                     f"{self.members[c.src].label!r}, which trains in another compiled group")
            current = [i for ch in g.chunks for i in ch.ids]
            alive = [m.index for m in g.members if m.alive or m.index in copies]
            if not copies and set(alive) == set(current):
                continue
            if set(alive) == set(current):
                layout = [list(ch.ids) for ch in g.chunks]
            else:
                layout = g.rechunk(alive, self._survivor_size(g, len(alive)) if alive else None)
            self._relayout(g, layout, copies, step)

    def _relayout(self, g: Group, layout: list[list[int]], copies: dict, step: int) -> None:
        pos = {i: (c, r) for c, ch in enumerate(g.chunks) for r, i in enumerate(ch.ids)}
        if not copies:  # keep or drop rows only: a gather of the survivors (host memory on CPUs: nothing to compile)
            g.chunks = [Chunk(ids, g.place(ids, gather_rows([ch.states for ch in g.chunks], [pos[i] for i in ids], g.cpu)))
                        for ids in layout]
        else:
            flat_ids = list(dict.fromkeys(i for ch in g.chunks for i in ch.ids))  # each current row once
            where = {i: r for r, i in enumerate(flat_ids)}
            flat = gather_rows([ch.states for ch in g.chunks], [pos[i] for i in flat_ids], g.cpu)
            rows = [i for ids in layout for i in ids]
            src = np.asarray([where[copies[i].src if i in copies else i] for i in rows], np.int32)
            # update and skip counts: a member's own; one that starts here takes its source's
            keep = np.asarray([where[i] if i in where else where[copies[i].src] for i in rows], np.int32)
            rng = np.stack([self._own(i)[1] for i in rows])
            keys = sorted({k for c in copies.values() for k in c.factors})
            factors = {k: np.asarray([copies[i].factors.get(k, 1.0) if i in copies else 1.0 for i in rows], np.float32)
                       for k in keys}
            set_keys = sorted({k for c in copies.values() for k in c.set})
            values = {k: np.asarray([copies[i].set.get(k, np.nan) if i in copies else np.nan for i in rows],
                                    np.float32) for k in set_keys}
            mask = np.asarray([i in copies and copies[i].plan == "own" for i in rows])
            own = (mask, stack_trees([self._own(i)[0] for i in rows])) if mask.any() else None
            # CPUs: in host memory, as gather_rows does (nothing to compile); elsewhere one program on the devices
            new = rebuild(flat, src, factors, own, keep=keep, rng=rng, values=values, host=g.cpu)
            host = new if g.cpu else None
            chunks, start = [], 0
            for ids in layout:
                part = (jax.tree.map(lambda a, s=start, n=len(ids): np.asarray(a)[s:s + n], host) if g.cpu
                        else jax.tree.map(lambda a, s=start, n=len(ids): a[s:s + n], new))
                chunks.append(Chunk(ids, g.place(ids, part)))
                start += len(ids)
            g.chunks = chunks
            self._note_copies(g, copies, rows, host.opt_state if g.cpu else fetch(new.opt_state), step)
        for ids in layout:
            if len(ids) not in g.sizes:
                g.sizes.append(len(ids))

    def _note_copies(self, g: Group, copies: dict, rows: list[int], opt_state: Any, step: int) -> None:
        """Host bookkeeping of the copies: lineage with the explored values after the copy, the schedule
        pieces a member follows, and a newly started member's history (a fork continues its source's)."""
        for i, c in copies.items():
            m, src = self.members[i], self.members[c.src]
            opt = host_row(opt_state, rows.index(i))
            if c.record:
                flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(opt)[0]}
                values = {}
                for k in c.factors:
                    leaves = explore_leaves(opt, k)
                    values[k] = float(np.asarray(flat[leaves[0]])) if leaves else None
                m.lineage.append({"step": step, "member": m.label, "copied": src.label, "values": values})
            if c.plan == "src" and self.strategy.changes_plans:
                m.schedules.append((step, lr_schedule(opt)))
            if not m.alive:  # starts here, from the source's state: its history up to now is the source's
                m.earlier += sum(len(r) for r in m.rows) - m.inherited  # what it trained in an earlier life
                m.alive, m.stopped_at, m.status = True, None, None
                m.rows, m.evals = list(src.rows), dict(src.evals)
                m.inherited = sum(len(r) for r in src.rows)

    # -- checkpoints --------------------------------------------------------------------
    def snapshot(self, step: int) -> dict[str, Any]:
        """Everything needed to continue after ``step``: chunk states (device) and host progress."""
        host = {
            "step": step,
            "rng": self.strategy.state_dict(),
            "members": [{"alive": m.alive, "stopped_at": m.stopped_at, "status": m.status, "lineage": m.lineage,
                         "evals": {str(k): v for k, v in m.evals.items()}, "chunk_size": m.chunk_size,
                         "inherited": m.inherited, "earlier": m.earlier, "rows": sum(len(r) for r in m.rows),
                         "time_s": m.time_s, "pieces": [t for t, _ in m.schedules]} for m in self.members],
            "chunks": [[ch.ids for ch in g.chunks] for g in self.groups],
            "sizes": [g.sizes for g in self.groups],
        }
        tree = {"states": [[ch.states for ch in g.chunks] for g in self.groups],
                # a member with no rows yet (waiting to be forked) saves one row of NaN: checkpoints hold no empty array
                "rows": [np.concatenate(m.rows) if sum(len(r) for r in m.rows) else np.full((1, len(COLUMNS)), np.nan,
                                                                                         np.float32)
                         for m in self.members],
                "schedules": [[s for _, s in m.schedules] for m in self.members]}
        return {"host": host, "tree": tree}

    def template(self, host: dict[str, Any]) -> dict[str, Any]:
        """The abstract tree of a snapshot described by ``host`` (for restoring onto)."""
        states = []
        for g, chunk_ids in zip(self.groups, host["chunks"]):
            shapes = state_shapes(g.lead)
            states.append([jax.tree.map(lambda x, n=len(ids): jax.ShapeDtypeStruct((n, *x.shape), x.dtype), shapes)
                           for ids in chunk_ids])
        rows = []
        for m, mh in zip(self.members, host["members"]):
            done = mh.get("rows")
            if done is None:  # a snapshot of an earlier version
                done = (mh["stopped_at"] if mh["stopped_at"] is not None else host["step"]) * m.exp.accumulation_steps
            rows.append(jax.ShapeDtypeStruct((max(done, 1), len(COLUMNS)), np.float32))
        schedules = [[jax.eval_shape(lambda s=m.exp.schedule: s) for _ in mh["pieces"]]
                     for m, mh in zip(self.members, host["members"])]
        return {"states": states, "rows": rows, "schedules": schedules}

    def _restore(self, snap: dict[str, Any]) -> int:
        host, tree = snap["host"], snap["tree"]
        self.strategy.load_state_dict(host["rng"])
        for m, mh, rows, scheds in zip(self.members, host["members"], tree["rows"], tree["schedules"]):
            m.alive, m.stopped_at, m.lineage = mh["alive"], mh["stopped_at"], list(mh["lineage"])
            m.status = mh.get("status") or ("pruned" if mh["stopped_at"] is not None else None)
            m.evals = {int(k): v for k, v in mh["evals"].items()}
            m.chunk_size, m.time_s, m.inherited = mh["chunk_size"], mh["time_s"], mh.get("inherited", 0)
            m.earlier = mh.get("earlier", 0)
            m.rows = [np.asarray(rows)[:mh["rows"]] if "rows" in mh else np.asarray(rows)]
            m.schedules = list(zip(mh["pieces"], scheds))
        for g, chunk_ids, states, sizes in zip(self.groups, host["chunks"], tree["states"], host["sizes"]):
            g.sizes = list(sizes)
            g.chunks = [Chunk(list(ids), g.place(list(ids), st)) for ids, st in zip(chunk_ids, states)]
        return int(host["step"])

    # -- results ------------------------------------------------------------------------
    def _results(self) -> list[ConfigResult]:
        final_states: dict[int, Any] = dict(self._final)
        if self.keep_states:
            for g in self.groups:
                for ch in g.chunks:
                    if ch.states is None:
                        continue
                    host = fetch(ch.states)
                    for r, i in enumerate(ch.ids):
                        final_states.setdefault(i, host_row(host, r))
        trained = {m.index: (sum(len(r) for r in m.rows) - m.inherited + m.earlier) // m.exp.accumulation_steps
                   for m in self.members}
        scratch: dict[int, int] = {}
        for m in self.members:
            if m.owner is not None:
                scratch[m.owner] = scratch.get(m.owner, 0) + trained[m.index]
        out = []
        specs = self.strategy.changes_plans or self.strategy.exports_schedules
        for m in self.members:
            if m.owner is not None:
                continue  # a hidden scratch member: its updates are its owner's scratch_steps
            cfg = m.exp.config
            rows = np.concatenate(m.rows) if m.rows else np.zeros((0, len(COLUMNS)), np.float32)
            stop = m.stopped_at if m.stopped_at is not None else cfg.train.steps
            recs, bad = run_records(cfg, rows, m.evals, m.exp.accumulation_steps, m.exp.task.metrics, stop)
            ft, fe, be = summarise(recs, self.key, self.higher)
            status = "nonfinite" if bad is not None else (m.status or "completed")
            accum = m.exp.accumulation_steps
            out.append(ConfigResult(
                label=m.label, config=cfg, records=recs, final_train=ft, final_eval=fe if bad is None else {},
                best_eval=be, status=status, nonfinite_step=bad, group=m.group, chunk_size=m.chunk_size,
                time_s=m.time_s, rates=rows[accum - 1::accum, COLUMN_INDEX["lr"]].copy(),
                state=final_states.get(m.index), stopped_at=None if m.status == "completed" else m.stopped_at,
                lineage=list(m.lineage), schedule_spec=effective_spec(m.schedules) if specs else None,
                steps_trained=trained[m.index], origin=m.origin, role=m.role, scratch_steps=scratch.get(m.index, 0),
                metric=selection_key(m.exp.task.classification, True)[0].split("_", 1)[1],
                selection_size=len(m.exp.data.split(m.exp.selection_split)[1])))
        return out
