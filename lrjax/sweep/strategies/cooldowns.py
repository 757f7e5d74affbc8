r"""``strategy: {name: cooldowns, horizons: [H1, H2, ...], fraction: 0.2, shapes: [linear, 1-sqrt]}`` — every
horizon from one run.

"How long should I train, and does a cooldown at step N beat cosine at N?" is usually answered with one run
per horizon. A warmup-stable-decay schedule needs none of that: its stable phase does not depend on the
horizon, so one *trunk* trains at the stable rate and, at the fork point :math:`F_H = H - D_H` of every
horizon :math:`H` (:math:`D_H = \mathrm{round}(\mathit{fraction} \cdot H)`, or a fixed length when
``fraction`` is a duration), a copy of its whole train state becomes a *branch* that cools down to
:math:`H` with each shape of ``shapes`` (:class:`lrjax.WarmupStableDecay`'s ``linear``, ``1-sqrt``,
``cosine``, down to ``min_ratio`` of the peak). Every branch is, by construction, the lone run of

.. math:: \mathrm{WSD}(\eta, W, F_H - W, D_H, m, \mathit{shape}), \quad \texttt{train.steps} = H

with the same seed and batches, and ``lrjax train`` of its written config reproduces it. The trunk and
all branches train in one compiled program (the shapes are branches of a :class:`lrjax.Switch`); a branch
waits, unallocated, until its fork, and leaves the stacked state at its horizon (evaluated there), its
slot reused. ``compare: cosine`` adds one warmup + cosine run per horizon (each ending at its own
horizon, the same warmup and floor) in the same program.

Cost: the trunk's :math:`\max_H F_H` updates plus :math:`\sum_H D_H` per shape (plus :math:`\sum_H H`
for the comparison), where relaunching costs :math:`\sum_H H` per shape.

The configuration's schedule must have a constant phase to fork from: a ``warmup_stable_decay`` (its
peak, warmup and ``min_ratio`` are kept; its own stable and decay lengths are replaced per horizon), a
``warmup`` into a ``constant`` (read as a WSD of that peak and warmup), or a ``constant``.
Horizons and ``fraction`` take durations (``"50%"`` of ``train.steps``, ``"200 steps"``, ``"20M tokens"``
with a text source's ``data.context``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lrjax._checks import closest
from lrjax.engine import Config, parse_duration
from lrjax.sweep._errors import SweepError
from lrjax.sweep.strategies._base import Copy, Decision, Plan, Population, Strategy, register, steps_value

__all__ = ["Cooldowns"]

SHAPES = ("linear", "1-sqrt", "cosine")
_WARMUP_SHAPES = ("linear", "cosine", "1-sqrt")


def _round(x: float) -> int:
    """Nearest integer, halves up (as :func:`lrjax.to_steps`)."""
    return int(math.floor(x + 0.5))


def _number(value: Any, where: str, lo: float = 0.0, hi: float = math.inf) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and lo <= value <= hi)
    if not ok:
        raise SweepError(f"{where} must be a number in [{lo:g}, {hi:g}], got {where}={value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class _Stable:
    """The warmup and stable rate a configuration's schedule forks from."""

    peak: float
    warmup: float
    min_ratio: float
    warmup_shape: str


def _stable_of(cfg: Config, steps: int) -> _Stable:
    """Read the warmup + constant phase of ``cfg.schedule`` (see the module docs), durations resolved."""
    spec = cfg.schedule
    name = spec.get("name") if isinstance(spec, Mapping) else None
    usable = "a warmup_stable_decay, a warmup into a constant, or a constant"

    def length(key: str, node: Mapping) -> float:
        v = node.get(key, 0)
        if isinstance(v, str):
            return steps_value(v, f"schedule.{key}", steps, cfg)
        x = _number(v, f"schedule.{key}")
        return int(x) if x.is_integer() else x

    if name == "warmup_stable_decay":
        return _Stable(_number(spec.get("peak"), "schedule.peak"), length("warmup_steps", spec),
                       _number(spec.get("min_ratio", 0.0), "schedule.min_ratio", 0.0, 1.0),
                       spec.get("warmup_shape", "linear"))
    if name == "constant":
        return _Stable(_number(spec.get("value", 1.0), "schedule.value"), 0, 0.0, "linear")
    if name == "warmup":
        inner = spec.get("schedule")
        inner_name = inner.get("name") if isinstance(inner, Mapping) else None
        shape = spec.get("shape", "linear")
        plain = (spec.get("init_value", 0.0) == 0 and float(spec.get("target", -1.0)) < 0
                 and spec.get("prefix", True) is True and shape in _WARMUP_SHAPES)
        if inner_name == "constant" and plain:
            return _Stable(_number(inner.get("value", 1.0), "schedule.schedule.value"), length("warmup_steps", spec),
                           0.0, shape)
        what = f"a warmup into {inner_name!r}" if inner_name != "constant" else (
            "a warmup into a constant with init_value, target, prefix or shape changed")
        raise SweepError(f"strategy cooldowns forks every cooldown from a constant rate: schedule must be {usable}, "
                         f"got {what} (schedule.name='warmup'), with no plain constant phase to fork from")
    raise SweepError(f"strategy cooldowns forks every cooldown from a constant rate: schedule must be {usable}; "
                     f"got schedule.name={name!r}, which has no constant phase to fork from")


def _wsd(st: _Stable, stable: int, decay: int, shape: str, min_ratio: float) -> dict[str, Any]:
    return {"name": "warmup_stable_decay", "peak": st.peak, "warmup_steps": st.warmup, "stable_steps": stable,
            "decay_steps": decay, "min_ratio": min_ratio, "warmup_shape": st.warmup_shape, "decay_shape": shape}


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "run"


@register
@dataclasses.dataclass(eq=False)
class Cooldowns(Strategy):
    """A constant-rate trunk and a cooldown branch per horizon and shape, forked inside one program (see the
    module docs)."""

    name = "cooldowns"
    keys = ("horizons", "fraction", "shapes", "min_ratio", "compare")
    mixes_lengths = True
    exports_schedules = True

    horizons: tuple[Any, ...] = ()
    fraction: Any = 0.2
    shapes: tuple[str, ...] = ("linear", "1-sqrt")
    min_ratio: float | None = None
    compare: str | None = None

    def __post_init__(self) -> None:
        self._plans: list[Plan] = []
        self._forks: dict[int, list[tuple[int, int]]] = {}  # fork step -> (branch, trunk)
        self._spans: list[tuple[int, int]] = []             # (first update trained, last update) per member

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, steps: int, num_configs: int, config: Config | None = None) -> Cooldowns:
        hz = data.get("horizons")
        if not isinstance(hz, list) or not hz:
            raise SweepError("strategy.horizons must be a non-empty list of run lengths (updates or durations such as "
                             f"'50%' or '20M tokens'), e.g. [500, 1000, 2000], got strategy.horizons={hz!r}")
        for i, h in enumerate(hz):
            if not isinstance(h, str) and (isinstance(h, bool) or not isinstance(h, (int, float))):
                raise SweepError(f"strategy.horizons[{i}] must be a number of updates or a duration, got {h!r}")
        fraction = data.get("fraction", 0.2)
        if not isinstance(fraction, str):
            ok = not isinstance(fraction, bool) and isinstance(fraction, (int, float)) and 0 < fraction < 1
            if not ok:
                raise SweepError("strategy.fraction must be a fraction in (0, 1) of each horizon (or a duration such "
                                 f"as '20%' or '200 steps'), got strategy.fraction={fraction!r}")
            fraction = float(fraction)
        shapes = data.get("shapes", ["linear", "1-sqrt"])
        if isinstance(shapes, str):
            shapes = [shapes]
        if not isinstance(shapes, list) or not shapes:
            raise SweepError(f"strategy.shapes must be a non-empty list of {', '.join(SHAPES)}, got "
                             f"strategy.shapes={shapes!r}")
        for i, sh in enumerate(shapes):
            if sh not in SHAPES:
                raise SweepError(f"strategy.shapes[{i}] must be one of {', '.join(SHAPES)}, got {sh!r}"
                                 f"{closest(str(sh), SHAPES)}")
        if len(set(shapes)) != len(shapes):
            raise SweepError(f"strategy.shapes must not repeat a shape, got strategy.shapes={shapes!r}")
        mr = data.get("min_ratio")
        if mr is not None:
            mr = _number(mr, "strategy.min_ratio", 0.0, 1.0)
        compare = data.get("compare")
        if compare not in (None, "cosine"):
            raise SweepError(f"strategy.compare must be cosine (one warmup + cosine run per horizon) or absent, got "
                             f"strategy.compare={compare!r}{closest(str(compare), ['cosine'])}")
        return cls(horizons=tuple(hz), fraction=fraction, shapes=tuple(shapes), min_ratio=mr, compare=compare)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "horizons": list(self.horizons), "fraction": self.fraction,
               "shapes": list(self.shapes)}
        if self.min_ratio is not None:
            out["min_ratio"] = self.min_ratio
        if self.compare is not None:
            out["compare"] = self.compare
        return out

    # -- the members ----------------------------------------------------------------------
    def _horizons(self, cfg: Config) -> list[tuple[int, int]]:
        """``(H, F_H)`` per horizon of ``cfg``, checked (see the module docs)."""
        steps, every = cfg.train.steps, cfg.train.eval_every
        hs = [steps_value(h, f"strategy.horizons[{i}]", steps, cfg) for i, h in enumerate(self.horizons)]
        for i, h in enumerate(hs):
            if not 0 < h <= steps:
                raise SweepError(f"strategy.horizons[{i}]={self.horizons[i]!r} is {h} updates: a horizon must lie in "
                                 f"(0, train.steps={steps}]")
            if i and h == hs[i - 1]:
                raise SweepError(f"strategy.horizons repeats {h} updates (horizons[{i - 1}] and horizons[{i}])")
            if i and h < hs[i - 1]:
                raise SweepError(f"strategy.horizons must be sorted, shortest first: "
                                 f"horizons[{i}]={self.horizons[i]!r} ({h} updates) comes after {hs[i - 1]}")
            gap = h - (hs[i - 1] if i else 0)
            if gap < every:
                raise SweepError(f"strategy.horizons[{i}]={self.horizons[i]!r} is {gap} updates after "
                                 f"{'the previous horizon' if i else 'the start'}: finer than the evaluation cadence "
                                 f"(train.eval_every={every}); space horizons at least that far apart")
        fixed, f = None, self.fraction
        if isinstance(f, str):
            amount, unit = parse_duration(f, "strategy.fraction")
            if unit == "fraction":
                f = amount
            else:  # a fixed cooldown length for every horizon
                fixed = steps_value(self.fraction, "strategy.fraction", steps, cfg)
        if fixed is None and not 0 < f < 1:
            raise SweepError(f"strategy.fraction must be a fraction in (0, 1) of each horizon (or a duration), got "
                             f"strategy.fraction={self.fraction!r}")
        out = []
        for h in hs:
            d = fixed if fixed is not None else _round(f * h)
            if not 0 < d < h:
                raise SweepError(f"strategy.fraction={self.fraction!r} gives horizon {h} a cooldown of {d} updates: "
                                 f"it must be in (0, {h}) (at least one update before and in the cooldown)")
            out.append((h, h - d))
        return out

    def expand(self, configs: Sequence[Config], labels: Sequence[str]) -> list[Plan]:
        plans: list[Plan] = []
        self._forks, self._spans = {}, []
        many = len(configs) > 1
        for o, (cfg, label) in enumerate(zip(configs, labels)):
            hz = self._horizons(cfg)
            st = _stable_of(cfg, cfg.train.steps)
            m = st.min_ratio if self.min_ratio is None else self.min_ratio
            for i, (_, f) in enumerate(hz):
                if f < st.warmup:
                    raise SweepError(f"strategy.horizons[{i}]={self.horizons[i]!r}: its cooldown would start at update "
                                     f"{f}, before the warmup ends (schedule.warmup_steps = {st.warmup} updates); "
                                     "use a later horizon or a smaller strategy.fraction")
            last = max(f for _, f in hz)
            h_max = max(h for h, _ in hz)

            def member(tag: str, steps: int, schedule: dict, role: dict, waits: bool = False, *, cfg: Config = cfg,
                       label: str = label, o: int = o) -> Plan:
                lab = f"{label} {tag}" if many else tag
                c = dataclasses.replace(cfg, name=_name(f"{cfg.name or 'run'}-{tag}"), schedule=schedule,
                                        train=dataclasses.replace(cfg.train, steps=steps))
                return Plan(c, lab, o, role, waits=waits)

            trunk = len(plans)
            plans.append(member("trunk", last, _wsd(st, last - st.warmup, h_max - last, self.shapes[0], m),
                                {"run": "trunk", "horizon": last, "shape": "constant", "fork": None}))
            self._spans.append((0, last))
            for h, f in hz:
                for shape in self.shapes:
                    self._forks.setdefault(f, []).append((len(plans), trunk))
                    plans.append(member(f"{h} {shape}", h, _wsd(st, f - st.warmup, h - f, shape, m),
                                        {"run": "cooldown", "horizon": h, "shape": shape, "fork": f}, waits=True))
                    self._spans.append((f, h))
            if self.compare == "cosine":
                for h, _ in hz:
                    plans.append(member(f"cosine to {h}", h, _wsd(st, 0, h - st.warmup, "cosine", m),
                                        {"run": "cosine", "horizon": h, "shape": "cosine", "fork": None}))
                    self._spans.append((0, h))
        self._plans = plans
        return plans

    # -- the run ------------------------------------------------------------------------------
    def decision_points(self, steps: int) -> list[int]:
        return sorted(self._forks)

    def evaluation_points(self, steps: int) -> list[int]:
        return []  # nothing is ranked: members evaluate at their own cadence and at their own end

    def final_size(self, n: int) -> int:
        return 1  # CPUs: chunks of one member per device (members come and go; every row costs its time)

    def most_alive(self, n: int) -> int:
        edges = sorted({a for a, _ in self._spans} | {b for _, b in self._spans})
        return max((sum(1 for a, b in self._spans if a <= t < b) for t in edges), default=n) or 1

    def decide(self, pop: Population) -> Decision:
        return Decision(copy={b: Copy(src=t, plan="own", record=False) for b, t in self._forks.get(pop.step, [])})

    # -- the run directory ----------------------------------------------------------------------
    def table(self, rows: list[dict[str, Any]], results: Sequence[Any]) -> list[dict[str, Any]]:
        """One row per member: trunk, then each horizon's cooldowns (in ``shapes`` order) and its cosine run."""
        by_label = {r["label"]: r for r in rows}
        order = {s: k for k, s in enumerate(self.shapes)}

        def key(r: Any) -> tuple:
            role = r.role or {}
            run = role.get("run")
            return (r.origin, run != "trunk", role.get("horizon") or 0, run == "cosine",
                    order.get(role.get("shape"), 0))

        out = []
        for r in sorted(results, key=key):
            row, role = dict(by_label[r.label]), r.role or {}
            for k in ("rank", "group", "stopped_at"):
                row.pop(k, None)
            head = {"label": row.pop("label"), "run": role.get("run"), "horizon": role.get("horizon"),
                    "shape": role.get("shape"), "fork": role.get("fork")}
            out.append({**head, **row})
        return out

    def summary(self, results: Sequence[Any]) -> dict[str, Any]:
        """Each member's effective schedule (an lrjax spec: ``lrjax train`` with it and ``train.steps`` =
        its horizon re-trains it alone)."""
        return {"schedules": {r.label: r.schedule_spec for r in results}}

    def figures(self, results: Sequence[Any], run_dir: str, title: str = "") -> list[str]:
        return [os.path.basename(plot_horizons(results, os.path.join(run_dir, "horizons.png"), title=title))]


def _final(r: Any, key: str) -> float | None:
    vals = [x[key] for x in r.records if x.get(key) is not None]
    return vals[-1] if vals else None


def plot_horizons(results: Sequence[Any], path: str, *, title: str = "") -> str:
    """``horizons.png``: per configuration, the validation loss (and accuracy, for a classifier) at each horizon —
    one line per cooldown shape, the cosine runs, and the trunk's own curve at the constant rate — and the rate
    every member applied."""
    import matplotlib  # noqa: PLC0415 - optional dependency, only when a figure is drawn

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    origins = sorted({r.origin for r in results})
    split = "val" if any("val_loss" in x for r in results for x in r.records) else "test"
    keys = [f"{split}_loss"] + ([f"{split}_accuracy"] if any(f"{split}_accuracy" in x for r in results
                                                              for x in r.records) else [])
    ncols = len(keys) + 1
    fig, axes = plt.subplots(len(origins), ncols, figsize=(6 * ncols, 4.2 * len(origins)), squeeze=False,
                             constrained_layout=True)
    cmap = plt.get_cmap("tab10")
    for row, o in zip(axes, origins):
        mine = [r for r in results if r.origin == o]
        names = sorted({f"cooldown {(r.role or {}).get('shape')}" if (r.role or {}).get("run") == "cooldown"
                        else "cosine (whole run)" for r in mine if (r.role or {}).get("run") in ("cooldown", "cosine")})
        color = {n: cmap(k) for k, n in enumerate(names)}
        for ax, key in zip(row, keys):
            for r in mine:
                if (r.role or {}).get("run") == "trunk":
                    ev = [x for x in r.records if x.get(key) is not None]
                    ax.plot([x["step"] for x in ev], [x[key] for x in ev], color="0.5", lw=1.2, ls="--",
                            label="trunk (constant rate)")
            lines: dict[str, list[tuple[int, float]]] = {}
            for r in mine:
                role = r.role or {}
                if role.get("run") in ("cooldown", "cosine") and _final(r, key) is not None:
                    name = f"cooldown {role['shape']}" if role["run"] == "cooldown" else "cosine (whole run)"
                    lines.setdefault(name, []).append((role["horizon"], _final(r, key)))
            for name, pts in sorted(lines.items()):
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color[name], label=name)
            ax.set_xlabel("horizon (optimizer updates)")
            ax.set_ylabel(f"{key.replace('_', ' ')} at the horizon")
            lead = mine[0].label
            head = lead[: -len("trunk")].strip() if len(origins) > 1 and lead.endswith("trunk") else ""
            ax.set_title(f"{key.replace('_', ' ')} against horizon" + (f" — {head}" if head else ""))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        a_lr = row[-1]
        for r in mine:
            role = r.role or {}
            name = f"cooldown {role.get('shape')}" if role.get("run") == "cooldown" else "cosine (whole run)"
            a_lr.plot(range(1, len(r.rates) + 1), r.rates, lw=0.9, alpha=0.8,
                      color="0.5" if role.get("run") == "trunk" else color.get(name, "0.3"))
        a_lr.set_xlabel("step (optimizer updates)")
        a_lr.set_ylabel("learning rate")
        a_lr.set_title("rate applied by every member")
        a_lr.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
