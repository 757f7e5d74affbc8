"""Where a cold ``lrjax train`` call spends its time: the programs it compiles, the GC, the CPU cores used.

Runs one ``lrjax.train.train`` call in this fresh process with JAX's persistent compilation cache off (the
``benchmarks/vs_torch.py`` setup: digits MLP 64-256-256-10, AdamW, one-cycle, batch 64, ``--steps`` updates)
and prints

* every XLA compilation it triggers (from ``jax_log_compiles``), with lowering and compile seconds;
* the seconds Python's cyclic GC spent during the call (``gc.callbacks``);
* process CPU seconds / wall seconds over the call (how many cores XLA's compiler and the steps kept busy);
* the compile time of a minimal hand-written optax step on the same model, for comparison.

    python benchmarks/cold_start.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import re
import resource
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()

    import jax
    from vs_torch import workload  # the same run vs_torch.py times (benchmarks/ is on sys.path)

    from lrjax.train import train

    n = args.steps
    cfg, data = workload(n, "train.compilation_cache=false")

    events: list[tuple[str, str, float]] = []
    pattern = re.compile(r"Finished (jaxpr to MLIR module conversion|XLA compilation) (?:of )?jit\((\w+)\) in ([\d.]+)")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = pattern.search(record.getMessage())
            if m:
                events.append((m.group(2), "lower" if m.group(1).startswith("jaxpr") else "compile", float(m.group(3))))

    logger = logging.getLogger("jax")
    logger.addHandler(Collect())
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    jax.config.update("jax_log_compiles", True)

    gc_s, started = [0.0], [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - started[0]

    gc.callbacks.append(on_gc)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        summary = train(cfg, out_dir=d, data=data, progress=False, verbose=False, plot=False)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    gc.callbacks.remove(on_gc)
    jax.config.update("jax_log_compiles", False)

    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; train() with {n} steps: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU ({cpu / wall:.2f} cores), first step at {summary['compile_s']:.2f} s, "
          f"test accuracy {summary['final_eval']['test_accuracy']:.4f}")
    per: dict[str, dict[str, float]] = {}
    for name, kind, s in events:
        per.setdefault(name, {"lower": 0.0, "compile": 0.0})[kind] += s
    total = sum(v["lower"] + v["compile"] for v in per.values())
    print(f"{len(per)} programs compiled, {total:.2f} s lowering + compiling:")
    for name, v in sorted(per.items(), key=lambda kv: -(kv[1]["lower"] + kv[1]["compile"])):
        print(f"  {name:24s} lower {v['lower']:.3f} s  compile {v['compile']:.3f} s")
    print(f"cyclic GC during the call: {gc_s[0]:.3f} s")

    import optax
    from flax import nnx

    from lrjax.engine import build_experiment, seed_key

    exp = build_experiment(cfg, data=data)
    params = exp.init_state(seed_key(0)).params
    tx = optax.adamw(optax.cosine_onecycle_schedule(n, 1e-2), weight_decay=1e-4)

    def step(p, o, x, y):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(exp.graphdef, p)(x), y).mean()

        g = jax.grad(loss)(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), data.x_train[:64],
                                                         data.y_train[:64])
    t = time.perf_counter()
    lowered.compile()
    print(f"minimal optax step (adamw + one-cycle, no metrics) compiles in {time.perf_counter() - t:.3f} s")


if __name__ == "__main__":
    main()
