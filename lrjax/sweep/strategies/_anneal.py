r"""Annealed ranking (``anneal: FRACTION`` on ``halving`` and ``pbt``): rank members on what they would reach.

Early in a run, a configuration at a high rate looks worse than it is: its loss carries the noise of that
rate, which a decay would remove (short-horizon bias). With ``anneal`` a, before each ranking point
:math:`R_j` every live member :math:`i` gets a hidden *copy* that forks from it at
:math:`R_j - L_j`, :math:`L_j = \max(1, \mathrm{round}(a\,(R_j - R_{j-1})))` (:math:`R_0 = 0`: a fraction
of the updates since its last ranking), and follows its *current* plan — its schedule, hyperparameters
perturbed by PBT included — cooled linearly to zero over those :math:`L_j` updates
(:class:`lrjax.Anneal`: every member's schedule is wrapped in one that is off; the copy switches it on by
setting ``anneal_at`` and ``anneal_steps``). At :math:`R_j` each member is ranked on its copy's validation
metric, the copies are discarded, and the members go on as if nothing happened (the copies never touch
them). The copies train vmapped beside the members in the same compiled program; their updates count
in ``config_steps`` (each member's ``scratch_steps``).

The raw ranking (the members' own metric at :math:`R_j`) is kept beside the annealed one: the table gets
``rank@R`` (what decided), ``raw_rank@R`` and both metrics per ranking point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lrjax._checks import number
from lrjax.schedules import Anneal, Schedule
from lrjax.sweep._errors import SweepError
from lrjax.sweep.strategies._base import Copy, Decision, Plan, Population

__all__ = ["Annealer", "Anneals", "anneal_value"]


def anneal_value(value: Any) -> float | None:
    """``strategy.anneal`` checked: None (off) or a fraction in (0, 1]."""
    if value is None:
        return None
    # each copy cools over that share of the updates since the member's last ranking
    return number("", "strategy.anneal", value, lo=0.0, hi=1.0, lo_open=True, error=SweepError)


class Anneals:
    """The ``anneal`` option of a deciding strategy (halving, PBT), mixed in before :class:`Strategy`: the
    hidden copies in the plan, the schedule that can cool them, and each decision's fork point. The strategy
    sets ``anneal`` and ``annealer`` (an :class:`Annealer`, or None when off)."""

    def expand(self, configs: Sequence[Any], labels: Sequence[str]) -> list[Plan]:
        plans = super().expand(configs, labels)  # type: ignore[misc]
        return self.annealer.expand(plans) if self.annealer else plans

    def schedule(self, schedule: Schedule) -> Schedule:
        return self.annealer.schedule(schedule) if self.annealer else schedule

    def with_forks(self, points: Sequence[int]) -> list[int]:
        """``points`` and, when annealing, where each one's copies fork before it."""
        forks = self.annealer.forks(points) if self.annealer else {}
        return sorted(set(points) | set(forks))

    def anneal_dict(self, out: dict[str, Any]) -> dict[str, Any]:
        """``out`` with ``anneal`` when it is on (``to_dict``)."""
        if self.anneal is not None:
            out["anneal"] = self.anneal
        return out


class Annealer:
    """The hidden copies of a strategy with annealed ranking: members, forks, rankings (see the module docs)."""

    def __init__(self, fraction: float):
        self.fraction = fraction
        self.copy_of: dict[int, int] = {}
        self.history: dict[str, dict[str, dict[str, Any]]] = {}  # ranking step -> member label -> entry
        self.visible = 0

    def expand(self, plans: list[Plan]) -> list[Plan]:
        """The strategy's members and one hidden copy of each (waiting until it forks)."""
        n = len(plans)
        self.copy_of, self.visible, self.history = {i: n + i for i in range(n)}, n, {}  # a new run
        return plans + [Plan(p.config, f"{p.label} (annealed copy)", p.origin, {"run": "annealed copy"}, waits=True,
                             owner=i) for i, p in enumerate(plans)]

    @staticmethod
    def schedule(schedule: Schedule) -> Schedule:
        return Anneal(schedule)  # off: the same rates, bit for bit

    def forks(self, points: Sequence[int]) -> dict[int, tuple[int, int]]:
        """``{fork step: (ranking step, cooldown length)}`` for the ranking points."""
        out, prev = {}, 0
        for r in sorted(points):
            length = max(1, math.floor(self.fraction * (r - prev) + 0.5))
            out[r - length] = (r, length)
            prev = r
        return out

    def fork(self, ids: Sequence[int], start: int, length: int) -> Decision:
        """Each member of ``ids`` forks its copy, cooled from ``start`` over ``length`` updates."""
        return Decision(copy={self.copy_of[i]: Copy(src=i, plan="src", record=False,
                                                    set={"schedule.anneal_at": float(start),
                                                         "schedule.anneal_steps": float(length)}) for i in ids})

    def rank(self, pop: Population, ids: list[int]) -> list[int]:
        """``ids`` best first on their copies' metric (the raw ranking recorded beside it)."""
        annealed = pop.ranked(ids, {i: self.copy_of[i] for i in ids})
        raw = pop.ranked(ids)
        self.history.setdefault(str(pop.step), {}).update({
            pop.label(i): {"rank": annealed.index(i) + 1, "raw_rank": raw.index(i) + 1,
                           "annealed": pop.metric(self.copy_of[i]), "raw": pop.metric(i)} for i in ids})
        return annealed

    def discard(self) -> dict[int, str]:
        return {c: "discarded" for c in self.copy_of.values()}

    def columns(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows with, per ranking point, the annealed and raw ranks and metrics."""
        out = []
        for row in rows:
            row = dict(row)
            for step, entries in self.history.items():
                e = entries.get(row.get("label"), {})
                row[f"rank@{step}"] = e.get("rank")
                row[f"raw_rank@{step}"] = e.get("raw_rank")
                row[f"annealed_val@{step}"] = e.get("annealed")
                row[f"raw_val@{step}"] = e.get("raw")
            out.append(row)
        return out

    def state_dict(self) -> Any:
        return {"history": self.history}

    def load_state_dict(self, state: Any) -> None:
        self.history = dict(state["history"])
