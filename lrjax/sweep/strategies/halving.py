r"""``strategy: {name: halving, rungs: [R1, R2, ...], keep: F, anneal: a}`` — successive halving.

ASHA's rule, applied synchronously: at each rung :math:`R_j` the :math:`n` configurations still training
are ranked on the validation metric and the best :math:`\max(1, \lfloor nF \rfloor)` go on (``eta``
gives :math:`F = 1/\eta`); the others stop (``pruned``) and their rows leave the stacked state, so they
stop costing compute. With ``anneal`` (a fraction in (0, 1], default off) each configuration is ranked
on a copy of itself cooled linearly to zero over that share of the updates since the previous rung
(:mod:`lrjax.sweep.strategies._anneal`): what it would reach, not where its noise is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from lrjax._checks import number
from lrjax.engine import Config
from lrjax.sweep._errors import SweepError
from lrjax.sweep.strategies._anneal import Annealer, Anneals, anneal_value
from lrjax.sweep.strategies._base import (
    Decision,
    Population,
    Strategy,
    fraction_value,
    register,
    steps_value,
)

__all__ = ["Halving"]


@register
@dataclasses.dataclass(frozen=True, eq=False)
class Halving(Anneals, Strategy):
    """Successive halving (see the module docs)."""

    name = "halving"
    keys = ("rungs", "keep", "eta", "anneal")

    rungs: tuple[int, ...] = ()
    keep: float = 0.25
    anneal: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "annealer", Annealer(self.anneal) if self.anneal is not None else None)

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, steps: int, num_configs: int, config: Config | None = None) -> Halving:
        rungs_in = data.get("rungs")
        if not isinstance(rungs_in, list) or not rungs_in:
            raise SweepError(f"strategy.rungs must be a non-empty list of updates at which to prune, e.g. [200, 600], "
                             f"got strategy.rungs={rungs_in!r}")
        rungs = tuple(steps_value(r, f"strategy.rungs[{i}]", steps, config) for i, r in enumerate(rungs_in))
        for i, r in enumerate(rungs):
            if not 0 < r < steps:
                raise SweepError(f"strategy.rungs[{i}]={rungs_in[i]!r} is {r} updates: a rung must lie inside the run "
                                 f"(0 < rung < train.steps={steps})")
        if any(b <= a for a, b in zip(rungs, rungs[1:])):
            raise SweepError(f"strategy.rungs must be strictly increasing, got strategy.rungs={list(rungs)}")
        if "keep" in data and "eta" in data:
            raise SweepError("strategy: give keep or eta (keep = 1/eta), not both")
        if "eta" in data:
            keep = 1.0 / number("", "strategy.eta", data["eta"], lo=1.0, lo_open=True, error=SweepError)  # 1/eta go on
        else:
            keep = fraction_value(data.get("keep", 0.25), "strategy.keep")
        return cls(rungs=rungs, keep=keep, anneal=anneal_value(data.get("anneal")))

    def to_dict(self) -> dict[str, Any]:
        return self.anneal_dict({"name": self.name, "rungs": list(self.rungs), "keep": self.keep})

    def decision_points(self, steps: int) -> list[int]:
        return self.with_forks(self.rungs)

    def evaluation_points(self, steps: int) -> list[int]:
        return list(self.rungs)

    def survivors(self, n: int) -> int:
        """How many of ``n`` go on at a rung."""
        return max(1, math.floor(n * self.keep + 1e-9))

    def final_size(self, n: int) -> int:
        if self.annealer:
            n = self.annealer.visible or n
        for _ in self.rungs:
            n = self.survivors(n)
        return n

    def decide(self, pop: Population) -> Decision:
        decision, alive = Decision(), pop.alive()
        if pop.step in self.rungs:
            ranked = self.annealer.rank(pop, alive) if self.annealer else pop.ranked(alive)
            keep = self.survivors(len(ranked))
            decision.stop = {i: "pruned" for i in ranked[keep:]}
            alive = ranked[:keep]
            if self.annealer:
                decision.stop.update(self.annealer.discard())
        forks = self.annealer.forks(self.rungs) if self.annealer else {}
        if pop.step in forks:
            fork = self.annealer.fork(sorted(alive), pop.step, forks[pop.step][1])
            if pop.step in self.rungs:
                decision.then = fork  # from the survivors' rows, after the pruning
            else:
                decision = fork
        return decision

    def table(self, rows: list[dict[str, Any]], results) -> list[dict[str, Any]]:
        return self.annealer.columns(rows) if self.annealer else rows

    def summary(self, results) -> dict[str, Any]:
        return {"rankings": self.annealer.history} if self.annealer else {}

    def state_dict(self) -> Any:
        return self.annealer.state_dict() if self.annealer else None

    def load_state_dict(self, state: Any) -> None:
        if self.annealer and state is not None:
            self.annealer.load_state_dict(state)
