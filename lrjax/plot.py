"""Pictures of schedules: :func:`plot_schedules` and :func:`gallery` (the ``lrjax plot`` command is
:mod:`lrjax.cli.plot`).

matplotlib is imported inside the functions (never by ``import lrjax``), and figures
are built with :class:`matplotlib.figure.Figure` on an Agg canvas: no pyplot, no GUI
backend, no global state.

>>> import lrjax
>>> from lrjax.plot import plot_schedules
>>> fig = plot_schedules({"one-cycle": lrjax.OneCycle(1e-2, total_steps=1000)}, title="one-cycle")
>>> fig.savefig("/tmp/one_cycle.png")  # the momentum is drawn dashed on a twin axis
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import lrjax.schedules as L
from lrjax.schedules import CHILD, LEAF, Lambda, MomentumOf, Schedule, field_kind, from_spec

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_schedules", "gallery", "gallery_schedules", "describe", "companion_momentum", "spans_decades",
           "moves"]


# -- helpers -------------------------------------------------------------------

def _figure(**kw: Any) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - matplotlib loads only when a figure is drawn
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads only when a figure is drawn

    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def _as_named(schedules: Any) -> dict[str, Schedule]:
    """One schedule, a sequence of them, or a mapping label -> schedule (specs accepted)."""
    if isinstance(schedules, Schedule):
        return {type(schedules).__name__: schedules}
    if isinstance(schedules, Mapping):
        if "name" in schedules and isinstance(schedules["name"], str):  # a single spec dict
            s = from_spec(schedules)
            return {type(s).__name__: s}
        return {str(k): from_spec(v, where=str(k)) for k, v in schedules.items()}
    if isinstance(schedules, Seq) and not isinstance(schedules, (str, bytes)):
        out: dict[str, Schedule] = {}
        for i, v in enumerate(schedules):
            s = from_spec(v, where=f"schedules[{i}]")
            label = type(s).__name__
            out[label if label not in out else f"{label} #{i}"] = s
        return out
    raise TypeError(
        "plot_schedules expects a schedule, a sequence of schedules or a mapping label -> schedule, "
        f"got {type(schedules).__name__}: {schedules!r}"
    )


def default_steps(scheds: Seq[Schedule]) -> int:
    h = max((float(np.max(np.asarray(s.horizon))) for s in scheds), default=0.0)
    return int(max(100, np.ceil(1.15 * h)))


def _steps_array(steps: Any, scheds: Seq[Schedule]) -> np.ndarray:
    if steps is None:
        steps = default_steps(scheds)
    if np.ndim(steps) == 0:
        n = int(steps)
        if n < 1:
            raise ValueError(f"plot_schedules: steps must be >= 1, got steps={steps}")
        # at most ~4000 points: enough for a picture, cheap for long runs
        return np.unique(np.linspace(0, n - 1, min(n, 4000)).round().astype(np.int64))
    return np.asarray(steps)


def spans_decades(values: Any, decades: float = 1.0) -> bool:
    """Whether the positive finite ``values`` span more than ``decades`` powers of ten (max / min > 10): a
    rate axis is then logarithmic, so that a warmup from 1e-5 and a floor at 1 % of the peak stay visible.

    >>> spans_decades([3e-3, 3e-5]), spans_decades([3e-3, 1e-3, 0.0])
    (True, False)
    """
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=np.float64)) if np.isfinite(x) and x > 0])
    return v.size > 1 and float(v.max()) > float(v.min()) * 10.0**decades


def moves(values: Any, rel: float = 1e-6) -> bool:
    """Whether the finite ``values`` change (by more than ``rel`` of their size): a constant momentum is not
    worth a curve.

    >>> moves([0.9, 0.9, 0.9]), moves([0.95, 0.85, 0.95]), moves([None, 0.9])
    (False, True, False)
    """
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=object)) if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    return v.size > 1 and float(v.max() - v.min()) > rel * max(float(np.abs(v).max()), 1e-30)


def companion_momentum(s: Schedule) -> Schedule | None:
    """The momentum schedule that goes with ``s`` (one-cycle, cyclic: ``s.momentum``), or None.

    >>> import lrjax
    >>> companion_momentum(lrjax.OneCycle(1.0, 100)) is not None, companion_momentum(lrjax.Constant(1.0))
    (True, None)
    """
    return s.momentum if hasattr(s, "momentum") and hasattr(s, "_momentum") else None


def describe(s: Schedule, *, max_items: int = 4) -> str:
    """Class name and the hyperparameters that differ from their defaults, for titles.

    >>> import lrjax
    >>> describe(lrjax.CosineDecay(1.0, decay_steps=100, floor=0.1))
    'CosineDecay(peak=1, decay_steps=100, floor=0.1)'
    >>> describe(lrjax.Lambda(lambda t, decay: decay ** (t / 100), decay=0.7))
    'Lambda(lambda t, decay: decay ** (t / 100), decay=0.7)'
    """
    if isinstance(s, Lambda):  # the function as text and its keywords by name, not <function <lambda> at 0x...>
        kw = [f"{n}={float(np.asarray(v)):.4g}" for n, v in s.kwargs.items() if np.ndim(v) == 0]
        k = float(np.asarray(s.scale)) if np.ndim(s.scale) == 0 else 1.0
        scale = [f"scale={k:.4g}"] if k != 1.0 else []
        shown = kw + scale
        return f"Lambda({', '.join([s.source] + shown[:max_items] + (['…'] if len(shown) > max_items else []))})"
    parts = []
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        kind = field_kind(f)
        if kind == CHILD:
            items = v if isinstance(v, tuple) else (v,)
            parts.append(f"{f.name}=" + "+".join(type(c).__name__ for c in items) if len(items) > 1 else None)
            continue
        if kind == LEAF:
            a = np.asarray(v, dtype=np.float64)
            d = None if f.default is dataclasses.MISSING else np.asarray(f.default if f.default is not None else np.nan)
            if d is not None and a.shape == np.shape(d) and np.all(a.astype(np.float32) == np.float32(d)):
                continue
            txt = f"{float(a):.4g}" if a.ndim == 0 else "[" + ", ".join(f"{x:.4g}" for x in a.ravel()[:4]) + (
                ", …]" if a.size > 4 else "]")
        else:
            if v == f.default:
                continue
            txt = repr(v) if isinstance(v, str) else str(v)
        parts.append(f"{f.name}={txt}")
    parts = [p for p in parts if p]
    kids = [getattr(s, f.name) for f in dataclasses.fields(s) if field_kind(f) == CHILD]
    name = type(s).__name__
    if len(kids) == 1 and isinstance(kids[0], Schedule):
        name += f"[{type(kids[0]).__name__}]"
    shown = parts[:max_items] + (["…"] if len(parts) > max_items else [])
    return f"{name}({', '.join(shown)})"


# -- public API ----------------------------------------------------------------

def plot_schedules(
    schedules: Schedule | Seq[Schedule] | Mapping[str, Schedule],
    steps: int | Seq[int] | np.ndarray | None = None,
    *,
    momentum: bool | Mapping[str, Schedule | None] = True,
    ax: Axes | None = None,
    title: str | None = None,
    log: bool = False,
) -> Figure:
    """Plot one or several schedules on one axis; return the matplotlib ``Figure``.

    Args:
      schedules: a schedule, a sequence of schedules, or a mapping ``label -> schedule``
        (spec dicts are accepted wherever a schedule is).
      steps: the number of steps to draw (``0 .. steps-1``) or an array of steps; default
        1.15 x the longest horizon (at least 100).
      momentum: also draw the companion momentum of one-cycle / cyclic schedules, dashed, on
        a twin y axis; or a mapping ``label -> momentum schedule`` (or ``None``) that says which
        momentum goes with which label (labels it does not name get none), e.g. the momentum an
        optimizer is actually given.
      ax: draw into this axis (its figure is returned); default: a new figure.
      title: the axis title.
      log: logarithmic rate axis.

    >>> import lrjax
    >>> fig = plot_schedules([lrjax.CosineDecay(1.0, 100), lrjax.StepDecay(1.0, 30, 0.5)], steps=150)
    >>> len(fig.axes[0].lines)
    2
    >>> fig = plot_schedules({"a": lrjax.OneCycle(1.0, 100), "b": lrjax.Constant(0.1)},
    ...                      momentum={"b": lrjax.Constant(0.9)})  # b's momentum, not a's companion
    >>> [line.get_label() for line in fig.axes[1].lines]
    ['b momentum']
    """
    named = _as_named(schedules)
    t = _steps_array(steps, list(named.values()))
    if ax is None:
        fig = _figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    twin = None
    for i, (label, s) in enumerate(named.items()):
        color = f"C{i % 10}"
        ax.plot(t, np.asarray(s(t)), color=color, lw=1.8, label=label)
        if isinstance(momentum, Mapping):
            mom = momentum.get(label)
            mom = None if mom is None else from_spec(mom, where=f"momentum[{label!r}]")
        else:
            mom = companion_momentum(s) if momentum else None
        if mom is not None:
            if twin is None:
                twin = ax.twinx()
                twin.set_ylabel("momentum", color="0.35")
            twin.plot(t, np.asarray(mom(t)), color=color, lw=1.2, ls="--", alpha=0.8, label=f"{label} momentum")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if len(handles) > 1:
        ax.legend(handles, labels, fontsize=8, loc="best")
    return fig


def gallery_schedules() -> dict[str, Schedule]:
    """One example of every schedule family, by family name (what :func:`gallery` draws)."""
    cos = L.CosineDecay(1.0, 900, floor=0.05)
    out: dict[str, Schedule] = {
        "constant": L.Constant(0.5),
        "linear": L.Linear(0.0, 1.0, 600),
        "step_decay": L.StepDecay(1.0, 250, 0.5),
        "multi_step": L.MultiStep(1.0, [300, 600, 800], 0.3),
        "exponential": L.Exponential(1.0, 0.5, 200),
        "exponential (staircase)": L.Exponential(1.0, 0.5, 200, staircase=True),
        "inverse_time": L.InverseTime(1.0, 0.01),
        "polynomial": L.Polynomial(1.0, 0.05, 800, power=2.0),
        "cosine_decay": L.CosineDecay(1.0, 800, floor=0.1),
        "tanh_decay": L.TanhDecay(1.0, 800, floor=0.05),
        "cosine_restarts": L.CosineRestarts(1.0, 150, 1.6, peak_decay=0.8, floor=0.02),
        "cyclic": L.Cyclic(0.1, 1.0, 150, 100, mode="triangular2"),
        "one_cycle": L.OneCycle(1.0, 1000, 0.3),
        "one_cycle (three-phase, linear)": L.OneCycle(1.0, 1000, 0.3, anneal_strategy="linear", three_phase=True),
        "momentum_of": L.OneCycle(1.0, 1000).momentum,
        "inverse_sqrt": L.InverseSqrt(1.0, 100),
        "warmup_stable_decay": L.WarmupStableDecay(1.0, 100, 600, 200, decay_shape="1-sqrt"),
        "warmup": L.Warmup(cos, 100, shape="cosine"),
        "sequence": L.Sequence([L.Linear(0.1, 1.0, 100), L.Constant(1.0), L.CosineDecay(1.0, 500)], [100, 400]),
        "product": L.Product([L.CosineDecay(1.0, 1000), L.StepDecay(1.0, 200, 0.7)]),
        "scale": L.Scale(cos, 0.5),
        "clamp": L.Clamp(L.CosineRestarts(1.0, 200), floor=0.2, ceiling=0.8),
    }
    out["piecewise_constant"] = L.PiecewiseConstant([200, 500, 800], [1.0, 0.6, 0.3, 0.1])
    out["shift"] = L.Shift(cos, 200)
    out["switch (index 1 of step, cosine)"] = L.Switch([L.StepDecay(1.0, 250, 0.5), cos], index=1)
    out["lambda (0.7 ** (t / 100))"] = L.Lambda(lambda t, decay: decay ** (t / 100), decay=0.7)
    out["table (tabulated Python)"] = L.Table.tabulate(lambda t: 1.0 if t < 300 else (0.5 if t < 600 else 0.2), 999)
    out["anneal (cosine cooled from 500)"] = L.Anneal(cos, anneal_at=500, anneal_steps=200)
    out["affine (1 - cosine)"] = L.Affine(L.CosineDecay(1.0, 800), scale=-1.0, offset=1.0)
    return out


def gallery(path: str | Path | None = None, steps: int = 1000, *, ncols: int = 4, dpi: int = 100) -> Figure:
    """Draw every schedule family in a grid, one panel each; save it to ``path`` if given.

    >>> fig = gallery("/tmp/gallery.png", steps=1000)
    """
    named = gallery_schedules()
    n = len(named)
    nrows = -(-n // ncols)
    fig = _figure(figsize=(4.2 * ncols, 3.1 * nrows), layout="constrained")
    t = _steps_array(steps, [])
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (label, s) in zip(axes, named.items()):
        desc = textwrap.fill(describe(s, max_items=4), width=50, subsequent_indent="  ")
        plot_schedules({label: s}, t, ax=ax, title=f"{label}\n{desc}")
        if ax.get_legend() is not None:  # one schedule per panel: the title says what it is
            ax.get_legend().remove()
        ax.set_xlabel("")
        ax.set_ylabel("")
        if not isinstance(s, MomentumOf):
            ax.set_ylim(0.0, None)
    for other in fig.axes:
        other.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle("lrjax schedule families (dashed: companion momentum, right axis)", fontsize=12)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig
