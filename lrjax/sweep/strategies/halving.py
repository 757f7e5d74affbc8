r"""``strategy: {name: halving, rungs: [R1, R2, ...], keep: F}`` — successive halving.

ASHA's rule, applied synchronously: at each rung :math:`R_j` the :math:`n` configurations still training
are ranked on the validation metric and the best :math:`\max(1, \lfloor nF \rfloor)` go on (``eta``
gives :math:`F = 1/\eta`); the others stop (``pruned``) and their rows leave the stacked state, so they
stop costing compute.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from lrjax.sweep._errors import SweepError
from lrjax.sweep.strategies._base import Decision, Population, Strategy, fraction_value, register, steps_value

__all__ = ["Halving"]


@register
@dataclasses.dataclass(frozen=True, eq=False)
class Halving(Strategy):
    """Successive halving (see the module docs)."""

    name = "halving"
    keys = ("rungs", "keep", "eta")

    rungs: tuple[int, ...] = ()
    keep: float = 0.25

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, steps: int, num_configs: int) -> "Halving":
        rungs_in = data.get("rungs")
        if not isinstance(rungs_in, list) or not rungs_in:
            raise SweepError(f"strategy.rungs must be a non-empty list of updates at which to prune, e.g. [200, 600], "
                             f"got strategy.rungs={rungs_in!r}")
        rungs = tuple(steps_value(r, f"strategy.rungs[{i}]", steps) for i, r in enumerate(rungs_in))
        for i, r in enumerate(rungs):
            if not 0 < r < steps:
                raise SweepError(f"strategy.rungs[{i}]={rungs_in[i]!r} is {r} updates: a rung must lie inside the run "
                                 f"(0 < rung < train.steps={steps})")
        if any(b <= a for a, b in zip(rungs, rungs[1:])):
            raise SweepError(f"strategy.rungs must be strictly increasing, got strategy.rungs={list(rungs)}")
        if "keep" in data and "eta" in data:
            raise SweepError("strategy: give keep or eta (keep = 1/eta), not both")
        if "eta" in data:
            eta = data["eta"]
            if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 1 < eta < math.inf:
                raise SweepError(f"strategy.eta must be a number > 1 (keep the best 1/eta), got strategy.eta={eta!r}")
            keep = 1.0 / float(eta)
        else:
            keep = fraction_value(data.get("keep", 0.25), "strategy.keep")
        return cls(rungs=rungs, keep=keep)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rungs": list(self.rungs), "keep": self.keep}

    def decision_points(self, steps: int) -> list[int]:
        return list(self.rungs)

    def survivors(self, n: int) -> int:
        """How many of ``n`` go on at a rung."""
        return max(1, math.floor(n * self.keep + 1e-9))

    def final_size(self, n: int) -> int:
        for _ in self.rungs:
            n = self.survivors(n)
        return n

    def decide(self, pop: Population) -> Decision:
        ranked = pop.ranked(pop.alive())
        keep = self.survivors(len(ranked))
        return Decision(stop={i: "pruned" for i in ranked[keep:]})
