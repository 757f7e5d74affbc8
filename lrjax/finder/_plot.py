"""Figures of range tests (matplotlib, imported here only).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global
backend switch), so saving a PNG works headless; pass ``ax=`` to draw into an
existing pyplot axes instead.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_COLORS = {"steepest": "tab:red", "minimum": "tab:green", "valley": "tab:purple"}
_STATUS_COLORS = {"good": "tab:green", "slow": "tab:orange", "diverged": "tab:red"}


def _axes(ax: Any, size=(7.0, 4.5)):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads only when a figure is drawn

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _ylim(values: np.ndarray, raw: np.ndarray | None = None) -> tuple[float, float] | None:
    """Limits that show the descent (of the smoothed and the raw loss) and the start of the blow-up,
    not its end."""
    v = values[np.isfinite(values)]
    if v.size < 2:
        return None
    lo = float(np.min(v))
    if raw is not None and np.isfinite(raw).any():
        lo = min(lo, float(np.nanmin(np.where(np.isfinite(raw), raw, np.nan))))
    head = v[: max(2, int(0.9 * v.size))]  # ignore the diverging tail for the top
    hi = float(max(np.max(head), v[0]))
    pad = 0.08 * (hi - lo if hi > lo else max(abs(hi), 1.0))
    return lo - pad, hi + pad


def _on_curve(lrs: np.ndarray, values: np.ndarray, lr: float) -> float:
    """The curve's value at ``lr`` (interpolated in log rate), for markers like minimum/10."""
    ok = np.isfinite(values) & (lrs > 0)
    return float(np.interp(np.log(lr), np.log(lrs[ok]), values[ok]))


def _save(fig: Any, path: str | os.PathLike | None) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)


def plot_range_test(result: Any, path: str | os.PathLike | None = None, *, ax: Any = None,
                    title: str | None = None):
    fig, ax = _axes(ax)
    lrs = result.lrs
    ax.plot(lrs, result.losses, color="0.7", lw=0.8, label="loss")
    ax.plot(lrs, result.smoothed, color="tab:blue", lw=1.8, label="smoothed loss")
    for name, s in result.suggestions.items():
        if s.ok:
            c = _COLORS.get(name, "black")
            ax.axvline(s.lr, color=c, ls="--", lw=1.0)
            ax.plot([s.lr], [_on_curve(lrs, result.smoothed, s.lr)], "o", color=c, label=f"{s.label}: {s.lr:.2g}")
    if result.stop_reason in ("diverged", "non-finite") and lrs.size:
        ax.axvline(lrs[-1], color="black", ls=":", lw=1.0, label=f"stopped ({result.stop_reason}): {lrs[-1]:.2g}")
    ax.set_xscale("log")
    if (lim := _ylim(result.smoothed, result.losses)) is not None:
        ax.set_ylim(*lim)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(title or "learning-rate range test")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    missing = [f"{k}: {v.message}" for k, v in result.suggestions.items() if not v.ok]
    if missing:
        ax.text(0.01, 0.01, "\n".join(m[:90] for m in missing), transform=ax.transAxes, fontsize=7,
                va="bottom", color="tab:red")
    _save(fig, path)
    return fig


def plot_parallel(result: Any, path: str | os.PathLike | None = None, *, ax: Any = None,
                  title: str | None = None):
    fig, ax = _axes(ax)
    lrs, final = result.lrs, np.asarray(result.final, dtype=np.float64)
    finite = np.isfinite(final) & np.array([st != "diverged" for st in result.status])
    shown = final[finite]
    ref = [result.initial] if np.isfinite(result.initial) else []
    log_y = shown.size > 0 and np.all(np.concatenate([shown, ref]) > 0)
    # diverged runs are drawn at the top edge: their values say nothing beyond "diverged"
    top = max([*shown, *ref]) if shown.size or ref else 1.0
    cap = top * 1.5 if log_y else top + 0.1 * abs(top) + 1e-12
    ax.plot(lrs[finite], shown, color="0.5", lw=1.0, zorder=1)
    for status, color in _STATUS_COLORS.items():
        idx = [i for i, s in enumerate(result.status) if s == status]
        if not idx:
            continue
        y = final[idx] if status != "diverged" else np.full(len(idx), cap)
        marker = "x" if status == "diverged" else "o"
        ax.scatter(lrs[idx], y, color=color, marker=marker, zorder=2, label=status)
    if ref:
        ax.axhline(result.initial, color="0.3", ls="-.", lw=0.8, label=f"initial: {result.initial:.3g}")
    if log_y:
        ax.set_yscale("log")
    try:
        best = result.best_lr
        ax.axvline(best, color="tab:green", ls="--", lw=1.0, label=f"best: {best:.2g}")
    except ValueError:
        pass
    if result.diverged_from is not None:
        ax.axvline(result.diverged_from, color="tab:red", ls=":", lw=1.0,
                   label=f"diverges from {result.diverged_from:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    label = "final smoothed loss" if result.metric == "smoothed_loss" else "eval metric"
    ax.set_ylabel(label)
    ax.set_title(title or f"parallel range test ({result.settings['num_steps']} steps per rate)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return fig


def plot_both(sweep: Any, grid: Any, path: str | os.PathLike | None = None):
    """The sequential curve and the parallel grid side by side."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads only when a figure is drawn

    fig = Figure(figsize=(12.0, 4.5), layout="constrained")
    a, b = fig.subplots(1, 2)
    plot_range_test(sweep, None, ax=a)
    plot_parallel(grid, None, ax=b)
    _save(fig, path)
    return fig
