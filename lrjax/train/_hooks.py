"""Periodic work as small hook objects.

Every hook has ``every`` (in optimizer updates) and is called as ``hook(run, state)`` after the update
whose number is a multiple of ``every`` (and after the last update). It returns a new state or
``None`` (state unchanged). ``close(run)`` runs once at the end. That is the whole protocol::

    class PrintLR:
        every = 100
        def __call__(self, run, state):
            run.defer(lambda: print(run.step, run.last_train.get("lr")))

Hooks never fetch device values on the spot: they hand a function to ``run.defer``, which the loop calls
after dispatching the next step (so fetching overlaps with compute), or at ``run.flush()``.

Shipped hooks: :class:`LogHook` (train metrics to ``metrics.jsonl``), :class:`EvalHook` (test metrics),
:class:`PlateauHook` (feeds the eval loss to :func:`lrjax.observe_metric`), :class:`CheckpointHook`,
:class:`ProgressHook` (tqdm bar) and :class:`TensorBoardHook` (when ``tensorboard`` is installed).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Protocol

import jax
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from lrjax.train._loop import Run
    from lrjax.train._step import TrainState

__all__ = ["Hook", "LogHook", "EvalHook", "PlateauHook", "CheckpointHook", "ProgressHook", "TensorBoardHook"]


class Hook(Protocol):
    every: int

    def __call__(self, run: "Run", state: "TrainState") -> "TrainState | None": ...


def _py(x: Any) -> Any:
    a = np.asarray(x)
    if a.dtype.kind == "b":
        return bool(a)
    if a.dtype.kind in "iu":
        return int(a)
    v = float(a)
    return v if math.isfinite(v) else None if math.isnan(v) else v


class LogHook:
    """Averages of the train metrics since the last log (on device), fetched one step late to
    ``metrics.jsonl``: ``step``, ``lr`` and ``momentum`` used by the last update, ``train_loss``,
    ``train_accuracy``, ``grad_norm``, ``skipped``."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: "Run", state: "TrainState") -> None:
        step = run.step
        window = run.take_window()  # device dict; the loop starts a fresh window

        def fetch() -> None:
            from lrjax.train._loop import window_values

            w = window_values(jax.device_get(window))
            sk = w["skipped"]
            run.check_finite(w)
            n = max(float(w["count"]), 1.0)
            rec = {"step": step, "lr": _py(w["lr"])}
            if not np.isnan(w["momentum"]):
                rec["momentum"] = _py(w["momentum"])
            rec.update(train_loss=_py(w["loss"] / n), train_accuracy=_py(w["accuracy"] / n),
                       grad_norm=_py(w["grad_norm"] / n))
            if run.config.train.on_nonfinite == "skip":
                rec["skipped"] = int(sk)
            run.write(rec)
            run.last_train = rec

        run.defer(fetch)


class EvalHook:
    """Test-set loss and accuracy (``eval_loss``, ``eval_accuracy``); keeps the device value of the loss
    in ``run.last_eval_loss`` for :class:`PlateauHook` and tracks the best accuracy."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: "Run", state: "TrainState") -> None:
        step = run.step
        m = run.exp.evaluate(state)
        run.last_eval_loss = m["loss"]

        def fetch() -> None:
            loss, acc = (float(v) for v in jax.device_get((m["loss"], m["accuracy"])))
            rec = {"step": step, "eval_loss": _py(loss), "eval_accuracy": _py(acc)}
            run.write(rec)
            run.last_eval = rec
            if run.best_eval is None or acc > run.best_eval["eval_accuracy"]:
                run.best_eval = rec

        run.defer(fetch)


class PlateauHook:
    """Reduce-on-plateau fed by the eval loss: ``opt_state = lrjax.observe_metric(opt_state, loss)``.

    Runs right after :class:`EvalHook` with the same cadence; the value stays on the device.
    """

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: "Run", state: "TrainState") -> "TrainState | None":
        import lrjax

        if run.last_eval_loss is None:
            return None
        return state._replace(opt_state=lrjax.observe_metric(state.opt_state, run.last_eval_loss))


class CheckpointHook:
    """Saves a checkpoint (blocking, atomic); refuses to save a state touched by a non-finite loss."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: "Run", state: "TrainState") -> None:
        run.save_checkpoint(state)


class ProgressHook:
    """A tqdm progress bar: step, loss, accuracy and the current rate (from the last fetched log)."""

    def __init__(self, every: int, total: int, initial: int = 0):
        from tqdm.auto import tqdm

        self.every = every
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True)
        self._shown = initial

    def __call__(self, run: "Run", state: "TrainState") -> None:
        step = run.step

        def show() -> None:
            post = {}
            if run.last_train:
                post["loss"] = f"{run.last_train['train_loss']:.4f}"
                post["acc"] = f"{run.last_train['train_accuracy']:.3f}"
                lr = run.last_train.get("lr")
                post["lr"] = f"{lr:.3g}" if lr is not None else "nan"
            if run.last_eval:
                post["eval_acc"] = f"{run.last_eval['eval_accuracy']:.3f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(step - self._shown)
            self._shown = step

        run.defer(show)

    def close(self, run: "Run") -> None:
        self.bar.close()


class TensorBoardHook:
    """Writes every new ``metrics.jsonl`` record as TensorBoard scalars (needs ``tensorboard``)."""

    def __init__(self, every: int, logdir: str):
        try:
            from tensorboard.summary import Writer  # type: ignore[import-not-found]
        except ImportError as e:
            raise ImportError(
                "train.tensorboard=true needs the tensorboard package: pip install 'lrjax[tensorboard]'"
            ) from e
        self.every = every
        self.writer = Writer(os.fspath(logdir))
        self._seen = 0

    def __call__(self, run: "Run", state: "TrainState") -> None:
        def write() -> None:
            for rec in run.records[self._seen:]:
                for k, v in rec.items():
                    if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                        self.writer.add_scalar(k, float(v), step=rec["step"])
            self._seen = len(run.records)
            self.writer.flush()

        run.defer(write)

    def close(self, run: "Run") -> None:
        self(run, None)  # type: ignore[arg-type]
        run.flush()
        self.writer.close()
