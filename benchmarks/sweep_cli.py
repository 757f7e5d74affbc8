"""``lrjax sweep`` end to end, each run a fresh process: schedule families through one program, and re-runs
through the persistent compilation cache.

1. The nine-family comparison (``configs/sweeps/schedules.yaml``, 200 steps each), compilation cache off:
   families grouped through ``lrjax.Switch`` (the default) against one group per family
   (``train_many(..., switch_families=False)``, the behaviour before the Switch). Prints groups, seconds
   compiling, the groups' total seconds and the process wall time of each, and the ratio of wall times.
2. The 16-configuration grid (``configs/sweeps/warmup_cosine_grid.yaml``, 600 steps) three times with one
   fresh cache directory: cold, again, and with four other peaks (same structure, new values). Prints each
   run's compile seconds: the rates are arguments of the program, so the later runs find it in the cache.

    python benchmarks/sweep_cli.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs run_sweep as `lrjax sweep` does (one CPU device per core first), with switch_families chosen.
_FAMILIES = textwrap.dedent("""
    import json, sys
    import lrjax.sweep as S
    S.use_cpu_cores()
    res = S.run_sweep(sys.argv[1], overrides=["config.train.compilation_cache=false"], write=False,
                      verbose=False, switch_families=sys.argv[2] == "switch")
    print(json.dumps({"groups": [[g["compile_s"], g["time_s"]] for g in res.groups], "winner": res.winner}))
""")


def _timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, out.stdout


def families() -> None:
    sweep = os.path.join(ROOT, "configs", "sweeps", "schedules.yaml")
    walls = {}
    for mode in ("apart", "switch"):
        wall, out = _timed([sys.executable, "-c", _FAMILIES, sweep, mode])
        r = json.loads(out.strip().splitlines()[-1])
        walls[mode] = wall
        compile_s = sum(c for c, _ in r["groups"])
        total_s = sum(t for _, t in r["groups"])
        print(f"nine families, {'one Switch per structure' if mode == 'switch' else 'one group per family':24s}: "
              f"{len(r['groups'])} groups, compiling {compile_s:.2f} s, groups {total_s:.2f} s, process {wall:.2f} s, "
              f"winner {r['winner']}", flush=True)
    print(f"one group per family / Switch (process wall): {walls['apart'] / walls['switch']:.2f}x")


def cache() -> None:
    grid = os.path.join(ROOT, "configs", "sweeps", "warmup_cosine_grid.yaml")
    with tempfile.TemporaryDirectory() as d:
        runs = [("cold", []), ("again", []),
                ("other peaks", ["--set", "grid.schedule.schedule.peak=[2.0e-3, 5.0e-3, 2.0e-2, 5.0e-2]"])]
        for i, (name, extra) in enumerate(runs):
            out = os.path.join(d, f"run{i}")
            wall, _ = _timed([sys.executable, "-m", "lrjax.cli", "sweep", grid, "--out", out, "--no-plot",
                              "--set", f"config.train.compilation_cache_dir={os.path.join(d, 'cache')}", *extra])
            with open(os.path.join(out, "summary.json")) as fh:
                (g,) = json.load(fh)["groups"]
            print(f"16-config grid, {name:11s}: compile {g['compile_s']:.2f} s, group {g['time_s']:.2f} s, "
                  f"process {wall:.2f} s", flush=True)


def main() -> int:
    import platform

    print(f"lrjax sweep end to end  {time.strftime('%Y-%m-%d %H:%M')}  {platform.platform()}  "
          f"{os.cpu_count()} cpu(s)")
    families()
    cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
