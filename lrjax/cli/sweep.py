"""``lrjax sweep CONFIG.yaml [--set key=value ...] [--out DIR] [--max-parallel N] [--list] [--distributed]``
and ``lrjax sweep --resume DIR``.

Only wires arguments to :func:`lrjax.sweep.run_sweep`. ``--set`` overrides keys of the sweep file
(``config.train.steps=100``, ``max_parallel=4``, ``grid.train.seed=[0,1,2]``,
``strategy={name: halving, rungs: [100], keep: 0.5}``). Exit codes: 0 done, 2 bad sweep/config/data/arguments.
"""

from __future__ import annotations

import argparse

from lrjax.cli._common import fail, user_errors, wrong_file

__all__ = ["main"]

PROG = "lrjax sweep"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train many configurations (schedule families, hyperparameters, optimizer arguments, seeds); "
                    "those that share a structure train together under jax.vmap in one compiled program. A "
                    "validation split chooses the winner; strategies: grid, successive halving, "
                    "population-based training.",
        epilog="Examples:\n  lrjax sweep configs/sweeps/schedules.yaml\n"
               "  lrjax sweep configs/sweeps/warmup_cosine_grid.yaml --max-parallel 8 --out runs/grid\n"
               "  lrjax sweep configs/sweeps/halving.yaml --out runs/halving\n"
               "  lrjax sweep --resume runs/halving\n"
               "  lrjax sweep configs/sweeps/seeds.yaml --set config.train.steps=200 --list",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", nargs="?", help="sweep YAML (see configs/sweeps/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the sweep file, e.g. --set config.train.steps=200 (repeatable)")
    p.add_argument("--out", help="run directory (default: runs/<timestamp>-sweep-<name>)")
    p.add_argument("--resume", metavar="DIR", help="finish the interrupted sweep in DIR from its last checkpoint")
    p.add_argument("--max-parallel", type=int, default=None, metavar="N",
                   help="at most N configurations per compiled call (overrides the file's max_parallel)")
    p.add_argument("--list", action="store_true", help="print the configurations and exit (no training)")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host; coordinator from the environment)")
    return p


def _check_counts(spec, configs) -> None:
    """What a sweep must count before the data is loaded: ``train.checkpoint_every`` (in updates, ``'10%'`` or
    tokens of ``data.context``; not epochs). A strategy's run length is checked by ``strategy_of``."""
    from lrjax.sweep import SweepError
    from lrjax.sweep.strategies import known_lengths

    for c in configs:
        t = c.config.train
        if isinstance(t.checkpoint_every, str) and known_lengths(c.config) is None:
            raise SweepError(f"{c.label}: a sweep checkpoints every train.checkpoint_every updates, counted before the "
                             f"data loads; give updates, '10%' or tokens, got train.checkpoint_every="
                             f"{t.checkpoint_every!r} (train.steps={t.steps!r})")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.max_parallel is not None and args.max_parallel < 1:
        return fail(PROG, f"--max-parallel must be >= 1, got {args.max_parallel}")
    if (args.sweep is None) == (args.resume is None):
        return fail(PROG, "give a sweep file, or --resume DIR (not both)")
    if args.resume is not None and (args.overrides or args.list):
        return fail(PROG, "--resume finishes a sweep as it was started; --set and --list do not apply")
    from lrjax.sweep import use_cpu_cores

    use_cpu_cores()  # one CPU device per core: the configurations train in parallel (no effect on accelerators)
    if args.distributed:
        import jax

        jax.distributed.initialize()
    from lrjax.sweep import resumed_spec, run_sweep
    from lrjax.sweep._spec import expand, load_sweep

    try:
        try:
            spec = load_sweep(args.sweep, args.overrides) if args.resume is None else resumed_spec(args.resume)
        except user_errors() as e:  # a training config or a schedule spec: say which command takes it
            pointer = wrong_file(args.sweep, "sweep") if args.resume is None else None
            raise e if pointer is None else type(e)(pointer) from e
        configs = expand(spec)
        _check_counts(spec, configs)
        if args.list:
            for c in configs:
                print(c.label)
            return 0
        if configs and configs[0].config.train.compilation_cache:  # as lrjax train: a re-run compiles nothing
            from lrjax.engine import enable_compilation_cache

            enable_compilation_cache(configs[0].config.train.compilation_cache_dir)
        if args.resume is not None:
            run_sweep(resume=args.resume, max_parallel=args.max_parallel, plot=not args.no_plot)
        else:
            run_sweep(spec, out_dir=args.out, max_parallel=args.max_parallel, plot=not args.no_plot)
    except user_errors() as e:
        return fail(PROG, e)
    return 0
