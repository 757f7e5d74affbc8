"""``lrjax find-lr [CONFIG.yaml] [--data PATH] [--set key=value ...] [--out DIR] ...``.

Runs the range test(s) on the config's model, data and optimizer and writes ``range_test.json``
(curve, suggestions, parallel grid) and ``range_test.png`` (loss vs rate, suggestions marked) to
``--out``. Exit codes: 0 a rate was suggested, 1 the chosen method has no suggestion (the reason
is printed), 2 bad config/data/arguments.

Also :func:`find_lr_for_run`, what ``lrjax train --find-lr`` calls.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any

__all__ = ["main", "find_lr_for_run"]

METHODS = ("steepest", "minimum", "valley", "parallel")


def _parser() -> argparse.ArgumentParser:
    from lrjax.train._cli import add_config_arguments

    p = argparse.ArgumentParser(
        prog="lrjax find-lr",
        description="Learning-rate range test (Smith) on a training config: the rate grows exponentially from "
                    "--min-lr to --max-lr over --steps optimizer updates in one compiled loop, stopping when the "
                    "smoothed loss exceeds --diverge-factor x its best. Optionally also a parallel test: "
                    "--parallel K rates trained --parallel-steps updates each, in one vmapped program.",
        epilog="Examples:\n  lrjax find-lr\n  lrjax find-lr configs/one_cycle.yaml --parallel 8\n"
               "  lrjax find-lr --data ~/mnist --set model.kind=cnn --out runs/find-lr-mnist\n"
               "Then: lrjax train CONFIG --find-lr [METHOD] runs the test and trains at the suggested peak.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p, out_help="output directory (default: runs/<timestamp>-<name>-find-lr)")
    p.add_argument("--min-lr", type=float, default=1e-6, help="first rate of the sweep (default 1e-6)")
    p.add_argument("--max-lr", type=float, default=1.0, help="last rate of the sweep (default 1)")
    p.add_argument("--steps", type=int, default=100, help="optimizer updates in the sweep (default 100)")
    p.add_argument("--mode", choices=("exp", "linear"), default="exp", help="ramp shape (default exp)")
    p.add_argument("--smoothing", type=float, default=0.98, help="EMA factor of the smoothed loss (default 0.98)")
    p.add_argument("--diverge-factor", type=float, default=4.0,
                   help="stop once the smoothed loss exceeds this x its best (default 4)")
    p.add_argument("--parallel", type=int, default=0, metavar="K",
                   help="also train K log-spaced rates in parallel (default 0: off)")
    p.add_argument("--parallel-steps", type=int, default=50, help="updates per rate in the parallel test (default 50)")
    p.add_argument("--method", choices=METHODS, default="steepest",
                   help="which suggestion to report as THE rate (default steepest)")
    return p


def _out_dir(name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{stamp}-{name}-find-lr")
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    return path


def write_outputs(result: Any, out_dir: str, method: str, chosen: float | None, reason: str,
                  prefix: str = "range_test") -> dict[str, str]:
    """``<prefix>.json`` (everything) and ``<prefix>.png`` (the curve; the grid beside it if run)."""
    from lrjax.finder._plot import plot_both

    os.makedirs(out_dir, exist_ok=True)
    d = result.to_dict()
    d["chosen"] = {"method": method, "lr": chosen, "message": reason}
    paths = {"json": os.path.join(out_dir, f"{prefix}.json"), "png": os.path.join(out_dir, f"{prefix}.png")}
    with open(paths["json"], "w") as fh:
        json.dump(d, fh, indent=1)
    if result.sweep is not None and result.grid is not None:
        plot_both(result.sweep, result.grid, paths["png"])
    elif result.sweep is not None:
        result.sweep.plot(paths["png"], title=f"range test: {result.settings['config_name']}")
    else:
        result.grid.plot(paths["png"], title=f"parallel range test: {result.settings['config_name']}")
    return paths


def _choose(result: Any, method: str) -> tuple[float | None, str]:
    try:
        return result.suggestion(method), ""
    except ValueError as e:
        return None, str(e)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lrjax.train import ConfigError, DataError, load_config

    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.source={args.data}")
    if args.method == "parallel" and args.parallel < 2:
        print("lrjax find-lr: --method parallel needs --parallel K with K >= 2", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, overrides)
        from lrjax.finder._experiment import range_test_config

        result = range_test_config(
            cfg, min_lr=args.min_lr, max_lr=args.max_lr, num_steps=args.steps, mode=args.mode,
            smoothing=args.smoothing, diverge_factor=args.diverge_factor, parallel_rates=args.parallel,
            parallel_steps=args.parallel_steps)
    except (ConfigError, DataError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"lrjax find-lr: {e}", file=sys.stderr)
        return 2
    chosen, reason = _choose(result, args.method)
    out = args.out or _out_dir(cfg.name)
    paths = write_outputs(result, out, args.method, chosen, reason)
    if result.sweep is not None:
        print(result.sweep)
    if result.grid is not None:
        print(result.grid)
    print(f"wrote {paths['json']} and {paths['png']}")
    if chosen is None:
        print(f"lrjax find-lr: {reason}", file=sys.stderr)
        return 1
    print(f"suggested peak rate ({args.method}): {chosen:.4g}\n"
          f"train with it: lrjax train {args.config or ''} --find-lr {args.method}".replace("  ", " "))
    return 0


def find_lr_for_run(config: Any, method: str = "steepest", out_dir: str | None = None, **kwargs: Any) -> Any:
    """What ``lrjax train --find-lr METHOD`` does before training: run the range test on ``config``
    (``method="parallel"`` adds an 8-rate parallel test), write ``find_lr.json``/``find_lr.png`` to
    ``out_dir``, and return the config with its schedule's peak set to the suggested rate (and the
    choice recorded in the config when its schema has a ``find_lr`` field).

    Raises ValueError (with the reason) when the method suggests no rate.
    """
    from lrjax.finder._experiment import range_test_config, with_peak

    if method not in METHODS:
        from lrjax._checks import closest

        raise ValueError(f"--find-lr method must be one of {', '.join(METHODS)}, got {method!r}{closest(method, METHODS)}")
    if method == "parallel":
        kwargs.setdefault("parallel_rates", 8)
    result = range_test_config(config, **kwargs)
    chosen, reason = _choose(result, method)
    if out_dir is not None:
        write_outputs(result, out_dir, method, chosen, reason, prefix="find_lr")
    if chosen is None:
        raise ValueError(f"--find-lr {method}: {reason}")
    sweep = result.sweep
    record = {"stop_reason": sweep.stop_reason if sweep is not None else None,
              "min_lr": kwargs.get("min_lr", 1e-6), "max_lr": kwargs.get("max_lr", 1.0),
              "num_steps": kwargs.get("num_steps", 100)}
    return with_peak(config, chosen, method=method, record=record)
