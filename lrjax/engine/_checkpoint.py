"""Atomic checkpoints with orbax-checkpoint, that fail loudly and restore what can be read.

A checkpoint is one orbax step directory holding two items:

* ``state`` — a pytree (the :class:`~lrjax.train.TrainState`: parameters, optimizer state with its
  schedules, PRNG key, counters; and the device-side metric accumulator), saved with
  ``StandardSave`` and restored onto an abstract target of the same structure.
* ``meta`` — JSON: the data-iterator state (seed, epoch, position), the byte offset of
  ``metrics.jsonl`` at that step, the optimizer-update count and anything else small.

orbax writes each step into a temporary directory (``<step>.orbax-checkpoint-tmp``) and renames it
when complete, so a process killed mid-save (SIGKILL) leaves the previous checkpoints intact; the
manager keeps the last ``keep``.

Failures:

* **A save that cannot write** (a full disk, a file-size limit, a read-only or vanished directory: any
  OS error, which orbax reports from its writer threads as ``OSError`` or as a TensorStore
  ``ValueError`` carrying ``os_error_code``) raises one :class:`CheckpointError` (an ``OSError``, with
  the ``errno``) whose message names the step, the directory, the OS reason and the last good step::

      checkpoint step 60 not saved in runs/a/checkpoints: No space left on device; step 40 is the last
      good checkpoint

  The partial temporary directory is removed (its space is freed and the same step can be saved again
  once there is room); the finished checkpoints are untouched (old ones are only deleted after a save
  succeeds). orbax's own tracebacks from its writer threads are not printed.
* **An unreadable checkpoint** (a truncated array file, garbled JSON metadata, a missing item
  directory): :meth:`Checkpointer.restore` without a step falls back to the newest readable one, with
  a :class:`CheckpointFallbackWarning` naming the bad step, the reason and the step used instead. The
  next :meth:`~Checkpointer.save` renames the unreadable step directories ``<step>.unreadable`` (kept
  for inspection, invisible to orbax, never deleted by lrjax), so the run's later checkpoints are its
  own. With an explicit step, or when no checkpoint can be read, :class:`CheckpointError`; also when
  a checkpoint reads fine but does not fit the target (a different model or config), without falling
  back (an older checkpoint would not fit either).

>>> ck = Checkpointer("/tmp/lrjax-doc-ckpt", keep=2)          # doctest: +SKIP
>>> ck.save(10, {"w": jnp.ones(3)}, {"position": 4})           # doctest: +SKIP
>>> tree, meta = ck.restore({"w": jnp.zeros(3)})               # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno as _errno
import gc
import glob
import json
import logging
import math
import os
import re
import shutil
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax

__all__ = ["Checkpointer", "CheckpointError", "CheckpointSaveError", "CheckpointNotFound", "CheckpointFallbackWarning"]

_TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's name for a step being written: <step>.orbax-checkpoint-tmp[...]
_UNREADABLE = ".unreadable"


class CheckpointError(OSError):
    """A checkpoint could not be written or read; ``str(e)`` is one line naming the step and directory.

    ``step`` (None when the error concerns every step), ``directory``, ``reason`` (the OS's words where
    there is an OS error) and ``errno`` (None when the cause is not an OS error: a corrupt file) are kept.
    """

    def __init__(self, message: str, *, directory: str, step: int | None = None, reason: str = "",
                 errno: int | None = None):
        super().__init__(message)
        self.directory, self.step, self.reason = directory, step, reason
        self.errno = errno


class CheckpointSaveError(CheckpointError):
    """A checkpoint could not be written (a full disk, a file-size limit, ...): the run fails; the earlier
    checkpoints are intact."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """No checkpoint (at all, or at the requested step): there is nothing to restore."""


class CheckpointFallbackWarning(RuntimeWarning):
    """The latest checkpoint was unreadable; an earlier one was restored instead."""


# ----------------------------------------------------------------------------- reasons

_OS_CODE = re.compile(r"os_error_code='?(\d+)")
_TS_STATUS = re.compile(r"^(OUT_OF_RANGE|DATA_LOSS|UNAVAILABLE|PERMISSION_DENIED|RESOURCE_EXHAUSTED|NOT_FOUND|"
                        r"FAILED_PRECONDITION|ABORTED|INTERNAL|UNKNOWN|DEADLINE_EXCEEDED): ")
_TS_TAIL = ("[tensorstore_spec", "[source locations")  # TensorStore's appendices: kilobytes of JSON spec


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out and len(out) < 16:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _os_error(e: BaseException) -> tuple[int, str] | None:
    """``(errno, strerror)`` of the OS error behind ``e`` (an OSError, or TensorStore's ``os_error_code``)."""
    for x in _chain(e):
        if isinstance(x, OSError) and not isinstance(x, CheckpointError) and x.errno:
            return x.errno, x.strerror or os.strerror(x.errno)
    for x in _chain(e):
        m = _OS_CODE.search(str(x))
        if m and int(m.group(1)):
            return int(m.group(1)), os.strerror(int(m.group(1)))
    return None


_MISMATCH = re.compile(r"structures\s+do\s+not\s+match|not\s+compatible\s+with\s+the\s+stored\s+shape")


def _is_mismatch(e: BaseException) -> bool:
    """orbax read the checkpoint fine, but it does not fit the target (another model or config)."""
    return any(_MISMATCH.search(str(x)) for x in _chain(e))


def _is_storage_failure(e: BaseException) -> bool:
    return _os_error(e) is not None or any(_TS_STATUS.match(str(x)) for x in _chain(e))


def _one_line(text: str, limit: int = 320) -> str:
    """``text`` on one line, without TensorStore's specs; when long, its start and its end (the detail)."""
    for marker in _TS_TAIL:
        text = text.split(marker, 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit // 3] + " ... " + text[-(2 * limit // 3 - 5):]


def _snapshot(paths: list[str]) -> tuple[tuple[str, ...], tuple[tuple[str, int, int], ...]] | tuple[()]:
    """The state of the directory trees at ``paths``: names, sizes, modification times."""
    if not paths:
        return ()
    files = []
    for top in paths:
        for root, _, names in os.walk(top):
            for n in names:
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(root, n))
                    files.append((os.path.join(root, n), st.st_size, st.st_mtime_ns))
    return tuple(sorted(paths)), tuple(sorted(files))


def _reason(e: BaseException, raw: bool = False) -> str:
    """What went wrong, in one line: the OS reason, else the innermost error's own words."""
    os_err = _os_error(e)
    if os_err is not None:
        for x in _chain(e):
            if isinstance(x, OSError) and x.errno == os_err[0] and x.filename:
                return f"{os_err[1]}: {x.filename}"
        return os_err[1]
    chain = _chain(e)
    for x in chain:
        if isinstance(x, json.JSONDecodeError):
            return f"invalid JSON: {x.msg} (line {x.lineno}, column {x.colno})"
    # the context of the innermost error may be an internal StopIteration (json's scanner: "0", "6")
    while len(chain) > 1 and isinstance(chain[-1], StopIteration):
        chain = chain[:-1]
    inner = chain[-1]
    if isinstance(inner, KeyError) and inner.args:  # KeyError('6') says "'6'": say it is a missing key
        arg = inner.args[0]
        text = str(arg) if isinstance(arg, str) and " " in arg else f"missing key {arg!r}"
    else:
        text = str(inner) or type(inner).__name__
    return text if raw else _one_line(text)


class _DropOrbaxFailureLogs(logging.Filter):
    """orbax logs each failing writer thread's traceback, asyncio each abandoned task's: the raise is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        msg = str(record.msg)
        if "_SignalingThread.run() raised an exception" in msg:
            return False
        return not ("exception was never retrieved" in msg and "orbax" in record.getMessage())


def _orbax_leftover(u: Any) -> bool:
    """An unraisable exception from a failed orbax operation's abandoned coroutines and executor threads."""
    if isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == "Event loop is closed":
        return True
    code = getattr(u.object, "cr_code", None)
    return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


@contextlib.contextmanager
def _quiet_orbax_failure() -> Iterator[None]:
    """While orbax saves or restores: a failure is reported once, by the exception lrjax raises.

    When a write or read fails, orbax and asyncio print the tracebacks of every thread, task and
    coroutine the failed operation abandons (some only when they are garbage-collected, some when a
    thread finishes after its event loop closed). They are dropped here; anything else passes through.
    """
    f = _DropOrbaxFailureLogs()
    loggers = [logging.getLogger("absl"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addFilter(f)
    previous = sys.unraisablehook

    def hook(u: Any) -> None:
        if not _orbax_leftover(u):
            previous(u)

    sys.unraisablehook = hook
    try:
        yield
    except BaseException as e:
        # Let the abandoned threads finish and the coroutines be collected now, under this hook: the
        # error's frames hold them (their variables are cleared, their lines kept for the traceback).
        for x in _chain(e):
            traceback.clear_frames(x.__traceback__)
        deadline = time.monotonic() + 1.0
        for t in threading.enumerate():
            if t.name.startswith("asyncio_") and t is not threading.current_thread():
                t.join(timeout=max(deadline - time.monotonic(), 0.0))
        gc.collect()
        raise
    finally:
        if sys.unraisablehook is hook:
            sys.unraisablehook = previous
        for logger in loggers:
            logger.removeFilter(f)


# ----------------------------------------------------------------------------- strict JSON metadata

_NONFINITE = "$nonfinite"  # {"$nonfinite": "nan" | "inf" | "-inf"}: a float JSON has no literal for


def encode_meta(obj: Any) -> Any:
    """``obj`` with every non-finite float as ``{"$nonfinite": "nan"}`` (``"inf"``, ``"-inf"``), so the
    ``meta`` item is strict JSON (orbax writes Python's ``NaN``/``Infinity`` otherwise); :func:`decode_meta`
    gives the same floats back, so a restored run's progress (a diverged member's NaN loss) is exact.

    >>> encode_meta({"evals": [0.5, float("nan")], "lr": float("-inf")})
    {'evals': [0.5, {'$nonfinite': 'nan'}], 'lr': {'$nonfinite': '-inf'}}
    >>> decode_meta(encode_meta({"x": [float("inf")]}))
    {'x': [inf]}
    """
    if isinstance(obj, dict):
        return {k: encode_meta(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode_meta(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {_NONFINITE: "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
    return obj


def decode_meta(obj: Any) -> Any:
    """The inverse of :func:`encode_meta`."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _NONFINITE in obj and obj[_NONFINITE] in ("nan", "inf", "-inf"):
            return float(obj[_NONFINITE])
        return {k: decode_meta(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_meta(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- the checkpointer

class Checkpointer:
    """Save and restore ``(tree, meta)`` pairs by step in ``directory`` (orbax CheckpointManager).

    ``restored_step``: the step the last :meth:`restore` returned (after any fallback), else None.
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3):
        import orbax.checkpoint as ocp  # noqa: PLC0415 - heavy: loaded when a checkpoint is first made

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self._mngr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        self.restored_step: int | None = None
        self._unreadable: list[int] = []  # steps a fallback restore skipped: set aside at the next save

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    # ------------------------------------------------------------------ save
    def save(self, step: int, tree: Any, meta: dict[str, Any]) -> None:
        """Write checkpoint ``step`` (blocking: it is complete and renamed into place on return).

        Raises :class:`CheckpointError` when the storage fails (see the module docstring); the earlier
        checkpoints are then intact and the partial one is removed.
        """
        ocp = self._ocp
        self._set_aside_unreadable()
        args = ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(encode_meta(meta)))
        try:
            with _quiet_orbax_failure():
                try:
                    self._mngr.save(step, args=args, force=True)
                    self._mngr.wait_until_finished()
                except BaseException:
                    self._discard_partial(step)
                    raise
        except Exception as e:
            if not _is_storage_failure(e):
                raise  # not the disk's fault (a bug, a bad tree): orbax's own error
            os_err = _os_error(e)
            reason = os_err[1] if os_err else self._reason(e)
            last = self.latest_step()
            kept = f"step {last} is the last good checkpoint" if last is not None else "there is no earlier checkpoint"
            raise CheckpointSaveError(f"checkpoint step {step} not saved in {self.directory}: {reason}; {kept}",
                                  directory=self.directory, step=step, reason=reason,
                                  errno=os_err[0] if os_err else None) from e

    def _discard_partial(self, step: int) -> None:
        """Remove what a failed save of ``step`` left: orbax's temporary directory (process 0 only).

        TensorStore's own (C++) writer threads may still finish a write or two after the error reaches
        Python: wait until the directory stops changing, remove it, and again if it reappears (~3 s at most).
        """
        if jax.process_index() == 0:
            pattern = os.path.join(glob.escape(self.directory), f"{step}{_TMP_SUFFIX}*")
            deadline = time.monotonic() + 3.0
            before, quiet = None, 0
            while time.monotonic() < deadline:
                now = _snapshot(glob.glob(pattern))
                if now == before:
                    quiet += 1
                    if not now and quiet >= 2:
                        break  # gone, and staying gone
                    if now and quiet >= 2:
                        for tmp in now[0]:
                            shutil.rmtree(tmp, ignore_errors=True)
                        before, quiet = None, 0
                        continue
                else:
                    before, quiet = now, 0
                time.sleep(0.05)
            for tmp in glob.glob(pattern):
                shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            self._mngr.reload()

    def _set_aside_unreadable(self) -> None:
        if not self._unreadable:
            return
        if jax.process_index() == 0:
            for s in self._unreadable:
                src = os.path.join(self.directory, str(s))
                dst, i = src + _UNREADABLE, 1
                while os.path.lexists(dst):
                    dst, i = f"{src}{_UNREADABLE}.{i}", i + 1
                with contextlib.suppress(FileNotFoundError):
                    os.rename(src, dst)
        self._unreadable = []
        self._mngr.reload()

    # ------------------------------------------------------------------ restore
    def _read_meta(self, step: int) -> dict[str, Any]:
        ocp = self._ocp
        with _quiet_orbax_failure():
            out = self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        meta = out["meta"]
        if not isinstance(meta, dict):
            raise ValueError(f"meta is {type(meta).__name__}, not a JSON object")
        return decode_meta(dict(meta))

    def _restore_step(self, step: int, target: Any, template: Callable[[dict], Any] | None
                      ) -> tuple[Any, dict[str, Any]]:
        ocp = self._ocp
        if template is not None:
            target = template(self._read_meta(step))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        with _quiet_orbax_failure():
            out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                                   meta=ocp.args.JsonRestore()))
        meta = out["meta"]
        if not isinstance(meta, dict):
            raise ValueError(f"meta is {type(meta).__name__}, not a JSON object")
        return out["state"], decode_meta(dict(meta))

    def restore(self, target: Any = None, step: int | None = None, *,
                template: Callable[[dict[str, Any]], Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore the latest (or ``step``) checkpoint onto ``target``'s structure, shardings and dtypes.

        ``template`` instead of ``target``: a function of a checkpoint's ``meta`` that returns the tree to
        restore onto, for a state whose structure depends on the progress the meta records (a sweep's
        surviving chunks). Each step's meta is read first; a meta that cannot be read, or that the
        template cannot use, makes the step unreadable like a damaged array file.

        Without ``step``, an unreadable checkpoint is skipped for the newest readable one, with a
        :class:`CheckpointFallbackWarning`. :class:`CheckpointNotFound` when there is no checkpoint
        (at ``step``); :class:`CheckpointError` when the one asked for, or every one, is unreadable,
        and at once when a checkpoint does not fit ``target`` (another model or config: an older one
        would not fit either).
        """
        if (target is None) == (template is None):
            raise TypeError("Checkpointer.restore: give target or template (not both)")
        self._mngr.reload()  # the directory as it is now (steps deleted or added by someone else)
        steps = sorted(self.all_steps(), reverse=True)
        if step is not None:
            if step not in steps:
                on_disk = ", ".join(map(str, sorted(steps))) or "none"
                raise CheckpointNotFound(f"{self.directory}: no checkpoint at step {step} (steps: {on_disk})",
                                         directory=self.directory, step=step, reason="no such step",
                                         errno=_errno.ENOENT)
            try:
                out = self._restore_step(step, target, template)
            except Exception as e:
                raise self._unreadable_error(step, e) from e
            self.restored_step = step
            return out
        if not steps:
            raise CheckpointNotFound(f"{self.directory}: no finished checkpoint to resume from",
                                     directory=self.directory, reason="no checkpoint", errno=_errno.ENOENT)
        failed: list[tuple[int, str, Exception]] = []
        for i, s in enumerate(steps):
            try:
                out = self._restore_step(s, target, template)
            except Exception as e:
                if _is_mismatch(e):  # the same in every checkpoint: an older one would not fit either
                    raise self._unreadable_error(s, e) from e
                reason = self._reason(e)
                failed.append((s, reason, e))
                if i + 1 < len(steps):
                    warnings.warn(CheckpointFallbackWarning(
                        f"checkpoint step {s} in {self.directory} is unreadable ({reason}); "
                        f"restoring step {steps[i + 1]} instead"), stacklevel=2)
                continue
            self.restored_step = s
            self._unreadable = [f[0] for f in failed]
            return out
        reasons = "; ".join(f"step {s}: {r}" for s, r, _ in failed)
        raise CheckpointError(f"no readable checkpoint in {self.directory} ({reasons})",
                              directory=self.directory, reason=failed[0][1]) from failed[0][2]

    def restore_meta(self, step: int | None = None) -> dict[str, Any]:
        """The ``meta`` item alone of the latest (or ``step``) checkpoint (no fallback: to restore a state
        whose structure the meta describes, use :meth:`restore` with ``template=``)."""
        self._mngr.reload()
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointNotFound(f"{self.directory}: no finished checkpoint to resume from",
                                     directory=self.directory, reason="no checkpoint", errno=_errno.ENOENT)
        try:
            return self._read_meta(step)
        except Exception as e:
            raise self._unreadable_error(step, e) from e

    def _unreadable_error(self, step: int, e: BaseException) -> CheckpointError:
        reason = self._reason(e)
        what = ("does not fit the state to restore (another model or config?)" if _is_mismatch(e)
                else "is unreadable")
        return CheckpointError(f"checkpoint step {step} in {self.directory} {what}: {reason}",
                               directory=self.directory, step=step, reason=reason)

    def _reason(self, e: BaseException) -> str:
        """:func:`_reason`, with paths inside the checkpoint directory relative to it (``30/state/...``)."""
        return _one_line(_reason(e, raw=True).replace(self.directory + os.sep, ""))

    def close(self) -> None:
        self._mngr.close()
