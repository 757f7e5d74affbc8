"""``lrjax train [CONFIG.yaml] [--set key=value ...] [--data PATH] [--out DIR] [--resume RUN_DIR]``.

Only wires arguments to :func:`lrjax.train.train`. Exit codes: 0 done, 1 non-finite loss, 2 bad
config/data/arguments, 128+signal when stopped by SIGINT/SIGTERM (after saving a checkpoint).
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]


def add_config_arguments(p: argparse.ArgumentParser, *, out_help: str) -> None:
    """The arguments every config-driven command shares: CONFIG, --set, --data, --out."""
    p.add_argument("config", nargs="?", help="YAML config (default: the built-in digits recipe)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=200 (repeatable; value parsed as YAML)")
    p.add_argument("--data", help="data.source: a .npz, an MNIST IDX directory or a CIFAR-10 directory")
    p.add_argument("--out", help=out_help)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrjax train",
        description="Train a model with a learning-rate schedule. With no arguments: an MLP on scikit-learn's "
                    "bundled digits with AdamW and warmup + cosine.",
        epilog="Examples:\n  lrjax train\n  lrjax train configs/one_cycle.yaml --set train.steps=1000\n"
               "  lrjax train --data ~/mnist --set model.kind=cnn --out runs/mnist\n"
               "  lrjax train --resume runs/mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p, out_help="run directory (default: runs/<timestamp>-<name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--find-lr", nargs="?", const="steepest", metavar="METHOD",  # finder helper: lrjax.finder
                   choices=("steepest", "minimum", "valley", "parallel"),
                   help="run a learning-rate range test first and set the schedule's peak to its suggestion "
                        "(steepest [default], minimum, valley or parallel); writes find_lr.json/png to the run dir")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lrjax.train._config import ConfigError, apply_overrides, config_from_dict, config_to_dict, load_config
    from lrjax.train._data import DataError

    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.source={args.data}")
    try:
        if args.resume is not None:
            from lrjax.train._loop import load_run_config

            if args.config is not None:
                raise ConfigError("--resume continues a run with its saved config; do not pass CONFIG.yaml too")
            cfg = load_run_config(args.resume)
            if overrides:
                cfg = config_from_dict(apply_overrides(config_to_dict(cfg), overrides))
        else:
            cfg = load_config(args.config, overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"lrjax train: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    if cfg.train.compilation_cache:
        from lrjax.train._loop import enable_compilation_cache

        enable_compilation_cache(cfg.train.compilation_cache_dir)
    if args.find_lr is not None:  # range test first, then train at its rate (lrjax.finder, finder helper)
        if args.resume is not None:
            print("lrjax train: --find-lr starts a new run; it cannot be combined with --resume", file=sys.stderr)
            return 2
        from lrjax.finder._cli import find_lr_for_run
        from lrjax.train._loop import default_run_dir

        args.out = args.out or default_run_dir(cfg.name)
        try:
            cfg = find_lr_for_run(cfg, args.find_lr, args.out)
        except (ConfigError, DataError, ValueError) as e:
            print(f"lrjax train: {e}", file=sys.stderr)
            return 2
    from lrjax.train._loop import NonFiniteLossError, train

    try:
        summary = train(cfg, out_dir=args.out, resume=args.resume,
                        progress=False if args.no_progress else None)
    except (ConfigError, DataError, FileExistsError, FileNotFoundError) as e:
        print(f"lrjax train: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"lrjax train: {e}", file=sys.stderr)
        return 1
    if summary["status"] == "interrupted":
        sig = summary.get("signal") or 2
        print(f"lrjax train: stopped by signal {sig}; checkpoint at step {summary['last_checkpoint']}. "
              f"Continue with: lrjax train --resume {os.path.relpath(summary['run_dir'])}", file=sys.stderr)
        return 128 + int(sig)
    return 0
