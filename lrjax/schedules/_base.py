r"""The schedule base class: a frozen dataclass that is a JAX pytree.

Every lrjax schedule subclasses :class:`Schedule` and is declared with the
:func:`register` decorator. Its fields are of three kinds:

* ``leaf(...)`` — a numeric hyperparameter (a rate, a length in steps, a
  factor). Stored as a float32 array, it is a pytree leaf: ``jax.vmap`` sweeps
  it and changing it never retraces a jitted function that takes the schedule
  as an argument.
* ``static(...)`` — structure (a mode name, a flag). Part of the tree
  definition, so changing it changes the compiled program.
* ``child(...)`` — a nested schedule or a tuple of schedules (combinators).

Concrete arguments are validated in Python at construction time; traced
arguments (a schedule built inside ``jit``) skip the checks. Every leaf must be
a number that is finite in float32 (``1e39`` is refused, not stored as ``inf``;
only leaves declared ``allow_inf``, such as ``cycle_limit``, take ``inf``), and the
checks see the float32 value the schedule will compute with. Unflattening a
pytree (what JAX does on every jitted call that returns a schedule, e.g. inside
an optimizer state) bypasses ``__init__``: no validation, no host sync.

Steps, for every family (defined once, in :meth:`Schedule.__call__`):

* a step is a Python int of any size, an integer or float array, or a traced count;
* a negative step holds the step-0 value: :math:`\eta(t) = \eta(0)` for :math:`t < 0`
  (so does a schedule read before its start, e.g. ``Shift`` with a negative shift);
* a float step that is NaN or infinite gives NaN (it is no step at all: the NaN shows
  where it came from instead of training on a made-up rate), and the gradients with
  respect to the leaves stay finite (0) there; integer steps are always finite;
* integer steps keep their exact value where it matters: periodic families
  (``CosineRestarts``, ``Cyclic``, ``CosineDecay(periodic=True)``) take the position
  in the period from the integer step itself (:meth:`Step.mod`, a few integer
  operations), so a whole-number period keeps its phase exactly at any step (float32
  alone would lose it beyond :math:`2^{24}`). Python ints (up to :math:`2^{62}`; larger
  ones read as :math:`2^{62}`) and int64 arrays at or above :math:`2^{31}` are split on
  the host. A period that is not a whole number of steps (``1000/6``) starts period
  ``k`` where float32 puts ``k * period`` (step 500 starts period 3), as the
  reference implementations do in float64. Float steps are float32.

>>> import lrjax, jax.numpy as jnp
>>> s = lrjax.CosineRestarts(1.0, first_period=1000)
>>> float(s(-5)) == float(s(0)), float(s(jnp.float32("nan")))
(True, nan)
>>> float(s(2**30 * 1000 + 250)) == float(s(250))   # 2**30 whole periods later
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import closest

__all__ = [
    "Schedule",
    "register",
    "leaf",
    "static",
    "child",
    "as_step",
    "registered_schedules",
    "Step",
    "pow_count",
    "unset",
]

LEAF = "leaf"
_STATIC = "static"
CHILD = "child"
_KIND = "lrjax_kind"

# name -> class, filled by @register. The spec format (`to_spec`/`from_spec`) uses it.
_REGISTRY: dict[str, type[Schedule]] = {}


def leaf(default: Any = dataclasses.MISSING, *, allow_inf: bool = False, negative_unset: bool = False) -> Any:
    """A numeric hyperparameter: a float32 array leaf of the pytree.

    ``negative_unset``: a negative value means "not set" (``Warmup.target``: the wrapped schedule's value);
    ``repr`` and :func:`lrjax.to_spec` leave such a value out, and :func:`lrjax.from_spec` restores the default.
    """
    meta = {_KIND: LEAF, "allow_inf": allow_inf, "negative_unset": negative_unset}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def static(default: Any = dataclasses.MISSING, *, choices: Sequence[Any] | None = None) -> Any:
    """A structural setting (mode name, flag): part of the tree definition."""
    meta = {_KIND: _STATIC, "choices": tuple(choices) if choices is not None else None}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def child(default: Any = dataclasses.MISSING) -> Any:
    """A nested schedule, or a tuple of schedules."""
    meta = {_KIND: CHILD}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_kind(f: dataclasses.Field) -> str:
    return f.metadata.get(_KIND, _STATIC)


def _is_tuple_field(f: dataclasses.Field) -> bool:
    """A ``child`` field that holds several schedules (declared ``name: tuple = child()``)."""
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return t.split("[")[0].strip() in ("tuple", "Tuple", "typing.Tuple")


def _fmt(x: np.ndarray) -> str:
    """A value as people write it: the shortest decimal that reads back as the same float32 (``0.003``, not
    ``0.003000000026077032``), integers without a point.

    >>> _fmt(np.float32(3e-3)), _fmt(np.asarray(600.0, np.float32)), _fmt(np.asarray([0.1, 2.0], np.float32))
    ('0.003', '600', '[0.1, 2]')
    """
    if x.ndim == 0:
        v = float(str(x.astype(np.float32))) if x.dtype == np.float32 else float(x)  # str: the shortest repr
        return repr(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
    if x.ndim == 1 and x.size <= 8:
        return "[" + ", ".join(_fmt(e) for e in x) + "]"
    return np.array2string(x, threshold=8, separator=", ")


def unset(f: dataclasses.Field, value: Any) -> bool:
    """Whether ``value`` of field ``f`` means "not set" (a ``negative_unset`` leaf holding a negative scalar):
    ``repr`` and ``to_spec`` leave it out."""
    if not f.metadata.get("negative_unset") or isinstance(value, jax.core.Tracer):
        return False
    try:
        a = np.asarray(value)
    except Exception:  # noqa: BLE001 - not concrete (e.g. ShapeDtypeStruct)
        return False
    return a.ndim == 0 and a.dtype.kind in "iuf" and bool(a < 0)


_F32_MAX = float(np.finfo(np.float32).max)


def _not_a_number(owner: str, name: str, value: Any, why: str = "") -> TypeError:
    hint = ""
    if isinstance(value, str):
        try:
            float(value)
            hint = ("; it is text that looks like a number: write it without quotes (a YAML 1.1 reader such as "
                    "yaml.safe_load reads 1e-3 as text: read specs with lrjax.load_spec, or write 1.0e-3)")
        except ValueError:
            pass
    return TypeError(
        f"{owner}: {name} must be a number or a list of numbers, got {name}={value!r}{why or ''}{hint}"
    )


def _bad_element(value: Any, path: tuple[int, ...] = ()) -> tuple[tuple[int, ...], Any] | None:
    """The first element of a (nested) list that is not a number (a bool, None, text), with its position."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            bad = _bad_element(v, path + (i,))
            if bad is not None:
                return bad
        return None
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        return path, value
    return None


def _to_leaf(owner: str, name: str, value: Any) -> tuple[jax.Array, np.ndarray | None, np.ndarray | None]:
    """``(float32 leaf, its concrete value as float64 (None if traced), the value given as float64)``."""
    if isinstance(value, jax.core.Tracer):
        return jnp.asarray(value).astype(jnp.float32), None, None
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        raise _not_a_number(owner, name, value, f" ({type(value).__name__})")
    bad = _bad_element(value)
    if bad is not None:
        pos, v = bad
        where = "".join(f"[{i}]" for i in pos)
        raise _not_a_number(owner, name, value, f" ({name}{where} is {v!r}, a {type(v).__name__})")
    try:
        arr = np.asarray(value)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise _not_a_number(owner, name, value) from e
    if arr.dtype.kind not in "iuf":
        raise _not_a_number(owner, name, value, f" (dtype {arr.dtype})")
    given = arr.astype(np.float64)
    with np.errstate(over="ignore"):
        arr32 = given.astype(np.float32)
    return jnp.asarray(arr32), arr32.astype(np.float64), given


class Checks:
    """Validation helpers handed to :meth:`Schedule._validate`.

    Each check is skipped for a traced value. A failed check raises
    ``ValueError("<Class>: <name> must be <allowed>, got <name>=<value>")``.
    """

    def __init__(self, owner: str, values: dict[str, np.ndarray | None],
                 given: dict[str, np.ndarray | None] | None = None):
        self.owner = owner
        self.values = values  # the float32 values the schedule computes with (as float64 arrays)
        self.given = given or {}  # the values as given, for messages

    def value(self, name: str) -> np.ndarray | None:
        return self.values[name]

    def show(self, name: str) -> str:
        """``name``'s value as given, and the float32 value it became when that differs in kind (0 from 1e-50)."""
        x, g = self.values[name], self.given.get(name)
        if g is None or x is None:
            return _fmt(x) if x is not None else "?"
        if np.shape(g) == np.shape(x) and bool(np.any((g == 0) != (x == 0))):
            return f"{_fmt(g)} ({_fmt(x)} in float32)"
        return _fmt(g)

    def require(self, name: str, ok: Callable[[np.ndarray], Any], allowed: str) -> None:
        x = self.values[name]
        if x is None:
            return
        if not bool(np.all(ok(x))):
            raise ValueError(f"{self.owner}: {name} must be {allowed}, got {name}={self.show(name)}")

    def positive(self, *names: str) -> None:
        for n in names:
            self.require(n, lambda x: x > 0, "> 0")

    def nonneg(self, *names: str) -> None:
        for n in names:
            self.require(n, lambda x: x >= 0, ">= 0")

    def between(self, name: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> None:
        def ok(x):
            a = x > lo if lo_open else x >= lo
            b = x < hi if hi_open else x <= hi
            return a & b

        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        self.require(name, ok, f"in {lb}{lo:g}, {hi:g}{rb}")

    def relation(self, a: str, b: str, op: str) -> None:
        """Require ``a <op> b`` between two fields (skipped if either is traced)."""
        xa, xb = self.values[a], self.values[b]
        if xa is None or xb is None:
            return
        ops = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "!=": np.not_equal}
        if not bool(np.all(ops[op](xa, xb))):
            raise ValueError(
                f"{self.owner}: {a} must be {op} {b}, got {a}={self.show(a)} and {b}={self.show(b)}"
            )

    def increasing(self, name: str, *, strict: bool = True) -> None:
        x = self.values[name]
        if x is None or x.shape[-1:] == (0,) or x.ndim == 0:
            return
        d = np.diff(x, axis=-1)
        if not bool(np.all(d > 0 if strict else d >= 0)):
            kind = "strictly increasing" if strict else "non-decreasing"
            raise ValueError(f"{self.owner}: {name} must be {kind}, got {name}={self.show(name)}")


def as_step(step: Any) -> jax.Array:
    """Turn a step (Python int of any size, int32/int64/float array, tracer) into float32.

    Python ints and numpy values are converted on the host, so steps at or above
    ``2**31`` neither overflow nor raise. float32 holds every integer step
    exactly up to ``2**24`` and stays finite and monotone beyond it.
    """
    if isinstance(step, (jax.core.Tracer, jax.Array)):
        return jnp.asarray(step).astype(jnp.float32)
    if isinstance(step, int) and not isinstance(step, bool):
        return jnp.asarray(np.float32(float(step)))
    arr = np.asarray(step)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"step must be an integer or an array of integers, got {step!r} (dtype {arr.dtype})")
    return jnp.asarray(arr.astype(np.float32))


_INT_MAX = 2**31 - 1
_WIDE = 2**20  # integer steps >= 2**31 are kept as top + hi + lo: multiples of 2**40 and 2**20, and the rest


class Step(NamedTuple):
    """A step as the families receive it (internal): float32 ``t`` and, for integer steps, their exact value.

    ``t`` (float32, ``>= 0``, or NaN for a NaN float step) is what every non-periodic
    formula uses. Integer steps also keep their exact value, so that :meth:`mod` (the
    position in a period) is exact at any step:

    * ``n`` (int32, ``>= 0``) plus ``f`` (float32 in ``[0, 1)`` added by a fractional shift;
      ``None``: 0): integer steps below :math:`2^{31}` (Python ints, int32 arrays, traced counts);
    * ``top + hi + lo`` (float32 each, exact: multiples of :math:`2^{40}` and :math:`2^{20}`,
      and the rest): larger integer steps, up to :math:`2^{62}` (Python ints and int64 arrays
      split on the host, traced int64 under x64).

    A float step has neither: ``t`` is all there is. Combinators move a step with
    :meth:`shift` / :meth:`after` so that the exact part follows.
    """

    t: jax.Array
    n: Any = None
    f: Any = None
    hi: Any = None
    lo: Any = None
    top: Any = None

    @staticmethod
    def at(x: Any) -> Step:
        """A float step (e.g. a leaf: the end of a warmup)."""
        return Step(jnp.asarray(x, jnp.float32))

    def shift(self, d: Any) -> Step:
        """The step ``+ d`` (``d`` a float32 leaf, maybe fractional); not clamped."""
        d = jnp.asarray(d, jnp.float32)
        t = self.t + d
        if self.n is not None:
            whole = jnp.floor(d)
            di = jnp.clip(whole, -(2.0**30), 2.0**30).astype(jnp.int32)
            frac = d - whole
            n = jnp.minimum(self.n, _INT_MAX - jnp.maximum(di, 0)) + di  # saturates instead of wrapping
            if self.f is None:
                return Step(t, n, frac)
            f = self.f + frac
            carry = f >= 1.0
            return Step(t, jnp.where(carry & (n < _INT_MAX), n + 1, n), jnp.where(carry, f - 1.0, f))
        if self.hi is not None:
            return Step(t, hi=self.hi, lo=self.lo + d, top=self.top)
        return Step(t)

    def clamp0(self) -> Step:
        """The step, or 0 where it is negative: before its start a schedule holds its step-0 value."""
        t = jnp.maximum(self.t, 0.0)  # keeps NaN
        if self.n is not None:
            neg = self.n < 0
            f = None if self.f is None else jnp.where(neg, 0.0, self.f)
            return Step(jnp.where(neg, 0.0, t), jnp.where(neg, 0, self.n), f)
        if self.hi is not None:
            neg = self.lo < -(self.hi + self.top)
            zero = lambda x: jnp.where(neg, 0.0, x)  # noqa: E731
            return Step(zero(t), hi=zero(self.hi), lo=zero(self.lo), top=zero(self.top))
        return Step(t)

    def after(self, d: Any) -> Step:
        """The step counted from ``d`` on, 0 before ``d``: what a schedule that starts at ``d`` sees."""
        return self.shift(-jnp.asarray(d, jnp.float32)).clamp0()

    def mod(self, period: Any) -> tuple[jax.Array, jax.Array]:
        """``(r, k)`` (float32): the position ``r`` in ``[0, period)`` and the number ``k`` of whole periods.

        For an integer step and a whole-number ``period``: exact at any step (``r`` from
        the integer step with a few integer operations, ``k`` exact below :math:`2^{24}`).
        A float step is reduced in float32. A period that is not a whole number stands
        for a ratio float32 rounds (``100/3``): period ``k`` starts at the first step at
        or past float32's ``k * period`` (step 100 starts period 3), below :math:`2^{24}`.
        """
        p = jnp.asarray(period, jnp.float32)
        inv = 1.0 / p  # once per period, not per step: a division in the loop would split XLA's fusion
        t = self.t
        k = jnp.floor(t * inv)
        if self.n is None and self.hi is None:
            k = jnp.where(t < k * p, k - 1.0, k)
            k = jnp.where(t >= (k + 1.0) * p, k + 1.0, k)
            return _within(t - k * p, p), k
        if self.n is not None:
            # n - k p exactly in int32 (k is within a few hundred of the true count), then reduced.
            whole = jnp.floor(jnp.minimum(p, 2.0**30))
            k = jnp.clip(k, 0.0, 2.0**31 - 512)
            r = (self.n - k.astype(jnp.int32) * whole.astype(jnp.int32)).astype(jnp.float32) - k * (p - whole)
            if self.f is not None:
                r = r + self.f
        else:
            # float remainders are exact; k stays approximate
            r = jax.lax.rem(self.top, p) + jax.lax.rem(self.hi, p) + jnp.mod(self.lo, p)
        k2 = jnp.floor(r * inv)
        r, k = r - k2 * p, k + k2
        below = r < 0
        r, k = jnp.where(below, r + p, r), jnp.where(below, k - 1.0, k)
        above = r >= p
        r, k = jnp.where(above, r - p, r), jnp.where(above, k + 1.0, k)
        if self.n is None:
            return _within(r, p), k
        snap = (p != jnp.floor(p)) & (t >= (k + 1.0) * p) & (t < 2.0**24)
        return jnp.where(snap, 0.0, _within(r, p)), jnp.where(snap, k + 1.0, k)


def _within(r: jax.Array, p: jax.Array) -> jax.Array:
    """``r`` kept in ``[0, p]``: a period far below the step's float32 resolution (``1e-30``) has no
    meaningful phase, but the position stays in range and the rate between its bounds."""
    return jnp.minimum(jnp.maximum(r, 0.0), p)


def _float_step(t: jax.Array) -> Step:
    """A float step clamped at 0; NaN and inf are read as 0 here (``__call__`` puts NaN back in the
    result), so that no family computes on them and their gradients stay finite (0)."""
    return Step(jnp.where(jnp.isfinite(t), jnp.maximum(t, 0.0), 0.0))


def _to_step(step: Any) -> tuple[Step, jax.Array | None]:
    """``(Step clamped at 0, the float32 step before clamping for float steps, else None)``."""
    if isinstance(step, (jax.core.Tracer, jax.Array)):
        x = jnp.asarray(step)
        if x.dtype == jnp.bool_ or jnp.issubdtype(x.dtype, jnp.integer):
            if x.dtype.itemsize < 4 or x.dtype == jnp.int32 or x.dtype == jnp.bool_:
                n = jnp.maximum(x.astype(jnp.int32), 0)
                return Step(n.astype(jnp.float32), n), None
            x = jnp.maximum(x, 0)  # int64 (jax_enable_x64) or uint32: top + hi + lo
            lo = x & (_WIDE - 1)
            hi = x & np.array((_WIDE * (_WIDE - 1)) & int(jnp.iinfo(x.dtype).max), x.dtype)
            f32 = lambda v: v.astype(jnp.float32)  # noqa: E731
            return Step(f32(x), hi=f32(hi), lo=f32(lo), top=f32(x - hi - lo)), None
        t = x.astype(jnp.float32)
        return _float_step(t), t
    if isinstance(step, int) and not isinstance(step, bool):
        arr = np.asarray(min(max(step, 0), 2**62), dtype=np.int64)
    else:
        arr = np.asarray(step)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"step must be an integer or an array of integers, got {step!r} (dtype {arr.dtype})")
        if arr.dtype.kind == "f":
            with np.errstate(over="ignore", invalid="ignore"):
                t = jnp.asarray(arr.astype(np.float32))
            return _float_step(t), t
        arr = np.maximum(arr, 0)
        if arr.dtype.itemsize == 8:
            arr = np.minimum(arr, arr.dtype.type(2**62))
    if arr.size == 0 or int(arr.max()) <= _INT_MAX:
        return Step(jnp.asarray(arr.astype(np.float32)), jnp.asarray(arr.astype(np.int32))), None
    arr = arr.astype(np.int64)
    lo = arr & (_WIDE - 1)
    hi = arr & (_WIDE * (_WIDE - 1))
    f32 = lambda v: jnp.asarray(v.astype(np.float32))  # noqa: E731
    return Step(f32(arr), hi=f32(hi), lo=f32(lo), top=f32(arr - hi - lo)), None


class Schedule:
    """Base class of every lrjax schedule: a pure ``step -> value`` function and a pytree.

    Subclasses implement :meth:`_value` on a float32 step array and may override
    :meth:`_validate` and :attr:`horizon`.
    """

    name: ClassVar[str] = ""

    # -- construction -----------------------------------------------------
    def __post_init__(self) -> None:
        owner = type(self).__name__
        concrete: dict[str, np.ndarray | None] = {}
        given: dict[str, np.ndarray | None] = {}
        for f in dataclasses.fields(self):
            kind = field_kind(f)
            val = getattr(self, f.name)
            if kind == LEAF:
                arr, c, g = _to_leaf(owner, f.name, val)
                if c is not None:
                    if np.any(np.isnan(c)):
                        raise ValueError(f"{owner}: {f.name} must not be NaN, got {f.name}={_fmt(g)}")
                    if not f.metadata.get("allow_inf") and np.any(np.isinf(c)):
                        what = "finite" if np.any(np.isinf(g)) else (
                            f"finite in float32 (magnitude at most {_F32_MAX:.4g}; rates and steps are float32)")
                        raise ValueError(f"{owner}: {f.name} must be {what}, got {f.name}={_fmt(g)}")
                object.__setattr__(self, f.name, arr)
                concrete[f.name] = c
                given[f.name] = g
            elif kind == _STATIC:
                choices = f.metadata.get("choices")
                flags = choices is not None and all(isinstance(c, bool) for c in choices)
                if choices is not None and (val not in choices or (flags and not isinstance(val, (bool, np.bool_)))):
                    raise ValueError(
                        f"{owner}: {f.name} must be one of {', '.join(repr(c) for c in choices)}, "
                        f"got {f.name}={val!r}{closest(val, [str(c) for c in choices])}"
                    )
                if flags:
                    object.__setattr__(self, f.name, bool(val))
            elif kind == CHILD:
                if _is_tuple_field(f):
                    if not isinstance(val, (list, tuple)):
                        raise TypeError(
                            f"{owner}: {f.name} must be a list of lrjax schedules, got {type(val).__name__}: "
                            f"{val!r}"
                        )
                    val = tuple(val)
                    object.__setattr__(self, f.name, val)
                    items = val
                elif isinstance(val, (list, tuple)):
                    raise TypeError(
                        f"{owner}: {f.name} must be one lrjax schedule, got a {type(val).__name__} of "
                        f"{len(val)}: {val!r}"
                    )
                else:
                    items = (val,)
                for i, s in enumerate(items):
                    if not isinstance(s, Schedule):
                        raise TypeError(
                            f"{owner}: {f.name} must hold lrjax schedules, got {type(s).__name__} "
                            f"at position {i}: {s!r}"
                        )
        self._validate(Checks(owner, concrete, given))

    def _validate(self, check: Checks) -> None:  # pragma: no cover - default: nothing more
        """Check concrete hyperparameters; override in subclasses."""

    # -- evaluation ---------------------------------------------------------
    def _value(self, t: jax.Array) -> jax.Array:
        """The schedule at float32 step(s) ``t >= 0``.

        Families implement this (or :meth:`_eval`, when they need the exact integer step).
        """
        if type(self)._eval is not Schedule._eval:
            return self._eval(Step.at(t))
        raise NotImplementedError

    def _eval(self, s: Step) -> jax.Array:
        """The schedule at :class:`Step` ``s`` (``>= 0``). Periodic families and combinators override
        this (they read ``s.mod`` or move ``s`` for their children); the default reads ``s.t``."""
        return self._value(s.t)

    def __call__(self, step: Any) -> jax.Array:
        """Evaluate at ``step``: a Python int of any size, an int/float array, or a traced count.

        A negative step gives the step-0 value; a NaN or infinite float step gives NaN
        (see the module docs). The result is float32, shaped like ``step``.
        """
        s, raw = _to_step(step)
        out = jnp.asarray(self._eval(s), dtype=jnp.float32)
        if raw is not None:
            out = jnp.where(jnp.isfinite(raw), out, jnp.float32(jnp.nan))
        return out

    @property
    def horizon(self) -> jax.Array:
        """The step where the schedule's shape ends (its length); 0 for constant ones."""
        return jnp.float32(0.0)

    def _has_total(self) -> bool:
        """True when :attr:`horizon` is a real total length (the schedule ends there and holds).

        Families with a total (linear ramp, polynomial, cosine decay, one-cycle, ...)
        return True; a warmup overlaid on them must not be longer than that total.
        """
        return False

    # -- conveniences ---------------------------------------------------------
    def replace(self, **changes: Any) -> Schedule:
        """A copy with some fields changed, validated like a new schedule."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        """``CosineDecay(peak=0.003, decay_steps=900, ...)``: clean float32 numbers, unset values left out."""
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if unset(f, v):
                continue
            if field_kind(f) == LEAF and not isinstance(v, jax.core.Tracer):
                try:
                    a = np.asarray(v)
                    v = _fmt(a) if a.dtype.kind == "f" else v
                except Exception:  # not concrete (e.g. ShapeDtypeStruct)
                    pass
                parts.append(f"{f.name}={v}")
            else:
                parts.append(f"{f.name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _flatten_with_keys(obj: Schedule):
    cls = type(obj)
    children = [(jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in cls._dynamic_fields]
    aux = tuple(getattr(obj, n) for n in cls._static_fields)
    return children, aux


def _flatten(obj: Schedule):
    cls = type(obj)
    return [getattr(obj, n) for n in cls._dynamic_fields], tuple(getattr(obj, n) for n in cls._static_fields)


def _make_unflatten(cls: type) -> Callable:
    dyn, sta = cls._dynamic_fields, cls._static_fields

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for n, v in zip(sta, aux):
            object.__setattr__(obj, n, v)
        for n, v in zip(dyn, children):
            object.__setattr__(obj, n, v)
        return obj

    return unflatten


def register(name: str) -> Callable[[type], type]:
    """Class decorator: frozen dataclass + pytree + spec name ``name``."""

    def deco(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"schedule name {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
        fields = dataclasses.fields(cls)
        cls._dynamic_fields = tuple(f.name for f in fields if field_kind(f) in (LEAF, CHILD))
        cls._static_fields = tuple(f.name for f in fields if field_kind(f) == _STATIC)
        cls.name = name
        jax.tree_util.register_pytree_with_keys(cls, _flatten_with_keys, _make_unflatten(cls), _flatten)
        _REGISTRY[name] = cls
        return cls

    return deco


def registered_schedules() -> dict[str, type[Schedule]]:
    """Every schedule family by its spec name."""
    return dict(_REGISTRY)


# Small numeric helpers shared by the families --------------------------------

def safe_div(num: jax.Array, den: jax.Array, fallback: float | jax.Array = 0.0) -> jax.Array:
    """``num / den`` where ``den != 0``, else ``fallback``; gradients stay finite (double where)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fallback)


@jax.custom_jvp
def pow_count(base: jax.Array, k: jax.Array) -> jax.Array:
    r"""``base ** k`` for ``base >= 0`` and ``k >= 0`` (``0 ** 0 = 1``) with finite derivatives everywhere.

    ``jnp.power``'s own derivatives are NaN at ``base = 0`` (``k * 0 ** (k - 1)`` at ``k = 0``
    is ``0 * inf``, and ``0 ** k * log 0`` is ``0 * -inf``): a ``gamma=0`` step decay would give
    NaN gradients. Here :math:`\partial_b = k\,b^{k-1}` (0 at ``k = 0``; 1 at ``b = 0, k = 1``)
    and :math:`\partial_k = b^k \log b` (0 at ``b = 0``). The value is ``jnp.power`` itself.
    """
    return base**k


@pow_count.defjvp
def _pow_count_jvp(primals, tangents):
    (b, k), (db, dk) = primals, tangents
    y = b**k
    pos = b > 0
    sb = jnp.where(pos, b, 1.0)
    dy_db = jnp.where(k == 0, 0.0, jnp.where(pos, k * (y / sb), jnp.where(k == 1, 1.0, 0.0)))
    dy_dk = jnp.where(pos, y * jnp.log(sb), 0.0)
    return y, dy_db * db + dy_dk * dk


def clip01(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 1.0)


def cosine_interp(a: jax.Array, b: jax.Array, p: jax.Array) -> jax.Array:
    """From ``a`` at ``p=0`` to ``b`` at ``p=1`` along half a cosine."""
    return b + (a - b) * 0.5 * (1.0 + jnp.cos(math.pi * p))


@jax.custom_jvp
def _pow_one(x: jax.Array, e: jax.Array) -> jax.Array:
    return x  # x ** e where e == 1


@_pow_one.defjvp
def _pow_one_jvp(primals, tangents):
    (x, _), (dx, de) = primals, tangents
    return x, dx + x * jnp.log(x) * de  # d/de x**e = x**e log x, also at e == 1


@jax.custom_jvp
def _pow_two(x: jax.Array, e: jax.Array) -> jax.Array:
    return x * x  # x ** e where e == 2


@_pow_two.defjvp
def _pow_two_jvp(primals, tangents):
    (x, _), (dx, de) = primals, tangents
    y = x * x
    return y, 2.0 * x * dx + y * jnp.log(x) * de


def _pow_any(x: jax.Array, e: jax.Array) -> jax.Array:
    return x**e


def with_exponent(e: jax.Array, build: Callable[[Callable[[jax.Array], jax.Array]], jax.Array]) -> jax.Array:
    """``build(pw)`` where ``pw(x) = x ** e`` (``x >= 0``, ``0 ** e = 0``, finite gradients).

    The exponent is a runtime leaf, so XLA cannot fold ``x ** 2.0`` into ``x * x`` as it
    does for a constant; ``pow`` costs an exp and a log per step. For a scalar exponent,
    ``lax.switch`` picks a whole-schedule branch built with ``pw`` specialised to ``e == 1``,
    ``e == 2`` or any ``e``, so each branch stays one fused kernel. Gradients w.r.t. ``e``
    are the true ones in every branch. (Under ``vmap`` over exponents the switch becomes a
    select and every branch is computed.)
    """
    e = jnp.asarray(e, jnp.float32)

    def make(kernel):
        def pw(x):
            x = jnp.asarray(x)
            pos = x > 0
            return jnp.where(pos, kernel(jnp.where(pos, x, 1.0), e), 0.0)

        return lambda: build(pw)

    if jnp.ndim(e) != 0:
        return make(_pow_any)()
    if not isinstance(e, jax.core.Tracer):
        # Concrete exponent (eager calls, or a schedule closed over by a jitted function): pick
        # the branch in Python. An eager lax.switch over closures would compile on every call.
        k = float(e)
        return make(_pow_one if k == 1.0 else _pow_two if k == 2.0 else _pow_any)()
    idx = jnp.where(e == 1.0, 0, jnp.where(e == 2.0, 1, 2))
    return jax.lax.switch(idx, (make(_pow_one), make(_pow_two), make(_pow_any)))
