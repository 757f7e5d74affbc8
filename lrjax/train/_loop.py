"""The training run: the engine's runner span by span, host hooks between spans, never a sync per step.

:func:`train` runs a config (or your own model, loss and data) end to end and writes the run directory::

    run_dir/
      config.yaml      the resolved config (every default filled in)
      metrics.jsonl    one JSON object per log (step, lr, momentum, train_loss, train_accuracy, grad_norm)
                       or evaluation (step, val_loss, val_accuracy, test_loss, test_accuracy, ...)
      curves.png       rate, loss and evaluation curves on shared step axes
      checkpoints/     orbax, the last few: the train state, data position, metrics-file offset
      summary.json     status, best and final evaluation, timings

The loop: the updates up to the next hook point (the next multiple of any hook's cadence, or the end) are
one *span*; the batch indices of the span come from the seeded :class:`~lrjax.engine.BatchIterator` and
go to the devices in one transfer; one compiled call of the engine's runner
(:meth:`~lrjax.engine.Experiment.advance`, state donated) runs them and returns a table of per-micro-step
metrics that stays on the device. Then the hooks due at that update run. Hooks defer their reads of
device values until the next span has been dispatched, so the host never waits for the device inside the
loop except to write a checkpoint.

>>> from lrjax.engine import load_config
>>> summary = train(load_config(None, ["train.steps=100"]), out_dir="/tmp/lrjax-doc-run")  # doctest: +SKIP
>>> summary["final_eval"]["test_accuracy"] > 0.9                                            # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

import lrjax._yaml as _yaml
from lrjax._rundir import atomic_write_json, atomic_write_text, check_writable, lock_run_dir
from lrjax.engine import COLUMN_INDEX as _COL
from lrjax.engine import (
    COLUMNS,
    BatchIterator,
    Checkpointer,
    Config,
    ConfigError,
    Experiment,
    Flags,
    TrainState,
    build_experiment,
    config_from_dict,
    config_to_dict,
    default_run_dir,
    eval_points,
    find_state,
    frozen_heap,
    loggers,
    nonfinite_update,
    read_yaml_mapping,
    run_name,
    unalias,
    with_validation,
)
from lrjax.optim import InjectState, with_hyperparams
from lrjax.train._hooks import (
    CheckpointHook,
    EarlyStopHook,
    EvalHook,
    Hook,
    LogHook,
    MLflowHook,
    ProgressHook,
    TensorBoardHook,
    WandbHook,
)
from lrjax.train._report import format_summary, plot_run

__all__ = ["train", "Run", "NonFiniteLossError", "default_run_dir", "load_run_config", "load_checkpoint"]


class NonFiniteLossError(RuntimeError):
    """The loss or gradient became NaN/inf; ``step`` and ``lr`` name the update that produced it."""

    def __init__(self, step: int, lr: float, checkpoint: int | None):
        self.step, self.lr, self.checkpoint = step, lr, checkpoint
        where = (f"the last good checkpoint (step {checkpoint}) is intact" if checkpoint is not None
                 else "no checkpoint had been written yet")
        super().__init__(
            f"non-finite loss at step {step} (learning rate {lr:.6g}); stopping: {where}. Lower the rate, "
            "add optimizer.clip_norm, or set train.on_nonfinite=skip to skip such steps"
        )


# ----------------------------------------------------------------------------- the run

class Run:
    """What hooks see: the experiment, the update count, metric rows not yet logged, deferred reads, files.

    Per-micro-step metric tables of the spans since the last log stay on the device (``pending``) until a
    hook reads them with :meth:`take_rows`; :meth:`flush` runs every deferred read.
    """

    def __init__(self, exp: Experiment, run_dir: str, checkpointer: Checkpointer, iterator: BatchIterator):
        self.exp, self.config = exp, exp.config
        self.run_dir = run_dir
        self.checkpointer = checkpointer
        self.iterator = iterator
        self.step = 0                      # optimizer updates done
        self.pending: list[tuple[jax.Array, int]] = []   # (device table, rows used) not yet fetched
        self.window = np.zeros((0, len(COLUMNS)), np.float32)  # fetched rows not yet logged
        self.skipped = 0                   # micro-steps skipped as non-finite (on_nonfinite: skip)
        self.records: list[dict[str, Any]] = []
        self.last_train: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}
        self.best_eval: dict[str, Any] | None = None
        self.span_eval: tuple[int, dict[str, dict[str, jax.Array]]] | None = None  # (update, device metrics)
        self.early_stop: dict[str, Any] = {}   # train.early_stop's best value and misses in a row
        self.stop_reason: str | None = None    # a hook ends the run early (early_stopped)
        self.last_checkpoint: int | None = None
        self.replanned: dict[str, Any] | None = None  # a resume that moved the rate (summary.json)
        self._deferred: list[Callable[[], None]] = []
        self.metrics_path = os.path.join(run_dir, "metrics.jsonl")
        # On several hosts only process 0 writes the run's files; every process keeps the records.
        self.primary = jax.process_index() == 0
        self._fh = open(self.metrics_path if self.primary else os.devnull, "a")  # noqa: SIM115 - open for the run

    @property
    def selection_split(self) -> str:
        """The split whatever chooses looks at: ``val`` when there is one, else ``test``."""
        return "val" if self.exp.data.has_validation else "test"

    # hooks' helpers ---------------------------------------------------------
    def take_eval_metrics(self) -> dict[str, dict[str, jax.Array]] | None:
        """The evaluation the last span's program ran at this update (device values), or None."""
        if self.span_eval is None or self.span_eval[0] != self.step:
            return None
        return self.span_eval[1]

    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the next span is dispatched (or at :meth:`flush`)."""
        self._deferred.append(fn)

    def flush(self) -> None:
        """Run every deferred read now (waits for the device), then fetch the rows still pending."""
        while self._deferred:
            fns, self._deferred = self._deferred, []
            for fn in fns:
                fn()
        if self.pending:
            self.window = self._fetch_rows(self.take_pending())
        self._fh.flush()

    def take_pending(self) -> list[tuple[jax.Array, int]]:
        """The device tables since the last call; the loop starts collecting anew."""
        out, self.pending = self.pending, []
        return out

    def _fetch_rows(self, tables: list[tuple[jax.Array, int]]) -> np.ndarray:
        """``window`` followed by the used rows of ``tables`` (a host read), checked for non-finite steps."""
        host = jax.device_get([t for t, _ in tables])
        rows = np.concatenate([self.window] + [h[:n] for h, (_, n) in zip(host, tables)])
        self.check_finite(rows[len(self.window):], first_micro=self._micro_of_rows(len(rows) - len(self.window)))
        return rows

    def _micro_of_rows(self, n: int) -> int:
        """The micro-step number of the first of the last ``n`` rows gathered so far."""
        pending = sum(k for _, k in self.pending)
        return self.step * self.exp.accumulation_steps - pending - n

    def take_rows(self, tables: list[tuple[jax.Array, int]]) -> np.ndarray:
        """Every metric row since the last log: the fetched ``window`` and ``tables`` (fetches them)."""
        rows = self._fetch_rows(tables)
        self.window = rows[:0]
        return rows

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, allow_nan=False) + "\n")
        self.records.append(record)

    def check_finite(self, rows: np.ndarray, first_micro: int) -> None:
        """Count non-finite micro-steps; in ``stop`` mode raise :class:`NonFiniteLossError` at the first
        (:func:`~lrjax.engine._records.nonfinite_update`, the rule a sweep member's records follow too)."""
        update = nonfinite_update(rows, first_micro, self.exp.accumulation_steps)
        if update is None:
            return
        bad = np.flatnonzero(rows[:, _COL["finite"]] < 0.5)
        if self.config.train.on_nonfinite == "stop":
            raise NonFiniteLossError(update, float(rows[bad[0], _COL["lr"]]), self.last_checkpoint)
        self.skipped += int(bad.size)

    def save_checkpoint(self, state: TrainState) -> None:
        """Flush pending logs, refuse a non-finite state, then write an atomic checkpoint."""
        self.flush()
        meta = {
            "step": self.step,
            "iterator": self.iterator.state_dict(),
            "metrics_offset": self._fh.tell(),
            "last_train": self.last_train,
            "last_eval": self.last_eval,
            "best_eval": self.best_eval,
            "skipped": self.skipped,
            "early_stop": self.early_stop,
            "window": [[None if not math.isfinite(v) else v for v in map(float, r)] for r in self.window],
            "data_sha256": (self.exp.data.info or {}).get("sha256"),  # a text corpus's hash: resume checks it
        }
        self.checkpointer.save(self.step, {"state": state}, meta)
        self.last_checkpoint = self.step

    def restart(self) -> None:
        """Start the run again from step 0 (no checkpoint is left): an empty metrics file."""
        if self.primary:
            self._fh.close()
            self._fh = open(self.metrics_path, "w")  # noqa: SIM115 - the run's metrics file, open until close()

    def restore(self, state: TrainState) -> TrainState:
        """Continue from the latest checkpoint: state, iterator, unlogged rows, metrics.jsonl offset."""
        tree, meta = self.checkpointer.restore({"state": state})
        was, now = meta.get("data_sha256"), (self.exp.data.info or {}).get("sha256")
        if was is not None and now is not None and was != now:
            raise ConfigError(f"--resume: the text of {self.exp.data.name!r} changed since the checkpoint of step "
                              f"{meta['step']} (sha256 {was[:12]}... then, {now[:12]}... now: other files, bytes or "
                              "Python version); restore the corpus or start a new run")
        self.step = int(meta["step"])
        self.iterator.load_state_dict(meta["iterator"])
        self.last_train, self.last_eval = meta.get("last_train") or {}, meta.get("last_eval") or {}
        self.best_eval = meta.get("best_eval")
        self.early_stop = dict(meta.get("early_stop") or {})
        self.skipped = int(meta.get("skipped", 0))
        window = meta.get("window") or []
        self.window = np.array([[np.nan if v is None else v for v in r] for r in window], np.float32).reshape(
            len(window), len(COLUMNS))
        self.last_checkpoint = self.step
        offset = int(meta["metrics_offset"])
        with open(self.metrics_path, "rb") as fh:  # the checkpointed prefix (also what other hosts read)
            text = fh.read(offset).decode(errors="replace")
        if len(text.encode()) < offset or (text and not text.endswith("\n")):
            # the file was cut short (a full disk, an editor): keep its whole lines and go on
            text = text[: text.rfind("\n") + 1]
            warnings.warn(f"lrjax train: {self.metrics_path} was shorter than at step {self.step}; kept its "
                          f"{text.count(chr(10))} whole lines", RuntimeWarning, stacklevel=2)
        self.records = [json.loads(line) for line in text.splitlines() if line.strip()]
        if self.primary:
            self._fh.close()
            with open(self.metrics_path, "r+b") as fh:
                fh.truncate(len(text.encode()))
            self._fh = open(self.metrics_path, "a")  # noqa: SIM115 - the run's metrics file, open until close()
        return tree["state"]

    def close(self) -> None:
        self._fh.close()


# ----------------------------------------------------------------------------- run directories

def load_checkpoint(run_dir: str, *, step: int | None = None, data: Any = None, model: Any = None,
                    loss: Any = None) -> tuple[Experiment, TrainState, dict[str, Any]]:
    """``(experiment, state, meta)`` from a run directory's latest (or ``step``) checkpoint.

    >>> exp, state, meta = load_checkpoint("runs/my-run")   # doctest: +SKIP
    >>> exp.evaluate(state)                                  # doctest: +SKIP
    """
    config = load_run_config(run_dir)
    exp = build_experiment(config, model=model, loss=loss, data=data)
    state = exp.initial_state(config.train.seed)
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=config.train.keep_checkpoints)
    try:
        tree, meta = ckpt.restore({"state": state}, step)
    finally:
        ckpt.close()
    return exp, tree["state"], meta


@contextlib.contextmanager
def _stop_on_signals(flag: dict[str, int]):
    """SIGINT/SIGTERM set ``flag['signal']``; the loop saves a checkpoint and exits cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _write_config(cfg: Config, path: str, archive_at: int | None = None) -> None:
    """Write the resolved config (atomically); on a resume that changes it, the previous one is kept as
    ``config.step<k>.yaml`` (the config of updates up to ``k``)."""
    if archive_at is not None and os.path.isfile(path):
        os.replace(path, os.path.join(os.path.dirname(path), f"config.step{archive_at}.yaml"))
    atomic_write_text(path, _yaml.dump(config_to_dict(cfg)))


def load_run_config(run_dir: str) -> Config:
    """The resolved config saved in a run directory (a :class:`~lrjax.engine.ConfigError` names the file
    when it is not a valid config)."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.yaml); expected the --out of an "
                                "earlier `lrjax train`")
    data = read_yaml_mapping(path, "config", "runs/<run>/config.yaml")
    try:
        return config_from_dict(data)
    except ValueError as e:
        raise type(e)(f"{path}: {e}") from None


def default_hooks(cfg: Config, run_dir: str, *, initial_step: int, progress: bool) -> list[Hook]:
    """Log, evaluate (the records: the program evaluated, and fed the plateau, at the end of the span),
    early stopping, checkpoint; progress bar and the loggers of ``train.report_to`` on process 0 only."""
    t = cfg.train
    primary = jax.process_index() == 0
    hooks: list[Hook] = [LogHook(t.log_every), EvalHook(t.eval_every)]
    if t.early_stop is not None:
        hooks.append(EarlyStopHook(t.eval_every, t.early_stop))
    hooks.append(CheckpointHook(t.checkpoint_every))
    if progress and primary:
        hooks.append(ProgressHook(t.log_every, total=t.steps, initial=initial_step))
    if primary:
        for name in loggers(cfg):
            if name == "tensorboard":
                hooks.append(TensorBoardHook(t.log_every, os.path.join(run_dir, "tensorboard")))
            else:
                cls = WandbHook if name == "wandb" else MLflowHook
                hooks.append(cls(t.log_every, run_dir, cfg.name or "lrjax", config_to_dict(cfg)))
    return hooks


def _boundaries(hooks: Sequence[Hook], total: int) -> list[int]:
    """Every update after which some hook runs: multiples of each cadence, and the last update."""
    points = {total}
    for h in hooks:
        points.update(range(h.every, total, h.every))
    return sorted(points)


# ----------------------------------------------------------------------------- train

def train(config: Config | None, *, model: Callable | None = None, loss: str | Callable | None = None,
          data: Any = None, out_dir: str | None = None, resume: str | None = None, hooks: Sequence[Hook] = (),
          progress: bool | None = None, plot: bool = True, verbose: bool = True) -> dict[str, Any]:
    """Train ``config`` and write the run directory; returns the summary (also in ``summary.json``).

    Args:
      config: a :class:`~lrjax.engine.Config` (``None`` with ``resume``: the run's saved config).
      model: your model factory ``(rngs, **kw) -> nnx.Module`` instead of ``config.model``.
      loss: ``"cross_entropy"``, ``"mse"``, ``"MODULE:NAME"`` or your function ``(outputs, targets) -> losses``.
      data: a :class:`~lrjax.engine.Dataset` or a mapping with ``x_train, y_train, x_test, y_test`` arrays.
      out_dir: the run directory (default ``runs/<timestamp>-<name>``).
      resume: a run directory to continue from its latest checkpoint.
      hooks: extra hooks after the default ones (see :mod:`lrjax.train._hooks`).

    Raises :class:`NonFiniteLossError` when the loss stops being finite (``train.on_nonfinite: stop``).

    >>> import numpy as np, lrjax.train
    >>> from lrjax.engine import load_config
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 3)).astype(np.float32); y = x @ np.array([1.0, -2.0, 0.5], np.float32)
    >>> arrays = {"x_train": x[:200], "y_train": y[:200], "x_test": x[200:], "y_test": y[200:]}
    >>> cfg = load_config(None, ["loss=mse", "train.steps=200", "model.hidden=[32]", "data.batch_size=32"])
    >>> import tempfile
    >>> s = lrjax.train.train(cfg, data=arrays, out_dir=tempfile.mkdtemp() + "/run", progress=False, verbose=False)
    >>> s["final_eval"]["test_r2"] > 0.9
    True
    """
    with frozen_heap():
        return _train(config, model=model, loss=loss, data=data, out_dir=out_dir, resume=resume, hooks=hooks,
                      progress=progress, plot=plot, verbose=verbose)


# What a resumed run may not change: the checkpoint holds a state of these.
_FIXED_ON_RESUME = ("data", "model", "loss", "optimizer.name", "optimizer.accumulation_steps", "optimizer.clip_norm",
                    "optimizer.cycle_momentum", "optimizer.batch_scaling", "optimizer.base_batch_size", "plateau",
                    "train.seed", "train.on_nonfinite", "train.average")


def _section(cfg: Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _replan(state: TrainState, exp: Experiment, saved: Config, config: Config) -> TrainState:
    """The restored ``state`` with the plan of the new ``config`` (schedule, optimizer hyperparameters):
    the plan lives in the optimizer state, so it is replaced, not rebuilt. A structural change is refused."""
    for path in _FIXED_ON_RESUME:
        old, new = _section(saved, path), _section(config, path)
        if old != new and not (path == "data" and dataclasses.replace(old, eval_batch_size=new.eval_batch_size) == new):
            raise ConfigError(f"--resume cannot change {path} (the checkpoint holds a state trained with {old!r}; "
                              f"got {new!r}); start a new run instead")
    plan = find_state(exp.tx.init(state.params), InjectState, "--resume", "lrjax.inject state").hyperparams
    try:
        return state._replace(opt_state=with_hyperparams(state.opt_state, **plan))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--resume: the new config changes the plan's structure, which a checkpoint cannot take: "
                          f"{e}") from None


def _rate_change(before: TrainState, after: TrainState, step: int, saved: Config, config: Config
                 ) -> dict[str, Any] | None:
    """When a re-plan moves the learning rate of the next update (``step``): one warning naming the old and the
    new rate, and the record ``{step, lr_before, lr_after}`` (``summary.json``'s ``replanned``); else None."""
    def rate(state: TrainState) -> float:
        lr = find_state(state.opt_state, InjectState, "--resume", "lrjax.inject state").hyperparams["learning_rate"]
        return float(np.asarray(lr(step) if callable(lr) else lr, np.float32))

    old, new = rate(before), rate(after)
    if old == new:
        return None
    why = (f"; its durations in % follow train.steps from {saved.train.steps} to {config.train.steps}"
           if saved.train.steps != config.train.steps else "")
    warnings.warn(f"lrjax train: --resume re-plans the schedule: the learning rate at step {step} moves from "
                  f"{old:.4g} to {new:.4g}{why}", UserWarning, stacklevel=4)
    return {"step": step, "lr_before": old, "lr_after": new}


def _resume_state(run: Run, saved: Config, config: Config, make_exp: Callable[[Config], Experiment]) -> TrainState:
    """The state to continue from: the latest checkpoint (onto the saved config's structure), with the new
    config's plan when it differs; from step 0 (with a warning) when no checkpoint is left."""
    exp = run.exp
    if run.checkpointer.latest_step() is None:
        warnings.warn(f"lrjax train: {run.run_dir} has no checkpoint left; starting again from step 0",
                      RuntimeWarning, stacklevel=3)
        run.restart()
        return exp.initial_state(config.train.seed)
    old = exp if saved == config else make_exp(saved)
    state = run.restore(old.initial_state(saved.train.seed))
    if run.step > exp.steps:
        raise ConfigError(f"--resume: train.steps={config.train.steps} is below the checkpoint's step {run.step}; "
                          f"set train.steps > {run.step} to train further")
    if saved != config:
        before, state = state, _replan(state, exp, saved, config)
        run.replanned = _rate_change(before, state, run.step, saved, config)
    return unalias(state)


def _train(config: Config | None, *, model, loss, data, out_dir, resume, hooks, progress, plot, verbose):
    t_start = time.perf_counter()
    saved = load_run_config(resume) if resume is not None else None
    config = with_validation(saved if config is None else config)
    primary = jax.process_index() == 0
    if jax.process_count() > 1:  # every host has looked at the run dir before process 0 writes to it
        from jax.experimental import multihost_utils  # noqa: PLC0415 - multi-host only

        multihost_utils.sync_global_devices("lrjax train: start")

    def make_exp(cfg: Config) -> Experiment:
        return build_experiment(cfg, model=model, loss=loss, data=data)

    exp = make_exp(config)  # bad data/config leave no run directory
    if not config.name:
        config = dataclasses.replace(config, name=run_name(config, exp.data.name, getattr(model, "__name__", None)))
    run_dir = resume or out_dir or default_run_dir(config.name)
    check_writable(run_dir, create=True, what="lrjax train")
    with lock_run_dir(run_dir, "lrjax train") if primary else contextlib.nullcontext():
        if resume is None and os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
            raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        return _run(exp, config, saved, run_dir, make_exp=make_exp, resume=resume, hooks=hooks, progress=progress,
                    plot=plot, verbose=verbose, t_start=t_start)


def _run(exp: Experiment, config: Config, saved: Config | None, run_dir: str, *, make_exp, resume, hooks, progress,
         plot, verbose, t_start) -> dict[str, Any]:
    tc = config.train
    primary = jax.process_index() == 0
    iterator = BatchIterator(exp.data.num_train, config.data.batch_size, tc.seed)
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=tc.keep_checkpoints)
    run = Run(exp, run_dir, ckpt, iterator)
    if resume is None:
        state = exp.initial_state(tc.seed)
    else:
        state = _resume_state(run, saved, config, make_exp)
    if primary and (resume is None or saved != config):
        _write_config(config, os.path.join(run_dir, "config.yaml"), archive_at=run.step if resume else None)
    start_step = run.step
    if verbose and primary:
        print(f"lrjax train: {config.name}: {exp.describe()} -> {run_dir}", flush=True)
    if progress is None:
        progress = tc.progress
    all_hooks = list(default_hooks(exp.config, run_dir, initial_step=start_step, progress=progress)) + list(hooks)
    points = _boundaries(all_hooks, exp.steps)
    accum = exp.accumulation_steps
    rows = max(b - a for a, b in zip([0] + points, points)) * accum  # one compiled span length
    program, evals = exp.program(rows), exp.eval_inputs()
    evaluated = set(eval_points(exp.config))  # the span ends with an evaluation (and the plateau's look) there
    flag: dict[str, int] = {}
    status = "completed"
    error: str | None = None
    compile_s = 0.0
    first_span = 0  # updates of the first span (timed with the compilation)
    t_end: float | None = None
    t_loop = time.perf_counter()
    try:
        with _stop_on_signals(flag):
            first = True
            for nxt in (p for p in points if p > run.step):
                lo, hi = run.step * accum, nxt * accum
                index = exp.take_index(iterator, hi - lo)
                flags = Flags(evaluate=nxt in evaluated, observe=nxt in evaluated)
                out = program(state, exp.source(index, lo), lo, hi, evals, flags)
                state, table = out.state, out.table
                run.span_eval = (nxt, out.metrics) if flags.evaluate else None
                if first:  # the one program is compiled now; one sync: compile time apart
                    jax.block_until_ready(table)
                    compile_s = time.perf_counter() - t_loop
                    t_loop = time.perf_counter()
                    first, first_span = False, nxt - run.step
                if run._deferred:
                    run.flush()
                run.pending.append((table, hi - lo))
                run.step = nxt
                for hook in all_hooks:
                    if nxt % hook.every == 0 or nxt == exp.steps:
                        new = hook(run, state)
                        if new is not None:
                            state = exp.replicate(unalias(new))
                if flag or run.stop_reason:
                    status = "interrupted" if flag else run.stop_reason
                    if run.last_checkpoint != run.step:
                        run.save_checkpoint(state)
                    break
            jax.block_until_ready(state)
            t_end = time.perf_counter()
            run.flush()
            if status == "completed" and run.last_checkpoint != run.step:
                run.save_checkpoint(state)
    except NonFiniteLossError as e:
        status, error = "nonfinite", str(e)
        raise
    except OSError as e:  # a checkpoint the disk refused (CheckpointError), a log that could not be written
        status, error = "failed", " ".join(str(e).split())
        raise
    finally:
        timing = {"t_start": t_start, "t_loop": t_loop, "t_end": t_end, "compile_s": compile_s,
                  "timed_steps": run.step - start_step - first_span}
        summary = _finish(run, all_hooks, exp, config, status, error, flag, start_step, resume, timing, plot,
                          verbose)
    return summary


def _finish(run: Run, hooks: list[Hook], exp: Experiment, config: Config, status: str, error: str | None,
            flag: dict, start_step: int, resume: str | None, timing: dict, plot: bool, verbose: bool
            ) -> dict[str, Any]:
    """Close hooks and files, write ``summary.json`` and the figure; never hides the run's own error."""
    with contextlib.suppress(NonFiniteLossError):  # already being raised, or found by the last read: see below
        run.flush()
    for h in hooks:
        close = getattr(h, "close", None)
        if close is not None:
            try:
                close(run)
            except Exception as e:  # noqa: BLE001 - a hook's cleanup must not hide the run's outcome
                warnings.warn(f"lrjax train: closing hook {type(h).__name__} failed: {e}", RuntimeWarning,
                              stacklevel=2)
    run.close()
    run.checkpointer.close()
    loop_s = (timing["t_end"] if timing["t_end"] is not None else time.perf_counter()) - timing["t_loop"]
    steps_done = run.step - start_step
    timed = timing["timed_steps"]
    summary = {
        "status": status,
        "error": error,
        "name": config.name,
        "run_dir": os.path.abspath(run.run_dir),
        "steps": run.step,
        "total_steps": exp.steps,
        "resumed_from": start_step if resume is not None else None,
        "replanned": run.replanned,
        "selection": run.selection_split,
        "final_train": run.last_train,
        "final_eval": run.last_eval,
        "best_eval": run.best_eval,
        "skipped": run.skipped if config.train.on_nonfinite == "skip" else None,
        "last_checkpoint": run.last_checkpoint,
        "time_s": round(time.perf_counter() - timing["t_start"], 3),
        "compile_s": round(timing["compile_s"], 3),
        "steps_per_s": round(timed / loop_s, 1) if loop_s > 0 and timed > 0 else None,
        "devices": int(exp.mesh.size),
        "parameters": exp.num_parameters,
        "data": exp.data.info if exp.data.info is not None else {"name": exp.data.name,
                                                                 "num_train": exp.data.num_train},
        "signal": flag.get("signal"),
    }
    if summary["skipped"] and summary["skipped"] * 2 > max(steps_done * exp.accumulation_steps, 1):
        warnings.warn(f"lrjax train: {summary['skipped']} of {steps_done * exp.accumulation_steps} steps were "
                      "skipped as non-finite; lower the rate or clip the gradients", RuntimeWarning, stacklevel=2)
    if not run.primary:
        return summary

    try:
        atomic_write_json(os.path.join(run.run_dir, "summary.json"), summary)
    except OSError as e:  # a full disk: the run's own error (if any) matters more
        warnings.warn(f"lrjax train: could not write summary.json: {e}", RuntimeWarning, stacklevel=2)
    if plot and run.records:
        try:
            summary["plot"] = plot_run(run.run_dir)
        except Exception as e:  # noqa: BLE001 - the run is done and saved; a figure is not worth failing for
            warnings.warn(f"lrjax train: could not draw {run.run_dir}/curves.png: {type(e).__name__}: {e}",
                          RuntimeWarning, stacklevel=2)
    if verbose:
        print(format_summary(summary))
    return summary

