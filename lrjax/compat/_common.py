"""What only the compatibility layers need; their argument checks are the shared :mod:`lrjax._checks`.

``number`` and ``rate`` (``number(..., lo=0)``) are re-exported for the modules that import them
from here; ``positive`` is ``number`` that must be > 0 (optax's and Keras's ``decay_steps``).
"""

from __future__ import annotations

from typing import Any

from lrjax._checks import number

__all__ = ["TabulatedWarning", "no_resume", "number", "positive", "rate"]


class TabulatedWarning(UserWarning):
    """A Python function JAX cannot trace was evaluated on the host into an :class:`lrjax.Table`.

    The schedule is exact up to the table's last step and holds that value after it. Silence it
    with ``warnings.filterwarnings("ignore", category=TabulatedWarning)`` once you know.
    """


def rate(owner: str, name: str, value: Any) -> float:
    """A learning rate: a finite number >= 0 (:func:`lrjax._checks.number` with ``lo=0``)."""
    return number(owner, name, value, lo=0)


def positive(owner: str, name: str, value: Any) -> float:
    """A finite number > 0, e.g. a step count optax or Keras divides by (:func:`lrjax._checks.number`, then > 0)."""
    v = number(owner, name, value)
    if v <= 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {name}={value!r}")
    return v


def no_resume(owner: str, last_epoch: Any) -> None:
    """lrjax schedules are functions of the step: there is no scheduler state to resume."""
    if last_epoch != -1:
        raise ValueError(
            f"{owner}: last_epoch must be -1, got last_epoch={last_epoch!r}; an lrjax schedule is a pure "
            "function of the step, so to resume evaluate it at the restored optimizer step count"
        )
