"""The ``lrjax`` command: ``lrjax {train,plot,find-lr,sweep} ...``.

Each subcommand lives in its own module of this package and is imported only when it runs, so
``lrjax plot`` never loads flax and ``import lrjax`` never loads any of them.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function taking argv and returning an exit code, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("lrjax.cli.train", "main", "train a model with a schedule (default: digits, AdamW, warmup+cosine)"),
    "plot": ("lrjax.cli.plot", "main", "plot schedule specs or a config's schedule (default: every family)"),
    "find-lr": ("lrjax.cli.find_lr", "main", "learning-rate range test"),
    "sweep": ("lrjax.cli.sweep", "main", "train many schedule configurations in one compiled program"),
}


def _usage() -> str:
    lines = ["usage: lrjax COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "With no command, `lrjax` runs `lrjax train`. `lrjax COMMAND --help` for a command's options."]
    return "\n".join(lines)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line: one line each, ``lrjax: <Category>: <message>``."""
    return f"lrjax: {category.__name__}: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.formatwarning = _one_line_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv and argv[0] == "--version":
        from lrjax import __version__

        print(__version__)
        return 0
    cmd = "train"
    if argv and not argv[0].startswith("-") and not argv[0].endswith((".yaml", ".yml")):
        cmd = argv.pop(0)
    if cmd not in COMMANDS:
        from lrjax._checks import closest

        print(f"lrjax: unknown command {cmd!r}{closest(cmd, COMMANDS)}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[cmd]
    try:
        return int(getattr(importlib.import_module(module), func)(argv) or 0)
    except KeyboardInterrupt:  # Ctrl-C before a run installs its own handler (start-up, compiling)
        print(f"lrjax {cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
