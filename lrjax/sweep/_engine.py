"""The sweep engine: configurations that share a structure train together under ``jax.vmap``.

Each configuration is built with :func:`lrjax.train.build_experiment`; its :class:`TrainState` (parameters,
optimizer state with the schedule inside, PRNG key) comes from its own ``init_state(PRNGKey(train.seed))``,
exactly as ``lrjax train`` makes it. Configurations whose states have the same tree structure, shapes and
dtypes, and whose configs agree on everything that is not a state leaf (model, data shapes, optimizer
name and static arguments, run length, cadences) form a *group*: their states are stacked along a new
leading axis and one compiled program trains them all:

.. math:: s^{(k)}_{t+1} = \\mathrm{train\\_step}(s^{(k)}_t, B^{(k)}_t), \\qquad k = 1..K \\text{ (vmapped)}

where :math:`B^{(k)}_t` is the batch ``lrjax train`` would give configuration ``k`` at micro-step
:math:`t` (the seeded :class:`~lrjax.train.BatchIterator` of its ``train.seed``). When every member has
the same data seed the batch is shared (one gather, broadcast over the configs); otherwise each member
gathers its own batch, and for ``digits`` (whose train/test split depends on the seed) its own data.

The program runs one segment: a ``lax.fori_loop`` with traced bounds up to the next evaluation, the
evaluation (a scan over padded test batches) and, with a plateau, the metric fed to each optimizer; so
any run length and cadence compiles once. Per-step metrics go to a donated on-device buffer read once at
the end. A group larger than ``max_parallel`` is cut into equal chunks (padded by repeating a member,
whose copy is dropped) that reuse the compiled program; on CPU devices, without ``max_parallel``, a
chunk holds as many configurations as keep their states within half the last-level cache. With several
devices the configuration axis is sharded over them (``Mesh(devices, ('config',))``; on a CPU host
:func:`use_cpu_cores` makes one device per core); on several hosts (after ``jax.distributed.initialize()``)
the same code runs on the global mesh.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import lrjax
from lrjax.optim import InjectState
from lrjax.train._config import Config
from lrjax.train._data import BatchIterator, Dataset, load_dataset
from lrjax.train._step import Experiment, _momentum_arg, build_experiment, frozen_heap, put_global, seed_key

__all__ = ["ConfigResult", "train_many", "group_key", "eval_points", "log_points", "use_cpu_cores"]

_COLS = ("loss", "accuracy", "grad_norm", "lr", "momentum", "finite")


@dataclasses.dataclass
class ConfigResult:
    """What a sweep learned about one configuration.

    ``records``: rows in the format of ``lrjax train``'s ``metrics.jsonl`` (train windows and evals);
    ``status``: ``completed`` or ``nonfinite`` (``nonfinite_step``: the first update with a non-finite
    loss; the records stop before it); ``group``: index of the compiled group it trained in;
    ``time_s``: wall time of its chunk (compilation included, shared by the chunk's members);
    ``rates``: the learning rate used by every update; ``state``: the final TrainState when asked for.
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
    # digits: the train/test split itself depends on the seed; files do not.
    return (d.source, cfg.train.seed if d.source == "digits" else None, d.test_fraction, d.normalize)


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
        d.source, d.batch_size, d.test_fraction, d.normalize, d.eval_batch_size, exp.data.input_shape,
        exp.data.num_train, int(exp.data.x_test.shape[0]), c.model, o.name, o.clip_norm, o.accumulation_steps,
        o.cycle_momentum, o.batch_scaling, _static_args(c), t.steps, t.log_every, t.eval_every, t.on_nonfinite,
        json.dumps(c.plateau, sort_keys=True),
    )


def group_key(exp: Experiment, shapes: Any = None) -> tuple:
    """Everything that must agree for two experiments to share one compiled vmapped program."""
    return _config_key(exp) + _structure(_state_shapes(exp) if shapes is None else shapes)


def _family_key(exp: Experiment, shapes: Any) -> tuple:
    """:func:`group_key` with the learning-rate schedule (and the momentum that follows it) left out:
    experiments that differ only in their schedule's family or static options."""
    slots = {"learning_rate"}
    if exp.config.optimizer.cycle_momentum:
        slots.add(_momentum_arg(exp.config.optimizer.name))

    def blank(node: Any) -> Any:
        if isinstance(node, InjectState):
            return node._replace(hyperparams={k: (None if k in slots else v) for k, v in node.hyperparams.items()})
        return node

    return _config_key(exp) + _structure(jax.tree.map(blank, shapes, is_leaf=lambda x: isinstance(x, InjectState)))


def _switch_families(exps: list[Experiment], devs: list[Any]) -> list[tuple]:
    """Group keys after giving experiments that differ only in their schedule family one structure.

    Within such a set, each family (a distinct schedule structure) is a branch of a :class:`lrjax.Switch`;
    every member is rebuilt with ``Switch(branches, index=its family)``, its own schedule in its own
    branch and one member's schedule of each other family in the others (evaluated and discarded). Its
    rates are then its own schedule's (the indexed branch computes exactly what the schedule alone
    computes in a vmapped program), and the set trains in one compiled program.
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
                exps[i] = build_experiment(exps[i].config, exps[i].data, devices=devs[:1],
                                           schedule=lrjax.Switch(branches, index=j))
                keys[i] = group_key(exps[i])
    return keys


# ----------------------------------------------------------------------------- the compiled programs

def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _gather(x: jax.Array, idx: jax.Array, x_axis: int | None, idx_axis: int | None) -> jax.Array:
    if x_axis is None and idx_axis is None:
        return x[idx]
    return jax.vmap(lambda a, i: a[i], in_axes=(x_axis, idx_axis))(x, idx)


def _make_programs(exp: Experiment, *, data_stacked: bool, idx_stacked: bool):
    """``advance(states, buf, xs, ys, idx, start, stop)`` and ``evaluate(states, xt, yt, mask)``."""
    train_step, eval_step = exp.train_step, exp.eval_step
    xa = 0 if data_stacked else None
    ia = 0 if idx_stacked else None
    batch_axis = 0 if (data_stacked or idx_stacked) else None
    vstep = jax.vmap(train_step, in_axes=(0, batch_axis))

    def advance(states, buf, xs, ys, idx, start, stop):
        def body(i, carry):
            st, b = carry
            ii = idx[:, i] if idx_stacked else idx[i]
            batch = {"x": _gather(xs, ii, xa, ia), "y": _gather(ys, ii, xa, ia)}
            new, m = vstep(st, batch)
            k = new.step.shape[0]
            mom = m["momentum"] if "momentum" in m else jnp.full((k,), jnp.nan, jnp.float32)
            row = jnp.stack([m["loss"], m["accuracy"], m["grad_norm"], m["lr"], mom,
                             m["finite"].astype(jnp.float32)], axis=-1).astype(jnp.float32)
            b = jax.lax.dynamic_update_slice(b, row[:, None, :], (jnp.int32(0), i, jnp.int32(0)))
            return new, b

        return jax.lax.fori_loop(start, stop, body, (states, buf))

    def evaluate(states, xt, yt, mask):
        def one(state, x, y):
            def body(acc, b):
                m = eval_step(state, {"x": b[0], "y": b[1], "mask": b[2]})
                return jax.tree.map(jnp.add, acc, m), None

            zero = {"loss_sum": jnp.float32(0), "correct": jnp.float32(0), "count": jnp.float32(0)}
            tot, _ = jax.lax.scan(body, zero, (x, y, mask))
            return jnp.stack([tot["loss_sum"] / tot["count"], tot["correct"] / tot["count"]])

        return jax.vmap(one, in_axes=(0, xa, xa))(states, xt, yt)

    def observe(states, losses):
        import lrjax

        return jax.vmap(lambda s, v: s._replace(opt_state=lrjax.observe_metric(s.opt_state, v)))(states, losses)

    return advance, evaluate, observe


def _segment_program(advance: Callable, evaluate: Callable, observe: Callable, plateau: bool) -> Callable:
    """``segment(states, buf, xs, ys, idx, start, stop, xt, yt, mt) -> (states, buf, evals (K, 2))``: the
    updates up to an evaluation point, the evaluation, and (with a plateau) the metric fed to each
    configuration's optimizer — one compiled program (one compilation instead of three)."""

    def segment(states, buf, xs, ys, idx, start, stop, xt, yt, mt):
        states, buf = advance(states, buf, xs, ys, idx, start, stop)
        ev = evaluate(states, xt, yt, mt)
        if plateau:
            states = observe(states, ev[:, 0])
        return states, buf, ev

    return segment


def _eval_arrays(exp: Experiment, ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test set as padded batches ``(nb, bs, ...)`` plus the mask, like ``Experiment.eval_batches``."""
    xs, ys, ms = [], [], []
    for b in exp.eval_batches(ds.x_test, ds.y_test):
        xs.append(b["x"])
        ys.append(b["y"])
        ms.append(b["mask"])
    return np.stack(xs), np.stack(ys), np.stack(ms)


def _indices(cfg: Config, num_train: int, micro_steps: int) -> np.ndarray:
    it = BatchIterator(num_train, cfg.data.batch_size, cfg.train.seed)
    return np.stack([it.next_indices() for _ in range(micro_steps)]).astype(np.int32)


def _fetch(x: Any) -> Any:
    if jax.process_count() > 1:  # pragma: no cover - multi-host
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(x, tiled=True)
    return jax.device_get(x)


# ----------------------------------------------------------------------------- records

def _py(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _records(cfg: Config, buf: np.ndarray, evals: np.ndarray, accum: int) -> tuple[list, int | None, np.ndarray]:
    """Rows like ``metrics.jsonl`` from per-micro-step metrics ``buf (S, 6)`` and evals ``(E, 2)``."""
    finite = buf[:, 5] > 0.5
    bad = np.flatnonzero(~finite)
    stop_mode = cfg.train.on_nonfinite == "stop"
    bad_update = int(bad[0]) // accum + 1 if (stop_mode and bad.size) else None
    rows: list[tuple[int, int, dict]] = []
    prev = 0
    for p in log_points(cfg):
        lo, hi = prev * accum, p * accum
        prev = p
        if bad_update is not None and hi > (bad_update - 1) * accum:
            break  # lrjax train raises at the log containing the bad step
        w = buf[lo:hi]
        ok = w[:, 5] > 0.5
        n = max(float(ok.sum()), 1.0)
        rec: dict[str, Any] = {"step": p, "lr": _py(w[-1, 3])}
        if not np.isnan(w[-1, 4]):
            rec["momentum"] = _py(w[-1, 4])
        rec.update(train_loss=_py(np.where(ok, w[:, 0], 0).sum() / n),
                   train_accuracy=_py(np.where(ok, w[:, 1], 0).sum() / n),
                   grad_norm=_py(np.where(ok, w[:, 2], 0).sum() / n))
        if cfg.train.on_nonfinite == "skip":
            rec["skipped"] = int((~finite[:hi]).sum())
        rows.append((p, 0, rec))
    for p, (loss, acc) in zip(eval_points(cfg), evals):
        if bad_update is not None and p >= bad_update:
            break
        rows.append((p, 1, {"step": p, "eval_loss": _py(loss), "eval_accuracy": _py(acc)}))
    rows.sort(key=lambda r: (r[0], r[1]))
    rates = buf[accum - 1::accum, 3].copy()
    return [r[2] for r in rows], bad_update, rates


def _summarise(records: list[dict]) -> tuple[dict, dict, dict | None]:
    train = [r for r in records if "train_loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    best = None
    for r in evals:
        acc = r["eval_accuracy"]
        if acc is not None and (best is None or acc > best["eval_accuracy"]):
            best = r
    return (train[-1] if train else {}), (evals[-1] if evals else {}), best


# ----------------------------------------------------------------------------- the driver

def use_cpu_cores(count: int | None = None) -> int:
    """Give JAX's CPU backend one device per core, so that a sweep's configurations train in parallel.

    XLA shows a host CPU as one device, and a sweep's small operations keep it to about one core.
    With one device per core, :func:`train_many` shards the configuration axis over them: each core
    trains its share of the configurations, with no communication between them (on the 2-core CI VM
    ``benchmarks/sweep.py``'s sweep takes ~1.9 s instead of ~2.5 s; see ``benchmarks/RESULTS.md``).
    The ``lrjax sweep`` command calls it first.

    It has to run before JAX starts its backends (before the first computation), and it leaves a count
    you chose alone (``JAX_NUM_CPU_DEVICES``/``jax_num_cpu_devices`` or
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N``). Accelerators are not affected.

    Args:
      count: CPU devices to create (default: the cores this process may run on).

    Returns:
      The CPU device count it set, or 0 when it changed nothing (count chosen already, backends
      already started, or a single core).

    On a 2-core host, as the first thing a program does:

    >>> import jax, lrjax.sweep                      # doctest: +SKIP
    >>> lrjax.sweep.use_cpu_cores()                   # doctest: +SKIP
    2
    >>> jax.device_count()                            # doctest: +SKIP
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
    memory, and on the 2-core CI VM 16 configurations of the digits MLP (22 MB) train ~15 % slower per
    configuration than two chunks of 8 (``benchmarks/RESULTS.md``). Accelerators get the whole group.
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


def train_many(configs: Sequence[Config], *, labels: Sequence[str] | None = None, max_parallel: int | None = None,
               devices: Sequence[Any] | None = None, keep_states: bool = False,
               data: Dataset | None = None, on_group: Callable[[dict], None] | None = None,
               switch_families: bool = True) -> tuple[list[ConfigResult], list[dict[str, Any]]]:
    """Train every config; same-structure configs together under ``jax.vmap`` in one compiled program.

    Args:
      configs: validated training configs (e.g. from :func:`lrjax.sweep.expand`).
      labels: a name per config (default ``config<i>``).
      max_parallel: at most this many configurations per compiled call (equal chunks). ``None``: a
        whole group at once on accelerators; on CPU devices as many as keep their train states and
        gradients within half the last-level cache (at least one per device). Chunks of one group
        reuse the same compiled program.
      devices: devices to shard the configuration axis over (default: every device, all hosts).
      keep_states: return each configuration's final :class:`TrainState` (host numpy) in ``.state``.
      data: a preloaded dataset to use for every config (instead of loading ``data.source``).
      on_group: called with each group's info after it finishes (progress reporting).
      switch_families: configs that differ only in their schedule's family (or its static options)
        train as one group, each schedule a branch of a :class:`lrjax.Switch` (its rates unchanged);
        ``False``: one group per family.

    Returns:
      ``(results, groups)``: one :class:`ConfigResult` per config, in input order, and per group a dict
      with ``members``, ``chunks``, ``chunk_size``, ``devices`` (the configuration axis is sharded over
      that many), ``compile_s``, ``run_s`` (the compiled training and
      evaluation calls alone, inputs already on the device), ``time_s`` (everything), ``data_shared``.

    >>> from lrjax.train import load_config
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
        return _train_many(configs, labels, max_parallel, devices, keep_states, data, on_group, switch_families)


def _train_many(configs, labels, max_parallel, devices, keep_states, data, on_group, switch_families):
    devs = list(jax.devices() if devices is None else devices)

    datasets: dict[tuple, Dataset] = {}
    exps: list[Experiment] = []
    for cfg in configs:
        key = _data_key(cfg)
        if data is not None:
            ds = data
        elif key not in datasets:
            ds = datasets[key] = load_dataset(cfg.data.source, seed=cfg.train.seed,
                                              test_fraction=cfg.data.test_fraction, normalize=cfg.data.normalize)
        else:
            ds = datasets[key]
        exps.append(build_experiment(cfg, ds, devices=devs[:1]))

    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(_switch_families(exps, devs) if switch_families else [group_key(e) for e in exps]):
        groups.setdefault(key, []).append(i)

    results: list[ConfigResult | None] = [None] * len(configs)
    infos: list[dict[str, Any]] = []
    for gi, members in enumerate(groups.values()):
        info = _train_group(gi, [exps[i] for i in members], [labels[i] for i in members], max_parallel,
                            devs, keep_states)
        for i, r in zip(members, info.pop("results")):
            results[i] = r
        info["members"] = [labels[i] for i in members]
        infos.append(info)
        if on_group is not None:
            on_group(info)
    return [r for r in results if r is not None], infos


def _train_group(gi: int, exps: list[Experiment], labels: list[str], max_parallel: int | None,
                 devs: list[Any], keep_states: bool) -> dict[str, Any]:
    lead = exps[0]
    cfg0 = lead.config
    accum = lead.accumulation_steps
    micro = lead.micro_steps
    n = len(exps)
    if max_parallel is None:
        max_parallel = _cache_bound(lead, devs, n)
    count, size, nd = _chunks(n, max_parallel, len(devs))
    mesh = Mesh(np.asarray(devs[:nd]), ("config",))
    stacked_sh, repl_sh = NamedSharding(mesh, P("config")), NamedSharding(mesh, P())
    data_shared = all(e.data is lead.data for e in exps)
    seeds_shared = len({e.config.train.seed for e in exps}) == 1
    j_segment = jax.jit(_segment_program(*_make_programs(lead, data_stacked=not data_shared,
                                                         idx_stacked=not seeds_shared),
                                         plateau=cfg0.plateau is not None), donate_argnums=(0, 1))
    ev_micro = [p * accum for p in eval_points(cfg0)]

    # host inputs shared by every chunk
    idx_cache: dict[int, np.ndarray] = {}

    def idx_of(e: Experiment) -> np.ndarray:
        s = e.config.train.seed
        if s not in idx_cache:
            idx_cache[s] = _indices(e.config, e.data.num_train, micro)
        return idx_cache[s]

    eval_cache: dict[int, tuple] = {}

    def eval_of(e: Experiment) -> tuple:
        if id(e.data) not in eval_cache:
            eval_cache[id(e.data)] = _eval_arrays(e, e.data)
        return eval_cache[id(e.data)]

    results: list[ConfigResult] = []
    compile_s = run_s = 0.0
    t_group = time.perf_counter()
    if data_shared:  # on the devices once for every chunk
        shared_data = put_global((lead.data.x_train, lead.data.y_train, *eval_of(lead)[:2]), repl_sh)
    shared_idx = put_global(idx_of(lead), repl_sh) if seeds_shared else None
    mt = put_global(eval_of(lead)[2], repl_sh)  # the padding mask: one test-set size per group
    for c in range(count):
        t0 = time.perf_counter()
        part = exps[c * size:(c + 1) * size]
        padded = part + [part[-1]] * (size - len(part))
        states = put_global(_stack([jax.device_get(e.init_state(seed_key(e.config.train.seed)))
                                    for e in padded]), stacked_sh)
        if data_shared:
            xs, ys, xt, yt = shared_data
        else:
            xs, ys = put_global((np.stack([e.data.x_train for e in padded]),
                                 np.stack([e.data.y_train for e in padded])), stacked_sh)
            evs = [eval_of(e) for e in padded]
            xt, yt = put_global((np.stack([v[0] for v in evs]), np.stack([v[1] for v in evs])), stacked_sh)
        idx = shared_idx if seeds_shared else put_global(np.stack([idx_of(e) for e in padded]), stacked_sh)
        buf = put_global(np.zeros((size, micro, len(_COLS)), np.float32), stacked_sh)
        if c == 0:  # compile explicitly once per group (timed); later chunks hit the cache
            tc = time.perf_counter()
            j_segment.lower(states, buf, xs, ys, idx, np.int32(0), np.int32(1), xt, yt, mt).compile()
            compile_s = time.perf_counter() - tc
        evals = []
        start = 0
        jax.block_until_ready((states, xs, idx))
        t_run = time.perf_counter()
        for stop in ev_micro:
            states, buf, ev = j_segment(states, buf, xs, ys, idx, np.int32(start), np.int32(stop), xt, yt, mt)
            evals.append(ev)
            start = stop
        host_buf, host_evals = _fetch((buf, evals))
        host_evals = np.stack(host_evals, axis=1)
        run_s += time.perf_counter() - t_run
        host_states = _fetch(states) if keep_states else None
        dt = time.perf_counter() - t0
        for k, e in enumerate(part):
            recs, bad, rates = _records(e.config, host_buf[k], host_evals[k], accum)
            ft, fe, be = _summarise(recs)
            st = jax.tree.map(lambda a: a[k], host_states) if keep_states else None
            results.append(ConfigResult(
                label=labels[c * size + k], config=e.config, records=recs, final_train=ft,
                final_eval=fe if bad is None else {}, best_eval=be, status="completed" if bad is None else "nonfinite",
                nonfinite_step=bad, group=gi, chunk_size=size, time_s=round(dt, 3), rates=rates, state=st))
    return {"group": gi, "chunks": count, "chunk_size": size, "devices": nd, "compile_s": round(compile_s, 3),
            "run_s": round(run_s, 4),
            "time_s": round(time.perf_counter() - t_group, 3), "data_shared": data_shared,
            "batches_shared": data_shared and seeds_shared, "results": results}
