"""Specs: schedules as plain, YAML/JSON-friendly dicts, with an exact round trip.

A spec is ``{"name": <family>, <field>: <value>, ...}``; nested schedules are
nested specs and tuples of schedules are lists of specs. Numbers come back as
float32 exactly (a float32 value is exact as a Python float).

>>> import lrjax
>>> s = lrjax.Warmup(lrjax.CosineDecay(peak=1e-3, decay_steps=1000), warmup_steps=100)
>>> lrjax.from_spec(lrjax.to_spec(s))(500) == s(500)
Array(True, dtype=bool)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from lrjax._checks import closest
from lrjax._yaml import load
from lrjax.schedules._base import _REGISTRY, CHILD, LEAF, Schedule, _is_tuple_field, field_kind, unset

__all__ = ["to_spec", "from_spec", "load_spec"]


def _num(x: Any) -> Any:
    a = np.asarray(x)
    if a.ndim == 0:
        # The shortest decimal that reads back as the same float32 (1e-3, not 0.0010000000474974513).
        v = float(str(np.float32(a))) if a.dtype == np.float32 else float(a)  # str: shortest repr (numpy 2 repr adds "np.float32(...)")
        if v.is_integer() and abs(v) < 2**53:
            return int(v)
        return v
    return [_num(e) for e in a]


def to_spec(schedule: Schedule) -> dict[str, Any]:
    """The schedule as a nested dict of Python numbers, strings, bools and lists."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"to_spec expects an lrjax schedule, got {type(schedule).__name__}: {schedule!r}")
    out: dict[str, Any] = {"name": type(schedule).name}
    for f in dataclasses.fields(schedule):
        v = getattr(schedule, f.name)
        kind = field_kind(f)
        if unset(f, v):  # a negative Warmup.target: "not set", which from_spec's default says again
            continue
        if kind == LEAF:
            out[f.name] = _num(v)
        elif kind == CHILD:
            out[f.name] = [to_spec(s) for s in v] if isinstance(v, tuple) else to_spec(v)
        else:
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def from_spec(spec: Mapping[str, Any], *, where: str = "spec") -> Schedule:
    """Build a schedule from a spec dict (see :func:`to_spec`).

    Unknown family names and unknown keys raise ``ValueError`` listing the valid
    choices and the closest match; wrong types raise ``TypeError``. A number must be a
    number: text such as ``"1e-3"`` is refused, not converted (read files with
    :func:`load_spec`, whose YAML reader gives ``1e-3`` as a number). Several schedules
    (``schedules`` of ``product``/``sequence``, ``branches`` of ``switch``) are a list of
    specs, one schedule is one spec.
    """
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where}: a schedule spec must be a mapping with a 'name' key, got {spec!r}")
    if "name" not in spec:
        raise ValueError(
            f"{where}: a schedule spec needs a 'name' key, one of: {', '.join(sorted(_REGISTRY))}; got keys "
            f"{sorted(spec)}"
        )
    name = spec["name"]
    if name not in _REGISTRY:
        raise ValueError(
            f"{where}: unknown schedule name {name!r}{closest(name, _REGISTRY)}; valid names: "
            f"{', '.join(sorted(_REGISTRY))}"
        )
    cls = _REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, val in spec.items():
        if key == "name":
            continue
        if key not in fields:
            homes = _homes(spec, key, where)
            hint = (f" (a key of the schedule inside {name!r}: did you mean "
                    f"{' or '.join(repr(h) for h in homes[:3])}?)" if homes else closest(key, fields))
            raise ValueError(
                f"{where}: unknown key {key!r} for schedule {name!r}{hint}; valid keys: {', '.join(fields)}")
        f = fields[key]
        if field_kind(f) == CHILD:
            several = _is_tuple_field(f)
            if several and not isinstance(val, (list, tuple)):
                got = (f"a mapping with keys {sorted(map(str, val))}" if isinstance(val, Mapping)
                       else f"{type(val).__name__} {val!r}")
                raise TypeError(
                    f"{where}.{key}: schedule {name!r} takes a list of schedule specs for {key!r} "
                    f"(- name: ... for each), got {got}"
                )
            if not several and isinstance(val, (list, tuple)):
                raise TypeError(
                    f"{where}.{key}: schedule {name!r} takes one schedule spec for {key!r} (a mapping with a "
                    f"'name' key), got a list of {len(val)}"
                )
            if several:
                val = tuple(from_spec(v, where=f"{where}.{key}[{i}]") for i, v in enumerate(val))
            else:
                val = from_spec(val, where=f"{where}.{key}")
        elif isinstance(val, list) and field_kind(f) != LEAF:
            val = tuple(val)  # leaves keep their list: the constructor checks every element is a number
        kwargs[key] = val
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{where}: schedule {name!r} needs {', '.join(repr(m) for m in missing)}")
    return cls(**kwargs)


def _init_fields(name: Any) -> set[str]:
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    return {f.name for f in dataclasses.fields(cls) if f.init} if cls is not None else set()


def _homes(spec: Mapping[str, Any], key: str, where: str) -> list[str]:
    """The full dotted paths, below ``where``, of the schedules nested in ``spec`` (``warmup``'s ``schedule``,
    ``sequence``'s ``schedules[i]``, ...) whose family takes ``key``: the outermost ones, in spec order.

    >>> _homes({"name": "warmup", "schedule": {"name": "cosine_decay"}}, "peak", "schedule")
    ['schedule.schedule.peak']
    """
    found: list[str] = []
    for k, v in spec.items():
        items = [(f"{where}.{k}", v)] if isinstance(v, Mapping) else (
            [(f"{where}.{k}[{i}]", x) for i, x in enumerate(v)] if isinstance(v, (list, tuple)) else [])
        for path, sub in items:
            if not isinstance(sub, Mapping):
                continue
            if key in _init_fields(sub.get("name")):
                found.append(f"{path}.{key}")
            else:
                found += _homes(sub, key, path)
    return found


def load_spec(path: str) -> Schedule:
    """Read a schedule spec from a YAML (or JSON) file.

    YAML numbers are read as YAML 1.2 reads them (:mod:`lrjax._yaml`): ``peak: 1e-3`` is
    the number 0.001 (PyYAML's own ``safe_load`` would give the text ``'1e-3'``).
    """
    with open(path) as fh:
        data = load(fh)
    if isinstance(data, Mapping) and "schedule" in data and "name" not in data:
        data = data["schedule"]
    return from_spec(data, where=str(path))
