"""``lrjax train [CONFIG.yaml] [--set key=value ...] [--data PATH] [--out DIR] [--resume RUN_DIR]``.

Only wires arguments to :func:`lrjax.train.train`. Exit codes: 0 done, 1 non-finite loss, 2 bad
config/data/arguments, 128+signal when stopped by SIGINT/SIGTERM (after saving a checkpoint).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from lrjax.cli._common import add_config_arguments, fail, load_command_config, user_errors

__all__ = ["main"]

PROG = "lrjax train"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train a model with a learning-rate schedule. With no arguments: an MLP on scikit-learn's "
                    "bundled digits with AdamW and warmup + cosine.",
        epilog="Examples:\n  lrjax train\n  lrjax train configs/one_cycle.yaml --set train.steps=1000\n"
               "  lrjax train --data ~/mnist --set model.kind=cnn --out runs/mnist\n"
               "  lrjax train my_config.yaml        # model: {factory: 'mymodel:Net'} next to it\n"
               "  lrjax train --resume runs/mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p, out_help="run directory (default: runs/<timestamp>-<name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--find-lr", nargs="?", const="steepest", metavar="METHOD",
                   choices=("steepest", "minimum", "valley", "parallel"),
                   help="run a learning-rate range test first and set the schedule's peak to its suggestion "
                        "(steepest [default], minimum (its rate / 10), valley or parallel); writes "
                        "range_test.json/png to the run dir, as lrjax find-lr does")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lrjax.engine import ConfigError, apply_overrides, config_from_dict, config_to_dict

    try:
        if args.resume is not None:
            from lrjax.train import load_run_config

            if args.config is not None:
                raise ConfigError("--resume continues a run with its saved config; do not pass CONFIG.yaml too")
            cfg = load_run_config(args.resume)
            overrides = list(args.overrides) + ([f"data.source={args.data}"] if args.data is not None else [])
            if overrides:
                cfg = config_from_dict(apply_overrides(config_to_dict(cfg), overrides))
        else:
            cfg = load_command_config(args)
    except user_errors() as e:
        return fail(PROG, e)
    if args.print_config:  # the config as the run would write it: the name it would take included
        import dataclasses

        import lrjax._yaml as _yaml
        from lrjax.engine import run_name

        print(_yaml.dump(config_to_dict(dataclasses.replace(cfg, name=run_name(cfg)))), end="")
        return 0
    if cfg.train.compilation_cache:
        from lrjax.engine import enable_compilation_cache

        enable_compilation_cache(cfg.train.compilation_cache_dir)
    if args.find_lr is not None:  # range test first, then train at its rate
        if args.resume is not None:
            return fail(PROG, "--find-lr starts a new run; it cannot be combined with --resume")
        from lrjax.engine._util import default_run_dir
        from lrjax.finder import find_lr_for_run

        try:
            if args.out is None:
                from lrjax.engine import run_name

                args.out = default_run_dir(run_name(cfg))
            before, cfg = cfg, find_lr_for_run(cfg, args.find_lr, args.out)
        except user_errors() + (ValueError,) as e:
            return fail(PROG, e)
        print(_range_report(args.out, before, cfg))
    from lrjax.engine._checkpoint import CheckpointSaveError
    from lrjax.train import NonFiniteLossError, train

    try:
        summary = train(cfg, out_dir=args.out, resume=args.resume, progress=False if args.no_progress else None)
    except (NonFiniteLossError, CheckpointSaveError) as e:  # the run failed; what it saved is intact
        return fail(PROG, e, 1)
    except user_errors() as e:
        return fail(PROG, e)
    if summary["status"] == "interrupted":
        sig = summary.get("signal") or 2
        return fail(PROG, f"stopped by signal {sig}; checkpoint at step {summary['last_checkpoint']}. "
                          f"Continue with: lrjax train --resume {os.path.relpath(summary['run_dir'])}", 128 + int(sig))
    return 0


def _range_report(out: str, before: Any, after: Any) -> str:
    """What ``--find-lr`` found: the suggestion block of the written ``range_test.json`` and where the peak
    went (``after`` is ``before`` with its schedule's peak set)."""
    import json

    from lrjax.cli.find_lr import report
    from lrjax.finder import ParallelRangeResult, RangeTestResult

    with open(os.path.join(out, "range_test.json")) as fh:
        d = json.load(fh)
    sweep = RangeTestResult.from_dict(d["sweep"]) if d.get("sweep") else None
    grid = ParallelRangeResult.from_dict(d["parallel"]) if d.get("parallel") else None
    method, lr = after.find_lr["method"], after.find_lr["lr"]
    changed = _changed(before.schedule, after.schedule, "schedule")
    where = (f"{changed[0]}: {changed[1]!r} -> {changed[2]!r}" if changed else
             f"wrapped in scale, factor {after.schedule.get('factor')!r}")
    return (report(sweep, grid, method, lr) + f"\npeak set to {lr:.4g}: {where} (recorded as find_lr in the run's "
            "config.yaml)")


def _changed(old: Any, new: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first number that differs between two schedule specs of one shape: ``(path, old, new)``."""
    if isinstance(old, dict) and isinstance(new, dict):
        if old.get("name") != new.get("name") or set(old) != set(new):
            return None
        for k in old:
            found = _changed(old[k], new[k], f"{path}.{k}")
            if found is not None:
                return found
        return None
    return (path, old, new) if old != new else None
