"""The step loop: dispatch jitted steps, let hooks do the periodic work, never sync per step.

:func:`train` runs a :class:`~lrjax.train.Config` end to end and writes the run directory::

    run_dir/
      config.yaml      the resolved config (every default filled in)
      metrics.jsonl    one JSON object per log or eval: step, lr, momentum, train_loss, train_accuracy,
                       grad_norm / eval_loss, eval_accuracy
      curves.png       rate, loss and eval curves on shared step axes
      checkpoints/     orbax, the last few; params, optimizer state, data position, PRNG, metric offset
      summary.json     status, best and final eval, timings

The loop itself is a few lines: take the next batch indices from the seeded iterator, put the batch on
the mesh, call the fused step (``train_step`` plus on-device metric sums, state and sums donated), and
after each optimizer update call the hooks whose cadence divides the update number. Hooks defer device
reads to after the next dispatch, so the host never waits for the device inside the loop except to
write a checkpoint.

>>> from lrjax.train import load_config, train
>>> summary = train(load_config(None, ["train.steps=100"]), out_dir="/tmp/lrjax-doc-run")  # doctest: +SKIP
>>> summary["final_eval"]["eval_accuracy"] > 0.9                                              # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import threading
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.train._checkpoint import Checkpointer
from lrjax.train._config import Config, config_from_dict, config_to_dict
from lrjax.train._data import BatchIterator, Dataset
from lrjax.train._hooks import (
    CheckpointHook,
    EvalHook,
    Hook,
    LogHook,
    PlateauHook,
    ProgressHook,
    TensorBoardHook,
)
from lrjax.train._step import Experiment, TrainState, _unalias, build_experiment, frozen_heap, seed_key

__all__ = ["train", "Run", "NonFiniteLossError", "enable_compilation_cache", "default_run_dir", "load_run_config",
           "load_checkpoint"]


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


# ----------------------------------------------------------------------------- on-device metric sums

# The window is three arrays (few buffers per dispatch): float sums, last values, int counters.
_SUMS = ("loss", "accuracy", "grad_norm", "count")
_LAST = ("lr", "momentum", "bad_lr")
_INTS = ("bad_step", "skipped")


def _empty_window() -> dict[str, np.ndarray]:
    return {"sums": np.zeros(len(_SUMS), np.float32), "last": np.full(len(_LAST), np.nan, np.float32),
            "ints": np.array([-1, 0], np.int32)}


def _fused_step(train_step: Callable) -> Callable:
    """``(state, window, batch) -> (state, window)``: the train step plus running sums of its metrics."""

    def step(state: TrainState, window: dict, batch: dict) -> tuple[TrainState, dict]:
        micro = state.step
        new, m = train_step(state, batch)
        ok = m["finite"]
        vals = jnp.stack([m["loss"], m["accuracy"], m["grad_norm"], jnp.float32(1.0)]).astype(jnp.float32)
        sums = window["sums"] + jnp.where(ok, vals, 0.0)
        bad_step, _ = window["ints"][0], window["ints"][1]
        first = (bad_step < 0) & ~ok
        mom = m.get("momentum", jnp.float32(jnp.nan))
        last = jnp.stack([m["lr"], mom, jnp.where(first, m["lr"], window["last"][2])]).astype(jnp.float32)
        ints = jnp.stack([jnp.where(first, micro, bad_step), new.skipped]).astype(jnp.int32)
        return new, {"sums": sums, "last": last, "ints": ints}

    return step


def window_values(w: dict[str, Any]) -> dict[str, Any]:
    """A fetched window as named values (``loss`` ... ``count``, ``lr``, ``momentum``, ``bad_lr``, ...)."""
    out = {k: w["sums"][i] for i, k in enumerate(_SUMS)}
    out.update({k: w["last"][i] for i, k in enumerate(_LAST)})
    out.update({k: w["ints"][i] for i, k in enumerate(_INTS)})
    return out


unalias = _unalias


def _reset_window(w: dict) -> dict:
    """A new window: sums at zero, last values and counters (first non-finite step, skipped) kept."""
    return {"sums": jnp.zeros_like(w["sums"]), "last": w["last"], "ints": w["ints"]}


_reset_window_jit = jax.jit(_reset_window)


# ----------------------------------------------------------------------------- the run

class Run:
    """What hooks see: the experiment, counters, the current metric window, deferred reads, files."""

    def __init__(self, exp: Experiment, run_dir: str, checkpointer: Checkpointer, iterator: BatchIterator):
        self.exp, self.config = exp, exp.config
        self.run_dir = run_dir
        self.checkpointer = checkpointer
        self.iterator = iterator
        self.step = 0                      # optimizer updates done
        self.window: dict[str, jax.Array] = {}
        self.records: list[dict[str, Any]] = []
        self.last_train: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}
        self.best_eval: dict[str, Any] | None = None
        self.last_eval_loss: jax.Array | None = None
        self.last_checkpoint: int | None = None
        self._deferred: list[Callable[[], None]] = []
        self._reset = _reset_window_jit
        self.metrics_path = os.path.join(run_dir, "metrics.jsonl")
        # On several hosts only process 0 writes the run's files; every process keeps the records.
        self.primary = jax.process_index() == 0
        self._fh = open(self.metrics_path if self.primary else os.devnull, "a")

    # hooks' helpers ---------------------------------------------------------
    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the next step is dispatched (or at :meth:`flush`)."""
        self._deferred.append(fn)

    def flush(self) -> None:
        """Run every deferred read now (waits for the device)."""
        while self._deferred:
            fns, self._deferred = self._deferred, []
            for fn in fns:
                fn()
        self._fh.flush()

    def take_window(self) -> dict[str, jax.Array]:
        """The metric sums since the last call; the loop continues with a fresh window."""
        w = self.window
        self.window = self._reset(w)
        return w

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, allow_nan=False) + "\n")
        self.records.append(record)

    def check_finite(self, window: dict[str, Any]) -> None:
        if self.config.train.on_nonfinite == "stop" and int(window["bad_step"]) >= 0:
            update = int(window["bad_step"]) // self.exp.accumulation_steps + 1
            raise NonFiniteLossError(update, float(window["bad_lr"]), self.last_checkpoint)

    def save_checkpoint(self, state: TrainState) -> None:
        """Flush pending logs, refuse a non-finite state, then write an atomic checkpoint."""
        self.flush()
        self.check_finite(window_values(jax.device_get(self.window)))
        meta = {
            "step": self.step,
            "iterator": self.iterator.state_dict(),
            "metrics_offset": self._fh.tell(),
            "last_train": self.last_train,
            "last_eval": self.last_eval,
            "best_eval": self.best_eval,
        }
        self.checkpointer.save(self.step, {"state": state, "window": self.window}, meta)
        self.last_checkpoint = self.step

    def restore(self, state: TrainState) -> TrainState:
        """Continue from the latest checkpoint: state, metric window, iterator, metrics.jsonl offset."""
        tree, meta = self.checkpointer.restore({"state": state, "window": self.window})
        self.window = tree["window"]
        self.step = int(meta["step"])
        self.iterator.load_state_dict(meta["iterator"])
        self.last_train, self.last_eval = meta.get("last_train") or {}, meta.get("last_eval") or {}
        self.best_eval = meta.get("best_eval")
        self.last_checkpoint = self.step
        offset = int(meta["metrics_offset"])
        if self.primary:
            self._fh.close()
            with open(self.metrics_path, "r+b") as fh:
                fh.truncate(offset)
            self._fh = open(self.metrics_path, "a")
        with open(self.metrics_path, "rb") as fh:  # the checkpointed prefix (also what other hosts read)
            self.records = [json.loads(line) for line in fh.read(offset).decode().splitlines() if line.strip()]
        return tree["state"]

    def close(self) -> None:
        self._fh.close()


def _window_for(exp: Experiment, state: TrainState) -> dict[str, jax.Array]:
    """An empty metric window."""
    return _empty_window()


def load_checkpoint(run_dir: str, *, step: int | None = None, data: Dataset | None = None
                    ) -> tuple[Experiment, TrainState, dict[str, Any]]:
    """``(experiment, state, meta)`` from a run directory's latest (or ``step``) checkpoint.

    >>> exp, state, meta = load_checkpoint("runs/my-run")   # doctest: +SKIP
    >>> exp.evaluate(state)                                  # doctest: +SKIP
    """
    config = load_run_config(run_dir)
    exp = build_experiment(config, data)
    state = exp.jit_init_state(seed_key(config.train.seed))
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=config.train.keep_checkpoints)
    try:
        tree, meta = ckpt.restore({"state": state, "window": exp.replicate(_window_for(exp, state))}, step)
    finally:
        ckpt.close()
    return exp, tree["state"], meta


def default_run_dir(name: str, root: str = "runs") -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{stamp}-{name}")
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    return path


def enable_compilation_cache(directory: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (every program, however small) in ``directory``
    (default: the user cache dir, e.g. ``~/.cache/lrjax/jax``). Returns the directory."""
    if directory is None:
        try:
            import platformdirs

            directory = os.path.join(platformdirs.user_cache_dir("lrjax"), "jax")
        except ImportError:  # pragma: no cover
            directory = os.path.join(os.path.expanduser("~"), ".cache", "lrjax", "jax")
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


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


def _write_config(cfg: Config, path: str) -> None:
    import yaml

    with open(path, "w") as fh:
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)


def load_run_config(run_dir: str) -> Config:
    """The resolved config saved in a run directory."""
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.yaml); expected the --out of an "
                                "earlier `lrjax train`")
    with open(path) as fh:
        return config_from_dict(yaml.safe_load(fh))


def default_hooks(cfg: Config, run_dir: str, *, initial_step: int, progress: bool) -> list[Hook]:
    """Log, eval, plateau, checkpoint; progress bar and TensorBoard on process 0 only."""
    t = cfg.train
    primary = jax.process_index() == 0
    hooks: list[Hook] = [LogHook(t.log_every), EvalHook(t.eval_every)]
    if cfg.plateau is not None:
        hooks.append(PlateauHook(t.eval_every))
    hooks.append(CheckpointHook(t.checkpoint_every))
    if progress and primary:
        hooks.append(ProgressHook(t.log_every, total=t.steps, initial=initial_step))
    if t.tensorboard and primary:
        hooks.append(TensorBoardHook(t.log_every, os.path.join(run_dir, "tensorboard")))
    return hooks


def train(config: Config, *, out_dir: str | None = None, resume: str | None = None, data: Dataset | None = None,
          hooks: Sequence[Hook] = (), progress: bool | None = None, plot: bool = True,
          verbose: bool = True) -> dict[str, Any]:
    """Train ``config`` and write the run directory; returns the summary (also in ``summary.json``).

    ``resume``: a run directory to continue from its latest checkpoint (its saved config is used;
    ``config`` may be None). ``hooks``: extra hooks after the default ones. Raises
    :class:`NonFiniteLossError` when the loss stops being finite (``train.on_nonfinite: stop``).
    """
    with frozen_heap():
        return _train(config, out_dir=out_dir, resume=resume, data=data, hooks=hooks, progress=progress,
                      plot=plot, verbose=verbose)


def _train(config: Config | None, *, out_dir: str | None, resume: str | None, data: Dataset | None,
           hooks: Sequence[Hook], progress: bool | None, plot: bool, verbose: bool) -> dict[str, Any]:
    t_start = time.perf_counter()
    if resume is not None:
        run_dir = resume
        config = load_run_config(resume) if config is None else config
    else:
        run_dir = out_dir or default_run_dir(config.name)
        if os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
            raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    primary = jax.process_index() == 0
    if jax.process_count() > 1:  # every host has looked at the run dir before process 0 writes to it
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("lrjax train: start")
    tc = config.train
    exp = build_experiment(config, data)  # before touching the disk: bad data/config leaves no run dir
    os.makedirs(run_dir, exist_ok=True)
    if resume is None and primary:
        _write_config(config, os.path.join(run_dir, "config.yaml"))
    iterator = BatchIterator(exp.data.num_train, config.data.batch_size, tc.seed)
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=tc.keep_checkpoints)
    run = Run(exp, run_dir, ckpt, iterator)

    state = exp.jit_init_state(seed_key(tc.seed))
    run.window = exp.replicate(_window_for(exp, state))
    if resume is not None and ckpt.latest_step() is not None:
        state = unalias(run.restore(state))
    start_step = run.step
    if progress is None:
        progress = tc.progress
    all_hooks = list(default_hooks(config, run_dir, initial_step=start_step, progress=progress)) + list(hooks)

    step_fn = jax.jit(_fused_step(exp.train_step), donate_argnums=(0, 1),
                      in_shardings=(exp.replicated, exp.replicated, exp.batch_sharding),
                      out_shardings=exp.replicated)
    x_train, y_train = exp.data.x_train, exp.data.y_train
    # One device: hand numpy to the jitted step (its own transfer is the cheapest); else shard explicitly.
    feed = exp.shard_batch if (exp.mesh.size > 1 or exp.multi_host) else (lambda b: b)
    accum = exp.accumulation_steps
    total_micro = exp.micro_steps
    flag: dict[str, int] = {}
    status = "completed"
    error: str | None = None
    compile_s = 0.0
    t_end: float | None = None
    t_loop = time.perf_counter()
    try:
        with _stop_on_signals(flag):
            micro = start_step * accum
            first = True
            while micro < total_micro:
                idx = iterator.next_indices()
                batch = feed({"x": x_train[idx], "y": y_train[idx]})
                state, run.window = step_fn(state, run.window, batch)
                micro += 1
                if first:  # compile everything the hooks use now, then one sync: compile time apart
                    jax.block_until_ready((exp.evaluate(state), run._reset(run.window)))
                    jax.block_until_ready(run.window)
                    compile_s = time.perf_counter() - t_loop
                    t_loop = time.perf_counter()
                    first = False
                if run._deferred:
                    run.flush()
                if micro % accum == 0:
                    run.step = micro // accum
                    last = run.step == exp.steps
                    for hook in all_hooks:
                        if run.step % hook.every == 0 or last:
                            new = hook(run, state)
                            if new is not None:
                                state = exp.replicate(unalias(new))
                if flag:
                    status = "interrupted"
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
    finally:
        with contextlib.suppress(Exception):
            run.flush()
        for h in all_hooks:
            close = getattr(h, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close(run)
        run.close()
        ckpt.close()
        loop_s = (t_end if t_end is not None else time.perf_counter()) - t_loop
        steps_done = run.step - start_step
        summary = {
            "status": status,
            "error": error,
            "name": config.name,
            "run_dir": os.path.abspath(run_dir),
            "steps": run.step,
            "total_steps": exp.steps,
            "resumed_from": start_step if resume is not None else None,
            "final_train": run.last_train,
            "final_eval": run.last_eval,
            "best_eval": run.best_eval,
            "last_checkpoint": run.last_checkpoint,
            "time_s": round(time.perf_counter() - t_start, 3),
            "compile_s": round(compile_s, 3),
            "steps_per_s": round(max(steps_done - 1, 0) / loop_s, 1) if loop_s > 0 and steps_done > 1 else None,
            "devices": int(exp.mesh.size),
            "signal": flag.get("signal"),
        }
        if not primary:
            return summary
        with open(os.path.join(run_dir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=2)
        if plot and run.records:
            with contextlib.suppress(Exception):
                from lrjax.train._report import plot_run

                summary["plot"] = plot_run(run_dir)
        if verbose:
            from lrjax.train._report import format_summary

            print(format_summary(summary))
    return summary
