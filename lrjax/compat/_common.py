"""Argument checks shared by the compatibility layers: errors name the original class."""

from __future__ import annotations

import math
from typing import Any


def number(owner: str, name: str, value: Any) -> float:
    """``value`` as a finite float, else TypeError/ValueError naming ``owner`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{owner}: {name} must be a number, got {name}={value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{owner}: {name} must be finite, got {name}={value!r}")
    return v


def rate(owner: str, name: str, value: Any) -> float:
    """A learning rate: a finite number >= 0."""
    v = number(owner, name, value)
    if v < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {name}={value!r}")
    return v


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def no_resume(owner: str, last_epoch: Any) -> None:
    """lrjax schedules are functions of the step: there is no scheduler state to resume."""
    if last_epoch != -1:
        raise ValueError(
            f"{owner}: last_epoch must be -1, got last_epoch={last_epoch!r}; an lrjax schedule is a pure "
            "function of the step, so to resume evaluate it at the restored optimizer step count"
        )
