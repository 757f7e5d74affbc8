"""Language-model training speed (issue 19): lrjax's step against a plain Flax NNX + optax loop, and a sweep of
five schedules in one vmapped program against running them one after another.

1. **The step.** The same byte-level transformer (``lrjax.engine``'s ``kind: transformer``, GPT-2 shapes), the
   same initial parameters, the same windows (``window_batch`` of the standard-library corpus, drawn on the
   device), AdamW with gradient clipping and a warmup + cosine rate, three ways:

   * ``lrjax``: the engine's segment program (``Experiment.advance``: a ``fori_loop`` over ``--chunk`` updates,
     the schedule in the optimizer state, a row of metrics per update — loss, accuracy, gradient norm, rate —
     the way ``lrjax train`` runs between two log points, evaluation skipped);
   * ``plain-jit``: ``nnx.split`` once, then a ``jax.jit`` step (parameters and optimizer state donated) called
     once per update from Python: ``nnx.merge``, the loss, ``jax.value_and_grad``, ``optax.chain(
     clip_by_global_norm, adamw(warmup_cosine_decay_schedule))``;
   * ``plain-loop``: the same step inside ``jax.lax.fori_loop``, ``--chunk`` updates per compiled call (what lrjax
     does, without its metrics and schedule-in-state);
   * ``nnx-optimizer``: ``nnx.Optimizer`` and an ``nnx.jit`` step (flax's documented loop).

   They run interleaved (each round times ``--steps`` updates of every way, in a rotating order, after a
   compiled warm-up; each waits for its last update: dispatch is asynchronous), and the ratio is the median
   over rounds of tokens/s relative to the fastest plain loop (target >= 0.95). The first update's loss of all
   four must agree (same model, same batch).

2. **Five schedules.** The five AdamW schedules of ``configs/sweeps/lm_schedules.yaml`` (warmup + cosine to 10 %,
   linear to zero, WSD with linear and 1-sqrt cooldowns, constant) at one peak, ``--sweep-steps`` updates each
   with one evaluation at the end: ``lrjax.sweep.train_many`` (one vmapped program, an ``lrjax.Switch`` picks each
   schedule) against five ``lrjax.train.train`` runs one after another (each builds and compiles its own program,
   writes its run directory, as five ``lrjax train`` commands would, minus the process start), and against
   ``train_many(max_parallel=1)`` (one program, the five in turn). Wall times include compilation; the
   persistent compilation cache is off.

CPU (default): the model of ``configs/lm.yaml`` (d_model 128, 2 layers, 4 heads, windows of 128, batch 32) for
the step; the model of the schedule comparison (d_model 64, 2 layers, windows of 64) for the sweep. JAX sees one
CPU device (XLA's host device, which uses every core): the loops and the sweep run on it alike.

GPU (``--gpu``): a 12-layer d_model 768 model (GPT-2 small's width and depth; windows of 512, batch 32) for the
step and a 6-layer d_model 384 one for the sweep, on whatever device JAX has. Every size is a flag, so the GPU
mode runs on a CPU with tiny sizes (``--gpu --d-model 32 --layers 1 --context 32 --batch 4 --steps 3``).

    python benchmarks/lm_step.py                       # CPU, both parts
    python benchmarks/lm_step.py --part step --rounds 7
    python benchmarks/lm_step.py --gpu                 # GPU sizes
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lrjax.engine import build_experiment, load_config
from lrjax.engine._text import window_batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULES = ("cosine-10%", "linear-to-0", "wsd-linear", "wsd-1-sqrt", "constant")


def _config(a, *, d_model, layers, context, batch, steps, peak, extra=()):
    return load_config(None, [
        "data.source=text", f"data.context={context}", f"data.batch_size={batch}", "data.validation_fraction=0.05",
        "data.test_fraction=0.05", "data.eval_windows=64", "model.kind=transformer", f"model.d_model={d_model}",
        f"model.layers={layers}", f"model.heads={a.heads}", "optimizer.name=adamw",
        "optimizer.args={b1: 0.9, b2: 0.95, weight_decay: 0.1}", "optimizer.clip_norm=1.0",
        f"schedule={{name: warmup, warmup_steps: 5%, schedule: {{name: cosine_decay, peak: {peak}, decay_steps: 95%, "
        "floor: 0.1, floor_mode: relative}}", f"train.steps={steps}", f"train.log_every={steps}",
        f"train.eval_every={steps}", f"train.checkpoint_every={10 * steps}", "train.progress=false",
        "train.compilation_cache=false", *extra])


# ----------------------------------------------------------------------------- part 1: the step

def _plain_tx(total: int, peak: float) -> optax.GradientTransformation:
    warm = max(1, round(0.05 * total))
    sched = optax.warmup_cosine_decay_schedule(0.0, peak, warm, total, end_value=0.1 * peak)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, b1=0.9, b2=0.95, weight_decay=0.1))


def _plain_jit(exp, params, stream, key, *, total, peak, batch, context):
    """The functional NNX loop: split once, one jitted, donated step per update."""
    graphdef = exp.graphdef
    tx = _plain_tx(total, peak)

    def loss_fn(p, x, y):
        logits = nnx.merge(graphdef, p)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(p, opt_state, stream, key, i):
        b = window_batch(stream, key, i, batch_size=batch, context=context)
        loss, grads = jax.value_and_grad(loss_fn)(p, b["x"], b["y"])
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    step = jax.jit(step.__wrapped__, donate_argnums=(0, 1))
    state = {"p": jax.tree.map(jnp.array, params), "o": None}
    state["o"] = tx.init(state["p"])

    def run(start: int, n: int) -> jax.Array:
        first = None
        for i in range(start, start + n):
            state["p"], state["o"], loss = step(state["p"], state["o"], stream, key, jnp.int32(i))
            first = loss if first is None else first   # the loss of update `start`
        jax.block_until_ready(state)  # every update done (dispatch is asynchronous)
        return first

    return run


def _plain_loop(exp, params, stream, key, *, total, peak, batch, context, chunk):
    """The functional loop with ``chunk`` updates per compiled call (``lax.fori_loop``), as lrjax runs them."""
    graphdef = exp.graphdef
    tx = _plain_tx(total, peak)

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y).mean()

    def span(p, opt_state, stream, key, start, stop):
        def one(i, carry):
            p, opt_state, first = carry
            b = window_batch(stream, key, i, batch_size=batch, context=context)
            loss, grads = jax.value_and_grad(loss_fn)(p, b["x"], b["y"])
            updates, opt_state = tx.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state, jnp.where(i == start, loss, first)

        return jax.lax.fori_loop(start, stop, one, (p, opt_state, jnp.float32(0)))

    span = jax.jit(span, donate_argnums=(0, 1))
    state = {"p": jax.tree.map(jnp.array, params), "o": None}
    state["o"] = tx.init(state["p"])

    def run(start: int, n: int) -> jax.Array:
        first = None
        for s in range(start, start + n, chunk):
            state["p"], state["o"], loss = span(state["p"], state["o"], stream, key, jnp.int32(s),
                                                jnp.int32(min(s + chunk, start + n)))
            first = loss if first is None else first
        jax.block_until_ready(state)
        return first

    return run


def _nnx_optimizer(exp, params, stream, key, *, total, peak, batch, context):
    """flax's documented loop: nnx.Optimizer and an nnx.jit step."""
    model = nnx.merge(exp.graphdef, jax.tree.map(jnp.array, params))
    optimizer = nnx.Optimizer(model, _plain_tx(total, peak), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, stream, key, i):
        b = window_batch(stream, key, i, batch_size=batch, context=context)

        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(b["x"]), b["y"]).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    def run(start: int, n: int) -> jax.Array:
        first = None
        for i in range(start, start + n):
            loss = step(model, optimizer, stream, key, jnp.int32(i))
            first = loss if first is None else first
        jax.block_until_ready(nnx.state(model))
        return first

    return run


def _lrjax(exp, *, chunk):
    """The engine's segment program, ``chunk`` updates per call (lrjax train between two log points)."""
    state = {"s": exp.initial_state(exp.config.train.seed)}
    source = exp.source(exp.run_index(1))

    def run(start: int, n: int) -> jax.Array:
        first = None
        for s in range(start, start + n, chunk):
            state["s"], table, _ = exp.advance(state["s"], source, s, min(s + chunk, start + n), rows=chunk)
            first = table[0, 0] if first is None else first   # the loss of update `start`
        jax.block_until_ready(state["s"])
        return first

    return run


def step_part(a) -> dict:
    total = a.chunk + a.warmup_steps + a.rounds * a.steps + 10
    cfg = _config(a, d_model=a.d_model, layers=a.layers, context=a.context, batch=a.batch, steps=total,
                  peak=a.peak)
    exp = build_experiment(cfg)
    params = jax.device_get(exp.initial_state(cfg.train.seed).params)
    stream = exp.source(exp.run_index(1)).arrays
    key = jnp.asarray(exp.data_key())
    kw = dict(total=total, peak=a.peak, batch=a.batch, context=a.context)
    tokens = a.batch * a.context
    print(f"step: transformer d_model {a.d_model}, {a.layers} layers, {a.heads} heads, windows of {a.context}, "
          f"batch {a.batch} ({tokens} tokens/update), {exp.num_parameters:,} parameters; corpus "
          f"{exp.data.info['num_bytes']:,} bytes; {jax.devices()[0].platform} x {jax.device_count()}", flush=True)

    # the same first update: the three losses of window 0 from the same parameters (each call compiles its way)
    runs = {"lrjax": _lrjax(exp, chunk=a.chunk), "plain-jit": _plain_jit(exp, params, stream, key, **kw),
            "plain-loop": _plain_loop(exp, params, stream, key, chunk=a.chunk, **kw),
            "nnx-optimizer": _nnx_optimizer(exp, params, stream, key, **kw)}
    first = {name: float(jax.device_get(run(0, a.chunk))) for name, run in runs.items()}
    print("  first-update loss: " + ", ".join(f"{n} {v:.6f}" for n, v in first.items()), flush=True)
    agree = max(first.values()) - min(first.values()) < 1e-4
    # warm-up: every way compiled and run a little
    pos = dict.fromkeys(runs, a.chunk)
    for name, run in runs.items():
        n = a.warmup_steps
        jax.block_until_ready(run(pos[name], n))
        pos[name] += n
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(a.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            t = time.perf_counter()
            jax.block_until_ready(runs[name](pos[name], a.steps))
            times[name].append(time.perf_counter() - t)
            pos[name] += a.steps
    tps = {n: [a.steps * tokens / t for t in times[n]] for n in names}
    for n in names:
        print(f"  {n:14s} {statistics.median(tps[n]):10.0f} tokens/s  ({statistics.median(times[n]) / a.steps * 1e3:.1f}"
              f" ms/update, median of {a.rounds} rounds of {a.steps})", flush=True)
    best_plain = max(("plain-jit", "plain-loop", "nnx-optimizer"), key=lambda n: statistics.median(tps[n]))
    ratios = [tps["lrjax"][r] / tps[best_plain][r] for r in range(a.rounds)]
    ratio = statistics.median(ratios)
    print(f"  lrjax / {best_plain} throughput = {ratio:.3f} (median per-round ratio; target >= 0.95); "
          f"first losses agree: {agree}", flush=True)
    return {"ratio": ratio, "against": best_plain, "agree": agree,
            "tokens_per_s": {n: statistics.median(v) for n, v in tps.items()}}


# ----------------------------------------------------------------------------- part 2: five schedules

def _schedules(peak: float) -> dict[str, str]:
    return {
        "cosine-10%": f"{{name: warmup, warmup_steps: 5%, schedule: {{name: cosine_decay, peak: {peak}, "
                      "decay_steps: 95%, floor: 0.1, floor_mode: relative}}",
        "linear-to-0": f"{{name: warmup, warmup_steps: 5%, schedule: {{name: linear, init_value: {peak}, "
                       "end_value: 0.0, steps: 95%}}",
        "wsd-linear": f"{{name: warmup_stable_decay, peak: {peak}, warmup_steps: 5%, stable_steps: 75%, "
                      "decay_steps: 20%, decay_shape: linear}",
        "wsd-1-sqrt": f"{{name: warmup_stable_decay, peak: {peak}, warmup_steps: 5%, stable_steps: 75%, "
                      "decay_steps: 20%, decay_shape: 1-sqrt}",
        "constant": f"{{name: warmup, warmup_steps: 5%, schedule: {{name: constant, value: {peak}}}}}",
    }


def sweep_part(a) -> dict:
    from lrjax.sweep import train_many
    from lrjax.train import train

    cfgs = [_config(a, d_model=a.sweep_d_model, layers=a.sweep_layers, context=a.sweep_context, batch=a.batch,
                    steps=a.sweep_steps, peak=a.peak, extra=[f"schedule={s}"]) for s in _schedules(a.peak).values()]
    build_experiment(cfgs[0])  # the corpus read once before timing (a warm disk cache for all three)
    print(f"sweep: {len(cfgs)} schedules, transformer d_model {a.sweep_d_model}, {a.sweep_layers} layers, windows "
          f"of {a.sweep_context}, batch {a.batch}, {a.sweep_steps} updates each, one evaluation", flush=True)
    t = time.perf_counter()
    res, groups = train_many(cfgs, labels=list(SCHEDULES))
    vm = time.perf_counter() - t
    print(f"  lrjax sweep (one vmapped program):   {vm:7.2f} s  ({len(groups)} compilation(s), compile "
          f"{sum(g['compile_s'] for g in groups):.2f} s)", flush=True)
    t = time.perf_counter()
    res1, _ = train_many(cfgs, labels=list(SCHEDULES), max_parallel=1)
    one = time.perf_counter() - t
    print(f"  train_many(max_parallel=1):          {one:7.2f} s  (one program, the five in turn)", flush=True)
    t = time.perf_counter()
    alone = []
    with tempfile.TemporaryDirectory() as d:
        for i, c in enumerate(cfgs):
            alone.append(train(c, out_dir=os.path.join(d, str(i)), progress=False, plot=False, verbose=False))
    seq = time.perf_counter() - t
    print(f"  five lrjax train runs in turn:       {seq:7.2f} s  (five compilations)", flush=True)
    split = "val"
    diffs = [abs(r.final_eval[f"{split}_loss"] - s["final_eval"][f"{split}_loss"]) for r, s in zip(res, alone)]
    print(f"  final val_loss, sweep vs alone: max |difference| {max(diffs):.2e}", flush=True)
    print(f"  one after another / sweep = {seq / vm:.2f}x (train runs), {one / vm:.2f}x (max_parallel=1)", flush=True)
    return {"sweep_s": vm, "one_program_s": one, "train_runs_s": seq, "ratio": seq / vm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", action="store_true", help="GPU sizes (every size is still a flag)")
    ap.add_argument("--part", choices=("step", "sweep", "both"), default="both")
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--context", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, help="updates per timed round (step part)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup-steps", type=int, help="updates run untimed before the rounds")
    ap.add_argument("--chunk", type=int, help="lrjax updates per compiled call (lrjax train's log span)")
    ap.add_argument("--peak", type=float, default=3e-3)
    ap.add_argument("--sweep-d-model", type=int)
    ap.add_argument("--sweep-layers", type=int)
    ap.add_argument("--sweep-context", type=int)
    ap.add_argument("--sweep-steps", type=int)
    a = ap.parse_args()
    cpu = dict(d_model=128, layers=2, heads=4, context=128, batch=32, steps=25, warmup_steps=10, chunk=25,
               sweep_d_model=64, sweep_layers=2, sweep_context=64, sweep_steps=200)
    gpu = dict(d_model=768, layers=12, heads=12, context=512, batch=32, steps=50, warmup_steps=20, chunk=50,
               sweep_d_model=384, sweep_layers=6, sweep_context=256, sweep_steps=500)
    for k, v in (gpu if a.gpu else cpu).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    print(f"lrjax benchmarks/lm_step.py {datetime.datetime.now():%Y-%m-%d %H:%M}: {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} cpu(s), load {os.getloadavg()[0]:.1f}; jax {jax.__version__}, Python "
          f"{sys.version.split()[0]}; {jax.devices()[0].device_kind}", flush=True)
    if a.part in ("step", "both"):
        step_part(a)
    if a.part in ("sweep", "both"):
        sweep_part(a)


if __name__ == "__main__":
    main()
