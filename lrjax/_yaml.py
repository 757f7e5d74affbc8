"""YAML for lrjax's files, with numbers read the way YAML 1.2 reads them: ``1e-3`` is a number.

PyYAML implements YAML 1.1, whose floats need a dot: ``yaml.safe_load("peak: 1e-3")`` gives the
*text* ``'1e-3'``, which every numeric field then refuses. :func:`load` is ``yaml.safe_load``
with YAML 1.2's (core schema) numbers instead of YAML 1.1's:

* floats: ``1e-3``, ``3E-4``, ``.5``, ``1.``, ``-2.5``, ``+1.5e3``, ``1_000.5``, ``.inf``,
  ``-.inf``, ``.nan`` (``Inf``/``INF``, ``NaN``/``NAN`` too);
* ints (Python ints, never floats): ``-2``, ``+7``, ``1_000``, ``007`` (decimal: 7), ``0x1F``,
  ``0o17``, ``0b101``.

Underscores may separate digits (``1_000``; not ``_1``, ``1_`` or ``1__0``). Nothing else is a
number: ``1e-3x``, ``10%``, ``3 epochs``, ``1-sqrt``, ``exp``, ``e3``, ``1e``, ``inf``, ``nan``
stay text, and so does ``1:30`` (YAML 1.1 read it as the base-60 integer 90, and ``017`` as
octal 15). Booleans, nulls, dates and everything else are ``yaml.safe_load``'s.

:func:`dump` writes YAML that :func:`load` (and ``yaml.safe_load``) reads back unchanged: text
that either would read as a number is quoted (``'1e-3'``, ``'1:30'``), floats keep a dot
(``1.0e-05``), and keys keep their order. A float that is exactly a float32 (a rate lrjax computed) is
written as the shortest decimal that reads back as that float32 (``0.003``, not ``0.003000000026077032``);
numpy scalars and arrays are written as numbers and lists.

>>> from lrjax import _yaml
>>> _yaml.load("peak: 1e-3\\nsteps: 1_000\\nfloor: .5\\nshape: 1-sqrt\\nwhen: 3 epochs")
{'peak': 0.001, 'steps': 1000, 'floor': 0.5, 'shape': '1-sqrt', 'when': '3 epochs'}
>>> print(_yaml.dump({"name": "cosine_decay", "peak": 1e-05, "note": "1e-3"}), end="")
name: cosine_decay
peak: 1.0e-05
note: '1e-3'
>>> _yaml.load(_yaml.dump({"note": "1e-3", "peak": 1e-3}))
{'note': '1e-3', 'peak': 0.001}
>>> import numpy as np
>>> print(_yaml.dump({"lr": float(np.float32(3e-3)), "steps": np.int64(600), "x": np.float32(0.1)}), end="")
lr: 0.003
steps: 600
x: 0.1
"""

from __future__ import annotations

import math
import re
from typing import IO, Any

import numpy as np
import yaml

__all__ = ["Loader", "Dumper", "load", "dump", "describe_error"]

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"

_DIGITS = r"[0-9](?:_?[0-9])*"  # digits, single underscores between them
_EXP = r"[eE][-+]?[0-9]+"

INT = re.compile(
    rf"""^(?:[-+]?{_DIGITS}
          |[-+]?0x[0-9a-fA-F](?:_?[0-9a-fA-F])*
          |[-+]?0o[0-7](?:_?[0-7])*
          |[-+]?0b[01](?:_?[01])*)$""",
    re.X,
)
FLOAT = re.compile(
    rf"""^(?:[-+]?(?:{_DIGITS}\.(?:{_DIGITS})?(?:{_EXP})?   # 1.  1.5  1.5e3
                  |\.{_DIGITS}(?:{_EXP})?                   # .5  .5e-3
                  |{_DIGITS}{_EXP})                         # 1e-3  3E-4
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def _table(base: type, *, keep_11: bool = False) -> dict[str, list]:
    """``base``'s implicit resolvers without (or, ``keep_11``, with) YAML 1.1's int and float, plus
    YAML 1.2's: a fresh copy, PyYAML's own tables are not touched."""
    table: dict[str, list] = {}
    for first, items in base.yaml_implicit_resolvers.items():
        kept = [(tag, rx) for tag, rx in items if keep_11 or tag not in (_INT_TAG, _FLOAT_TAG)]
        if kept:
            table[first] = kept
    for tag, rx, firsts in ((_INT_TAG, INT, "-+0123456789"), (_FLOAT_TAG, FLOAT, "-+0123456789.")):
        for first in firsts:
            table.setdefault(first, []).append((tag, rx))
    return table


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    sign = -1 if text[0] == "-" else 1
    text = text.lstrip("+-")
    base = {"0x": 16, "0o": 8, "0b": 2}.get(text[:2].lower(), 10)
    return sign * int(text[2:] if base != 10 else text, base)


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node).replace("_", "").lower()
    if text.endswith(".inf"):
        return float("-inf") if text[0] == "-" else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2's numbers (see the module docs)."""


Loader.yaml_implicit_resolvers = _table(yaml.SafeLoader)
Loader.add_constructor(_INT_TAG, _int)
Loader.add_constructor(_FLOAT_TAG, _float)


class Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes text :class:`Loader` would read as a number.

    It also quotes what YAML 1.1 reads as a number (``1:30``), so ``yaml.safe_load`` reads
    its output the same way.
    """


Dumper.yaml_implicit_resolvers = _table(yaml.SafeDumper, keep_11=True)


def _shortest(value: float) -> float:
    """``value``, or, when it is exactly a float32 (a rate lrjax computed), the shortest decimal that reads
    back as that float32: ``0.003`` for float32's ``0.003000000026077032``. lrjax's rates and steps are float32,
    so nothing they compute with changes; a float64 that is no float32 (``0.1``) is written as it is."""
    if not math.isfinite(value):
        return value
    with np.errstate(over="ignore"):
        f32 = np.float32(value)
    return float(str(f32)) if float(f32) == value else value  # str: numpy's shortest float32 repr


def _represent_float(dumper: yaml.SafeDumper, value: Any) -> yaml.ScalarNode:
    return yaml.SafeDumper.represent_float(dumper, _shortest(float(value)))


Dumper.add_representer(float, _represent_float)
Dumper.add_multi_representer(np.floating, _represent_float)
Dumper.add_multi_representer(np.integer, lambda d, v: d.represent_int(int(v)))
Dumper.add_multi_representer(np.bool_, lambda d, v: d.represent_bool(bool(v)))
Dumper.add_multi_representer(np.ndarray, lambda d, v: d.represent_list(v.tolist()))


def load(stream_or_text: str | bytes | IO) -> Any:
    """Parse YAML text (or an open file) like ``yaml.safe_load``, with YAML 1.2's numbers.

    >>> load("[1e-3, 3E-4, .5, -2, 1_000, +1.5e3, .inf, 10%, exp]")
    [0.001, 0.0003, 0.5, -2, 1000, 1500.0, inf, '10%', 'exp']
    """
    return yaml.load(stream_or_text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader


def dump(data: Any, stream: IO | None = None, **kwargs: Any) -> str | None:
    """``yaml.safe_dump`` whose output :func:`load` reads back as ``data`` (keys in their order by default).

    Keyword arguments go to ``yaml.dump`` (``sort_keys``, ``default_flow_style``, ...).

    >>> dump([1e-3, "3E-4", 7])
    "- 0.001\\n- '3E-4'\\n- 7\\n"
    """
    kwargs.setdefault("sort_keys", False)
    kwargs.setdefault("default_flow_style", False)
    return yaml.dump(data, stream, Dumper=Dumper, **kwargs)


def describe_error(e: Exception) -> str:
    """A YAML parse error in one short line: what is wrong and where (``expected ',' or ']', but got
    '<stream end>' at line 2, column 1``), without the file name the parser repeats in its own message."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    return problem + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "")
