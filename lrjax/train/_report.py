"""Reading a run directory back: ``metrics.jsonl`` as columns, the curves PNG, the one-screen summary.

>>> from lrjax.train import read_metrics
>>> cols = read_metrics("runs/my-run")                 # doctest: +SKIP
>>> cols["train"]["step"][:3], cols["eval"]["eval_accuracy"][-1]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

import lrjax._yaml as _yaml
from lrjax.plot import moves, spans_decades

__all__ = ["read_metrics", "plot_run", "run_figure", "format_summary", "run_title"]


def read_metrics(run_dir_or_file: str) -> dict[str, dict[str, list[Any]]]:
    """``{"train": {column: [...]}, "eval": {column: [...]}}`` from a run's ``metrics.jsonl``."""
    path = run_dir_or_file
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    out: dict[str, dict[str, list[Any]]] = {"train": {}, "eval": {}}
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for kind in ("train", "eval"):
        sel = [r for r in rows if ("train_loss" in r) == (kind == "train")]
        keys: list[str] = []
        for r in sel:
            keys += [k for k in r if k not in keys]
        out[kind] = {k: [r.get(k) for r in sel] for k in keys}
    return out


def run_title(run_dir: str) -> str:
    """The run's name (``summary.json``, else ``config.yaml``), else the folder's name: the figure's title."""
    for name, read in (("summary.json", json.load), ("config.yaml", _yaml.load)):
        try:
            with open(os.path.join(run_dir, name)) as fh:
                title = (read(fh) or {}).get("name")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(title, str) and title:
            return title
    return os.path.basename(os.path.normpath(run_dir))


def plot_run(run_dir: str, path: str | None = None) -> str:
    """Rate (and momentum), train loss and eval curves on shared step axes; returns the PNG path.

    The rate axis is logarithmic when the rates span more than a decade (:func:`lrjax.plot.spans_decades`:
    a warmup from 0 and a cosine to 1 % of its peak stay readable); the momentum is drawn, dashed on its own
    axis and in the legend, only when it moves (one-cycle, cyclic); the title is the run's name.
    """
    fig = run_figure(run_dir)
    out = path or os.path.join(run_dir, "curves.png")
    fig.savefig(out, dpi=110)
    return out


def run_figure(run_dir: str) -> Any:
    """The figure :func:`plot_run` saves (a ``matplotlib.figure.Figure``, no pyplot state)."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads only when a figure is drawn

    cols = read_metrics(run_dir)
    tr, ev = cols["train"], cols["eval"]
    fig = Figure(figsize=(7, 7.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    ax = axes[0]
    handles = []
    if tr.get("lr"):
        handles += ax.plot(tr["step"], [np.nan if v is None else v for v in tr["lr"]], color="C0",
                           label="learning rate")
        if spans_decades(tr["lr"]):
            ax.set_yscale("log")
    ax.set_ylabel("learning rate" + (" (log)" if ax.get_yscale() == "log" else ""))
    if tr.get("momentum") and moves(tr["momentum"]):
        ax2 = ax.twinx()
        handles += ax2.plot(tr["step"], [np.nan if m is None else m for m in tr["momentum"]], color="C1", ls="--",
                            label="momentum")
        ax2.set_ylabel("momentum")
        ax.legend(handles=handles, loc="best", fontsize=8)
    second = "accuracy" if (tr.get("train_accuracy") or ev.get("test_accuracy")) else "r2"
    for ax, what in zip(axes[1:], ("loss", second)):  # train curve and evaluation points, one panel each
        if tr.get(f"train_{what}") and any(v is not None for v in tr[f"train_{what}"]):
            ax.plot(tr["step"], [np.nan if v is None else v for v in tr[f"train_{what}"]], label=f"train {what}")
        for split in ("val", "test"):
            if ev.get(f"{split}_{what}"):
                ax.plot(ev["step"], [np.nan if v is None else v for v in ev[f"{split}_{what}"]], "o-",
                        label=f"{split} {what}")
        ax.set_ylabel("R²" if what == "r2" else what)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    axes[1].set_yscale("log")
    axes[2].set_xlabel("step (optimizer updates)")
    fig.suptitle(run_title(run_dir))
    return fig


def _fmt_eval(rec: dict[str, Any] | None) -> str:
    """``val accuracy 0.9812 loss 0.0712 | test accuracy ... (step 600)``: every split and metric recorded."""
    if not rec:
        return "-"
    parts = []
    for split in ("val", "test"):
        vals = [(k[len(split) + 1:], v) for k, v in rec.items() if k.startswith(split + "_")]
        if vals:
            parts.append(f"{split} " + "  ".join(f"{k} {'-' if v is None else format(v, '.4f')}" for k, v in vals))
    return " | ".join(parts) + f"  (step {rec['step']})"


def format_summary(s: dict[str, Any]) -> str:
    """The one-screen summary printed at the end of ``lrjax train``."""
    lines = [
        "",
        f"lrjax train: {s['name']}  [{s['status']}]",
        f"  steps        {s['steps']}/{s['total_steps']}"
        + (f"  (resumed at {s['resumed_from']})" if s.get("resumed_from") is not None else "")
        + (f"; re-planned: lr {s['replanned']['lr_before']:.4g} -> {s['replanned']['lr_after']:.4g}"
           if s.get("replanned") else ""),
        f"  final eval   {_fmt_eval(s.get('final_eval'))}",
        f"  best eval    {_fmt_eval(s.get('best_eval'))}" + (f"  [by {s['selection']}]" if s.get("selection") else ""),
    ]
    ft = s.get("final_train") or {}
    if ft:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        acc = f"  accuracy {fmt(ft['train_accuracy'], '.4f')}" if "train_accuracy" in ft else ""
        lines.append(f"  final train  loss {fmt(ft.get('train_loss'), '.4f')}{acc}  lr {fmt(ft.get('lr'), '.3g')}")
    if s.get("skipped"):
        lines.append(f"  skipped      {s['skipped']} non-finite steps")
    sps = s.get("steps_per_s")
    lines.append(f"  time         {s['time_s']:.1f} s total, {s['compile_s']:.2f} s first step (compile)"
                 + (f", {sps:.0f} steps/s after" if sps else "") + f", {s['devices']} device(s)")
    if s.get("last_checkpoint") is not None:
        lines.append(f"  checkpoint   step {s['last_checkpoint']}")
    if s.get("error"):
        lines.append(f"  error        {s['error']}")
    lines.append(f"  run dir      {s['run_dir']}")
    return "\n".join(lines)
