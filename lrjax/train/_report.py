"""Reading a run directory back: ``metrics.jsonl`` as columns, the curves PNG, the one-screen summary.

>>> from lrjax.train import read_metrics
>>> cols = read_metrics("runs/my-run")                 # doctest: +SKIP
>>> cols["train"]["step"][:3], cols["eval"]["eval_accuracy"][-1]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["read_metrics", "plot_run", "format_summary"]


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


def plot_run(run_dir: str, path: str | None = None) -> str:
    """Rate (and momentum), train loss and eval curves on shared step axes; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    cols = read_metrics(run_dir)
    tr, ev = cols["train"], cols["eval"]
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5), sharex=True, constrained_layout=True)
    ax = axes[0]
    if tr.get("lr"):
        ax.plot(tr["step"], tr["lr"], color="C0", label="learning rate")
    ax.set_ylabel("learning rate")
    if tr.get("momentum") and any(m is not None for m in tr["momentum"]):
        ax2 = ax.twinx()
        ax2.plot(tr["step"], tr["momentum"], color="C1", ls="--", label="momentum")
        ax2.set_ylabel("momentum")
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
    fig.suptitle(os.path.basename(os.path.normpath(run_dir)))
    out = path or os.path.join(run_dir, "curves.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


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
