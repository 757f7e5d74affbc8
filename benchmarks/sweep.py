"""Sweep benchmark: one vmapped program vs one-at-a-time vs the optax idiom (a compile per configuration).

CPU mode (default): 16 warmup + cosine configurations (4 peaks x 4 warmup lengths) of the digits MLP
(64-256-256-10, AdamW, batch 64), ``--steps`` updates each, evaluated every ``--eval-every``, three ways:

1. lrjax sweep: ``lrjax.sweep.train_many`` — the 16 stacked, one compiled program;
2. lrjax one at a time: the same engine with ``max_parallel=1`` — 16 runs reusing one compiled program;
3. the optax idiom: per configuration a new ``optax.adamw(optax.warmup_cosine_decay_schedule(...))`` and a
   new ``@jax.jit`` step closing over it (as optax's docs write a training loop), so every configuration
   compiles again (optax issue #577);
4. a hand-written ``jax.vmap`` of the same step on one device (the CPU's floor for one program): the 16
   parameter and AdamW states stacked, the warmup + cosine rate computed from each configuration's
   (peak, warmup) inside the step, ``lax.fori_loop`` over each span between evaluations and the vmapped test
   evaluation in the same jitted, donated call — what a JAX user writes by hand for a sweep.

Wall time includes compilation (the persistent compilation cache is off). Each way runs in a fresh process
of its own, so none reuses what another compiled or cached (the model's init program, eager operations); each
loads the data, builds the model structure and initialises one state before its timing starts. Prints both ratios; the last line is
``optax-idiom / lrjax-sweep``. Like ``lrjax sweep``, the script gives JAX one CPU device per core
(:func:`lrjax.sweep.use_cpu_cores`): the sweep shards its configurations over them, the other two ways
run on the first device as a plain JAX program does (``--cpu-devices 1`` for XLA's single host device).

GPU mode (``--gpu``, runs on whatever device JAX has): 32 configurations of a 784-512-512-10 MLP, AdamW,
batch 128, 500 steps, vmapped, on synthetic data. Prints the step's bytes (XLA's cost analysis of the
compiled step, and the 40 bytes/parameter model: forward and backward reads of the weights, the gradient
write, AdamW's reads and writes of parameters and both moments), the copy bandwidth measured on the same
device, the floor ``bytes x steps / bandwidth`` and ``achieved/floor``.

    python benchmarks/sweep.py                # CPU comparison
    python benchmarks/sweep.py --gpu          # memory-bound floor on an accelerator
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np

PEAKS = (1e-3, 3e-3, 1e-2, 3e-2)
WARMUPS = (0, 30, 60, 120)


def _configs(steps: int, eval_every: int):
    from lrjax.engine import load_config

    base = [f"train.steps={steps}", f"train.eval_every={eval_every}", f"train.log_every={eval_every}",
            "train.progress=false"]
    return [load_config(None, base + [f"schedule.schedule.peak={p}", f"schedule.warmup_steps={w}"])
            for p in PEAKS for w in WARMUPS]


def optax_idiom(configs, data) -> list[float]:
    """A new optimizer and a new jitted step per configuration; returns final eval accuracies."""
    import optax
    from flax import nnx

    from lrjax.engine import BatchIterator, build_experiment, make_model

    exp = build_experiment(configs[0], data=data)
    graphdef = exp.graphdef
    xt, yt = jnp.asarray(data.x_test), jnp.asarray(data.y_test)

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def accuracy(params):  # does not depend on the schedule: compiled once
        return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(xt), -1) == yt)

    accs = []
    for cfg in configs:
        peak = cfg.schedule["schedule"]["peak"]
        warm = int(cfg.schedule["warmup_steps"])
        steps = cfg.train.steps
        schedule = optax.warmup_cosine_decay_schedule(0.0, peak, warm, steps, end_value=0.01 * peak)
        optimizer = optax.adamw(schedule, weight_decay=1e-4)
        model = make_model(cfg.model, data.input_shape, data.num_classes, nnx.Rngs(params=jax.random.PRNGKey(0)))
        params = nnx.state(model, nnx.Param)
        opt_state = optimizer.init(params)

        @jax.jit
        def step(params, opt_state, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        it = BatchIterator(data.num_train, cfg.data.batch_size, cfg.train.seed)
        for t in range(steps):
            idx = it.next_indices()
            params, opt_state, loss = step(params, opt_state, data.x_train[idx], data.y_train[idx])
            if (t + 1) % cfg.train.eval_every == 0 or t + 1 == steps:
                acc = accuracy(params)
        accs.append(float(acc))
    return accs


def hand_vmap(configs, data) -> list[float]:
    """The hand-written one-device vmap (see the module docs); returns final test accuracies."""
    import optax
    from flax import nnx

    from lrjax.engine import BatchIterator, build_experiment, seed_key

    dev = jax.devices()[0]
    exp = build_experiment(configs[0], data=data)
    graphdef, steps, every = exp.graphdef, configs[0].train.steps, configs[0].train.eval_every
    peaks = jnp.asarray([c.schedule["schedule"]["peak"] for c in configs], jnp.float32)
    warms = jnp.asarray([int(c.schedule["warmup_steps"]) for c in configs], jnp.float32)
    params = jax.tree.map(lambda *p: jnp.stack(p), *[exp.model.init(seed_key(c.train.seed))[0] for c in configs])

    def rate(t, peak, warm):  # optax.warmup_cosine_decay_schedule(0, peak, warm, steps, 0.01 * peak)
        t = t.astype(jnp.float32)
        up = peak * t / jnp.maximum(warm, 1.0)
        p = jnp.clip((t - warm) / jnp.maximum(steps - warm, 1.0), 0.0, 1.0)
        down = 0.01 * peak + (peak - 0.01 * peak) * 0.5 * (1 + jnp.cos(jnp.pi * p))
        return jnp.where(t < warm, up, down)

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y).mean()

    def step(p, o, t, peak, warm, x, y):
        grads = jax.grad(loss_fn)(p, x, y)
        updates, o = optax.adamw(rate(t, peak, warm), weight_decay=1e-4).update(grads, o, p)
        return optax.apply_updates(p, updates), o

    opt = jax.vmap(lambda p: optax.adamw(1e-3, weight_decay=1e-4).init(p))(params)
    xtr, ytr = jax.device_put((data.x_train, data.y_train), dev)
    xt, yt = jax.device_put((data.x_test, data.y_test), dev)
    index = jax.device_put(BatchIterator(data.num_train, configs[0].data.batch_size, 0).take(steps), dev)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def span(p, o, lo, hi):
        def body(t, carry):
            p, o = carry
            rows = index[t]
            return jax.vmap(step, in_axes=(0, 0, None, 0, 0, None, None))(p, o, t, peaks, warms, xtr[rows], ytr[rows])

        p, o = jax.lax.fori_loop(lo, hi, body, (p, o))
        acc = jax.vmap(lambda q: jnp.mean(jnp.argmax(nnx.merge(graphdef, q)(xt), -1) == yt))(p)
        return p, o, acc

    params, opt = jax.device_put((params, opt), dev)
    for lo in range(0, steps, every):
        params, opt, acc = span(params, opt, lo, min(lo + every, steps))
    return [float(a) for a in acc]


WAYS = ("sweep", "one", "optax", "hand")


def one_way(args) -> dict:
    """Time one way in this process (data loaded and the model structure built first, as for every way)."""
    from lrjax.engine import build_experiment, load_dataset, seed_key
    from lrjax.sweep import train_many

    configs = _configs(args.steps, args.eval_every)
    data = load_dataset("digits", seed=0)
    e = build_experiment(configs[0], data=data)
    jax.block_until_ready(e.init_state(seed_key(0)))  # the compiler's first use, paid before timing by every way
    out: dict = {"way": args.way}
    t = time.perf_counter()
    if args.way in ("sweep", "one"):
        res, groups = train_many(configs, data=data, max_parallel=args.max_parallel if args.way == "sweep" else 1)
        out["acc"] = [r.final_eval["test_accuracy"] for r in res]
        g = groups[0]
        out["group"] = {k: g[k] for k in ("chunks", "chunk_size", "devices", "compile_s", "run_s")}
        out["groups"] = len(groups)
    else:
        out["acc"] = (optax_idiom if args.way == "optax" else hand_vmap)(configs, data)
    out["seconds"] = time.perf_counter() - t
    return out


def cpu(args) -> None:
    """Each way in a fresh process of its own (nothing compiled or cached by another way), in turn."""
    import json
    import subprocess

    if args.way:
        print(json.dumps(one_way(args)))
        return
    configs = _configs(args.steps, args.eval_every)
    print(f"{len(configs)} warmup-cosine configs (peaks {PEAKS} x warmups {WARMUPS}), digits MLP "
          f"{configs[0].model.hidden}, AdamW, batch {configs[0].data.batch_size}, {args.steps} steps, eval every "
          f"{args.eval_every}; "
          f"{jax.device_count()} {jax.devices()[0].platform} device(s), {os.cpu_count()} cpu(s); each way in a "
          "fresh process", flush=True)
    r = {}
    for way in WAYS:
        cmd = [sys.executable, os.path.abspath(__file__), "--way", way, "--steps", str(args.steps), "--eval-every",
               str(args.eval_every)]
        if args.max_parallel is not None:
            cmd += ["--max-parallel", str(args.max_parallel)]
        if args.cpu_devices is not None:
            cmd += ["--cpu-devices", str(args.cpu_devices)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"})
        if done.returncode:
            raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
        r[way] = json.loads(done.stdout.strip().splitlines()[-1])
        if way == "sweep":
            g = r[way]["group"]
            print(f"lrjax sweep        {r[way]['seconds']:7.2f} s  ({r[way]['groups']} compiled group: {g['chunks']} "
                  f"chunk(s) of {g['chunk_size']} on {g['devices']} device(s), compile {g['compile_s']:.2f} s, "
                  f"training {g['run_s']:.2f} s)", flush=True)
        elif way == "one":
            g = r[way]["group"]
            print(f"lrjax one-at-a-time{r[way]['seconds']:7.2f} s  ({g['chunks']} runs, one compile "
                  f"{g['compile_s']:.2f} s)", flush=True)
        elif way == "optax":
            print(f"optax idiom        {r[way]['seconds']:7.2f} s  ({len(configs)} compiles)", flush=True)
        else:
            print(f"hand-written vmap   {r[way]['seconds']:7.2f} s  (one device, one compiled program)", flush=True)
    acc = {k: v["acc"] for k, v in r.items()}
    t = {k: v["seconds"] for k, v in r.items()}
    diff = max(abs(a - b) for a, b in zip(acc["sweep"], acc["one"]))
    print(f"final eval accuracy: sweep best {max(acc['sweep']):.4f}, max |sweep - one-at-a-time| {diff:.2e}, "
          f"optax idiom best {max(acc['optax']):.4f}")
    print(f"hand-written vmap best {max(acc['hand']):.4f}")
    print(f"hand-written one-device vmap / lrjax-sweep: {t['hand'] / t['sweep']:.2f}x (>= 1: at or under the floor)")
    print(f"lrjax one-at-a-time / lrjax-sweep: {t['one'] / t['sweep']:.2f}x")
    print(f"optax-idiom / lrjax-sweep: {t['optax'] / t['sweep']:.2f}x")


# ----------------------------------------------------------------------------- GPU mode

def copy_bandwidth(nbytes: int = 1 << 30, reps: int = 20) -> float:
    """Bytes/s of a device copy (read + write of ``nbytes``), best of ``reps``."""
    n = nbytes // 4
    x = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda a: a * 1.0000001)
    y = f(x).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        y = f(x)
        y.block_until_ready()
        best = min(best, time.perf_counter() - t)
    del y
    return 2 * n * 4 / best


def gpu(args) -> None:
    from lrjax.engine import COLUMNS, Dataset, Source, advance, build_experiment, load_config
    from lrjax.sweep import train_many

    K, steps, batch = args.configs, args.gpu_steps, 128
    rng = np.random.default_rng(0)
    n = 60000
    x = rng.standard_normal((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    data = Dataset("synthetic-784", x, y, x[:1000], y[:1000], 10)
    peaks = np.geomspace(1e-4, 1e-2, K)
    configs = [load_config(None, ["model.hidden=[512, 512]", f"data.batch_size={batch}", f"train.steps={steps}",
                                  f"train.eval_every={steps}", f"train.log_every={steps}",
                                  f"schedule.schedule.peak={float(p)}"]) for p in peaks]
    exp = build_experiment(configs[0], data=data)
    nparams = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(jax.eval_shape(exp.init_state, jax.ShapeDtypeStruct((2,), jnp.uint32)).params))
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}); {K} configs x {nparams:,} params, batch {batch}, {steps} steps")

    # bytes of one vmapped step (the engine's runner over one micro-step), as XLA counts them
    states = jax.vmap(exp.init_state)(jax.vmap(jax.random.key_data)(jax.random.split(jax.random.key(0), K)))
    source = Source({"x": jnp.asarray(x[:batch * 4]), "y": jnp.asarray(y[:batch * 4])},
                    jnp.zeros((steps, batch), jnp.int32), 0)
    one = lambda s: advance(exp.train_step, COLUMNS, s, source, 0, 1, rows=1)[:2]  # noqa: E731
    one_step = jax.jit(jax.vmap(one))
    cost = one_step.lower(states).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_bytes = float(cost.get("bytes accessed", float("nan"))) if cost else float("nan")
    model_bytes = 40.0 * nparams * K
    bw = copy_bandwidth(args.copy_mb << 20)
    print(f"copy bandwidth: {bw / 1e9:.0f} GB/s")
    print(f"bytes/step: model 40 B/param x {K} x {nparams:,} = {model_bytes / 1e9:.3f} GB; "
          f"XLA cost analysis {xla_bytes / 1e9:.3f} GB")

    t = time.perf_counter()
    res, groups = train_many(configs, data=data)
    total = time.perf_counter() - t
    g = groups[0]
    run_s = g["run_s"]  # the compiled training + eval calls alone (compiled beforehand, inputs on device)
    for name, b in (("model", model_bytes), ("xla", xla_bytes)):
        floor = b * steps / bw
        print(f"floor ({name} bytes): {floor:.3f} s for {steps} steps; measured {run_s:.3f} s "
              f"-> achieved/floor {floor / run_s:.2f}")
    print(f"whole call {total:.2f} s (compile {g['compile_s']:.2f} s, training {run_s:.3f} s, the rest: "
          f"building {K} states and moving data)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--gpu", action="store_true", help="the memory-bound floor benchmark (32 configs, 784-512-512-10)")
    p.add_argument("--configs", type=int, default=32)
    p.add_argument("--gpu-steps", type=int, default=500)
    p.add_argument("--copy-mb", type=int, default=1024, help="buffer size of the copy-bandwidth measurement")
    p.add_argument("--max-parallel", type=int, default=None,
                   help="CPU mode: the sweep's max_parallel (default: the engine's choice, see train_many)")
    p.add_argument("--way", choices=WAYS, default=None, help=argparse.SUPPRESS)  # one way, in this process
    p.add_argument("--cpu-devices", type=int, default=None,
                   help="CPU mode: JAX CPU devices (default: one per core, as `lrjax sweep` sets them; 1: XLA's "
                        "single host device)")
    args = p.parse_args(argv)
    if not args.gpu:
        from lrjax.sweep import use_cpu_cores

        use_cpu_cores(args.cpu_devices)  # before JAX starts its backends
    if not args.way:
        print(f"lrjax sweep benchmark  {time.strftime('%Y-%m-%d %H:%M')}  {platform.platform()}  python "
              f"{platform.python_version()}  jax {jax.__version__}")
    (gpu if args.gpu else cpu)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
