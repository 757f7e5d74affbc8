r"""``strategy: {name: pbt, interval: I, quantile: q, explore: {KEY: [factors]}, seed: s, anneal: a}`` —
population-based training (Jaderberg et al., 2017).

Every ``interval`` updates, within each compiled group, the bottom ``quantile`` of the members (ranked on
the validation metric) copies the parameters and optimizer state — schedule included — of a member of the
top ``quantile`` drawn at random (exploit) and multiplies the hyperparameter leaves named in ``explore``
(dotted config keys of numeric schedule or optimizer leaves: ``schedule.schedule.peak``,
``optimizer.args.weight_decay``) by a factor drawn from each list (explore). Nothing recompiles: the
copy is a gather of rows, the perturbation a multiplication of leaves. ``seed`` draws the choices.
``anneal`` (a fraction in (0, 1], default off) ranks each member on a copy of its current plan cooled
linearly to zero over that share of the interval (:mod:`lrjax.sweep.strategies._anneal`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from lrjax._checks import integer, number
from lrjax.engine import Config, Experiment
from lrjax.sweep._errors import SweepError
from lrjax.sweep._groups import state_shapes
from lrjax.sweep._population import explore_leaves, hyperparam_names
from lrjax.sweep.strategies._anneal import Annealer, Anneals, anneal_value
from lrjax.sweep.strategies._base import Copy, Decision, Population, Strategy, register, rng_of, steps_value

__all__ = ["PBT"]


@register
@dataclasses.dataclass(eq=False)
class PBT(Anneals, Strategy):
    """Population-based training (see the module docs)."""

    name = "pbt"
    keys = ("interval", "quantile", "explore", "seed", "anneal")
    changes_plans = True

    interval: int = 0
    quantile: float = 0.25
    explore: tuple[tuple[str, tuple[float, ...]], ...] = ()
    seed: int = 0
    anneal: float | None = None

    def __post_init__(self) -> None:
        self.rng = rng_of(self.seed)
        self.annealer = Annealer(self.anneal) if self.anneal is not None else None

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, steps: int, num_configs: int, config: Config | None = None) -> PBT:
        interval = steps_value(data.get("interval", "25%"), "strategy.interval", steps, config)
        if not 0 < interval < steps:
            raise SweepError(f"strategy.interval must be in (0, train.steps={steps}) updates, got "
                             f"strategy.interval={data.get('interval')!r}")
        q = number("", "strategy.quantile", data.get("quantile", 0.25), lo=0.0, hi=0.5, lo_open=True,
                   error=SweepError)  # the bottom and top fractions
        if int(num_configs * q) < 1:
            raise SweepError(f"strategy.quantile={q!r} of {num_configs} configurations leaves nobody to copy "
                             f"(floor({num_configs} x {q}) = 0); use at least {math.ceil(1 / q)} configurations or a "
                             "larger quantile")
        explore_in = data.get("explore") or {}
        if not isinstance(explore_in, Mapping) or not explore_in:
            raise SweepError("strategy.explore must map dotted keys of numeric hyperparameters to lists of factors, "
                             "e.g. {schedule.schedule.peak: [0.8, 1.25]}, got strategy.explore=" + repr(explore_in))
        explore = []
        for k, v in explore_in.items():
            if not str(k).startswith(("schedule.", "optimizer.args.")):
                raise SweepError(f"strategy.explore.{k}: explore keys are schedule.<...> or optimizer.args.<name> "
                                 "(numeric leaves of the optimizer state)")
            if not isinstance(v, list) or not v:
                raise SweepError(f"strategy.explore.{k} must be a non-empty list of finite positive factors (e.g. "
                                 f"[0.8, 1.25]), got strategy.explore.{k}={v!r}")
            try:
                factors = tuple(number("", f"strategy.explore.{k}[{i}]", x, lo=0.0, lo_open=True, error=SweepError)
                                for i, x in enumerate(v))
            except SweepError:
                raise SweepError(f"strategy.explore.{k} must be a non-empty list of finite positive factors (e.g. "
                                 f"[0.8, 1.25]), got strategy.explore.{k}={v!r}") from None
            explore.append((str(k), factors))
        seed = integer("", "strategy.seed", data.get("seed", 0), lo=0, error=SweepError)
        return cls(interval=interval, quantile=float(q), explore=tuple(explore), seed=seed,
                   anneal=anneal_value(data.get("anneal")))

    def to_dict(self) -> dict[str, Any]:
        return self.anneal_dict({"name": self.name, "interval": self.interval, "quantile": self.quantile,
                                 "explore": {k: list(v) for k, v in self.explore}, "seed": self.seed})

    def _exploits(self, steps: int) -> list[int]:
        return list(range(self.interval, steps, self.interval))

    def decision_points(self, steps: int) -> list[int]:
        return self.with_forks(self._exploits(steps))

    def evaluation_points(self, steps: int) -> list[int]:
        return self._exploits(steps)

    def check(self, exp: Experiment) -> None:
        """Every explore key names a numeric leaf of the state, or a SweepError says what the state holds."""
        shapes = state_shapes(exp)
        for key, _ in self.explore:
            if key == "optimizer.args.b1" and exp.config.optimizer.name.startswith("schedule_free"):
                raise SweepError(f"strategy.explore.{key}: a schedule-free optimizer keeps b1 constant (it recovers "
                                 "its evaluation point with it); explore the rate or the weight decay instead")
            if not explore_leaves(shapes.opt_state, key):
                names = hyperparam_names(shapes.opt_state)
                raise SweepError(
                    f"strategy.explore.{key}: not a numeric leaf of the train state; the optimizer state holds "
                    f"{', '.join(names[:12]) or 'no hyperparameters'} (as schedule.<field...> for learning_rate and "
                    "optimizer.args.<name> for the others)")

    def decide(self, pop: Population) -> Decision:
        decision = Decision()
        forks = self.annealer.forks(self._exploits(pop.step + self.interval + 1)) if self.annealer else {}
        if pop.step % self.interval == 0 and pop.step > 0:
            decision = self._exploit(pop)
        if pop.step in forks:
            fork = self.annealer.fork(pop.alive(), pop.step, forks[pop.step][1])
            if pop.step % self.interval == 0 and pop.step > 0:
                decision.then = fork  # from the rows the exploit left
            else:
                decision = fork
        return decision

    def _exploit(self, pop: Population) -> Decision:
        decision = Decision()
        if self.annealer:
            decision.stop = self.annealer.discard()
        for ids in pop.groups():
            n = int(len(ids) * self.quantile)
            if n < 1:
                continue
            ranked = self.annealer.rank(pop, ids) if self.annealer else pop.ranked(ids)
            top, bottom = ranked[:n], ranked[-n:]
            for b in bottom:
                src = int(top[self.rng.integers(len(top))])
                factors = {k: float(choices[self.rng.integers(len(choices))]) for k, choices in self.explore}
                decision.copy[b] = Copy(src=src, factors=factors)
        return decision

    def reported_keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.explore)

    def table(self, rows: list[dict[str, Any]], results) -> list[dict[str, Any]]:
        return self.annealer.columns(rows) if self.annealer else rows

    def summary(self, results) -> dict[str, Any]:
        return {"rankings": self.annealer.history} if self.annealer else {}

    def state_dict(self) -> Any:
        if self.annealer:
            return {"rng": self.rng.bit_generator.state, "anneal": self.annealer.state_dict()}
        return self.rng.bit_generator.state

    def load_state_dict(self, state: Any) -> None:
        if self.annealer:
            self.rng.bit_generator.state = state["rng"]
            self.annealer.load_state_dict(state["anneal"])
        else:
            self.rng.bit_generator.state = state
