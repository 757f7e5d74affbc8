"""What the config-driven commands share: their common arguments, reading a config, reporting errors.

Every user error — a bad config, bad data, a bad argument, an unusable path — is one line on stderr
naming the problem, and exit status 2 (:data:`USER_ERRORS`, :func:`fail`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_config_arguments", "load_command_config", "fail", "user_errors", "EXIT_USAGE"]

EXIT_USAGE = 2


def add_config_arguments(p: argparse.ArgumentParser, *, out_help: str) -> None:
    """The arguments every config-driven command shares: CONFIG, --set, --data, --out."""
    p.add_argument("config", nargs="?", help="YAML config (default: the built-in digits recipe)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=200 (repeatable; value parsed as YAML)")
    p.add_argument("--data", help="data.source: digits, mnist1d, a .npz, an MNIST IDX directory or a CIFAR-10 "
                                  "directory")
    p.add_argument("--out", help=out_help)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the user's input is wrong (exit 2, one line), not a bug in lrjax."""
    from lrjax._rundir import RunDirError
    from lrjax.engine import ConfigError, DataError
    from lrjax.engine._checkpoint import CheckpointError

    return (ConfigError, DataError, RunDirError, CheckpointError, FileNotFoundError, FileExistsError,
            NotADirectoryError, IsADirectoryError, PermissionError)


def fail(prog: str, error: Any, status: int = EXIT_USAGE) -> int:
    """Print ``prog: error`` on one line of stderr (once: a message that names ``prog`` already, as a
    locked or unwritable run directory's does, is not prefixed again); return the exit status."""
    text = " ".join(str(error).split("\n")) if str(error) else type(error).__name__
    while text.startswith(f"{prog}: "):
        text = text[len(prog) + 2:]
    print(f"{prog}: {text}", file=sys.stderr)
    return status


def load_command_config(args: argparse.Namespace) -> Any:
    """The config of ``CONFIG`` with ``--set`` overrides and ``--data``."""
    from lrjax.engine import load_config

    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.source={args.data}")
    return load_config(args.config, overrides)
