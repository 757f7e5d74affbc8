"""Schedule families and combinators (re-exported flat from :mod:`lrjax`)."""

from lrjax.schedules._anneal import Anneal
from lrjax.schedules._base import CHILD, LEAF, Schedule, as_step, field_kind, registered_schedules
from lrjax.schedules._compose import Clamp, InverseSqrt, Product, Scale, Sequence, Switch, Warmup, WarmupStableDecay
from lrjax.schedules._cyclic import CosineRestarts, Cyclic, MomentumOf, OneCycle
from lrjax.schedules._decay import (
    Constant,
    CosineDecay,
    Exponential,
    InverseTime,
    Linear,
    MultiStep,
    Polynomial,
    StepDecay,
    TanhDecay,
)
from lrjax.schedules._lambda import Lambda, Table, depends_on_step, trace_failure
from lrjax.schedules._optax_families import Affine
from lrjax.schedules._piecewise import PiecewiseConstant, Shift
from lrjax.schedules._spec import from_spec, load_spec, to_spec

__all__ = [
    "CHILD",
    "LEAF",
    "depends_on_step",
    "field_kind",
    "trace_failure",
    "Affine",
    "Anneal",
    "as_step",
    "Clamp",
    "Constant",
    "CosineDecay",
    "CosineRestarts",
    "Cyclic",
    "Exponential",
    "from_spec",
    "InverseSqrt",
    "InverseTime",
    "Lambda",
    "Linear",
    "load_spec",
    "MomentumOf",
    "MultiStep",
    "OneCycle",
    "PiecewiseConstant",
    "Polynomial",
    "Product",
    "registered_schedules",
    "Scale",
    "Schedule",
    "Sequence",
    "Shift",
    "StepDecay",
    "Switch",
    "Table",
    "TanhDecay",
    "to_spec",
    "Warmup",
    "WarmupStableDecay",
]
