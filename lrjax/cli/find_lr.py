"""``lrjax find-lr [CONFIG.yaml] [--data PATH] [--set key=value ...] [--out DIR] ...``.

Runs the range test(s) on the config's model, loss, data and optimizer (:func:`lrjax.finder.range_test_config`)
and writes ``range_test.json`` (curve, suggestions, parallel grid) and ``range_test.png`` (loss vs rate,
suggestions marked) to ``--out``. Exit codes: 0 a rate was suggested, 1 the chosen method has no
suggestion (the reason is printed), 2 bad config/data/arguments.
"""

from __future__ import annotations

import argparse
from typing import Any

from lrjax.cli._common import add_config_arguments, fail, load_command_config, user_errors
from lrjax.finder import LABELS

__all__ = ["main"]

PROG = "lrjax find-lr"
METHODS = ("steepest", "minimum", "valley", "parallel")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Learning-rate range test (Smith) on a training config: the rate grows exponentially from "
                    "--min-lr to --max-lr over --steps optimizer updates in one compiled loop, stopping when the "
                    "smoothed loss exceeds --diverge-factor x its best. Optionally also a parallel test: "
                    "--parallel K rates trained --parallel-steps updates each, in one vmapped program, ranked on "
                    "a validation split.",
        epilog="Examples:\n  lrjax find-lr\n  lrjax find-lr configs/one_cycle.yaml --parallel 8\n"
               "  lrjax find-lr --data ~/mnist --set model.kind=cnn --out runs/find-lr-mnist\n"
               "Then: lrjax train CONFIG --find-lr [METHOD] runs the test and trains at the suggested peak.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p, out_help="output directory (default: runs/<timestamp>-<name>-find-lr)")
    p.add_argument("--min-lr", type=float, default=None,
                   help="first rate of the sweep (default: the range tests' DEFAULT_MIN_LR, 1e-6)")
    p.add_argument("--max-lr", type=float, default=1.0, help="last rate of the sweep (default 1)")
    p.add_argument("--steps", type=int, default=100, help="optimizer updates in the sweep (default 100)")
    p.add_argument("--mode", choices=("exp", "linear"), default="exp", help="ramp shape (default exp)")
    p.add_argument("--smoothing", type=float, default=None,
                   help="EMA factor of the smoothed loss (default STEPS/(STEPS+10): it lags a tenth of the sweep)")
    p.add_argument("--diverge-factor", type=float, default=4.0,
                   help="stop once the smoothed loss exceeds this x its best (default 4)")
    p.add_argument("--parallel", type=int, default=0, metavar="K",
                   help="also train K log-spaced rates in parallel (default 0: off)")
    p.add_argument("--parallel-steps", type=int, default=50, help="updates per rate in the parallel test (default 50)")
    p.add_argument("--method", choices=METHODS, default="steepest",
                   help="which suggestion to report as THE rate (default steepest)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.method == "parallel" and args.parallel < 2:
        return fail(PROG, "--method parallel needs --parallel K with K >= 2")
    if args.steps < 2 and not args.parallel:
        return fail(PROG, f"--steps must be >= 2 (or use --parallel K alone), got --steps {args.steps}")
    try:
        cfg = load_command_config(args)
        from lrjax._rundir import check_writable
        from lrjax.engine import run_name
        from lrjax.engine._util import default_run_dir
        from lrjax.finder import range_test_config

        out = args.out or default_run_dir(f"{run_name(cfg)}-find-lr")
        check_writable(out, what=PROG)  # an impossible --out fails now, not after the test
        rates = {} if args.min_lr is None else {"min_lr": args.min_lr}
        result = range_test_config(
            cfg, **rates, max_lr=args.max_lr, num_steps=max(args.steps, 0), mode=args.mode,
            smoothing=args.smoothing, diverge_factor=args.diverge_factor, parallel_rates=args.parallel,
            parallel_steps=args.parallel_steps)
        paths = result.save(out, args.method)
    except user_errors() + (ValueError, TypeError) as e:
        return fail(PROG, e)
    try:
        chosen = result.suggestion(args.method)
    except ValueError as e:
        print(report(result.sweep, result.grid, args.method, None))
        print(f"wrote {paths['json']} and {paths['png']}")
        return fail(PROG, e, 1)
    print(report(result.sweep, result.grid, args.method, chosen))
    print(f"wrote {paths['json']} and {paths['png']}")
    print(f"train with it: lrjax train {args.config or ''} --find-lr {args.method}".replace("  ", " "))
    return 0


def report(sweep: Any, grid: Any, method: str, chosen: float | None) -> str:
    """The suggestion block (the sequential test's suggestions, the parallel grid) and the rate ``method``
    chose, as ``lrjax find-lr`` and ``lrjax train --find-lr`` both print it."""
    lines = [str(part) for part in (sweep, grid) if part is not None]
    if chosen is not None:
        label = LABELS.get(method, "parallel: best rate" if method == "parallel" else method)
        lines.append(f"suggested peak rate ({label}): {chosen:.4g}")
    return "\n".join(lines)
