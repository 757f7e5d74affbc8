"""A 100-step learning-rate range test, lrjax vs PyTorch's torch-lr-finder, on the same model and data.

Model: the MLP 64 -> 256 -> 256 -> 10 (ReLU) of ``lrjax train``'s default recipe; data: scikit-learn's
digits (the train split of ``lrjax.train.load_dataset("digits")``), batches of 64; optimizer: Adam;
rates 1e-6 -> 1 exponentially over 100 updates, early stop off on both sides so both do exactly the same
100 updates. Each measurement is a fresh Python process (nothing compiled or cached beforehand; JAX's
persistent compilation cache is off), timing the range test proper, from "model built, data in memory" to "curve in host memory": optimizer,
the 100 updates, JIT compilation (lrjax), saving and restoring the model (torch-lr-finder) included;
imports excluded. Model construction is timed apart and reported; the last line's ratio counts it, as a
user's fresh process pays it (lrjax builds the model as its engine does: the structure traced abstractly
and the parameters from one compiled init program, instead of NNX's eager, op-by-op construction). Reported: the median of --repeats processes per side,
and the ratio torch / lrjax (> 1: lrjax faster). The warm time (a second call in the same process,
new rates, no recompilation) is printed for lrjax too.

Usage::

    pip install torch==2.13.0 torch-lr-finder     # CPU; the test suite never imports torch
    python benchmarks/find_lr.py [--repeats 5] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HIDDEN = 256
BATCH = 64
MIN_LR, MAX_LR = 1e-6, 1.0


def _data(steps: int):
    import numpy as np

    from lrjax.train import BatchIterator, load_dataset

    ds = load_dataset("digits", seed=0)
    it = BatchIterator(ds.num_train, BATCH, seed=0)
    idx = np.stack([it.next_indices() for _ in range(steps)])
    return ds, ds.x_train[idx].reshape(steps, BATCH, -1), ds.y_train[idx]


def run_lrjax(steps: int) -> dict:
    import jax
    import optax
    from flax import nnx

    import lrjax
    from lrjax.engine import ModelConfig, model_structure, seed_key

    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    _, xb, yb = _data(steps)
    tm = time.perf_counter()
    # the model as the engine builds it: its structure traced abstractly, its parameters from one compiled
    # init program (what lrjax train, sweep and find-lr do), not NNX's eager op-by-op construction
    structure = model_structure(ModelConfig(kind="mlp", hidden=(HIDDEN, HIDDEN)), (64,), 10)
    graphdef = structure.graphdef
    params, _, _ = structure.init(seed_key(0))
    jax.block_until_ready(params)
    t0 = time.perf_counter()
    model_secs = t0 - tm

    def loss_fn(p, batch):
        x, y = batch
        logits = nnx.merge(graphdef, p)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    res = lrjax.lr_range_test(loss_fn, params, optax.adam, (xb, yb), min_lr=MIN_LR, max_lr=MAX_LR,
                              num_steps=steps, diverge_factor=None)
    cold = time.perf_counter() - t0
    t1 = time.perf_counter()
    res2 = lrjax.lr_range_test(loss_fn, params, optax.adam, (xb, yb), min_lr=MIN_LR * 2, max_lr=MAX_LR / 2,
                               num_steps=steps, diverge_factor=None)
    warm = time.perf_counter() - t1
    return {"seconds": cold, "model_seconds": model_secs, "warm_seconds": warm, "steps_run": res.num_steps_run,
            "steps_run_warm": res2.num_steps_run, "steepest": res.suggestions["steepest"].lr,
            "jax": jax.__version__, "device": str(jax.devices()[0])}


def run_torch(steps: int) -> dict:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from torch_lr_finder import LRFinder

    _, xb, yb = _data(steps)
    x = torch.from_numpy(xb.reshape(-1, 64))
    y = torch.from_numpy(yb.reshape(-1).astype("int64"))
    tm = time.perf_counter()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                          nn.Linear(HIDDEN, 10))
    t0 = time.perf_counter()
    model_secs = t0 - tm
    opt = torch.optim.Adam(model.parameters(), lr=MIN_LR)
    # the same batches in the same order as lrjax's run (no shuffling: they are already the run's batches)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False)
    finder = LRFinder(model, opt, nn.CrossEntropyLoss(), device="cpu")
    finder.range_test(loader, start_lr=MIN_LR, end_lr=MAX_LR, num_iter=steps, step_mode="exp",
                      diverge_th=1e30)
    lrs = finder.history["lr"]
    finder.reset()
    secs = time.perf_counter() - t0
    return {"seconds": secs, "model_seconds": model_secs, "steps_run": len(lrs), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def _one(which: str, steps: int, threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", which, "--steps", str(steps), "--threads", str(threads)]
    env = dict(os.environ, TQDM_DISABLE="1")
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=0,
                   help="1: single-threaded on both sides (torch.set_num_threads(1), XLA without Eigen threads); "
                        "0 (default): each library's default")
    p.add_argument("--one", choices=("lrjax", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        if args.threads and args.one == "torch":
            import torch

            torch.set_num_threads(args.threads)
        result = run_lrjax(args.steps) if args.one == "lrjax" else run_torch(args.steps)
        print(json.dumps(result))
        return 0
    runs = {"lrjax": [], "torch": []}
    for _ in range(args.repeats):  # interleaved, so machine load hits both sides alike
        for which in runs:
            runs[which].append(_one(which, args.steps, args.threads))
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    mod = {k: statistics.median(r["model_seconds"] for r in v) for k, v in runs.items()}
    warm = statistics.median(r["warm_seconds"] for r in runs["lrjax"])
    lj, pt = runs["lrjax"][0], runs["torch"][0]
    print(f"{args.steps}-step range test, digits MLP 64-{HIDDEN}-{HIDDEN}-10, batch {BATCH}, Adam, "
          f"{args.repeats} fresh processes each, threads={'default' if not args.threads else args.threads}, "
          f"median wall time incl. compilation "
          f"(load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    print(f"  lrjax            {med['lrjax']:.3f} s   (steps run {lj['steps_run']}; warm second call {warm:.3f} s; "
          f"model construction {mod['lrjax']:.2f} s; jax {lj['jax']}, {lj['device']})")
    print(f"  torch-lr-finder  {med['torch']:.3f} s   (steps run {pt['steps_run']}; "
          f"model construction {mod['torch']:.2f} s; torch {pt['torch']}, {pt['threads']} threads)")
    for which, rs in runs.items():
        print(f"  all {which} runs: " + ", ".join(f"{r['seconds']:.3f}" for r in rs))
    ratio = med["torch"] / med["lrjax"]
    tot = (med["torch"] + mod["torch"]) / (med["lrjax"] + mod["lrjax"])
    print(f"range test alone: torch / lrjax = {ratio:.2f}x")
    print(f"end to end, model construction counted: torch / lrjax = {tot:.2f}x "
          f"({'lrjax' if tot > 1 else 'torch'} faster; target >= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
