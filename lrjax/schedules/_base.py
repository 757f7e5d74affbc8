"""The schedule base class: a frozen dataclass that is a JAX pytree.

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
arguments (a schedule built inside ``jit``) skip the checks. Unflattening a
pytree (what JAX does on every jitted call that returns a schedule, e.g. inside
an optimizer state) bypasses ``__init__``: no validation, no host sync.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar, Sequence

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
]

_LEAF = "leaf"
_STATIC = "static"
_CHILD = "child"
_KIND = "lrjax_kind"

# name -> class, filled by @register. The spec format (`to_spec`/`from_spec`) uses it.
_REGISTRY: dict[str, type["Schedule"]] = {}


def leaf(default: Any = dataclasses.MISSING, *, allow_inf: bool = False) -> Any:
    """A numeric hyperparameter: a float32 array leaf of the pytree."""
    meta = {_KIND: _LEAF, "allow_inf": allow_inf}
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
    meta = {_KIND: _CHILD}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _field_kind(f: dataclasses.Field) -> str:
    return f.metadata.get(_KIND, _STATIC)


def _fmt(x: np.ndarray) -> str:
    if x.ndim == 0:
        v = float(x)
        return repr(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
    return np.array2string(x, threshold=8)


def _to_leaf(owner: str, name: str, value: Any) -> tuple[jax.Array, np.ndarray | None]:
    if isinstance(value, jax.core.Tracer):
        return jnp.asarray(value).astype(jnp.float32), None
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        raise TypeError(
            f"{owner}: {name} must be a number or an array of numbers, got {name}={value!r} "
            f"({type(value).__name__})"
        )
    try:
        arr = np.asarray(value)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise TypeError(f"{owner}: {name} must be a number or an array of numbers, got {value!r}") from e
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{owner}: {name} must be a number or an array of numbers, got {name}={value!r} "
            f"(dtype {arr.dtype})"
        )
    arr64 = arr.astype(np.float64)
    return jnp.asarray(arr64.astype(np.float32)), arr64


class Checks:
    """Validation helpers handed to :meth:`Schedule._validate`.

    Each check is skipped for a traced value. A failed check raises
    ``ValueError("<Class>: <name> must be <allowed>, got <name>=<value>")``.
    """

    def __init__(self, owner: str, values: dict[str, np.ndarray | None]):
        self.owner = owner
        self.values = values

    def value(self, name: str) -> np.ndarray | None:
        return self.values[name]

    def require(self, name: str, ok: Callable[[np.ndarray], Any], allowed: str) -> None:
        x = self.values[name]
        if x is None:
            return
        if not bool(np.all(ok(x))):
            raise ValueError(f"{self.owner}: {name} must be {allowed}, got {name}={_fmt(x)}")

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
                f"{self.owner}: {a} must be {op} {b}, got {a}={_fmt(xa)} and {b}={_fmt(xb)}"
            )

    def increasing(self, name: str, *, strict: bool = True) -> None:
        x = self.values[name]
        if x is None or x.shape[-1:] == (0,) or x.ndim == 0:
            return
        d = np.diff(x, axis=-1)
        if not bool(np.all(d > 0 if strict else d >= 0)):
            kind = "strictly increasing" if strict else "non-decreasing"
            raise ValueError(f"{self.owner}: {name} must be {kind}, got {name}={_fmt(x)}")


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
        for f in dataclasses.fields(self):
            kind = _field_kind(f)
            val = getattr(self, f.name)
            if kind == _LEAF:
                arr, c = _to_leaf(owner, f.name, val)
                if c is not None:
                    if np.any(np.isnan(c)):
                        raise ValueError(f"{owner}: {f.name} must not be NaN, got {f.name}={_fmt(c)}")
                    if not f.metadata.get("allow_inf") and np.any(np.isinf(c)):
                        raise ValueError(f"{owner}: {f.name} must be finite, got {f.name}={_fmt(c)}")
                object.__setattr__(self, f.name, arr)
                concrete[f.name] = c
            elif kind == _STATIC:
                choices = f.metadata.get("choices")
                if choices is not None and val not in choices:
                    raise ValueError(
                        f"{owner}: {f.name} must be one of {', '.join(repr(c) for c in choices)}, "
                        f"got {f.name}={val!r}{closest(val, [str(c) for c in choices])}"
                    )
            elif kind == _CHILD:
                if isinstance(val, (list, tuple)):
                    val = tuple(val)
                    object.__setattr__(self, f.name, val)
                    items = val
                else:
                    items = (val,)
                for i, s in enumerate(items):
                    if not isinstance(s, Schedule):
                        raise TypeError(
                            f"{owner}: {f.name} must hold lrjax schedules, got {type(s).__name__} "
                            f"at position {i}: {s!r}"
                        )
        self._validate(Checks(owner, concrete))

    def _validate(self, check: Checks) -> None:  # pragma: no cover - default: nothing more
        """Check concrete hyperparameters; override in subclasses."""

    # -- evaluation ---------------------------------------------------------
    def _value(self, t: jax.Array) -> jax.Array:
        """The schedule at float32 step(s) ``t`` (already converted by :func:`as_step`).

        Subclasses implement this; combinators call it on their children.
        """
        raise NotImplementedError

    def __call__(self, step: Any) -> jax.Array:
        """Evaluate at ``step``: a Python int, an int/float array, or a traced count."""
        return jnp.asarray(self._value(as_step(step)), dtype=jnp.float32)

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
    def replace(self, **changes: Any) -> "Schedule":
        """A copy with some fields changed, validated like a new schedule."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if _field_kind(f) == _LEAF and not isinstance(v, jax.core.Tracer):
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
        cls._dynamic_fields = tuple(f.name for f in fields if _field_kind(f) in (_LEAF, _CHILD))
        cls._static_fields = tuple(f.name for f in fields if _field_kind(f) == _STATIC)
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
