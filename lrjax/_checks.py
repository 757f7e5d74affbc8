"""Argument checks shared by every layer: one message format, one "did you mean".

Every check raises at construction time, in Python, before any tracing, with a message that names the
owner (a class, a function or a config section), the argument, the value given and what is allowed::

    <owner>: <name> must be <allowed>, got <name>=<value>

A ``TypeError`` when the value is of the wrong kind, a ``ValueError`` when it is of the right kind but
out of range. This module imports nothing from lrjax, so the schedule core, the optax layer, the
training stack and the command line all use it.

>>> from lrjax._checks import closest, integer, number
>>> number("Warmup", "warmup_steps", 10)
10.0
>>> integer("accumulate", "every_k", 0, lo=1)
Traceback (most recent call last):
...
ValueError: accumulate: every_k must be an integer >= 1, got every_k=0
>>> closest("cosin", ["cosine_decay", "constant"])
" (did you mean 'cosine_decay'?)"
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Iterable
from typing import Any

__all__ = ["closest", "fail", "number", "integer", "choice", "is_int"]


def closest(name: Any, choices: Iterable[Any]) -> str:
    """``" (did you mean 'x'?)"`` when one of ``choices`` is close to ``name`` (or starts like it), else ``""``."""
    options = [str(c) for c in choices]
    match = difflib.get_close_matches(str(name), options, n=1)
    if not match:  # an abbreviation ('exp' for 'exponential', 'cos' for 'cosine_decay')
        low = str(name).lower()
        match = [c for c in options if low and c.lower().startswith(low)][:1]
    return f" (did you mean {match[0]!r}?)" if match else ""


def _prefix(owner: str) -> str:
    return f"{owner}: " if owner else ""


def fail(owner: str, name: str, value: Any, allowed: str, error: type[Exception] = ValueError) -> Exception:
    """The exception (not raised) for ``name=value`` that must be ``allowed``."""
    return error(f"{_prefix(owner)}{name} must be {allowed}, got {name}={value!r}")


def is_int(value: Any) -> bool:
    """A Python or numpy integer, not a bool."""
    return hasattr(value, "__index__") and not isinstance(value, bool) and type(value).__name__ != "bool_"


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return " and ".join(parts)


def number(owner: str, name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False, finite: bool = True,
           error: type[Exception] | None = None) -> float:
    """``value`` as a float: a real number (not a bool), finite unless ``finite=False``, within the bounds.
    ``error``: the exception class of every failure (a config layer's ``ConfigError``), instead of
    ``TypeError`` for a value that is no number and ``ValueError`` for one out of bounds.

    >>> number("scale_lr", "factor", 2)
    2.0
    >>> number("OneCycle", "pct_start", 1.5, lo=0, hi=1)
    Traceback (most recent call last):
    ...
    ValueError: OneCycle: pct_start must be a number in [0, 1], got pct_start=1.5
    """
    if isinstance(value, (bool, str, bytes)) or value is None or not hasattr(value, "__float__"):
        raise fail(owner, name, value, "a number", error or TypeError)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise fail(owner, name, value, "a number", error or TypeError) from None
    bounds = _bounds(lo, hi, lo_open, hi_open)
    two_sided = lo is not None and hi is not None  # finite by its bounds
    what = "a finite number" if finite and not two_sided else "a number"
    what += f" {bounds}" if bounds else ""
    if math.isnan(v) or (finite and math.isinf(v)):
        raise fail(owner, name, value, what, error or ValueError)
    lt = operator.le if lo_open else operator.lt
    gt = operator.ge if hi_open else operator.gt
    if (lo is not None and lt(v, lo)) or (hi is not None and gt(v, hi)):
        raise fail(owner, name, value, what, error or ValueError)
    return v


def integer(owner: str, name: str, value: Any, *, lo: int | None = None, hi: int | None = None,
            integral_floats: bool = False, error: type[Exception] | None = None) -> int:
    """``value`` as an int (not a bool; with ``integral_floats``, ``3.0`` counts), within ``[lo, hi]``;
    ``error`` as for :func:`number`.

    >>> integer("lr_range_test", "num_steps", 1, lo=2)
    Traceback (most recent call last):
    ...
    ValueError: lr_range_test: num_steps must be an integer >= 2, got num_steps=1
    """
    bounds = _bounds(lo, hi, False, False)
    what = "an integer" + (f" {bounds}" if bounds else "")
    if integral_floats and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not is_int(value):
        raise fail(owner, name, value, what, error or TypeError)
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise fail(owner, name, value, what, error or ValueError)
    return v


def choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``, else a ValueError listing them (with a "did you mean").

    >>> choice("lr_range_test", "mode", "expo", ("exp", "linear"))
    Traceback (most recent call last):
    ...
    ValueError: lr_range_test: mode must be one of 'exp', 'linear', got mode='expo' (did you mean 'exp'?)
    """
    options = tuple(choices)
    if not isinstance(value, (str, int, float, bool, type(None))) or value not in options or (
            isinstance(value, bool) and not any(isinstance(o, bool) for o in options)):
        raise ValueError(f"{_prefix(owner)}{name} must be one of {', '.join(map(repr, options))}, "
                         f"got {name}={value!r}{closest(value, options)}")
    return value
