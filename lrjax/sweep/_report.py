"""A sweep's results as a table (CSV and markdown), one figure, and the winner.

Ranking: completed configurations by their final ``rank_by`` eval metric (accuracy: higher is better;
loss: lower), ties broken by the final eval loss, then the final train loss; non-finite runs last.

Columns: ``rank, label, <swept values>, group, status, final_<metric>, best_eval_accuracy,
best_step, final_eval_loss, final_train_loss, steps_to_target, time_s``. ``steps_to_target`` is the
first evaluated update where the target metric reached its value (evaluations happen every
``train.eval_every`` updates, so it is a multiple of that); empty when never reached.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any, Sequence

from lrjax.sweep._engine import ConfigResult
from lrjax.sweep._spec import Target

__all__ = ["rank", "table_rows", "to_csv", "to_markdown", "plot_sweep", "steps_to_target"]


def steps_to_target(records: Sequence[dict[str, Any]], target: Target) -> int | None:
    """The first eval step where ``target.metric`` reaches ``target.value``, or None."""
    for r in records:
        v = r.get(target.metric)
        if v is None:
            continue
        if (v >= target.value) if target.mode == "max" else (v <= target.value):
            return int(r["step"])
    return None


def _final(r: ConfigResult, metric: str) -> float | None:
    v = r.final_eval.get(metric) if r.status == "completed" else None
    return None if v is None or not math.isfinite(v) else float(v)


def rank(results: Sequence[ConfigResult], rank_by: str = "eval_accuracy") -> list[int]:
    """Indices of ``results`` from best to worst."""
    sign = -1.0 if rank_by == "eval_accuracy" else 1.0

    def key(i: int) -> tuple:
        r = results[i]
        v = _final(r, rank_by)
        ev = _final(r, "eval_loss")
        loss = r.final_train.get("train_loss")
        return (v is None, sign * v if v is not None else 0.0, ev if ev is not None else math.inf,
                loss if loss is not None else math.inf, i)

    return sorted(range(len(results)), key=key)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return v.get("name", "spec")
    return v


def table_rows(results: Sequence[ConfigResult], values: Sequence[dict[str, Any]], target: Target,
               rank_by: str = "eval_accuracy") -> list[dict[str, Any]]:
    """One dict per configuration, best first (the CSV/markdown rows)."""
    order = rank(results, rank_by)
    keys: list[str] = []
    for v in values:
        keys += [k for k in v if k not in keys]
    rows = []
    for pos, i in enumerate(order, 1):
        r = results[i]
        row: dict[str, Any] = {"rank": pos, "label": r.label}
        for k in keys:
            row[k] = _fmt(values[i].get(k))
        be = r.best_eval or {}
        row.update({
            "group": r.group,
            "status": r.status if r.status == "completed" else f"nonfinite@{r.nonfinite_step}",
            f"final_{rank_by}": _final(r, rank_by),
            "best_eval_accuracy": be.get("eval_accuracy"),
            "best_step": be.get("step"),
            "final_eval_loss": _final(r, "eval_loss"),
            "final_train_loss": r.final_train.get("train_loss") if r.status == "completed" else None,
            f"steps_to_{target.metric}_{target.value:g}": steps_to_target(r.records, target),
            "time_s": r.time_s,
        })
        if rank_by != "eval_accuracy":
            row["final_eval_accuracy"] = _final(r, "eval_accuracy")
        rows.append(row)
    return rows


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e3 else f"{v:.4g}"
    return str(v).replace("|", "\\|")


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_sweep(results: Sequence[ConfigResult], path: str, *, winner: int | None = None, title: str = "") -> str:
    """One PNG: learning rate per update, train loss, eval loss and eval accuracy of every configuration."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(results)
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), sharex=True, constrained_layout=True)
    (a_lr, a_tl), (a_el, a_ea) = axes
    for i, r in enumerate(results):
        best = i == winner
        kw = dict(color=cmap(i % cmap.N), lw=2.6 if best else 1.1, alpha=1.0 if best else 0.8,
                  label=r.label + ("  (winner)" if best else ""), zorder=3 if best else 2)
        steps = range(1, len(r.rates) + 1)
        a_lr.plot(list(steps), r.rates, **kw)
        tr = [x for x in r.records if "train_loss" in x and x["train_loss"] is not None]
        ev = [x for x in r.records if "eval_loss" in x and x["eval_loss"] is not None]
        a_tl.plot([x["step"] for x in tr], [x["train_loss"] for x in tr], **kw)
        a_el.plot([x["step"] for x in ev], [x["eval_loss"] for x in ev], marker=".", **kw)
        a_ea.plot([x["step"] for x in ev], [x["eval_accuracy"] for x in ev], marker=".", **kw)
    a_lr.set_ylabel("learning rate")
    a_lr.set_title("rate used by each update")
    a_tl.set_ylabel("train loss (window mean)")
    a_tl.set_yscale("log")
    a_el.set_ylabel("eval loss")
    a_el.set_yscale("log")
    a_ea.set_ylabel("eval accuracy")
    lo = [x["eval_accuracy"] for r in results for x in r.records if x.get("eval_accuracy") is not None]
    if lo:
        top = max(lo)
        a_ea.set_ylim(max(min(lo), top - 0.25), min(1.0, top + 0.01) + 0.005)
    for a in (a_el, a_ea):
        a.set_xlabel("step (optimizer updates)")
    for a in axes.ravel():
        a.grid(alpha=0.3)
    handles, labels = a_lr.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, ncol=1 if n <= 20 else 2)
    if title:
        fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
