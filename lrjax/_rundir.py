"""Run directories that one process writes at a time, files that are never half-written.

Three pieces for every command that writes a directory of results (``lrjax train --out R``,
``--resume R``, ``lrjax sweep --out S``):

* :func:`check_writable` — before any work starts, turn an impossible output path (under a regular
  file, in a read-only directory, a name too long) into one :class:`RunDirUnwritable` whose message
  names the path and the operating system's reason.
* :func:`lock_run_dir` — an OS file lock (``fcntl.flock`` on ``<dir>/.lock``) held for as long as the
  process writes the directory. A second writer gets :class:`RunDirLocked` at once, naming the PID,
  host and command of the holder. The operating system drops the lock when its holder exits, however
  it exits (SIGKILL included), so a lock left by a dead process never blocks: there is no stale-PID
  logic. The holder removes the lock file when it releases the lock (a killed one leaves it, harmless);
  a process that locked a file removed meanwhile notices (another inode at the path) and starts again.
* :func:`atomic_write_text` / :func:`atomic_write_json` — write a temporary file in the same
  directory, ``fsync`` it, then ``os.replace`` it over the target: a reader (or a crash) sees the old
  file or the new one, never a prefix. JSON is strict (``allow_nan=False``): a non-finite number is
  written as ``null`` and named in the object's ``non_finite`` list (:func:`strict_json`).
* :func:`safe_name` — a run or sweep name made safe as one file name (no separator, no ``..``, no
  control character), with a warning saying what was changed: ``--set name=../../x`` cannot write
  outside ``runs/``.

Without ``fcntl`` (Windows) the lock uses the ``filelock`` package when it is installed, else there is
no lock and no error.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> check_writable(d + "/run")          # nothing is left behind
>>> with lock_run_dir(d) as lock:
...     atomic_write_json(d + "/summary.json", {"status": "completed"})
>>> open(d + "/summary.json").read()
'{\\n  "status": "completed"\\n}\\n'
"""

from __future__ import annotations

import contextlib
import datetime
import errno as _errno
import json
import math
import os
import re
import shlex
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "RunDirError",
    "RunDirLocked",
    "RunDirUnwritable",
    "atomic_write_json",
    "atomic_write_text",
    "check_writable",
    "lock_run_dir",
    "safe_name",
    "strict_json",
    "UnsafeNameWarning",
]

LOCK_NAME = ".lock"


class RunDirError(OSError):
    """A run directory cannot be used; ``str(e)`` is one line meant for the user (exit 2)."""


class RunDirLocked(RunDirError):
    """Another process holds the directory's lock. ``holder``: what it recorded (pid, host, command, since)."""

    def __init__(self, message: str, path: str, holder: dict[str, Any] | None = None):
        super().__init__(message)
        self.path = path
        self.holder = holder or {}
        self.errno = _errno.EWOULDBLOCK


class RunDirUnwritable(RunDirError):
    """The directory cannot be created or written; ``reason`` is the operating system's."""

    def __init__(self, message: str, path: str, reason: str, errno: int | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.errno = errno


# ----------------------------------------------------------------------------- atomic writes

def _umask() -> int:
    try:  # Linux >= 4.7: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: str) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Replace ``path`` by ``text`` atomically: readers and crashes see the old file or the new one.

    The text goes to a temporary file next to ``path`` (same filesystem), is flushed and fsynced, then
    ``os.replace`` d over ``path``. On any error the temporary file is removed and ``path`` is untouched.
    The new file keeps the old one's permissions (a new one gets ``0o666 & ~umask``, like ``open``).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def strict_json(obj: Any) -> tuple[Any, list[str]]:
    """``obj`` with every non-finite float (NaN, ±inf: Python floats and numpy scalars) replaced by None,
    and the paths of what was replaced (``final_eval.test_loss``, ``lineage[3].values.peak``).

    >>> strict_json({"loss": float("nan"), "rows": [1.0, float("inf")]})
    ({'loss': None, 'rows': [1.0, None]}, ['loss', 'rows[1]'])
    """
    replaced: list[str] = []

    def clean(x: Any, path: str) -> Any:
        if isinstance(x, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if (isinstance(x, float) or (hasattr(x, "dtype") and getattr(x, "shape", None) == ()
                                    and getattr(x.dtype, "kind", "") == "f")) and not math.isfinite(float(x)):
            replaced.append(path)
            return None
        return x

    return clean(obj, ""), replaced


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, **dumps_kwargs: Any) -> None:
    """:func:`atomic_write_text` of ``json.dumps(obj, indent=indent, allow_nan=False, **dumps_kwargs)`` and
    a newline: strict JSON, which every reader parses.

    A non-finite number (a diverged loss, an exploded hyperparameter) is written as ``null``; when ``obj`` is
    a mapping, its ``non_finite`` key lists where (:func:`strict_json`), so a reader knows why a value is
    missing. The JSON is built before anything is written, so an unserialisable ``obj`` leaves ``path`` as
    it was.
    """
    clean, replaced = strict_json(obj)
    if replaced and isinstance(clean, dict):
        clean["non_finite"] = sorted(set(clean.get("non_finite") or []) | set(replaced))
    atomic_write_text(path, json.dumps(clean, indent=indent, allow_nan=False, **dumps_kwargs) + "\n")


# ----------------------------------------------------------------------------- names

class UnsafeNameWarning(UserWarning):
    """A run or sweep name was not a safe file name; the directory uses a cleaned copy."""


_UNSAFE_CHARS = re.compile(r"[^\w.=+-]+")  # \w: letters and digits of any script, and _
_MAX_NAME = 200  # bytes; a file name may hold 255, and the run directory adds a timestamp


def safe_name(name: str, *, fallback: str = "run", what: str | None = "run name") -> str:
    r"""``name`` as one safe file name: every run of characters other than letters, digits (of any script)
    and ``_ . = + -`` (path separators, control characters, spaces) becomes ``_``, runs of dots become one (no ``..``), leading and
    trailing dots and underscores go (no hidden name, no ``.``), at most 200 bytes (UTF-8); ``fallback`` when
    nothing is left. With ``what`` (e.g. ``"run name"``), a changed name warns once
    (:class:`UnsafeNameWarning`), saying what it became.

    >>> safe_name("../../../escaped", what=None), safe_name("peak=0.001 seed=0", what=None)
    ('escaped', 'peak=0.001_seed=0')
    >>> safe_name("..", what=None), safe_name("a\x00b/c", what=None)
    ('run', 'a_b_c')
    """
    out = _UNSAFE_CHARS.sub("_", str(name))
    out = re.sub(r"\.{2,}", ".", out).strip("._")
    out = out.encode()[:_MAX_NAME].decode(errors="ignore").rstrip("._") or fallback  # 200 bytes at most
    if what is not None and out != name:
        warnings.warn(f"{what} {name!r} is not a safe file name (only letters, digits and _ . = + -; no path "
                      f"separator or '..'); using {out!r} (choose the place with --out)", UnsafeNameWarning,
                      stacklevel=2)
    return out


# ----------------------------------------------------------------------------- writable?

def _os_reason(e: OSError) -> str:
    return e.strerror or (os.strerror(e.errno) if e.errno else str(e))


def _unwritable(path: str, e: OSError, what: str) -> RunDirUnwritable:
    reason = _os_reason(e)
    where = os.path.abspath(os.fspath(e.filename)) if e.filename is not None else None
    inside = where is not None and os.path.commonpath([where, os.path.abspath(path)]) == os.path.abspath(path)
    detail = f" ({e.filename})" if where and not inside else ""  # not the probe file inside ``path``
    return RunDirUnwritable(f"{what}: cannot write to {path}: {reason}{detail}", path, reason, e.errno)


def check_writable(path: str | os.PathLike, *, create: bool = False, what: str = "lrjax") -> None:
    """Raise :class:`RunDirUnwritable` unless directory ``path`` can be created and written.

    It creates the missing directories, a file inside, and (unless ``create``) removes what it made, so
    every reason the operating system has is found (``Not a directory``, ``Permission denied``,
    ``Read-only file system``, ``File name too long``, ``No space left on device``) — before any work.

    >>> check_writable("/dev/null/run")
    Traceback (most recent call last):
    ...
    lrjax._rundir.RunDirUnwritable: lrjax: cannot write to /dev/null/run: Not a directory (/dev/null)
    """
    path = os.fspath(path)
    if not path:
        raise RunDirUnwritable(f"{what}: cannot write to an empty path", path, "empty path")
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirUnwritable(f"{what}: cannot write to {path}: it is a file, not a directory", path,
                               "Not a directory", _errno.ENOTDIR)
    made: list[str] = []  # the directories this call created, outermost first
    head = os.path.abspath(path)
    missing: list[str] = []
    while not os.path.isdir(head):
        if os.path.lexists(head):  # a file (or a dangling link) where a directory must be
            raise _unwritable(path, NotADirectoryError(_errno.ENOTDIR, os.strerror(_errno.ENOTDIR), head), what)
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    try:
        for d in reversed(missing):
            os.mkdir(d)
            made.append(d)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".lrjax-write-test-")
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise _unwritable(path, e, what) from None
    finally:
        if not create:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(d)


# ----------------------------------------------------------------------------- the lock

_held: dict[str, tuple[int, int]] = {}   # real path -> (thread id, depth): re-entry by the holding thread
_held_guard = threading.Lock()


def _read_holder(lock_path: str) -> dict[str, Any]:
    try:
        with open(lock_path, encoding="utf-8") as fh:
            holder = json.loads(fh.read() or "{}")
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return ""
    parts = []
    if holder.get("pid") is not None:
        parts.append(f"pid {holder['pid']}" + (f" on {holder['host']}" if holder.get("host") else ""))
    if holder.get("command"):
        parts.append(f"`{holder['command']}`")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return " (" + ", ".join(parts) + ")" if parts else ""


def _locked(directory: str, what: str, holder: dict[str, Any]) -> RunDirLocked:
    return RunDirLocked(f"{what}: {directory} is in use by another process{_describe(holder)}; "
                        "wait for it to finish or write somewhere else", directory, holder)


def _command() -> str:
    argv = list(sys.argv) or ["python"]
    argv[0] = os.path.basename(argv[0]) or argv[0]
    cmd = shlex.join(argv)
    return cmd if len(cmd) <= 300 else cmd[:297] + "..."


@contextlib.contextmanager
def lock_run_dir(path: str | os.PathLike, what: str = "lrjax train") -> Iterator[str]:
    """Hold ``path``'s write lock for the ``with`` block; :class:`RunDirLocked` if another process has it.

    Creates ``path`` if needed (:class:`RunDirUnwritable` if it cannot), takes an exclusive ``flock`` on ``path/.lock`` without waiting, and
    records ``{"pid", "host", "command", "what", "since"}`` in it for the message a second writer gets::

        lrjax train: runs/a is in use by another process (pid 4242 on node1, `lrjax train --out runs/a`,
        since 2025-01-01T12:00:00); wait for it to finish or write somewhere else

    The thread holding the lock may take it again (nested ``with``: e.g. the CLI and ``train()``); any
    other holder, another process or another thread, is refused. Yields the lock file's path.

    On several hosts take it on one process only (process 0): on a shared filesystem (NFS) ``flock``
    locks are seen by every host.
    """
    directory = os.fspath(path)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise _unwritable(directory, e, what) from None
    key = os.path.realpath(directory)
    lock_path = os.path.join(directory, LOCK_NAME)
    me = threading.get_ident()
    with _held_guard:
        owner = _held.get(key)
        if owner is not None:
            if owner[0] != me:
                raise _locked(directory, what, _read_holder(lock_path))
            _held[key] = (me, owner[1] + 1)
    if owner is not None:  # re-entry by the holding thread
        try:
            yield lock_path
        finally:
            with _held_guard:
                tid, depth = _held[key]
                _held[key] = (tid, depth - 1)
        return

    release = _acquire(lock_path, directory, what)
    with _held_guard:
        _held[key] = (me, 1)
    try:
        yield lock_path
    finally:
        with _held_guard:
            _held.pop(key, None)
        release()


def _acquire(lock_path: str, directory: str, what: str):
    """Take the OS lock; return the function that releases it."""
    if fcntl is None:
        return _acquire_filelock(lock_path, directory, what)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _unwritable(directory, e, what) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (_errno.EWOULDBLOCK, _errno.EAGAIN, _errno.EACCES):
                raise _locked(directory, what, _read_holder(lock_path)) from None
            raise
        # The previous holder removes the file on release: if it did so between our open and our flock,
        # we hold a lock on a file no one else can see. Start again on the file the path names now.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "what": what,
              "since": datetime.datetime.now().isoformat(timespec="seconds")}
    with contextlib.suppress(OSError):  # the description is a courtesy: a full disk must not stop the lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)

    def release() -> None:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # still holding the lock: see the check above
        os.close(fd)  # closing the last descriptor drops the flock

    return release


def _acquire_filelock(lock_path: str, directory: str, what: str):
    try:
        import filelock  # noqa: PLC0415 - optional dependency
    except ImportError:
        return lambda: None  # no lock available on this platform: run unlocked, as before
    lock = filelock.FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise _locked(directory, what, {}) from None
    return lock.release
