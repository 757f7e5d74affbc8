"""A sweep's results as a table (CSV and markdown), one figure, and the winner.

Ranking: by the final ``rank_by`` metric on the *validation* split (the test set only when a sweep has
no validation split; accuracy and R²: higher is better, loss: lower), ties broken by the validation loss,
then the final train loss; configurations pruned by successive halving rank after those that finished
(by the update they reached, then their last validation metric), non-finite runs last.

Columns: ``rank, label, <swept values>, group, status, stopped_at, val_<metrics>, test_<metrics>,
best_val_<metric>, best_step, final_train_loss, steps_to_<metric>_<value>, steps, time_s``. ``val_*`` is
what chose; ``test_*`` is measured and never used to choose. ``steps_to_target`` is the first evaluated
update where the validation metric reached the target (evaluations happen every ``train.eval_every``
updates, so it is a multiple of that); empty when never reached.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from lrjax.plot import spans_decades
from lrjax.sweep._driver import ConfigResult
from lrjax.sweep._spec import Target

__all__ = ["rank", "table_rows", "to_csv", "to_markdown", "plot_sweep", "steps_to_target", "console_table",
           "tie_break", "sweep_figure"]


def _split(r: ConfigResult) -> str:
    return "val" if any(k.startswith("val_") for rec in r.records for k in rec) else "test"


def steps_to_target(records: Sequence[dict[str, Any]], target: Target, split: str = "val") -> int | None:
    """The first evaluation step where ``target.metric`` on ``split`` reaches ``target.value``, or None."""
    key = f"{split}_{target.metric}"
    for r in records:
        v = r.get(key)
        if v is None:
            continue
        if (v >= target.value) if target.mode == "max" else (v <= target.value):
            return int(r["step"])
    return None


def _last(r: ConfigResult, key: str) -> float | None:
    """The last evaluation's ``key`` (pruned runs: where they stopped); None for non-finite runs."""
    if r.status == "nonfinite":
        return None
    evals = [x for x in r.records if key in x]
    v = evals[-1][key] if evals else None
    return None if v is None or not math.isfinite(v) else float(v)


def rank(results: Sequence[ConfigResult], rank_by: str = "accuracy") -> list[int]:
    """Indices of ``results`` from best to worst (see the module docs)."""
    higher = rank_by != "loss"

    def key(i: int) -> tuple:
        r = results[i]
        split = _split(r)
        v = _last(r, f"{split}_{rank_by}")
        ev = _last(r, f"{split}_loss")
        loss = r.final_train.get("train_loss")
        reached = r.stopped_at if r.stopped_at is not None else r.config.train.steps
        return (r.status == "nonfinite", v is None, -reached, (-v if higher else v) if v is not None else 0.0,
                ev if ev is not None else math.inf, loss if loss is not None else math.inf, i)

    return sorted(range(len(results)), key=key)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return v.get("name", "spec")
    return v


def table_rows(results: Sequence[ConfigResult], values: Sequence[dict[str, Any]], target: Target,
               rank_by: str = "accuracy") -> list[dict[str, Any]]:
    """One dict per configuration, best first (the CSV/markdown rows)."""
    order = rank(results, rank_by)
    keys: list[str] = []
    for v in values:
        keys += [k for k in v if k not in keys]
    metrics: list[str] = []
    for r in results:
        for rec in r.records:
            metrics += [k for k in rec if k.startswith(("val_", "test_")) and k not in metrics]
    metrics.sort(key=lambda k: (not k.startswith("val_"), k))
    rows = []
    for pos, i in enumerate(order, 1):
        r = results[i]
        split = _split(r)
        row: dict[str, Any] = {"rank": pos, "label": r.label}
        for k in keys:
            row[k] = _fmt(values[i].get(k))
        be = r.best_eval or {}
        status = {"nonfinite": f"nonfinite@{r.nonfinite_step}"}.get(r.status, r.status)
        row.update({"group": r.group, "status": status, "stopped_at": r.stopped_at})
        row.update({k: _last(r, k) for k in metrics})
        row.update({
            f"best_{split}_{rank_by}": be.get(f"{split}_{rank_by}"),
            "best_step": be.get("step"),
            "final_train_loss": r.final_train.get("train_loss") if r.status != "nonfinite" else None,
            f"steps_to_{target.metric}_{target.value:g}": steps_to_target(r.records, target, split),
            "steps": r.steps_trained,
            "time_s": r.time_s,
        })
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


def tie_break(rank_by: str, split: str = "val") -> str:
    """How :func:`rank` orders configurations whose final ``split`` ``rank_by`` is equal, in words."""
    loss = "" if rank_by == "loss" else f"the lower final {split}_loss, then "
    return f"{loss}the lower final train loss, then the order of the sweep file"


def _dotted(config: Any, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _pbt_line(r: ConfigResult, row: dict[str, Any], explore: Sequence[str]) -> str:
    """``peak 0.0031, weight_decay 0.0002; copied from 'peak=0.03' at step 1750 (2 copies)``."""
    last = r.lineage[-1] if r.lineage else None
    values = []
    for k in explore:
        v = last["values"].get(k) if last is not None else row.get(k, _dotted(r.config, k))
        if isinstance(v, float):
            v = float(f"{v:.6g}")  # a float32 read back: no float32 noise
        values.append(f"{k.split('.')[-1]} {_short(v) if v is not None else '-'}")
    copied = (f"copied from {last['copied']!r} at step {last['step']}"
              + (f" ({len(r.lineage)} copies)" if len(r.lineage) > 1 else "") if last is not None
              else "never copied")
    return f"{', '.join(values)}; {copied}" if values else copied


def console_table(results: Sequence[ConfigResult], rows: Sequence[dict[str, Any]], rank_by: str = "accuracy", *,
                  num_selection: int | None = None, explore: Sequence[str] = (), width: int | None = None,
                  limit: int = 20) -> str:
    """The table ``lrjax sweep`` prints: one line per configuration (best first, at most ``limit``) that fits
    a terminal of ``width`` columns — rank, label, the ranking metric on the split that chose, its test twin,
    status (``pruned@100``, ``nonfinite@37``) and the updates trained — then what the columns cannot say:

    * ties on the ranking metric (their rank ends in ``=``) and how :func:`rank` broke them;
    * with ``num_selection`` (the examples of the choosing split) and an accuracy ranking, a warning when
      the winner leads the runner-up by fewer than two examples (one example is ``100 / N`` points);
    * population-based training (``explore``: its dotted keys): under each row, the final hyperparameters
      and the last ``copied from ... at step ...`` of :attr:`ConfigResult.lineage`.

    The full table is ``results.md`` / ``results.csv``.
    """
    if not rows:
        return ""
    width = width or shutil.get_terminal_size((100, 24)).columns
    split = "val" if any(k.startswith("val_") for k in rows[0]) else "test"
    key, twin = f"{split}_{rank_by}", f"test_{rank_by}" if split == "val" else None
    by_label = {r.label: r for r in results}
    shown = list(rows[:limit])
    metric = [row.get(key) for row in shown]
    ranked = all("rank" in row for row in shown)  # a strategy's own table (a cooldown study) is not a ranking
    tied = [ranked and v is not None and ((i > 0 and metric[i - 1] == v) or (i + 1 < len(metric) and metric[i + 1] == v))
            for i, v in enumerate(metric)]

    def status(row: dict[str, Any]) -> str:
        st = str(row["status"])
        return f"pruned@{row['stopped_at']}" if st == "pruned" and row.get("stopped_at") is not None else st

    cells = [[f"{row.get('rank', '-')}{'=' if t else ''}", str(row["label"]), _cell(row.get(key)),
              *([_cell(row.get(twin))] if twin else []), status(row), str(row.get("steps", "-"))]
             for row, t in zip(shown, tied)]
    head = ["rank", "label", key, *([twin] if twin else []), "status", "steps"]
    widths = [max(len(c[i]) for c in cells + [head]) for i in range(len(head))]
    room = width - (sum(widths) - widths[1]) - 2 * (len(head) - 1)
    widths[1] = max(8, min(widths[1], room))

    def line(cs: list[str]) -> str:
        label = cs[1] if len(cs[1]) <= widths[1] else cs[1][: widths[1] - 1] + "…"
        nums = [c.rjust(w) for c, w in zip(cs[2:-2], widths[2:-2])]
        out = [cs[0].rjust(widths[0]), label.ljust(widths[1]), *nums, cs[-2].ljust(widths[-2]),
               cs[-1].rjust(widths[-1])]
        return "  ".join(out).rstrip()

    lines = [line(head)]
    for row, cs in zip(shown, cells):
        lines.append(line(cs))
        if explore:
            lines.append(" " * (widths[0] + 2) + "↳ " + _pbt_line(by_label[row["label"]], row, explore))
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more in results.md")
    if any(tied):
        lines.append(f"= tied on {key}; ranked by {tie_break(rank_by, split)}")
    if ranked and num_selection and rank_by == "accuracy" and len(rows) > 1:
        top, second = rows[0].get(key), rows[1].get(key)
        if top is not None and second is not None and (top - second) * num_selection < 2 - 1e-6:
            gap = round((top - second) * num_selection)
            lines.append(
                f"warning: the {'validation' if split == 'val' else 'test'} split has {num_selection} examples (one "
                f"point of {rank_by} is {num_selection / 100:.3g} of them): the winner leads the runner-up by {gap} "
                f"example{'s' if gap != 1 else ''}, too few to tell them apart; hold out more "
                "(data.validation_fraction) or compare seeds")
    return "\n".join(lines)


def plot_sweep(results: Sequence[ConfigResult], path: str, *, winner: int | None = None, title: str = "") -> str:
    """One PNG: the learning rate applied at every update (a PBT member's piecewise rate as it was), train
    loss, validation loss and the validation metric of every configuration (pruned ones end where they
    stopped)."""
    fig = sweep_figure(results, winner=winner, title=title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def sweep_figure(results: Sequence[ConfigResult], *, winner: int | None = None, title: str = "") -> Any:
    """The figure :func:`plot_sweep` saves (a ``matplotlib.figure.Figure``, no pyplot state); the rate panel
    is logarithmic when the rates span more than a decade (:func:`lrjax.plot.spans_decades`)."""
    from matplotlib import colormaps  # noqa: PLC0415 - matplotlib loads only when a figure is drawn
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads only when a figure is drawn

    n = len(results)
    split = _split(results[0]) if results else "val"
    metric = next((k[len(split) + 1:] for r in results for x in r.records for k in x
                   if k.startswith(split + "_") and k != f"{split}_loss"), "loss")
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    fig = Figure(figsize=(13, 8), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    (a_lr, a_tl), (a_el, a_ea) = axes
    for i, r in enumerate(results):
        best = i == winner
        kw = dict(color=cmap(i % cmap.N), lw=2.6 if best else 1.1, alpha=1.0 if best else 0.8,
                  label=r.label + ("  (winner)" if best else "") + (f"  (pruned@{r.stopped_at})" if r.stopped_at
                                                                     else ""), zorder=3 if best else 2)
        steps = range(1, len(r.rates) + 1)
        a_lr.plot(list(steps), r.rates, **kw)
        tr = [x for x in r.records if x.get("train_loss") is not None]
        ev = [x for x in r.records if x.get(f"{split}_loss") is not None]
        a_tl.plot([x["step"] for x in tr], [x["train_loss"] for x in tr], **kw)
        a_el.plot([x["step"] for x in ev], [x[f"{split}_loss"] for x in ev], marker=".", **kw)
        a_ea.plot([x["step"] for x in ev], [x.get(f"{split}_{metric}") for x in ev], marker=".", **kw)
    log_rate = spans_decades([x for r in results for x in np.asarray(r.rates).ravel()])
    if log_rate:  # a warmup from 0, a floor at 1 % of the peak, peaks a decade apart: all readable
        a_lr.set_yscale("log")
    a_lr.set_ylabel("learning rate" + (" (log)" if log_rate else ""))
    a_lr.set_title("rate used by each update")
    a_tl.set_ylabel("train loss (window mean)")
    a_tl.set_yscale("log")
    a_el.set_ylabel(f"{split} loss")
    a_el.set_yscale("log")
    a_ea.set_ylabel(f"{split} {metric}")
    lo = [x[f"{split}_{metric}"] for r in results for x in r.records if x.get(f"{split}_{metric}") is not None]
    if lo and metric == "accuracy":
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
    return fig
