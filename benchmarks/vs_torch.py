"""PyTorch (CPU) vs lrjax: the same MLP, AdamW and one-cycle on the same data, 2,000 steps.

Both train the digits MLP 64-256-256-10 with AdamW (weight decay 1e-4) and one-cycle (max_lr 1e-2,
30 % warmup, momentum 0.95 -> 0.85 -> 0.95 on beta1), batch 64 from the same seeded iterator, then
evaluate the test set once. Wall time covers building the model and optimizer, every step and the
evaluation; for lrjax it is a whole `lrjax.train.train` call (compilation included; logging every
20 steps, one eval and one checkpoint at the end, no plot), first with an empty persistent
compilation cache, then again with the cache warm. Data loading is shared and not timed.

    pip install torch==2.13.0   # CPU wheel
    python benchmarks/vs_torch.py [--steps 2000]

Last line: PyTorch time / lrjax time with compilation (cold cache). Target: >= 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def torch_run(data, steps: int, batch: int, seed: int) -> tuple[float, float]:
    import torch

    from lrjax.train import BatchIterator

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    d = int(np.prod(data.input_shape))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, data.num_classes))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps, pct_start=0.3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_all = torch.from_numpy(data.x_train)
    y_all = torch.from_numpy(data.y_train.astype(np.int64))
    it = BatchIterator(data.num_train, batch, seed)
    for _ in range(steps):
        idx = torch.from_numpy(it.next_indices())
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_all[idx]), y_all[idx])
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        acc = (model(torch.from_numpy(data.x_test)).argmax(-1).numpy() == data.y_test).mean()
    return time.perf_counter() - t0, float(acc)


def lrjax_run(cfg, data) -> tuple[float, float]:
    from lrjax.train import train

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        s = train(cfg, out_dir=d, data=data, progress=False, verbose=False, plot=False)
    return time.perf_counter() - t0, float(s["final_eval"]["test_accuracy"])


def workload(steps: int, *overrides: str):
    """``(config, data)`` of the compared run (also timed by ``benchmarks/cold_start.py``): the one-cycle
    recipe on the digits MLP 64-256-256-10, batch 64, ``steps`` updates, one eval and one checkpoint."""
    from lrjax.train import load_config, load_dataset

    cfg = load_config("configs/one_cycle.yaml", [
        f"train.steps={steps}", "train.log_every=20", f"train.eval_every={steps}",
        f"train.checkpoint_every={steps}", "data.batch_size=64", "model.hidden=[256, 256]", *overrides])
    return cfg, load_dataset("digits", seed=cfg.train.seed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    n = args.steps
    import jax
    import torch

    from lrjax.train import enable_compilation_cache

    cfg, data = workload(n)
    cache = tempfile.mkdtemp(prefix="lrjax-jax-cache-")
    enable_compilation_cache(cache)
    t_cold, acc_cold = lrjax_run(cfg, data)
    t_warm, acc_warm = lrjax_run(cfg, data)
    t_torch, acc_torch = torch_run(data, n, 64, cfg.train.seed)
    t_torch2, _ = torch_run(data, n, 64, cfg.train.seed)
    print(f"machine: {jax.devices()[0].platform}, torch {torch.__version__} threads={torch.get_num_threads()}, "
          f"jax {jax.__version__}; {n} steps, batch 64")
    print(f"PyTorch          {t_torch:7.2f} s (again {t_torch2:.2f} s)  test accuracy {acc_torch:.4f}")
    print(f"lrjax cold cache {t_cold:7.2f} s  test accuracy {acc_cold:.4f}")
    print(f"lrjax warm cache {t_warm:7.2f} s  test accuracy {acc_warm:.4f}")
    print(f"PyTorch / lrjax (warm cache): {t_torch / t_warm:.2f}")
    print(f"PyTorch / lrjax (with compilation): {t_torch / t_cold:.2f}")


if __name__ == "__main__":
    main()
