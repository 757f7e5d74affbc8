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
    with _exit_on_interrupt(f"lrjax {cmd}"):
        return int(getattr(importlib.import_module(module), func)(argv) or 0)


class _exit_on_interrupt:
    """Ctrl-C or SIGTERM outside a training loop (imports, loading data, compiling, a sweep): one line and
    exit ``128 + signal`` at once. A KeyboardInterrupt would surface wherever Python happens to be — inside a
    GC callback (swallowed), inside XLA's compiler — and files are only ever replaced whole, so stopping is
    safe; ``lrjax train``'s loop installs its own handlers meanwhile and saves a checkpoint first."""

    def __init__(self, prog: str):
        self.prog, self.old = prog, {}

    def _exit(self, signum: int, frame) -> None:  # pragma: no cover - exercised in subprocesses
        import os

        sys.stderr.write(f"{self.prog}: interrupted (signal {signum}); files written so far are complete\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    def __enter__(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self._exit) for s in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc) -> bool:
        import signal

        for s, h in self.old.items():
            signal.signal(s, h)
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
