"""The rows of ``metrics.jsonl``, one format for ``lrjax train`` and every member of a sweep.

* a *train record*, every ``train.log_every`` updates: ``step``, ``lr`` and ``momentum`` used by the last
  update, ``train_loss``, ``train_accuracy`` (classification) and ``grad_norm`` — means over the finite
  micro-steps since the previous record (None when every one was skipped) — and ``skipped`` (the count of
  non-finite micro-steps so far) in ``on_nonfinite: skip`` mode;
* an *evaluation record*, every ``train.eval_every`` updates: ``step`` and ``<split>_<metric>`` for the
  validation split (``val``, when there is one) and the test set (``test``): ``loss``, and ``accuracy``
  or ``r2`` as the task has them. With averaged weights (``train.average``: SWA or EMA) also
  ``<split>_avg_<metric>`` for the average (``val_avg_loss``, ``val_avg_accuracy``, ``test_avg_loss``,
  ...; None until an update has been averaged); the unprefixed metrics stay the trained weights' (for a
  schedule-free optimizer: its evaluation point), and they are what chooses.

Whatever chooses looks at :func:`selection_key`: the validation metric, the test metric only without a
validation split.

>>> import numpy as np
>>> from lrjax.engine import COLUMNS
>>> rows = np.array([[0.5, 0.9, 1.0, 1e-3, np.nan, 1.0], [0.3, 1.0, 2.0, 2e-3, np.nan, 1.0]], np.float32)
>>> train_record(20, rows, None)
{'step': 20, 'lr': 0.0020000000949949026, 'train_loss': 0.4000000059604645, 'train_accuracy': 0.949999988079071, 'grad_norm': 1.5}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "COLUMN_INDEX", "py_value", "train_record", "eval_record", "selection_key", "is_better",
           "points", "eval_points", "log_points", "nonfinite_update", "run_records", "summarise", "early_stop_step"]

# The per-micro-step metrics the runner records (lrjax.engine.COLUMNS), in table order, and their indices.
COLUMNS = ("loss", "accuracy", "grad_norm", "lr", "momentum", "finite")
COLUMN_INDEX = {c: i for i, c in enumerate(COLUMNS)}


def py_value(x: Any) -> Any:
    """A host scalar as a JSON-safe Python value (non-finite floats become None)."""
    a = np.asarray(x)
    if a.dtype.kind == "b":
        return bool(a)
    if a.dtype.kind in "iu":
        return int(a)
    v = float(a)
    return v if math.isfinite(v) else None


def train_record(step: int, rows: np.ndarray, skipped: int | None,
                 metrics: tuple[str, ...] = ("loss", "accuracy")) -> dict[str, Any]:
    r"""The train record of the micro-step ``rows`` (``(n, len(COLUMNS))``) since the previous one;
    ``metrics``: the task's (``Task.metrics``): ``train_accuracy`` when it has an accuracy (token accuracy
    for a sequence task), ``train_bits_per_token`` (the loss in bits, :math:`\ell / \ln 2`) when it has bits."""
    ok = rows[:, COLUMN_INDEX["finite"]] > 0.5
    last = rows[-1]
    rec: dict[str, Any] = {"step": int(step), "lr": py_value(last[COLUMN_INDEX["lr"]])}
    if not np.isnan(last[COLUMN_INDEX["momentum"]]):
        rec["momentum"] = py_value(last[COLUMN_INDEX["momentum"]])
    for key, col in (("train_loss", "loss"), ("train_accuracy", "accuracy"), ("grad_norm", "grad_norm")):
        if col == "accuracy" and "accuracy" not in metrics:
            continue
        vals = rows[ok, COLUMN_INDEX[col]]
        rec[key] = py_value(vals.astype(np.float64).mean()) if vals.size else None
    if "bits_per_token" in metrics:
        rec["train_bits_per_token"] = None if rec["train_loss"] is None else rec["train_loss"] / math.log(2)
    if skipped is not None:
        rec["skipped"] = int(skipped)
    return rec


def eval_record(step: int, metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"step": step, "<split>_<metric>": value, ...}`` from host metrics by split."""
    rec: dict[str, Any] = {"step": int(step)}
    for split, vals in metrics.items():
        rec.update({f"{split}_{k}": py_value(v) for k, v in vals.items()})
    return rec


def selection_key(classification: bool, has_validation: bool) -> tuple[str, bool]:
    """``(record key, higher is better)`` of the metric that chooses: ``val_accuracy`` (classification) or
    ``val_loss``, on the test set only when there is no validation split."""
    split = "val" if has_validation else "test"
    return (f"{split}_accuracy", True) if classification else (f"{split}_loss", False)


def is_better(value: float | None, best: float | None, higher: bool) -> bool:
    """``value`` beats ``best`` (a missing ``best`` is beaten by any value; None never wins)."""
    if value is None:
        return False
    return best is None or (value > best if higher else value < best)


# ----------------------------------------------------------------------------- cadences

def points(every: int, steps: int) -> list[int]:
    """Multiples of ``every`` up to ``steps``, and ``steps`` itself (the updates after which work happens).

    >>> points(100, 250)
    [100, 200, 250]
    """
    pts = list(range(every, steps + 1, every))
    if not pts or pts[-1] != steps:
        pts.append(steps)
    return pts


def eval_points(cfg: Any) -> list[int]:
    """Updates after which a run evaluates: multiples of ``train.eval_every`` and the last one."""
    return points(cfg.train.eval_every, cfg.train.steps)


def log_points(cfg: Any) -> list[int]:
    """Updates after which a run logs its train metrics: multiples of ``train.log_every`` and the last one."""
    return points(cfg.train.log_every, cfg.train.steps)


# ----------------------------------------------------------------------------- the non-finite rule

def nonfinite_update(rows: np.ndarray, first_micro: int, accum: int) -> int | None:
    """The optimizer update (1-based) of the first non-finite micro-step among ``rows``, whose first row is
    micro-step ``first_micro``; None when every row is finite. In ``on_nonfinite: stop`` mode the run ends
    there: ``lrjax train`` raises, a sweep member's records stop before the log that holds it."""
    bad = np.flatnonzero(rows[:, COLUMN_INDEX["finite"]] < 0.5)
    return None if not bad.size else (first_micro + int(bad[0])) // accum + 1


# ----------------------------------------------------------------------------- a whole run's records

def run_records(cfg: Any, rows: np.ndarray, evals: dict[int, dict], accum: int, metrics: tuple[str, ...],
                stop: int) -> tuple[list[dict[str, Any]], int | None]:
    """The records ``lrjax train`` writes (``metrics.jsonl``) from a run's per-micro-step rows ``(S, C)``
    and its evaluations by update (``metrics``: the task's), up to update ``stop``; and the first non-finite
    update in ``stop``
    mode (the records end before the log that holds it, as ``lrjax train`` raises there)."""
    stop_mode = cfg.train.on_nonfinite == "stop"
    bad_update = nonfinite_update(rows, 0, accum) if stop_mode else None
    finite = rows[:, COLUMN_INDEX["finite"]] > 0.5
    out: list[tuple[int, int, dict]] = []
    prev = 0
    for p in log_points(cfg):
        if p > stop:
            break
        lo, hi = prev * accum, p * accum
        prev = p
        if bad_update is not None and hi > (bad_update - 1) * accum:
            break
        skipped = int((~finite[:hi]).sum()) if cfg.train.on_nonfinite == "skip" else None
        out.append((p, 0, train_record(p, rows[lo:hi], skipped, metrics)))
    for p in eval_points(cfg):
        if p > stop or (bad_update is not None and p >= bad_update):
            break
        if p in evals:
            out.append((p, 1, eval_record(p, evals[p])))
    out.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in out], bad_update


def summarise(records: list[dict[str, Any]], key: str, higher: bool
              ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """``(last train record, last evaluation record, best evaluation by key)`` of a run's records."""
    train = [r for r in records if "train_loss" in r]
    evals = [r for r in records if "train_loss" not in r]
    best = None
    for r in evals:
        if is_better(r.get(key), (best or {}).get(key), higher):
            best = r
    return (train[-1] if train else {}), (evals[-1] if evals else {}), best


# ----------------------------------------------------------------------------- early stopping

def early_stop_step(state: dict[str, Any], value: float | None, step: int, rule: Any) -> bool:
    r"""One evaluation's value through ``train.early_stop``'s rule (``rule``: metric, patience, min_delta);
    ``state`` (``best``, ``misses``, ``best_step``) is updated in place; True when the run stops here.

    Improved when :math:`v < b - \delta` for a loss (:math:`v > b + \delta` for accuracy, R²), :math:`b` the
    best so far, :math:`\delta` = ``min_delta``; else (or a missing or non-finite value) a miss; ``patience``
    misses in a row stop the run. ``lrjax train`` and every member of a sweep follow this one rule.

    >>> class Rule: metric, patience, min_delta = "loss", 2, 0.0
    >>> st = {}
    >>> [early_stop_step(st, v, s, Rule) for s, v in enumerate([1.0, 0.8, 0.9, 0.85, 0.7])]
    [False, False, False, True, False]
    """
    metric = rule.metric[4:] if rule.metric.startswith("val_") else rule.metric
    higher = metric in ("accuracy", "r2")
    best = state.get("best")
    ok = value is not None and math.isfinite(value)
    if ok and (best is None or (value > best + rule.min_delta if higher else value < best - rule.min_delta)):
        state.update(best=float(value), misses=0, best_step=int(step))
        return False
    state["misses"] = state.get("misses", 0) + 1
    return state["misses"] >= rule.patience
