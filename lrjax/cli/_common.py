"""What the config-driven commands share: their common arguments, reading a config, reporting errors.

Every user error — a bad config, bad data, a bad argument, an unusable path — is one line on stderr
naming the problem, and exit status 2 (:data:`USER_ERRORS`, :func:`fail`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_config_arguments", "load_command_config", "fail", "user_errors", "EXIT_USAGE", "file_kind",
           "wrong_file"]

EXIT_USAGE = 2

# Top-level keys only a training config has (``name`` and ``schedule`` a schedule spec can have too).
CONFIG_ONLY = ("optimizer", "train", "data", "model", "loss", "plateau", "find_lr")
# The top-level keys that only a sweep file has (lrjax.sweep's).
SWEEP_ONLY = ("base", "config", "configs", "grid", "rank_by", "max_parallel", "strategy")


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
    from lrjax.engine import ConfigError, load_config

    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.source={args.data}")
    try:
        return load_config(args.config, overrides)
    except ConfigError as e:
        pointer = wrong_file(args.config, "config") if args.config is not None else None
        if pointer is None:
            raise
        raise ConfigError(pointer) from e


def file_kind(data: Any) -> str:
    """What a YAML document is: ``config`` (``lrjax train``'s), ``sweep`` (``lrjax sweep``'s), ``spec`` (a
    schedule spec: a mapping whose ``name`` is a schedule family), ``specs`` (a list of them), ``labelled``
    (a mapping label -> spec) or ``neither``.

    A mapping with a key only a training config has, or with ``schedule`` and a ``name`` that is not a
    family (a run's name), is a training config; one whose keys are a sweep's, with one only a sweep has
    (``grid``, ``configs``, ``base``, ...), and whose values are not all schedule specs, is a sweep.

    >>> file_kind({"base": "../cosine.yaml", "grid": {"train.seed": [0, 1]}})
    'sweep'
    >>> file_kind({"name": "cosine_decay", "peak": 0.1, "decay_steps": 100}), file_kind({"train": {"steps": 5}})
    ('spec', 'config')
    """
    from collections.abc import Mapping

    from lrjax.schedules import registered_schedules

    families = registered_schedules()
    if isinstance(data, list):
        return "specs" if data else "neither"
    if not isinstance(data, Mapping) or not data:
        return "neither"
    name = data.get("name")
    family = isinstance(name, str) and name in families
    if any(k in data for k in CONFIG_ONLY) or ("schedule" in data and not family):
        return "config"
    values = [v for k, v in data.items() if k != "name"]
    all_specs = bool(values) and all(isinstance(v, Mapping) and v.get("name") in families for v in values)
    if not family and any(k in SWEEP_ONLY for k in data) and not all_specs:
        return "sweep"
    if "name" in data:
        return "spec"
    if all(isinstance(v, Mapping) for v in data.values()):
        return "labelled"
    return "neither"


def wrong_file(path: str, expected: str) -> str | None:
    """A one-line pointer to the right command when the YAML file ``path`` is not the ``expected`` kind
    (``config`` or ``sweep``) but another lrjax file; None when it is, or cannot be read as one."""
    from lrjax._yaml import load
    from lrjax.schedules import registered_schedules

    try:
        with open(path) as fh:
            data = load(fh)
    except Exception:  # noqa: BLE001 - unreadable: the command's own error says why
        return None
    kind = file_kind(data)
    if kind == "spec" and data.get("name") not in registered_schedules():
        return None  # a name that is no family: a run's name, or a misspelt family; the command's error says
    if kind == expected or kind in ("neither", "labelled" if expected == "sweep" else ""):
        return None
    if kind == "sweep":
        return (f"{path} is a sweep file (keys such as grid, configs, base), not a training config; run it with: "
                f"lrjax sweep {path}")
    if kind in ("spec", "specs", "labelled"):
        what = "a schedule spec" if kind == "spec" else "a list of schedule specs" if kind == "specs" else (
            "schedule specs by label")
        return (f"{path} is {what}, not a {'sweep file' if expected == 'sweep' else 'training config'}; draw it "
                f"with: lrjax plot {path} (a training config holds a spec under its schedule: key)")
    if kind == "config":
        return (f"{path} is a training config, not a sweep file; train it with: lrjax train {path} (a sweep file "
                "names it as its base: and adds configs: or grid:)")
    return None
