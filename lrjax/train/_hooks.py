"""Periodic work as small hook objects.

Every hook has ``every`` (in optimizer updates) and is called as ``hook(run, state)`` after the update
whose number is a multiple of ``every`` (and after the last update); the loop ends a span of compiled
updates at every such point. It returns a new state or ``None`` (state unchanged). ``close(run)`` runs
once at the end. That is the whole protocol::

    class PrintLR:
        every = 100
        def __call__(self, run, state):
            run.defer(lambda: print(run.step, run.last_train.get("lr")))

Hooks never fetch device values on the spot: they hand a function to ``run.defer``, which the loop calls
after dispatching the next span (so fetching overlaps with compute), or at ``run.flush()``.

Shipped hooks: :class:`LogHook` (train metrics to ``metrics.jsonl``), :class:`EvalHook` (validation and
test metrics, as the span's program computed them), :class:`CheckpointHook`, :class:`ProgressHook` (tqdm bar) and :class:`TensorBoardHook` (when
``tensorboard`` is installed).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

import jax

from lrjax.engine._records import eval_record, is_better, selection_key, train_record

if TYPE_CHECKING:  # pragma: no cover
    from lrjax.engine import TrainState
    from lrjax.train._loop import Run

__all__ = ["Hook", "LogHook", "EvalHook", "CheckpointHook", "ProgressHook", "TensorBoardHook"]


class Hook(Protocol):
    every: int

    def __call__(self, run: "Run", state: "TrainState") -> "TrainState | None": ...


class LogHook:
    """Train metrics since the last log (rows of the device tables, fetched one span late) to
    ``metrics.jsonl``: ``step``, ``lr`` and ``momentum`` used by the last update, ``train_loss``,
    ``train_accuracy``, ``grad_norm`` (means over the finite steps), ``skipped`` (skip mode)."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: "Run", state: "TrainState") -> None:
        step = run.step
        tables = run.take_pending()

        def fetch() -> None:
            rows = run.take_rows(tables)
            skip = run.config.train.on_nonfinite == "skip"
            rec = train_record(step, rows, run.skipped if skip else None, run.exp.task.metrics)
            run.write(rec)
            run.last_train = rec

        run.defer(fetch)


class EvalHook:
    """Records the evaluation the span's program ran at its end (the engine's one segment program
    evaluates every split, and feeds reduce-on-plateau the selection split's loss, at these updates): metrics
    on the validation split (``val_*``, when there is one) and the test set (``test_*``): loss, and
    accuracy or R² as the task has them, and with ``train.average`` the averaged weights' beside them
    (``val_avg_*``, ``test_avg_*``: :meth:`lrjax.engine.Experiment.evaluate_arrays` returns ``avg_<metric>``
    too, and :func:`~lrjax.engine._records.eval_record` names them). Keeps the best evaluation by the
    validation metric of the trained weights (the test metric without a validation split) in
    ``run.best_eval``. At an update where the program did not evaluate (a hook cadence of your own), it
    evaluates the state itself."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: "Run", state: "TrainState") -> None:
        step = run.step
        metrics = run.take_eval_metrics()
        if metrics is None:
            metrics = {split: run.exp.evaluate(state, split) for split in run.exp.eval_splits}
        key, higher = selection_key(run.exp.task.classification, run.exp.data.has_validation)

        def fetch() -> None:
            rec = eval_record(step, jax.device_get(metrics))
            run.write(rec)
            run.last_eval = rec
            if is_better(rec.get(key), (run.best_eval or {}).get(key), higher):
                run.best_eval = rec

        run.defer(fetch)


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
            t = run.last_train
            if t:
                if t.get("train_loss") is not None:
                    post["loss"] = f"{t['train_loss']:.4f}"
                if t.get("train_accuracy") is not None:
                    post["acc"] = f"{t['train_accuracy']:.3f}"
                lr = t.get("lr")
                post["lr"] = f"{lr:.3g}" if lr is not None else "nan"
            e = run.last_eval
            for k in (f"{run.selection_split}_accuracy", f"{run.selection_split}_loss"):
                if e.get(k) is not None:
                    post[k] = f"{e[k]:.3f}"
                    break
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
