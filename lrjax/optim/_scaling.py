"""Learning-rate scaling with the batch size (linear, square root, or chosen by the optimizer)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from lrjax._checks import closest, number
from lrjax.schedules import Scale, Schedule

__all__ = ["scale_lr", "lr_scale_factor", "ADAPTIVE_OPTIMIZERS", "SGD_OPTIMIZERS"]

RULES = ("linear", "sqrt", "none", "auto")

#: optimizers (optax names) for which ``rule="auto"`` picks the square-root rule.
ADAPTIVE_OPTIMIZERS = frozenset({
    "adam", "adamw", "adamax", "adamaxw", "amsgrad", "nadam", "nadamw", "radam", "adabelief",
    "adafactor", "adagrad", "adadelta", "rmsprop", "lion", "lamb", "novograd", "yogi", "sm3",
    "adan", "optimistic_adam", "adamw_schedule_free", "schedule_free_adamw", "sophia",
})
#: optimizers for which ``rule="auto"`` picks the linear rule (Goyal et al. 2017).
SGD_OPTIMIZERS = frozenset({"sgd", "noisy_sgd", "lars", "momentum", "heavy_ball", "schedule_free_sgd"})

# Rate-valued fields of each schedule family (spec name -> fields scaled by the factor).
_RATE_FIELDS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "linear": ("init_value", "end_value"),
    "step_decay": ("init_value",),
    "multi_step": ("init_value",),
    "exponential": ("init_value", "end_value"),
    "inverse_time": ("init_value",),
    "polynomial": ("init_value", "end_value"),
    "cosine_decay": ("peak", "floor"),  # floor only when absolute (see _rate_fields)
    "tanh_decay": ("peak", "floor"),
    "cosine_restarts": ("peak", "floor"),
    "cyclic": ("base_lr", "max_lr"),
    "one_cycle": ("max_lr",),
    "inverse_sqrt": ("peak",),
    "warmup_stable_decay": ("peak",),
    "warmup": ("init_value",),
    "sequence": (),
    "product": (),
    "scale": (),
    "clamp": ("floor", "ceiling"),
    "piecewise_constant": ("values",),
    "shift": (),
    "switch": (),  # every branch scaled
    "lambda": ("scale",),
    "table": ("scale",),
    "affine": ("offset",),  # and its schedule: c (a s + b) = a (c s) + c b
    "anneal": (),  # its schedule: the cooldown is a ratio of it
}
# Warmup lengths lengthened by ``scale_warmup``.
_WARMUP_FIELDS: dict[str, tuple[str, ...]] = {
    "warmup": ("warmup_steps",),
    "warmup_stable_decay": ("warmup_steps",),
    "inverse_sqrt": ("warmup_steps",),
}


def _optimizer_name(optimizer: Any) -> str:
    while isinstance(optimizer, functools.partial):
        optimizer = optimizer.func
    if isinstance(optimizer, str):
        return optimizer.lower().rsplit(".", 1)[-1]
    name = getattr(optimizer, "__name__", None)
    if name is None:
        raise TypeError(
            f"scale_lr: optimizer must be an optax optimizer name or factory (e.g. 'adamw' or optax.adamw), "
            f"got optimizer={optimizer!r}"
        )
    return name.lower()


def lr_scale_factor(
    base_batch_size: float, batch_size: float, rule: str = "linear", *, optimizer: Any = None
) -> float:
    """The factor ``scale_lr`` multiplies rates by: ``B/B0`` (linear), ``sqrt(B/B0)`` (sqrt) or 1 (none).

    ``rule="auto"`` picks ``sqrt`` for adaptive optimizers (Adam family, Lion, LAMB,
    Adafactor, RMSProp, ... see :data:`ADAPTIVE_OPTIMIZERS`) and ``linear`` for SGD-like
    ones (:data:`SGD_OPTIMIZERS`), from ``optimizer`` (an optax name or factory).

    >>> import lrjax
    >>> lrjax.lr_scale_factor(256, 1024, "auto", optimizer="adamw")
    2.0
    """
    for name, v in (("base_batch_size", base_batch_size), ("batch_size", batch_size)):
        number("scale_lr", name, v, lo=0, lo_open=True, error=ValueError)  # a number of examples
    if rule not in RULES:
        raise ValueError(f"scale_lr: rule must be one of {', '.join(map(repr, RULES))}, got rule={rule!r}{closest(rule, RULES)}")
    if rule == "auto":
        if optimizer is None:
            raise ValueError(
                "scale_lr: rule='auto' picks sqrt for adaptive optimizers and linear for SGD, so it needs "
                "optimizer= (an optax name such as 'adamw' or the factory optax.adamw); or pass rule='linear'/'sqrt'"
            )
        name = _optimizer_name(optimizer)
        if name in ADAPTIVE_OPTIMIZERS:
            rule = "sqrt"
        elif name in SGD_OPTIMIZERS:
            rule = "linear"
        else:
            raise ValueError(
                f"scale_lr: rule='auto' cannot tell whether optimizer={name!r} is adaptive (sqrt rule) or "
                f"SGD-like (linear rule){closest(name, sorted(ADAPTIVE_OPTIMIZERS | SGD_OPTIMIZERS))}; "
                f"pass rule='sqrt' or rule='linear'"
            )
    ratio = float(batch_size) / float(base_batch_size)
    return {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[rule]


def _rate_fields(s: Schedule) -> tuple[str, ...]:
    fields = _RATE_FIELDS[s.name]
    if s.name == "cosine_decay" and s.floor_mode == "relative":
        fields = ("peak",)
    return fields


def _scale_schedule(s: Schedule, c: float, warm: float | None) -> Schedule:
    if s.name == "momentum_of":
        raise ValueError(
            "scale_lr: a MomentumOf schedule is a momentum, not a learning rate; scale the rate schedule instead"
        )
    if s.name not in _RATE_FIELDS:  # a family this table does not know: wrap it
        if warm is not None:
            raise ValueError(
                f"scale_lr: scale_warmup=True does not know where the warmup of {type(s).__name__} is; "
                f"wrap it in lrjax.Warmup or pass scale_warmup=False"
            )
        return Scale(s, factor=c)
    changes: dict[str, Any] = {f: getattr(s, f) * jnp.float32(c) for f in _rate_fields(s)}
    for f in dataclasses.fields(s):
        if f.metadata.get("lrjax_kind") != "child":
            continue
        kids = getattr(s, f.name)
        if isinstance(kids, tuple):
            if s.name == "product":  # a product of factors: scale the first only
                changes[f.name] = (_scale_schedule(kids[0], c, warm),) + kids[1:]
            else:
                changes[f.name] = tuple(_scale_schedule(k, c, warm) for k in kids)
        else:
            changes[f.name] = _scale_schedule(kids, c, warm)
    if warm is not None:
        for f in _WARMUP_FIELDS.get(s.name, ()):
            changes[f] = jnp.round(getattr(s, f) * jnp.float32(warm))
    return s.replace(**changes)


def scale_lr(
    lr_or_schedule: float | Schedule | Callable,
    base_batch_size: float,
    batch_size: float,
    rule: str = "linear",
    *,
    optimizer: Any = None,
    scale_warmup: bool = False,
) -> Any:
    """Scale a learning rate (or every rate of a schedule) from ``base_batch_size`` to ``batch_size``.

    :math:`\\eta' = \\eta\\,k` with :math:`k = B/B_0` (``"linear"``, Goyal et al. 2017),
    :math:`k = \\sqrt{B/B_0}` (``"sqrt"``, Krizhevsky 2014; Malladi et al. 2022 for Adam) or 1
    (``"none"``). ``"auto"`` picks sqrt for adaptive optimizers (Adam family, Lion, LAMB,
    Adafactor, ...) and linear for SGD, from ``optimizer`` (a name like ``"adamw"`` or the
    factory ``optax.adamw``), and raises when it cannot tell. ``batch_size`` is the
    effective batch: per-device batch × devices × accumulation steps
    (:func:`lrjax.effective_batch_size`).

    A schedule comes back as the same family with its rate-valued leaves scaled (peaks,
    floors, initial and end values — not lengths or ratios), so ``to_spec`` stays readable;
    families it does not know are wrapped in :class:`lrjax.Scale`. With
    ``scale_warmup=True`` warmup lengths (``Warmup``, ``WarmupStableDecay``,
    ``InverseSqrt``) are multiplied by the same factor ``k`` and rounded to whole steps
    (gradual warmup for large batches). A plain callable is wrapped as ``t -> k·f(t)``.
    Scaling back (``batch_size`` to ``base_batch_size``) undoes the scaling (up to float32
    rounding, and warmup rounding).

    >>> import lrjax
    >>> lrjax.scale_lr(0.1, 256, 1024)
    0.4
    >>> s = lrjax.scale_lr(lrjax.CosineDecay(1e-3, 1000), 256, 1024, rule="auto", optimizer="adamw")
    >>> round(float(s.peak), 6)
    0.002
    """
    k = lr_scale_factor(base_batch_size, batch_size, rule, optimizer=optimizer)
    if isinstance(lr_or_schedule, Schedule):
        return _scale_schedule(lr_or_schedule, k, k if scale_warmup else None)
    if scale_warmup:
        raise ValueError(
            f"scale_lr: scale_warmup=True needs an lrjax schedule with a warmup, got {type(lr_or_schedule).__name__}"
        )
    if isinstance(lr_or_schedule, bool):
        raise TypeError(f"scale_lr: lr_or_schedule must be a number or a schedule, got {lr_or_schedule!r}")
    if isinstance(lr_or_schedule, (int, float)):
        return float(lr_or_schedule) * k
    if callable(lr_or_schedule):
        fn = lr_or_schedule
        return lambda count: k * fn(count)
    try:
        return jnp.asarray(lr_or_schedule) * k
    except TypeError as e:
        raise TypeError(
            f"scale_lr: lr_or_schedule must be a number, an array or a schedule, got {lr_or_schedule!r}"
        ) from e
