"""The strategy interface: decision points, and what a strategy does to the stacked state at each.

A strategy is a small class registered under its ``name`` (:func:`register`); the driver
(:func:`lrjax.sweep.train_many`) owns everything else — building and grouping the configurations,
running the compiled segments between decision points, snapshots and ``--resume``, the records — so a
new strategy is one module in this package and touches no other file (every module here is imported
when the package is, and registers itself).

A strategy may first turn the sweep's configurations into its *members* (:meth:`Strategy.expand`, one
:class:`Plan` each): a cooldown study makes a constant-rate trunk and one branch per horizon and shape,
each a configuration of its own length that waits until it is forked; annealed ranking adds a hidden
scratch member per configuration. Members of one structure train in one compiled program whatever their
``train.steps`` when the strategy says so (:attr:`Strategy.mixes_lengths`): each leaves the stacked state
at its own end (``completed``) and its slot is reused.

At each of its decision points (:meth:`Strategy.decision_points`) a strategy sees the :class:`Population`
— who is alive, their evaluations on the validation split, a ranking — and returns a :class:`Decision`:
which members stop (their rows leave the stacked state) and which rows are replaced by a :class:`Copy`
of another member (exploit, fork, a member that starts), with hyperparameter factors (explore), leaves
set to a value, and whose plan the copy follows. Reporting hooks add the strategy's own columns, entries
of ``summary.json`` and figures to the run directory.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from lrjax._checks import closest, number
from lrjax.engine import Config, ConfigError, Experiment, parse_duration, train_counts
from lrjax.optim import to_steps
from lrjax.schedules import Schedule
from lrjax.sweep._errors import SweepError

__all__ = ["Strategy", "Population", "Copy", "Decision", "Plan", "register", "registry", "parse_strategy", "known_lengths",
           "strategy_of", "steps_value", "fraction_value", "rng_of"]


@dataclasses.dataclass(frozen=True)
class Copy:
    """Row of a member replaced by a copy of member ``src``'s state (parameters, optimizer state, model state,
    averaged weights; the member keeps its own PRNG key). ``factors``: multipliers of hyperparameter
    leaves named by config keys (``schedule.schedule.peak``, ``optimizer.args.weight_decay``). ``plan``:
    ``"src"`` — follow the copied schedule and hyperparameters (an exploit); ``"own"`` — keep the member's
    own (a fork: the source's weights and moments, the member's own schedule from here on). ``set``: leaves
    named by config keys set to a value after the copy (``schedule.anneal_at``). ``record``: write a
    lineage entry (step, member, copied, the explored values after the copy). A member that was not
    training starts here with the source's update count and history."""

    src: int
    factors: Mapping[str, float] = dataclasses.field(default_factory=dict)
    plan: str = "src"
    record: bool = True
    set: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Decision:
    """What happens at a decision point: ``stop`` — members whose training ends here (``{member:
    status}``, e.g. ``"pruned"``); ``copy`` — members whose row becomes a :class:`Copy` (a member not
    alive yet starts training from it); ``then`` — a decision carried out after this one at the same
    step (its copies read the rows this one left: fork a member just exploited)."""

    stop: dict[int, str] = dataclasses.field(default_factory=dict)
    copy: dict[int, Copy] = dataclasses.field(default_factory=dict)
    then: Decision | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """One member of the population a strategy makes of the sweep's configurations (:meth:`Strategy.expand`).

    ``config``: what it trains (its own ``train.steps``); ``label``; ``origin``: the index of the sweep
    configuration it comes from; ``role``: what the strategy made of it (a JSON-safe mapping such as
    ``{"run": "cooldown", "horizon": 1000, "shape": "linear", "fork": 800}``; None: the configuration
    itself); ``waits``: not training until a :class:`Copy` starts it; ``owner``: a hidden scratch member
    (an annealed copy) that serves member ``owner`` — never reported, its updates counted for its owner."""

    config: Config
    label: str
    origin: int
    role: Mapping[str, Any] | None = None
    waits: bool = False
    owner: int | None = None


class Population(Protocol):
    """What a strategy sees at a decision point (the driver's view of the members)."""

    step: int
    size: int

    def alive(self) -> list[int]:
        """Members still training, in order."""
        ...

    def groups(self) -> list[list[int]]:
        """Alive members per compiled group (copies happen within a group: one state structure)."""
        ...

    def ranked(self, ids: list[int], proxy: Mapping[int, int] | None = None) -> list[int]:
        """``ids`` best first by the selection metric (validation) at this step; missing or non-finite last.
        ``proxy``: member ``i`` is scored by member ``proxy[i]``'s evaluation (an annealed copy's)."""
        ...

    def metric(self, i: int) -> float | None:
        """Member ``i``'s selection metric at this step (None when it was not evaluated here)."""
        ...

    def label(self, i: int) -> str:
        ...


class Strategy:
    """Base class of the strategies (see the module docs). Subclasses set ``name`` and ``keys`` (the
    strategy's mapping keys besides ``name``) and implement :meth:`parse`; the default is a grid: no
    decision points, every configuration to the end."""

    name: ClassVar[str] = ""
    keys: ClassVar[tuple[str, ...]] = ()
    #: the strategy ranks configurations (so a validation split is held out by default)
    selects: ClassVar[bool] = True
    #: each member's learning-rate schedule may change during the run (record the pieces it followed)
    changes_plans: ClassVar[bool] = False
    #: every configuration must have the same ``train.steps`` (the decision points are in its updates)
    one_length: ClassVar[bool] = True
    #: members of different ``train.steps`` share a compiled group (each leaves it at its own end)
    mixes_lengths: ClassVar[bool] = False
    #: every result carries the rate schedule it followed as an lrjax spec (``schedule_spec``)
    exports_schedules: ClassVar[bool] = False

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, steps: int, num_configs: int, config: Config | None = None) -> Strategy:
        """The strategy of a validated ``strategy`` mapping (``steps``: the run length; ``num_configs``;
        ``config``: a configuration of the sweep, for durations in tokens or examples: its batch and context)."""
        return cls()

    def to_dict(self) -> dict[str, Any]:
        """The strategy as a YAML/JSON-safe mapping (``summary.json``)."""
        return {"name": self.name}

    def expand(self, configs: Sequence[Config], labels: Sequence[str]) -> list[Plan]:
        """The members that train, from the sweep's validated configurations (default: one each, as they
        are). Refuses what the strategy cannot work on with a :class:`SweepError` naming the key; called
        once before anything is written, so it must be deterministic."""
        return [Plan(c, lab, i) for i, (c, lab) in enumerate(zip(configs, labels))]

    def schedule(self, schedule: Schedule) -> Schedule:
        """The schedule every member trains with, from its configured one (default: unchanged; annealed
        ranking wraps it in an :class:`lrjax.Anneal` that is off, so copies can be cooled by setting leaves)."""
        return schedule

    def decision_points(self, steps: int) -> list[int]:
        """The updates (in ``[0, steps)``, sorted) after which :meth:`decide` is called (0: before training)."""
        return []

    def evaluation_points(self, steps: int) -> list[int]:
        """The decision points where members are ranked, so evaluated (default: every one)."""
        return self.decision_points(steps)

    def most_alive(self, n: int) -> int:
        """The most of ``n`` members training at once (an accelerator's chunks are sized for them)."""
        return n

    def check(self, exp: Experiment) -> None:
        """Refuse, before anything trains, a group this strategy cannot work on (a :class:`SweepError`)."""

    def final_size(self, n: int) -> int:
        """How many of ``n`` configurations train at the end (CPU chunks are sized for them)."""
        return n

    def decide(self, pop: Population) -> Decision:
        """What happens at decision point ``pop.step``."""
        return Decision()

    def reported_keys(self) -> tuple[str, ...]:
        """Config keys whose final values the console table shows per configuration (PBT: the explored ones)."""
        return ()

    # -- the run directory ------------------------------------------------------------
    def table(self, rows: list[dict[str, Any]], results: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of ``results.md``/``results.csv`` and ``summary.json``'s ``table`` (default as given:
        best first). ``results``: the :class:`~lrjax.sweep.ConfigResult` of every reported member."""
        return rows

    def summary(self, results: Sequence[Any]) -> dict[str, Any]:
        """Entries this strategy adds to ``summary.json`` (JSON-safe)."""
        return {}

    def figures(self, results: Sequence[Any], run_dir: str, title: str = "") -> list[str]:
        """Figures this strategy draws into ``run_dir`` (file names)."""
        return []

    def state_dict(self) -> Any:
        """Host state the strategy carries between decisions (saved with each snapshot)."""
        return None

    def load_state_dict(self, state: Any) -> None:
        """Restore :meth:`state_dict` (``--resume``)."""

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` the strategy named ``cls.name`` in sweep files."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"strategy name {cls.name!r} is empty or taken")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Strategy]]:
    """Every registered strategy by name."""
    return dict(_REGISTRY)


def parse_strategy(data: Any, steps: int, num_configs: int, config: Config | None = None) -> Strategy:
    """Validate a ``strategy`` mapping (or name) against the run length and the number of configurations."""
    names = tuple(_REGISTRY)
    if data is None:
        data = {"name": "grid"}
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, Mapping):
        raise SweepError(f"strategy must be a mapping with a name ({', '.join(names)}), got strategy={data!r}")
    name = data.get("name", "grid")
    if name not in _REGISTRY:
        raise SweepError(f"strategy.name must be one of {', '.join(names)}, got strategy.name={name!r}"
                         f"{closest(str(name), names)}")
    cls = _REGISTRY[name]
    valid = ("name", *cls.keys)
    for k in data:
        if k not in valid:
            raise SweepError(f"unknown key strategy.{k} for strategy {name!r}{closest(str(k), valid)}; "
                             f"valid keys: {', '.join(valid)}")
    return cls.parse({k: v for k, v in data.items() if k != "name"}, steps=steps, num_configs=num_configs,
                     config=config)


def known_lengths(cfg: Config) -> Config | None:
    """``cfg`` with ``train.steps`` and its cadences in optimizer updates where they are known before the data
    loads (updates, or tokens of ``data.context``); None where one counts epochs or examples of the training
    set (or tokens of a ``.npz`` whose windows give the context). What :meth:`Strategy.expand` reads."""
    try:
        counts = train_counts(cfg)
    except ConfigError:
        return None
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **counts._asdict()))


def strategy_of(spec: Any, configs: list[Any]) -> Strategy:
    """The sweep's :class:`Strategy` (``spec.strategy``), validated against its configurations: the run
    length it is parsed against is theirs (in updates: ``"2M tokens"`` counted), one for all when the strategy
    needs it (:attr:`Strategy.one_length`). A strategy with decision points needs that length before the data
    loads: ``train.steps`` in epochs or examples is refused for it, with the way out."""
    data = spec.strategy
    name = data.get("name", "grid") if isinstance(data, Mapping) else (data or "grid")
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    resolved = [known_lengths(c.config) for c in configs]
    if any(r is None for r in resolved):
        if cls is None or not cls.one_length:  # a grid (or an unknown name, refused below) needs no length
            return parse_strategy(data, 1, len(configs))
        c = next(c for c, r in zip(configs, resolved) if r is None)
        raise SweepError(f"strategy {name!r} places its decisions in updates before the data loads, but "
                         f"configuration {c.label!r} counts its run in the data (train.steps="
                         f"{c.config.train.steps!r}, eval_every={c.config.train.eval_every!r}): give train.steps and "
                         "the cadences in updates, '10%' (cadences) or tokens (with data.context)")
    steps = sorted({r.train.steps for r in resolved})
    if cls is not None and cls.one_length and len(steps) > 1:
        raise SweepError(f"strategy {name!r} needs one run length for every configuration, got train.steps in {steps}")
    strategy = parse_strategy(data, max(steps, default=1), len(configs), config=resolved[0] if resolved else None)
    strategy.expand(resolved, [c.label for c in configs])  # refuse what it cannot train now
    return strategy


# ----------------------------------------------------------------------------- value checks for parse()

def steps_value(value: Any, where: str, steps: int, config: Config | None = None) -> int:
    """A number of updates, or a duration string of the run: ``"10%"``, ``"200 steps"`` and, given the
    configuration (its batch, accumulation and ``data.context``), ``"20M tokens"`` or ``"6e4 examples"``
    (:func:`lrjax.to_steps`)."""
    if isinstance(value, str):
        amount, unit = parse_duration(value, where)
        if unit in ("tokens", "examples") and config is not None:
            context = getattr(config.data, "context", None)
            if unit == "tokens" and not context:
                raise SweepError(f"{where}={value!r}: a duration in tokens needs the tokens per example "
                                 "(data.context of a text source); give updates or '25%'")
            try:
                value = to_steps(amount, unit, batch_size=config.data.batch_size, total_steps=steps,
                                 accumulation_steps=config.optimizer.accumulation_steps, context=context)
            except (TypeError, ValueError) as e:
                raise SweepError(f"{where}={value!r}: {e}") from None
        elif unit not in ("fraction", "steps"):
            raise SweepError(f"{where}={value!r}: give updates or a fraction of the run ('25%')"
                             f"{', tokens or examples' if config is not None else ''}, not {unit}")
        else:
            value = amount * steps if unit == "fraction" else amount
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or float(value) != int(value):
        raise SweepError(f"{where} must be a whole number of updates (or a string like '25%'), got {where}={value!r}")
    return int(value)


def fraction_value(value: Any, where: str, *, lo: float = 0.0, hi: float = 1.0, hi_open: bool = True,
                   lo_open: bool = True) -> float:
    """A number in (lo, hi) (ends as asked); a :class:`SweepError` naming ``where`` otherwise."""
    return number("", where, value, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, error=SweepError)


def rng_of(seed: int) -> np.random.Generator:
    """A strategy's random stream (its own draws: PBT's partners and factors)."""
    return np.random.default_rng([seed, 0x9B7])
