"""Steps/s of `lrjax train`'s step loop vs a minimal hand-written Flax NNX + optax loop.

Same model (digits MLP 64-256-256-10), same data, same batches (the seeded iterator), same AdamW with
warmup + cosine; interleaved rounds in one process so both see the same machine state. lrjax's loop
runs with its default hooks (metrics window on device, log every 20 steps fetched one step late,
eval + checkpoint at the end); its rate excludes the first step (compilation) and the final
checkpoint, and so does the minimal loop's.

    python benchmarks/loop_overhead.py [--steps 3000] [--rounds 5]

The last line is the ratio lrjax / minimal (median over rounds). Target: >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import jax
import optax
from flax import nnx

from lrjax.engine import BatchIterator, load_config, load_dataset, make_model
from lrjax.train import train


def minimal_loop(cfg, data, steps: int) -> float:
    """The hand-written loop: jitted donated step, numpy batches, one sync at the end."""
    model = make_model(cfg.model, data.input_shape, data.num_classes, nnx.Rngs(params=0))
    graphdef, params = nnx.split(model, nnx.Param)
    sched = optax.warmup_cosine_decay_schedule(0.0, 3e-3, steps // 10, steps, 3e-5)
    tx = optax.adamw(sched, weight_decay=1e-4)
    opt_state = tx.init(params)

    @jax.jit
    def _step(params, opt_state, x, y):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(_step, donate_argnums=(0, 1))
    it = BatchIterator(data.num_train, cfg.data.batch_size, cfg.train.seed)
    x_all, y_all = data.x_train, data.y_train
    idx = it.next_indices()
    params, opt_state, loss = step(params, opt_state, x_all[idx], y_all[idx])
    jax.block_until_ready(loss)
    t = time.perf_counter()
    for _ in range(steps - 1):
        idx = it.next_indices()
        params, opt_state, loss = step(params, opt_state, jax.device_put(x_all[idx]), jax.device_put(y_all[idx]))
    jax.block_until_ready(params)
    return (steps - 1) / (time.perf_counter() - t)


def lrjax_loop(cfg, data) -> float:
    with tempfile.TemporaryDirectory() as d:
        s = train(cfg, out_dir=d, data=data, progress=False, verbose=False, plot=False)
    return float(s["steps_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.steps
    cfg = load_config(None, [f"train.steps={n}", f"train.eval_every={n}", f"train.checkpoint_every={n}",
                             "train.log_every=20"])
    data = load_dataset("digits", seed=cfg.train.seed)
    ours, theirs = [], []
    for r in range(args.rounds):
        a = lrjax_loop(cfg, data)
        b = minimal_loop(cfg, data, n)
        ours.append(a)
        theirs.append(b)
        print(f"round {r}: lrjax {a:8.1f} steps/s   minimal {b:8.1f} steps/s   ratio {a / b:.3f}", flush=True)
    ma, mb = statistics.median(ours), statistics.median(theirs)
    print(f"device: {jax.devices()[0].platform} x{jax.device_count()}, {n} steps/round, {args.rounds} rounds")
    print(f"median lrjax {ma:.1f} steps/s, minimal {mb:.1f} steps/s")
    print(f"lrjax / minimal steps/s: {ma / mb:.3f}")


if __name__ == "__main__":
    main()
