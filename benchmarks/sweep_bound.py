"""Why the CPU sweep ratio stops near 3.5x: the compute per configuration-step and the loop's compile time.

Measures, on the digits MLP of ``benchmarks/sweep.py`` (64-256-256-10, AdamW, batch 64, warmup + cosine):

1. milliseconds per configuration-step of ``Experiment.train_step`` in a ``lax.fori_loop`` (no dispatch in
   the way), for one configuration and for ``--configs`` configurations vmapped, with the achieved GFLOP/s
   (3 x the forward FLOPs of the three matmuls);
2. XLA compile time of that vmapped loop as the sweep engine runs it (recording loss, accuracy, gradient
   norm, rate, momentum and finiteness per update) and of the same loop with the metrics discarded.

    python benchmarks/sweep_bound.py [--configs 16] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    k, n = args.configs, args.steps

    from lrjax.engine import build_experiment, load_config, seed_key

    exp = build_experiment(load_config(None, [f"train.steps={n}"]))
    state = exp.init_state(seed_key(0))
    stacked = jax.tree.map(lambda x: jnp.stack([x] * k), state)
    bs = exp.config.data.batch_size
    batch = {"x": jnp.asarray(exp.data.x_train[:bs]), "y": jnp.asarray(exp.data.y_train[:bs])}
    vstep = jax.vmap(exp.train_step, in_axes=(0, None))

    def loop(step):
        return jax.jit(lambda s: jax.lax.fori_loop(0, n, lambda i, s: step(s, batch)[0], s))

    widths = [int(np.prod(exp.data.input_shape)), *exp.config.model.hidden, exp.data.num_classes]
    flops = 3 * 2 * bs * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; model {widths}, batch {bs}, {n} steps per call")
    for label, fn, s, count in (("1 config", loop(exp.train_step), state, 1), (f"{k} configs", loop(vstep), stacked, k)):
        s = jax.block_until_ready(fn(s))  # compile and warm
        times = []
        for _ in range(5):
            t = time.perf_counter()
            s = jax.block_until_ready(fn(s))
            times.append(time.perf_counter() - t)
        per = min(times) / (n * count)
        print(f"{label:>11}: {per * 1e3:.3f} ms per configuration-step, {flops / per / 1e9:.0f} GFLOP/s")

    buf = jnp.zeros((k, n, 6), jnp.float32)

    def recorded(i, carry):
        s, b = carry
        new, m = vstep(s, batch)
        row = jnp.stack([m["loss"], m["accuracy"], m["grad_norm"], m["lr"], m["momentum"],
                         m["finite"].astype(jnp.float32)], -1)
        return new, jax.lax.dynamic_update_slice(b, row[:, None, :], (0, i, 0))

    programs = {
        "with per-update metrics": (lambda s, b, a, z: jax.lax.fori_loop(a, z, recorded, (s, b)), (stacked, buf)),
        "metrics discarded": (lambda s, b, a, z: jax.lax.fori_loop(a, z, lambda i, c: (vstep(c[0], batch)[0], c[1]),
                                                                      (s, b)), (stacked, buf)),
    }
    for label, (f, a) in programs.items():
        best = []
        for _ in range(3):
            jax.clear_caches()
            lowered = jax.jit(f).lower(*a, jnp.int32(0), jnp.int32(1))
            t = time.perf_counter()
            lowered.compile()
            best.append(time.perf_counter() - t)
        print(f"compile, {k} configs vmapped, {label}: {min(best):.2f} s")


if __name__ == "__main__":
    main()
