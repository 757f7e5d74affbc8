"""Overhead of a state-held schedule in a jitted train step.

Three jitted MLP train steps (Adam-W, buffers donated) that differ only in the learning
rate: a constant (``optax.adamw(1e-3)``), a warmup-cosine schedule held in the state via
``lrjax.inject``, and optax's own ``warmup_cosine_decay_schedule`` closed over by the
step. They run interleaved — each round times a block of steps of every variant, in a
rotating order — and each ratio is the median over rounds of the per-round ratio, so
drifts in machine load hit all variants alike (the ratio of the best block times is
printed too).

    python benchmarks/step_overhead.py                   # default sizes
    python benchmarks/step_overhead.py --widths 256 --rounds 10 --steps 50

The last line is the worst (largest) lrjax/constant ratio over the model sizes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax


def mlp_init(key, widths):
    params = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        k = jax.random.fold_in(key, i)
        params.append({"w": jax.random.normal(k, (a, b), jnp.float32) / np.sqrt(a), "b": jnp.zeros(b, jnp.float32)})
    return params


def mlp_loss(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def make_step(tx):
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def variants(total_steps):
    warm, peak = total_steps // 10, 1e-3
    sched = lrjax.Warmup(lrjax.CosineDecay(peak, total_steps - warm), warmup_steps=warm)
    return {
        "constant": optax.adamw(peak, weight_decay=1e-4),
        "lrjax": lrjax.inject(optax.adamw, learning_rate=sched, weight_decay=1e-4),
        "optax_schedule": optax.adamw(
            optax.warmup_cosine_decay_schedule(0.0, peak, warm, total_steps), weight_decay=1e-4
        ),
    }


def bench(width, depth, batch, steps, rounds, warmup_rounds=2):
    key = jax.random.PRNGKey(0)
    widths = [784] + [width] * depth + [10]
    x = jax.random.normal(jax.random.fold_in(key, 100), (batch, 784), jnp.float32)
    y = jax.random.randint(jax.random.fold_in(key, 101), (batch,), 0, 10)
    runs = {}
    for name, tx in variants(steps * (rounds + warmup_rounds)).items():
        params = mlp_init(key, widths)
        runs[name] = [make_step(tx), params, tx.init(params)]
    names = list(runs)
    times = {n: [] for n in names}
    for r in range(rounds + warmup_rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            step, params, state = runs[n]
            t0 = time.perf_counter()
            for _ in range(steps):
                params, state, loss = step(params, state, x, y)
            loss.block_until_ready()
            dt = (time.perf_counter() - t0) / steps
            runs[n][1:] = [params, state]
            if r >= warmup_rounds:
                times[n].append(dt)
    base = np.asarray(times["constant"])
    out = {n: statistics.median(np.asarray(times[n]) / base) for n in names if n != "constant"}
    best = {n: min(times[n]) / min(times["constant"]) for n in names if n != "constant"}
    extra_us = statistics.median((np.asarray(times["lrjax"]) - base) * 1e6)
    return statistics.median(base), out, best, extra_us


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=40, help="timed rounds (after 2 warm-up rounds)")
    args = ap.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, optax {optax.__version__}; "
          f"MLP 784-{args.depth}x<width>-10, batch {args.batch}, "
          f"{args.rounds} rounds x {args.steps} steps, interleaved")
    worst = 0.0
    for w in args.widths:
        base, ratios, best, extra_us = bench(w, args.depth, args.batch, args.steps, args.rounds)
        worst = max(worst, ratios["lrjax"])
        print(f"width {w:5d}: constant {base * 1e6:9.1f} us/step | median ratio lrjax/constant {ratios['lrjax']:.4f}, "
              f"optax_schedule/constant {ratios['optax_schedule']:.4f} | best-time ratio lrjax "
              f"{best['lrjax']:.4f}, optax_schedule {best['optax_schedule']:.4f} | lrjax - constant "
              f"{extra_us:+.1f} us/step")
    print(f"worst lrjax/constant ratio: {worst:.4f}")
    return worst


if __name__ == "__main__":
    main()
