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
import secrets
import time
from typing import TYPE_CHECKING, Any, Protocol

import jax
from tqdm.auto import tqdm

from lrjax._rundir import atomic_write_text
from lrjax.engine import early_stop_step, eval_record, is_better, selection_key, train_record

if TYPE_CHECKING:  # pragma: no cover
    from lrjax.engine import TrainState
    from lrjax.train._loop import Run

__all__ = ["Hook", "LogHook", "EvalHook", "CheckpointHook", "ProgressHook", "EarlyStopHook", "TensorBoardHook",
           "WandbHook", "MLflowHook"]


class Hook(Protocol):
    every: int

    def __call__(self, run: Run, state: TrainState) -> TrainState | None: ...


class LogHook:
    """Train metrics since the last log (rows of the device tables, fetched one span late) to
    ``metrics.jsonl``: ``step``, ``lr`` and ``momentum`` used by the last update, ``train_loss``,
    ``train_accuracy``, ``grad_norm`` (means over the finite steps), ``skipped`` (skip mode)."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, run: Run, state: TrainState) -> None:
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

    def __call__(self, run: Run, state: TrainState) -> None:
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

    def __call__(self, run: Run, state: TrainState) -> None:
        run.save_checkpoint(state)


class ProgressHook:
    """A tqdm progress bar: step, loss, accuracy and the current rate (from the last fetched log)."""

    def __init__(self, every: int, total: int, initial: int = 0):
        self.every = every
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True)
        self._shown = initial

    def __call__(self, run: Run, state: TrainState) -> None:
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

    def close(self, run: Run) -> None:
        self.bar.close()


class EarlyStopHook:
    """Ends the run when the validation metric has not improved for ``patience`` evaluations
    (``train.early_stop``; the rule: :func:`~lrjax.engine._records.early_stop_step`): the run's status
    becomes ``early_stopped`` and the loop saves a checkpoint and ends. It reads the value when the
    evaluation is made (one device read per evaluation, not per step); its count and best are checkpointed."""

    def __init__(self, every: int, rule: Any):
        self.every, self.rule = every, rule
        self.metric = rule.metric[4:] if rule.metric.startswith("val_") else rule.metric

    def __call__(self, run: Run, state: TrainState) -> None:
        metrics = run.take_eval_metrics()
        if metrics is None:
            return
        value = float(jax.device_get(metrics[run.selection_split][self.metric]))
        if early_stop_step(run.early_stop, value, run.step, self.rule):
            run.stop_reason = "early_stopped"


class _RecordsHook:
    """A logger: every new ``metrics.jsonl`` record (train logs and evaluations: rate and momentum
    included) goes to :meth:`write` one span late, as the records are fetched."""

    def __init__(self, every: int):
        self.every = every
        self._seen = 0

    def write(self, record: dict[str, float], step: int) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    def flush(self) -> None:
        """Push what was written (a file flush); by default nothing."""

    def __call__(self, run: Run, state: TrainState) -> None:
        def write() -> None:
            for rec in run.records[self._seen:]:
                values = {k: float(v) for k, v in rec.items()
                          if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
                if values:
                    self.write(values, int(rec["step"]))
            self._seen = len(run.records)
            self.flush()

        run.defer(write)

    def close(self, run: Run) -> None:
        self(run, None)  # type: ignore[arg-type]
        run.flush()
        self.finish()

    def finish(self) -> None:
        """End the logger's run (after the last records)."""


class TensorBoardHook(_RecordsHook):
    """Every record as TensorBoard scalars in ``logdir`` (needs ``tensorboard``: ``train.report_to:
    [tensorboard]`` or ``train.tensorboard: true``)."""

    def __init__(self, every: int, logdir: str):
        from tensorboard.summary import Writer  # type: ignore[import-not-found]  # noqa: PLC0415 - optional dependency

        super().__init__(every)
        self.writer = Writer(os.fspath(logdir))

    def write(self, record: dict[str, float], step: int) -> None:
        for k, v in record.items():
            self.writer.add_scalar(k, v, step=step)

    def flush(self) -> None:
        self.writer.flush()

    def finish(self) -> None:
        self.writer.close()


class WandbHook(_RecordsHook):
    """Every record to Weights & Biases (``train.report_to: [wandb]``; needs ``wandb``). Offline unless
    ``WANDB_MODE`` says otherwise (``wandb sync <run>/wandb/offline-run-*`` uploads it later); the run's
    config is the W&B config; a resumed lrjax run continues the same W&B run (its id is kept in
    ``<run>/wandb/lrjax-run-id``)."""

    def __init__(self, every: int, run_dir: str, name: str, config: dict[str, Any]):
        import wandb  # noqa: PLC0415 - optional dependency

        super().__init__(every)
        directory = os.path.join(run_dir, "wandb")
        os.makedirs(directory, exist_ok=True)
        id_file = os.path.join(directory, "lrjax-run-id")
        run_id = _read_id(id_file) or secrets.token_hex(4)
        _write_id(id_file, run_id)
        self.run = wandb.init(mode=os.environ.get("WANDB_MODE", "offline"), dir=run_dir,
                              project=os.environ.get("WANDB_PROJECT", "lrjax"), name=name, id=run_id,
                              resume="allow", config=config, settings=wandb.Settings(silent=True))

    def write(self, record: dict[str, float], step: int) -> None:
        self.run.log(record, step=step)

    def finish(self) -> None:
        self.run.finish()


class MLflowHook(_RecordsHook):
    """Every record as MLflow metrics (``train.report_to: [mlflow]``; needs ``mlflow`` or ``mlflow-skinny``)
    at ``MLFLOW_TRACKING_URI``, else in a local store ``<run>/mlruns`` (``mlflow ui --backend-store-uri
    <run>/mlruns`` shows it); the run's config as parameters; a resumed lrjax run continues the same MLflow
    run (its id is kept in ``<run>/mlruns/lrjax-run-id``)."""

    def __init__(self, every: int, run_dir: str, name: str, config: dict[str, Any]):
        import mlflow  # noqa: PLC0415 - optional dependency

        super().__init__(every)
        store = os.path.join(os.path.abspath(run_dir), "mlruns")
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"file:{store}"
        if uri.startswith("file:"):  # MLflow 3 keeps its file store working behind this switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.makedirs(store, exist_ok=True)
        self.client = mlflow.tracking.MlflowClient(uri)
        id_file = os.path.join(store, "lrjax-run-id")
        self.run_id = _read_id(id_file)
        if self.run_id is None:
            exp = self.client.get_experiment_by_name("lrjax")
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment("lrjax")
            self.run_id = self.client.create_run(exp_id, run_name=name).info.run_id
            for k, v in _flat(config).items():
                self.client.log_param(self.run_id, k, str(v)[:500])
            _write_id(id_file, self.run_id)

    def write(self, record: dict[str, float], step: int) -> None:
        import mlflow  # noqa: PLC0415 - optional dependency

        ts = int(time.time() * 1000)
        metrics = [mlflow.entities.Metric(k, v, ts, step) for k, v in record.items() if v == v]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id)


def _read_id(path: str) -> str | None:
    """A logger's run id kept in the run directory (a resumed lrjax run continues that logger run)."""
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        return fh.read().strip() or None


def _write_id(path: str, run_id: str) -> None:
    atomic_write_text(path, run_id)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": v}`` of a nested mapping (a config as parameters)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}
