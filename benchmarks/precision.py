"""Step time of `train.precision: bf16` against float32, through the engine's segment program.

The same model, data, batches and optimizer; the program compiled and warmed up first, then the median of
``--repeats`` timed spans of ``--steps`` updates each (``jax.block_until_ready`` around each span), printing
the ratio float32 / bf16 (> 1: bf16 faster). Two models: the digits MLP of ``lrjax train``'s default recipe,
and a byte-level transformer on the standard-library corpus (``data.source: text``).

On a CPU without native bfloat16 arithmetic bf16 is expected to be slower (XLA emulates it); the point of
bf16 is accelerators (tensor cores): run ``--gpu`` there.

Usage::

    python benchmarks/precision.py [--steps 200] [--repeats 5] [--gpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

from lrjax.engine import Flags, build_experiment, load_config

MODELS = {
    "mlp": [],
    "transformer": ["data.source=text", "data.context=128", "model.kind=transformer", "model.d_model=128",
                    "model.layers=4", "model.heads=4", "data.batch_size=32"],
}
GPU = {"mlp": ["model.hidden=[2048, 2048]", "data.batch_size=512"],
       "transformer": ["model.d_model=512", "model.layers=8", "model.heads=8", "data.context=512",
                       "data.batch_size=64"]}


def step_time(overrides: list[str], precision: str, steps: int, repeats: int) -> float:
    """Median seconds per update over ``repeats`` spans of ``steps`` updates."""
    exp = build_experiment(load_config(None, overrides + [f"train.precision={precision}",
                                                          f"train.steps={steps * (repeats + 1)}"]))
    program, evals = exp.program(steps), exp.eval_inputs()
    state = exp.initial_state(0)
    index = exp.run_index(steps * (repeats + 1))
    times = []
    for r in range(repeats + 1):
        lo, hi = r * steps, (r + 1) * steps
        src = exp.source(index if exp.data.stream is not None else index[lo:hi], lo)
        t = time.perf_counter()
        out = program(state, src, lo, hi, evals, Flags())
        jax.block_until_ready(out.table)
        state = out.state
        if r:  # the first span compiles
            times.append((time.perf_counter() - t) / steps)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--gpu", action="store_true", help="accelerator sizes (runs on CPU too, slowly)")
    args = p.parse_args(argv)
    print(f"device: {jax.devices()[0]}, jax {jax.__version__}")
    for name, overrides in MODELS.items():
        ov = overrides + (GPU[name] if args.gpu else [])
        f32 = step_time(ov, "float32", args.steps, args.repeats)
        b16 = step_time(ov, "bf16", args.steps, args.repeats)
        print(f"{name:12s} float32 {f32 * 1e3:8.3f} ms/step   bf16 {b16 * 1e3:8.3f} ms/step   "
              f"float32 / bf16 = {f32 / b16:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
