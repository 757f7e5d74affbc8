"""The ``lrjax`` command: ``lrjax {train,plot,find-lr,sweep} ...``.

Each subcommand lives in its own module and is imported only when it runs, so
``lrjax plot`` never loads flax and ``import lrjax`` never loads any of them.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function taking argv and returning an exit code, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("lrjax.train._cli", "main", "train a model with a schedule (default: digits, AdamW, warmup+cosine)"),
    "plot": ("lrjax.plot", "main", "plot schedule specs (default: a gallery of every family)"),
    "find-lr": ("lrjax.finder._cli", "main", "learning-rate range test"),
    "sweep": ("lrjax.sweep._cli", "main", "train many schedule configurations in one compiled program"),
}


def _usage() -> str:
    lines = ["usage: lrjax COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "With no command, `lrjax` runs `lrjax train`. `lrjax COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
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
    return int(getattr(importlib.import_module(module), func)(argv) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
