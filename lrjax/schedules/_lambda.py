"""A rate given by your own function of the step (``Lambda``), and a rate read from a table (``Table``).

``Lambda`` is the JAX-traceable form of PyTorch's ``LambdaLR``: the function is part of the
tree structure (static), its numeric keyword arguments are leaves. ``Table`` holds
precomputed rates, one per step: what a Python function that JAX cannot trace (``math``,
``if`` on the step) becomes once evaluated on the host (:meth:`Table.tabulate`, or
:func:`lrjax.compat.torch.LambdaLR` with ``total_steps``).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import keyword
import textwrap
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Var

from lrjax._checks import fail, integer, number
from lrjax.schedules._base import Checks, Schedule, _fmt, leaf, register, static

__all__ = ["Lambda", "Table"]

_RESERVED = ("fn", "scale", "param_names", "params")


def _reference(fn: Callable) -> str | None:
    """``"module:qualname"`` when importing that gives back ``fn`` itself (a module-level function), else None.

    Functions of ``__main__`` (scripts, notebooks), lambdas and closures have no such reference.
    """
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not isinstance(mod, str) or not isinstance(qual, str) or mod == "__main__" or "<" in qual:
        return None
    try:
        found = _resolve(f"{mod}:{qual}")
    except Exception:  # noqa: BLE001 - not importable under its own name
        return None
    return f"{mod}:{qual}" if found is fn else None


def function_text(fn: Any) -> str:
    """A function as people read it: a ``"module:qualname"`` string as it is; a lambda as its source text
    (found with :mod:`ast` in its file, matched by its argument names) or ``<lambda>(t, decay)``; another
    function as ``name(t, decay)``. Never ``<function <lambda> at 0x...>``.

    >>> function_text(lambda t: 0.5 ** t), function_text("jax.numpy:cos")
    ('lambda t: 0.5 ** t', 'jax.numpy:cos')
    """
    if isinstance(fn, str):
        return fn
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    try:
        args = "(" + ", ".join(inspect.signature(fn).parameters) + ")"
    except (TypeError, ValueError):
        args = "(...)"
    if name is None:
        return type(fn).__name__ + args
    if name.endswith("<lambda>"):
        return _lambda_source(fn) or f"<lambda>{args}"
    return name.split(".<locals>.")[-1] + args


def _lambda_source(fn: Callable) -> str | None:
    """The text of the lambda expression ``fn`` was made from, when its source line holds exactly one lambda
    with its argument names; else None."""
    try:
        lines, start = inspect.getsourcelines(fn)
        src = textwrap.dedent("".join(lines))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    code = getattr(fn, "__code__", None)
    names = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]) if code is not None else None
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)
             and [a.arg for a in node.args.args + node.args.kwonlyargs] == names]
    if len(found) != 1:
        return None
    text = ast.get_source_segment(src, found[0])
    return " ".join(text.split()) if text else None


@functools.cache
def _resolve(ref: str) -> Callable:
    """The object named by ``"module:qualname"`` (``"package.module:Class.method"`` works too)."""
    mod, _, qual = ref.partition(":")
    if not mod or not qual:
        raise ValueError(f"a function reference is 'module:qualname', got {ref!r}")
    obj: Any = importlib.import_module(mod)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _call(fn: Callable, names: tuple[str, ...]) -> Callable:
    """``(t, *params) -> fn(t, **dict(zip(names, params)))`` as a float32 array."""

    def f(t, *ps):
        return jnp.asarray(fn(t, **dict(zip(names, ps))), dtype=jnp.float32)

    return f


def trace_failure(fn: Callable, names: tuple[str, ...] = ()) -> str | None:
    """Why ``fn(step, **params)`` cannot be traced by JAX on an abstract float32 step, or None if it can.

    ``None`` means: called on a traced scalar step (and traced scalar keywords ``names``) it
    returns one number. Otherwise the reason, e.g. ``"TracerBoolConversionError: ..."`` for an
    ``if`` on the step or ``"ConcretizationTypeError: ..."`` for ``math.cos(step)``.
    """
    spec = jax.ShapeDtypeStruct((), jnp.float32)
    try:
        out = jax.eval_shape(_call(fn, names), spec, *([spec] * len(names)))
    except Exception as e:  # noqa: BLE001 - any failure means "does not trace"; the reason is reported
        first = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else ""
        return f"{type(e).__name__}: {first}"[:300]
    if out.shape != ():
        return f"it returns an array of shape {out.shape} for one step, not one number"
    return None


def depends_on_step(fn: Callable) -> bool:
    """False when the traced ``fn(step)`` does not depend on ``step`` (``lambda t: 0.9``); needs a traceable fn."""
    closed = jax.make_jaxpr(_call(fn, ()))(jax.ShapeDtypeStruct((), jnp.float32))
    jaxpr = closed.jaxpr
    deps = set(jaxpr.invars)
    for eqn in jaxpr.eqns:  # one pass: equations come in dependency order
        if any(isinstance(v, Var) and v in deps for v in eqn.invars):
            deps.update(eqn.outvars)
    out = jaxpr.outvars[0]
    return isinstance(out, Var) and out in deps


@register("lambda")
class Lambda(Schedule):
    """Your own function of the step: :math:`\\eta(t) = \\text{scale} \\cdot f(t, k_1, k_2, \\ldots)`.

    ``fn(step, **params)`` is written with ``jax.numpy`` (``jnp.where``, not ``if``): it is
    traced, once per tree structure. It receives the step as a float32 scalar (it is
    vectorised over arrays of steps for you) and each keyword as a float32 scalar, and
    returns one number. The function is static (part of the tree structure); ``scale``
    and the numeric keywords are leaves, so ``jax.vmap`` sweeps them and new values never
    retrace::

        lrjax.Lambda(lambda t, decay: decay ** t, decay=0.95, scale=0.1)   # 0.1 * 0.95 ** t

    Keywords are scalars; ``fn``, ``scale``, ``param_names`` and ``params`` are reserved
    names. ``s.replace(decay=0.9)`` changes a keyword like any field; ``s.kwargs`` gives them
    as a dict. The keywords are stored as the leaf vector ``params`` with their names in
    the static ``param_names`` (the form the spec uses). ``horizon`` is 0 (unknown).

    Spec: a function that can be imported back by name (a module-level ``def``, not in
    ``__main__``) is stored as its ``"module:qualname"`` reference (``fn`` may also be given
    as such a string), so ``to_spec`` gives a YAML-ready dict and ``from_spec`` imports the
    function. A lambda, a closure or a function of ``__main__`` is kept as the object: its
    spec holds the function itself, which round-trips in the same process but cannot be
    written to YAML/JSON. For Python code that JAX cannot trace (``math``, branches on the
    step), use :meth:`Table.tabulate`.

    >>> import lrjax
    >>> s = lrjax.Lambda(lambda t, decay: decay ** t, decay=0.5, scale=2.0)
    >>> [float(s(t)) for t in range(4)], float(s.replace(decay=0.25)(1))
    ([2.0, 1.0, 0.5, 0.25], 0.5)
    >>> import jax.numpy as jnp
    >>> float(lrjax.Lambda(jnp.cos)(0)), lrjax.to_spec(lrjax.Lambda(jnp.cos))["fn"]
    (1.0, 'jax.numpy:cos')
    """

    fn: Any = static()
    scale: float = leaf(1.0)
    param_names: tuple = static(())
    params: tuple = leaf(())

    def __init__(self, fn: Callable | str, scale: float = 1.0, *, param_names: Any = None, params: Any = None,
                 **kwargs: Any) -> None:
        if kwargs:
            if param_names is not None or params is not None:
                raise TypeError("Lambda: give the function's keywords either as keyword arguments or as "
                                f"param_names/params, not both; got {sorted(kwargs)} and param_names={param_names!r}")
            param_names, params = tuple(kwargs), [kwargs[k] for k in kwargs]
        names = () if param_names is None else param_names
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise fail("Lambda", "param_names", names, "a list of keyword names", TypeError)
        names = tuple(names)
        for n in names:
            if not isinstance(n, str) or not n.isidentifier() or keyword.iskeyword(n):
                raise fail("Lambda", "param_names", names, "a list of Python identifiers", TypeError)
            if n in _RESERVED:
                raise ValueError(f"Lambda: {n!r} is reserved ({', '.join(_RESERVED)}); rename that keyword of fn")
        if len(set(names)) != len(names):
            raise fail("Lambda", "param_names", names, "names without repeats")
        values = () if params is None else params
        if isinstance(values, (jax.core.Tracer, jax.Array, np.ndarray)):
            if np.ndim(values) < 1 or np.shape(values)[-1] != len(names):
                raise fail("Lambda", "params", values, f"{len(names)} numbers (one per name in param_names)")
        else:
            if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
                raise fail("Lambda", "params", values, "a list of numbers", TypeError)
            if len(values) != len(names):
                raise fail("Lambda", "params", values, f"{len(names)} numbers (one per name in param_names)")
            traced = any(isinstance(v, (jax.core.Tracer, jax.Array)) for v in values)
            for n, v in zip(names, values):
                if not isinstance(v, (jax.core.Tracer, jax.Array)):
                    number("Lambda", n, v)
                elif np.ndim(v) != 0:
                    raise fail("Lambda", n, v, "a scalar (one number)")
            if traced:  # built inside jit/vmap: keep the values traced
                values = jnp.stack([jnp.asarray(v, jnp.float32) for v in values]) if values else ()
            else:
                values = tuple(float(v) for v in values)
        if isinstance(fn, str):
            try:
                _resolve(fn)
            except Exception as e:  # noqa: BLE001 - reported with the reference
                raise ValueError(f"Lambda: fn={fn!r} cannot be imported ({type(e).__name__}: {e}); a reference "
                                 "is 'module:qualname' of a module-level function") from None
            stored: Any = fn
        elif callable(fn):
            stored = _reference(fn) or fn
        else:
            raise fail("Lambda", "fn", fn, "a function of the step or a 'module:qualname' string", TypeError)
        object.__setattr__(self, "fn", stored)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "param_names", names)
        object.__setattr__(self, "params", values)
        self.__post_init__()

    def _validate(self, check: Checks) -> None:
        check.nonneg("scale")
        why = trace_failure(self.function, self.param_names)
        if why is not None:
            raise TypeError(
                f"Lambda: fn must be a function of the step written with jax.numpy (it is traced on a float32 "
                f"step), got fn={self.function!r}, which fails: {why}. Use jnp.where instead of if, jnp.cos "
                "instead of math.cos; or tabulate Python code on the host with lrjax.Table.tabulate(fn, steps)"
            )

    @property
    def function(self) -> Callable:
        """The callable (``fn`` resolved when it is stored as a ``"module:qualname"`` reference)."""
        return _resolve(self.fn) if isinstance(self.fn, str) else self.fn

    @property
    def source(self) -> str:
        """``fn`` as people read it: a reference as it is (``'jax.numpy:cos'``), a lambda as its text when it can
        be found (``'lambda t, decay: decay ** t'``), else the function's name and arguments.

        >>> import lrjax
        >>> lrjax.Lambda(lambda t, decay: decay ** t, decay=0.5).source
        'lambda t, decay: decay ** t'
        """
        return function_text(self.fn)

    def __repr__(self) -> str:
        """``Lambda(fn=lambda t, decay: decay ** t, decay=0.5, scale=1)``: the function readable, the keywords
        by name."""
        try:
            params, scale = np.asarray(self.params), np.asarray(self.scale)
        except Exception:  # noqa: BLE001 - traced or abstract: the generic form
            return super().__repr__()
        if params.ndim != 1 or scale.ndim != 0:  # stacked (vmapped) keywords: the generic form
            return super().__repr__()
        kw = "".join(f", {n}={_fmt(params[i])}" for i, n in enumerate(self.param_names))
        return f"Lambda(fn={self.source}{kw}, scale={_fmt(scale)})"

    @property
    def kwargs(self) -> dict[str, jax.Array]:
        """The numeric keywords given to ``fn``, by name."""
        return {n: self.params[..., i] for i, n in enumerate(self.param_names)}

    def replace(self, **changes: Any) -> Lambda:
        """A copy with fields or keywords changed (``s.replace(decay=0.9, scale=0.1)``)."""
        named = {k: changes.pop(k) for k in list(changes) if k in self.param_names}
        if named:
            if "params" in changes:
                raise TypeError("Lambda.replace: change the keywords by name or params as a whole, not both")
            if any(isinstance(v, jax.core.Tracer) for v in named.values()) or isinstance(self.params, jax.core.Tracer):
                vals = [jnp.asarray(named.get(n, self.params[..., i]), jnp.float32)
                        for i, n in enumerate(self.param_names)]
                changes["params"] = jnp.stack(vals, axis=-1)
            else:
                old = np.asarray(self.params, np.float64)
                changes["params"] = [float(named[n]) if n in named else float(old[..., i])
                                     for i, n in enumerate(self.param_names)]
        return dataclasses.replace(self, **changes)

    def _value(self, t):
        f = jnp.vectorize(_call(self.function, self.param_names))
        return self.scale * f(t, *[self.params[..., i] for i in range(len(self.param_names))])


@register("table")
class Table(Schedule):
    """Rates read from a table, one per step: :math:`\\eta(t) = \\text{scale} \\cdot v_{\\min(\\max(\\lfloor t
    \\rfloor, 0),\\, n-1)}`.

    ``values`` (a float32 leaf vector of ``n >= 1`` rates, ``>= 0``) gives steps ``0 .. n-1``;
    past the last entry the rate HOLDS ``values[-1]`` (and ``horizon`` is ``n - 1``). The
    table's length is part of the tree structure; its entries and ``scale`` are leaves.
    :meth:`tabulate` builds one from any Python function of the step, evaluated on the host
    (what :func:`lrjax.compat.torch.LambdaLR` does with a lambda JAX cannot trace).

    >>> import lrjax, math
    >>> s = lrjax.Table.tabulate(lambda t: 1.0 if t < 2 else math.cos(t) ** 2, 4, scale=0.1)
    >>> [round(float(s(t)), 4) for t in (0, 1, 2, 4, 100)]
    [0.1, 0.1, 0.0173, 0.0427, 0.0427]
    """

    values: tuple = leaf()
    scale: float = leaf(1.0)

    def _validate(self, check: Checks) -> None:
        v = check.value("values")
        if v is not None and (v.ndim == 0 or v.shape[-1] == 0):
            raise ValueError(f"Table: values must be a non-empty list of rates, got values={v.tolist()}")
        check.nonneg("values", "scale")

    @classmethod
    def tabulate(cls, fn: Callable[[int], float], total_steps: int, scale: float = 1.0) -> Table:
        """``Table([fn(0), fn(1), ..., fn(total_steps)], scale)``: ``fn`` called with Python ints, in float64.

        Any Python is fine (``math``, branches, lists); the rate holds ``scale * fn(total_steps)``
        after step ``total_steps``.
        """
        n = integer("Table.tabulate", "total_steps", total_steps, lo=0, integral_floats=True)
        if not callable(fn):
            raise fail("Table.tabulate", "fn", fn, "a function of the step", TypeError)
        vals = np.empty(n + 1, np.float64)
        for t in range(n + 1):
            v = fn(t)
            try:
                vals[t] = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"Table.tabulate: fn({t}) must return a number, got {v!r}") from None
            if not np.isfinite(vals[t]) or vals[t] < 0:
                raise ValueError(f"Table.tabulate: fn({t}) must be a finite number >= 0 (a rate), got {v!r}")
        return cls(vals, scale)

    def _value(self, t):
        # take(mode="clip") clamps the index to [0, n - 1]; XLA's float -> int32 conversion saturates
        # (a huge step gives INT_MAX, so the last entry) and sends NaN to 0, so no float clip is needed.
        i = jnp.floor(t).astype(jnp.int32)
        return self.scale * jnp.take(self.values, i, axis=-1, mode="clip")

    @property
    def horizon(self) -> jax.Array:
        return jnp.float32(self.values.shape[-1] - 1)

    def _has_total(self) -> bool:
        return True
