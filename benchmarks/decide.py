"""Sweeps that decide, on MNIST-1D: full grid vs successive halving vs PBT (lrjax, one compiled program each)
vs Optuna (TPE sampler + SuccessiveHalvingPruner, each trial an optax training loop: the ecosystem's way).

The problem: the built-in MLP (40 -> 256 -> 256 -> 10) on MNIST-1D, AdamW, warmup + cosine, 2,000 updates of
batch 64; 16 configurations: 8 peaks from 1e-4 to 0.3 (log-spaced) x warmup 0 or 200 updates
(configs/sweeps/mnist1d_grid.yaml, halving.yaml, pbt.yaml — the same files `lrjax sweep` runs). Every method
chooses on the same validation split (10 % of the training signals, drawn by the data seed) and reports the
test accuracy of what it chose, measured, never used.

* grid: every configuration to the end (32,000 configuration-steps);
* halving: geometric rungs at 250, 500 and 1,000 updates, the best half goes on (16 -> 8 -> 4 -> 2);
* halving-quarter: the issue's example, rungs at 200 and 600, the best quarter goes on (16 -> 4 -> 1);
* halving-annealed: the same rungs and quarter, each configuration ranked on a copy of itself cooled linearly to
  zero over a quarter of the updates since its last rung (configs/sweeps/halving_annealed.yaml: `anneal: 0.25`;
  `halving-annealed:0.5` for another fraction), the copies counted in its configuration-steps;
* pbt: the 16 as a population on the grid's budget, exploit/explore every 250 updates;
* optuna: 16 trials of the same categorical space (peak, warmup), TPE sampler (seed 0), a
  SuccessiveHalvingPruner (min_resource 200, reduction factor 4) fed the validation accuracy every 100
  updates; each trial builds optax.adamw with the same warmup + cosine (optax.join_schedules of a linear and
  a cosine schedule) and jits its own step, as optax's documentation writes a training loop; same initial
  parameters, same batches.

Each method runs in a fresh Python process (nothing compiled or cached beforehand; JAX's persistent cache is
off). lrjax gets one CPU device per core, as `lrjax sweep` does; the Optuna loop runs as a plain JAX program.
Wall time counts everything after the data is loaded (compilation included). Printed: a table (wall time,
configuration-steps, the winner, its validation and test accuracy) and the ratios the targets are about:

    halving config-steps / grid config-steps   (target <= 0.40)
    halving wall / grid wall                   (target <= 0.70), winner within 1 point of the grid's best
    PBT: one compilation per structure, within 1 point of the grid's best or above
    annealed halving (a quarter at [200, 600]): its winner's grid score within 1 point of the grid's best, at
                                               <= 25 % of the grid's configuration-steps (copies included)
    optuna / lrjax's best deciding strategy    (target >= 5), time to an equally good winner: Optuna's time until
                                               its best finished trial is as good as that strategy's winner,
                                               over the strategy's wall time (each deciding strategy run is shown)

    pip install optuna          # the benchmark's only extra; the test suite never imports it
    python benchmarks/decide.py [--steps 2000] [--only grid,halving,halving-annealed:0.25,pbt,optuna]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SWEEPS = {"grid": "mnist1d_grid.yaml", "halving": "halving.yaml", "pbt": "pbt.yaml", "halving-quarter": "halving.yaml",
          "halving-annealed": "halving_annealed.yaml"}
EXTRA = {"halving-quarter": ["strategy={name: halving, rungs: [200, 600], keep: 0.25}"]}


def _extra(method: str) -> list[str]:
    if method.startswith("halving-annealed:"):  # the recipe with another anneal fraction
        return [f"strategy.anneal={float(method.split(':', 1)[1])}"]
    return EXTRA.get(method, [])


def run_lrjax(method: str, steps: int) -> dict:
    from lrjax.sweep import use_cpu_cores

    use_cpu_cores()
    import jax

    from lrjax.engine import load_data
    from lrjax.sweep import expand, load_sweep, run_sweep

    spec = load_sweep(ROOT / "configs" / "sweeps" / SWEEPS[method.split(":")[0]],
                      [f"config.train.steps={steps}", "config.train.compilation_cache=false", *_extra(method)])
    load_data(expand(spec)[0].config)  # the data in memory (and MNIST-1D cached) before timing
    t0 = time.perf_counter()
    res = run_sweep(spec, write=False, verbose=False)
    wall = time.perf_counter() - t0
    best = next(r for r in res.results if r.label == res.winner)
    compiles = sum(len(g["sizes"]) for g in res.groups)
    return {"method": f"lrjax {method}", "wall_s": wall, "config_steps": res.config_steps, "winner": res.winner,
            "val_accuracy": best.final_eval["val_accuracy"], "test_accuracy": best.final_eval["test_accuracy"],
            "compilations": compiles, "devices": jax.device_count(),
            "grid_best_val": max(r.final_eval.get("val_accuracy", 0.0) for r in res.results),
            "scores": {r.label: r.final_eval.get("val_accuracy") for r in res.results if r.status == "completed"},
            "rankings": {r["label"]: {k: v for k, v in r.items() if "rank@" in k or "_val@" in k} for r in res.rows
                         if any("rank@" in k for k in r)}}


def run_optuna(steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    import optuna
    from flax import nnx

    from lrjax.engine import BatchIterator, build_experiment, load_config, load_data, seed_key

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = load_config(ROOT / "configs" / "mnist1d.yaml", [f"train.steps={steps}", "data.validation_fraction=0.1"])
    data = load_data(cfg)
    exp = build_experiment(cfg, data=data)  # the same model structure and initial parameters as lrjax
    peaks = [1.0e-4, 3.1e-4, 9.9e-4, 3.1e-3, 9.7e-3, 3.0e-2, 9.6e-2, 3.0e-1]
    graphdef = exp.graphdef
    xv, yv = jnp.asarray(data.x_val), jnp.asarray(data.y_val)
    xt, yt = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    init = exp.init_state(seed_key(0)).params

    @jax.jit
    def accuracy(params, x, y):  # does not depend on the schedule: compiled once
        return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(x), -1) == y)

    steps_done = [0]

    def objective(trial):
        peak = trial.suggest_categorical("peak", peaks)
        warm = trial.suggest_categorical("warmup_steps", [0, 200])
        # the recipe's schedule in optax's words (checked against lrjax's to 2e-7 of the peak): a linear warmup,
        # then a cosine over train.steps to 1 % of the peak, counted from the warmup's end
        schedule = optax.join_schedules([optax.linear_schedule(0.0, peak, max(warm, 1)),
                                         optax.cosine_decay_schedule(peak, steps, alpha=0.01)], [warm])
        tx = optax.adamw(schedule, weight_decay=1e-4)
        params = jax.tree.map(jnp.copy, init)
        opt = tx.init(params)

        @jax.jit
        def step(params, opt, x, y):
            def loss_fn(p):
                return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y).mean()

            g = jax.grad(loss_fn)(params)
            u, opt = tx.update(g, opt, params)
            return optax.apply_updates(params, u), opt

        it = BatchIterator(data.num_train, 64, 0)
        acc = 0.0
        for t in range(1, steps + 1):
            idx = it.next_indices()
            params, opt = step(params, opt, data.x_train[idx], data.y_train[idx])
            steps_done[0] += 1
            if t % 100 == 0:
                acc = float(accuracy(params, xv, yv))
                trial.report(acc, t)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        trial.set_user_attr("test_accuracy", float(accuracy(params, xt, yt)))
        trial.set_user_attr("done_at", time.perf_counter() - t0)
        return acc

    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=200, reduction_factor=4))
    study.optimize(objective, n_trials=16)
    wall = time.perf_counter() - t0
    best = study.best_trial
    done = sorted((t.user_attrs["done_at"], t.value) for t in study.trials if "done_at" in t.user_attrs)
    return {"method": "optuna TPE + SHA", "wall_s": wall, "config_steps": steps_done[0], "finished": done,
            "winner": f"peak={best.params['peak']:.2g} warmup_steps={best.params['warmup_steps']}",
            "val_accuracy": best.value, "test_accuracy": best.user_attrs.get("test_accuracy"),
            "compilations": len(study.trials) + 1, "devices": 1,
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)}


def _child(method: str, steps: int) -> None:
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = run_optuna(steps) if method == "optuna" else run_lrjax(method, steps)
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--only", default="grid,halving,halving-quarter,halving-annealed,pbt,optuna")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.steps)
        return
    rows = {}
    for method in args.only.split(","):
        r = subprocess.run([sys.executable, __file__, "--child", method, "--steps", str(args.steps)],
                           capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        if r.returncode or not line:
            print(f"{method}: failed\n{r.stderr[-3000:]}")
            continue
        rows[method] = json.loads(line[-1][len("RESULT "):])
        x = rows[method]
        print(f"{x['method']:18s} wall {x['wall_s']:7.1f} s  config-steps {x['config_steps']:6d}  compilations "
              f"{x['compilations']:3d}  winner {x['winner']:28s} val {x['val_accuracy']:.4f}  test "
              f"{x['test_accuracy']:.4f}", flush=True)
    g, h, p, o = (rows.get(k) for k in ("grid", "halving", "pbt", "optuna"))
    if g and h:
        print(f"halving / grid config-steps: {h['config_steps'] / g['config_steps']:.3f}  (target <= 0.40)")
        print(f"halving / grid wall:         {h['wall_s'] / g['wall_s']:.3f}  (target <= 0.70); winner "
              f"{100 * (h['val_accuracy'] - g['val_accuracy']):+.2f} val points vs the grid's best")
    if g and p:
        print(f"pbt vs grid best:            {100 * (p['val_accuracy'] - g['val_accuracy']):+.2f} val points, "
              f"{100 * (p['test_accuracy'] - g['test_accuracy']):+.2f} test points; {p['compilations']} compilation(s); "
              f"config-steps {p['config_steps']} (grid {g['config_steps']})")
    for name, q in rows.items():
        if not name.startswith("halving-") or not g:
            continue
        score = g["scores"].get(q["winner"])
        gap = "" if score is None else (f"; its grid score {score:.4f}, {100 * (score - g['val_accuracy']):+.2f} points "
                                        "vs the grid's best (target: within 1)")
        print(f"{name}: config-steps {q['config_steps'] / g['config_steps']:.3f} of the grid's (target <= 0.25), wall "
              f"{q['wall_s'] / g['wall_s']:.3f}; winner {q['winner']}{gap}")
    if o:
        for name, x in rows.items():
            if name in ("grid", "optuna"):
                continue
            reached = [t for t, v in o["finished"] if v >= x["val_accuracy"] - 1e-9]
            if reached:
                print(f"optuna / lrjax {name}, time to an equally good winner: {reached[0] / x['wall_s']:.2f}  "
                      f"(target >= 5; Optuna matched val {x['val_accuracy']:.4f} after {reached[0]:.1f} s)")
            else:
                print(f"optuna never matched lrjax {name}'s winner (val {x['val_accuracy']:.4f}; Optuna's best "
                      f"{o['val_accuracy']:.4f} after {o['wall_s']:.1f} s): time ratio > {o['wall_s'] / x['wall_s']:.2f}")
        if h:
            print(f"optuna / lrjax halving whole wall: {o['wall_s'] / h['wall_s']:.2f}")
    print("RESULTS " + json.dumps(rows))


if __name__ == "__main__":
    main()
