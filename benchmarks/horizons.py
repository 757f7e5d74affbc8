"""Every horizon from one run (strategy cooldowns) against relaunching one run per horizon.

The question: the loss at each of 8 horizons after a warmup-stable-decay run with two cooldown shapes (linear,
1-sqrt: 16 runs), and after a warmup + cosine run ending at each horizon (8 runs). Two ways:

* **forked** — `lrjax sweep` with `strategy: cooldowns`: one trunk at the stable rate, a copy of its whole train
  state forked at 80 % of each horizon and cooled down to it, every branch in one compiled program (and, in a
  second sweep, the 8 cosine runs beside them: `compare: cosine`);
* **relaunched** — `lrjax train` of each of the 16 WSD runs (and the 8 cosine runs), one fresh process each, from
  the configs the forked sweep wrote (`configs/<horizon> <shape>.yaml`: the lone-run equivalent of a branch).

Reported: configuration-steps (every update counted: the trunk and each cooldown, against each run's whole
length), wall time (each process from launch to exit, compilation included, JAX's persistent cache off), and the
final validation loss and accuracy at every horizon both ways, with their difference: a branch is its lone run,
to float rounding (a vmapped and a lone program round differently; `tests/sweep/test_horizons.py`). The targets:

    relaunched / forked configuration-steps >= 2.5   (8 horizons x 2 shapes vs 16 WSD runs)
    relaunched / forked wall time            >= 2
    every horizon's loss equal to its lone run's within the tolerance of item 3

Tasks are config dicts (`TASKS`): the sweep file and overrides. `--task mnist1d`: the built-in MLP on MNIST-1D
(configs/sweeps/horizons_mnist1d.yaml); `--task lm`: the byte-level transformer on the Python standard library,
horizons from 250K to 2M tokens (configs/sweeps/horizons_lm.yaml).

    python benchmarks/horizons.py [--task mnist1d|lm] [--out /tmp/horizons] [--skip-cosine] [--skip-floor]
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

TASKS: dict[str, dict] = {
    "mnist1d": {
        "sweep": ROOT / "configs" / "sweeps" / "horizons_mnist1d.yaml",
        "overrides": ["config.train.compilation_cache=false"],
        "metric": "val_loss",
    },
    "lm": {
        "sweep": ROOT / "configs" / "sweeps" / "horizons_lm.yaml",
        "overrides": ["config.train.compilation_cache=false"],
        "metric": "val_loss",
    },
}


def _env(devices: int | None = None) -> dict:
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if devices:
        env["JAX_NUM_CPU_DEVICES"] = str(devices)
    return env


def _run(cmd: list[str], devices: int | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(devices))
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return wall


def forked(task: dict, out: pathlib.Path, compare: bool) -> dict:
    """One `lrjax sweep` process: its wall time and summary."""
    sets = [*task["overrides"], f"strategy.compare={'cosine' if compare else 'null'}"]
    cmd = [sys.executable, "-m", "lrjax.cli", "sweep", str(task["sweep"]), "--out", str(out), "--no-plot"]
    for s in sets:
        cmd += ["--set", s]
    wall = _run(cmd)
    summary = json.loads((out / "summary.json").read_text())
    return {"wall_s": wall, "summary": summary}


def relaunched(run_dir: pathlib.Path, labels: list[str], out: pathlib.Path, devices: int | None = None
               ) -> dict[str, dict]:
    """`lrjax train` of each written config, one process each: wall time and final evaluation. ``devices``: CPU
    devices for the run's data parallelism (the same maths, other rounding: the batch's gradient is summed in
    two halves)."""
    res = {}
    for lab in labels:
        name = lab.replace(" ", "_")
        dest = out / name
        wall = _run([sys.executable, "-m", "lrjax.cli", "train", str(run_dir / "configs" / f"{name}.yaml"), "--out",
                     str(dest), "--no-progress"], devices)
        summary = json.loads((dest / "summary.json").read_text())
        res[lab] = {"wall_s": wall, "final_eval": summary["final_eval"], "steps": summary["steps"],
                    "train_s": summary["time_s"]}
        print(f"  {lab:16s} {wall:6.1f} s  val_loss {summary['final_eval'].get('val_loss'):.6f}", flush=True)
    return res


def compare_rows(summary: dict, lone: dict[str, dict], runs: tuple[str, ...], other: dict[str, dict] | None = None
                 ) -> list[dict]:
    rows = []
    for row in summary["table"]:
        if row["run"] not in runs or row["label"] not in lone:
            continue
        le = lone[row["label"]]["final_eval"]
        floor = None
        if other and row["label"] in other:
            o = other[row["label"]]["final_eval"]["val_loss"]
            floor = abs(o - le["val_loss"]) / le["val_loss"]
        rows.append({"horizon": row["horizon"], "shape": row["shape"], "forked_val_loss": row["val_loss"],
                     "lone_val_loss": le["val_loss"], "rel_diff": abs(row["val_loss"] - le["val_loss"]) / le["val_loss"],
                     "rounding_floor": floor,
                     "forked_val_accuracy": row.get("val_accuracy"), "lone_val_accuracy": le.get("val_accuracy"),
                     "forked_test_accuracy": row.get("test_accuracy"), "lone_test_accuracy": le.get("test_accuracy")})
    return rows


def _pair(row: dict, key: str) -> str:
    """``forked / lone`` of a metric, ``-`` where the task has none."""
    a, b = row.get(f"forked_{key}"), row.get(f"lone_{key}")
    return "-" if a is None or b is None else f"{a:.4f} / {b:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="mnist1d", choices=sorted(TASKS))
    ap.add_argument("--out", default="/tmp/lrjax-horizons")
    ap.add_argument("--skip-cosine", action="store_true", help="leave out the cosine comparison (8 more lone runs)")
    ap.add_argument("--skip-floor", action="store_true", help="leave out the lone runs on 2 devices (16 more)")
    args = ap.parse_args()
    task, out = TASKS[args.task], pathlib.Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; give another --out")
    out.mkdir(parents=True)

    print(f"forked: lrjax sweep {task['sweep'].name} (cooldowns)", flush=True)
    fk = forked(task, out / "forked", compare=False)
    s = fk["summary"]
    branches = [r["label"] for r in s["table"] if r["run"] == "cooldown"]
    print(f"  wall {fk['wall_s']:.1f} s, config-steps {s['config_steps']}, compilations {s['compilations']}")
    print(f"relaunched: lrjax train x {len(branches)}", flush=True)
    lone = relaunched(out / "forked", branches, out / "lone")
    other = None
    if not args.skip_floor:
        print("the rounding floor: the same lone runs on 2 CPU devices (data parallel: other rounding)", flush=True)
        other = relaunched(out / "forked", branches, out / "lone_2dev", devices=2)
    lone_steps = sum(r["horizon"] for r in s["table"] if r["run"] == "cooldown")
    lone_wall = sum(v["wall_s"] for v in lone.values())
    rows = compare_rows(s, lone, ("cooldown",), other)
    result = {"task": args.task, "forked": {"wall_s": fk["wall_s"], "config_steps": s["config_steps"],
                                            "compilations": s["compilations"], "time_s": s["time_s"]},
              "relaunched": {"wall_s": lone_wall, "config_steps": lone_steps, "runs": len(lone),
                             "train_s": sum(v["train_s"] for v in lone.values())},
              "steps_ratio": lone_steps / s["config_steps"], "wall_ratio": lone_wall / fk["wall_s"], "rows": rows}
    if not args.skip_cosine:
        print("forked with the cosine runs beside (compare: cosine)", flush=True)
        fc = forked(task, out / "forked_cosine", compare=True)
        sc = fc["summary"]
        cosines = [r["label"] for r in sc["table"] if r["run"] == "cosine"]
        print(f"  wall {fc['wall_s']:.1f} s, config-steps {sc['config_steps']}; relaunched: lrjax train x {len(cosines)}",
              flush=True)
        lone_cos = relaunched(out / "forked_cosine", cosines, out / "lone_cosine")
        result["with_cosine"] = {
            "forked": {"wall_s": fc["wall_s"], "config_steps": sc["config_steps"], "compilations": sc["compilations"]},
            "relaunched": {"wall_s": lone_wall + sum(v["wall_s"] for v in lone_cos.values()),
                           "config_steps": lone_steps + sum(r["horizon"] for r in sc["table"] if r["run"] == "cosine")},
            "rows": compare_rows(sc, lone_cos, ("cosine",)) + rows}
    (out / "result.json").write_text(json.dumps(result, indent=1))

    print()
    print("| horizon | shape | val loss forked | val loss lone | rel. diff | lone 1 vs 2 devices | val acc forked / lone |"
          " test acc forked / lone |")
    print("|---|---|---|---|---|---|---|---|")
    table = result.get("with_cosine", result)["rows"]
    for r in sorted(table, key=lambda r: (r["horizon"], r["shape"])):
        floor = "-" if r["rounding_floor"] is None else f"{r['rounding_floor']:.1e}"
        print(f"| {r['horizon']} | {r['shape']} | {r['forked_val_loss']:.6f} | {r['lone_val_loss']:.6f} | "
              f"{r['rel_diff']:.1e} | {floor} | {_pair(r, 'val_accuracy')} | {_pair(r, 'test_accuracy')} |")
    print()
    print(f"config-steps: relaunched {lone_steps} / forked {s['config_steps']} = {result['steps_ratio']:.2f}x "
          "(target >= 2.5)")
    print(f"wall time:    relaunched {lone_wall:.1f} s / forked {fk['wall_s']:.1f} s = {result['wall_ratio']:.2f}x "
          "(target >= 2)")
    print(f"(the lone runs' own train() time, without process start and data loading: {result['relaunched']['train_s']:.1f} s"
          f" = {result['relaunched']['train_s'] / fk['wall_s']:.2f}x the forked sweep's whole process)")
    print(f"largest relative difference of a horizon's val loss, forked vs lone: {max(r['rel_diff'] for r in table):.1e}")
    floors = [r["rounding_floor"] for r in rows if r["rounding_floor"] is not None]
    if floors:
        import statistics

        print(f"the cooldowns, median relative difference: forked vs lone {statistics.median(r['rel_diff'] for r in rows):.1e}"
              f", lone on 1 vs 2 devices {statistics.median(floors):.1e} (largest {max(floors):.1e})")
    if "with_cosine" in result:
        w = result["with_cosine"]
        print(f"with the 8 cosine runs on both sides: config-steps {w['relaunched']['config_steps']} / "
              f"{w['forked']['config_steps']} = {w['relaunched']['config_steps'] / w['forked']['config_steps']:.2f}x, "
              f"wall {w['relaunched']['wall_s']:.1f} / {w['forked']['wall_s']:.1f} s = "
              f"{w['relaunched']['wall_s'] / w['forked']['wall_s']:.2f}x")
    print(f"results: {out / 'result.json'}")


if __name__ == "__main__":
    main()
