"""Gradient accumulation, and the one place where durations become optimizer steps."""

from __future__ import annotations

import math
from typing import Any

import optax

from lrjax._checks import closest, integer, number

__all__ = ["accumulate", "to_steps", "steps_per_epoch", "effective_batch_size", "UNITS"]

UNITS = ("steps", "examples", "epochs", "fraction", "tokens")


def accumulate(tx: optax.GradientTransformation, every_k: int) -> optax.GradientTransformationExtraArgs:
    """Accumulate gradients over ``every_k`` micro-batches, then apply one update of ``tx``.

    Built on ``optax.MultiSteps``: the micro-batch gradients are averaged, and ``tx``'s
    update — hence every lrjax schedule inside it, whose count lives in ``tx``'s state —
    runs once per ``every_k`` calls. So schedules count optimizer updates, never
    micro-batches; convert durations with :func:`to_steps` (``accumulation_steps=every_k``).
    The updates returned for the ``every_k - 1`` intermediate calls are zeros. With a
    mean loss, ``k`` micro-batches of size ``b`` give the update of one batch of ``k·b``.

    Args:
      tx: any optax transformation (e.g. from :func:`lrjax.inject`).
      every_k: number of micro-batches per optimizer update (a positive int).

    Returns:
      ``optax.MultiSteps(tx, every_k).gradient_transformation()``; its state is an
      ``optax.MultiStepsState`` (:func:`lrjax.current_hyperparams` looks inside).

    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.accumulate(lrjax.inject(optax.sgd, learning_rate=lrjax.Linear(1.0, 0.0, 10)), 4)
    >>> state = tx.init(jnp.zeros(1))
    >>> for _ in range(8):
    ...     _, state = tx.update(jnp.ones(1), state)
    >>> float(lrjax.current_hyperparams(state)["learning_rate"])  # 2 updates: the last used s(1)
    0.8999999761581421
    """
    k = integer("accumulate", "every_k", every_k, lo=1, integral_floats=True)
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"accumulate: tx must be an optax.GradientTransformation, got tx={tx!r}")
    return optax.MultiSteps(tx, every_k_schedule=k).gradient_transformation()


def effective_batch_size(per_device_batch: int, num_devices: int = 1, accumulation_steps: int = 1) -> int:
    """Examples per optimizer update: ``per_device_batch × num_devices × accumulation_steps``.

    >>> import lrjax
    >>> lrjax.effective_batch_size(32, num_devices=8, accumulation_steps=4)
    1024
    """
    return _effective("effective_batch_size", "per_device_batch", per_device_batch, num_devices, accumulation_steps)


def _effective(fn: str, batch_name: str, batch: Any, num_devices: Any, accumulation_steps: Any) -> int:
    return (
        integer(fn, batch_name, batch, lo=1, integral_floats=True)
        * integer(fn, "num_devices", num_devices, lo=1, integral_floats=True)
        * integer(fn, "accumulation_steps", accumulation_steps, lo=1, integral_floats=True)
    )


def steps_per_epoch(
    num_examples: int,
    batch_size: int,
    *,
    accumulation_steps: int = 1,
    num_devices: int = 1,
    drop_remainder: bool = True,
) -> int:
    """Optimizer updates per pass over ``num_examples``.

    ``floor(N / B)`` with ``drop_remainder=True`` (a partial last batch is skipped, the
    usual training input pipeline), else ``ceil(N / B)``, where
    ``B = batch_size × num_devices × accumulation_steps`` (``batch_size`` per device and
    micro-batch). Raises if an epoch holds no full update.

    >>> import lrjax
    >>> lrjax.steps_per_epoch(50_000, 128, accumulation_steps=2)
    195
    """
    fn = "steps_per_epoch"
    n = integer(fn, "num_examples", num_examples, lo=1, integral_floats=True)
    eff = _effective(fn, "batch_size", batch_size, num_devices, accumulation_steps)
    steps = n // eff if drop_remainder else -(-n // eff)
    if steps < 1:
        raise ValueError(
            f"{fn}: num_examples={n} is smaller than one optimizer update of {eff} examples "
            f"(batch_size={batch_size} × num_devices={num_devices} × accumulation_steps={accumulation_steps})"
        )
    return steps


def _round(x: float) -> int:
    """Nearest integer, halves up; tolerant of float noise (0.1 × 30 → 3)."""
    return int(math.floor(x + 0.5 + 1e-9))


def to_steps(
    value: float,
    unit: str,
    *,
    batch_size: int,
    accumulation_steps: int = 1,
    num_devices: int = 1,
    num_examples: int | None = None,
    total_steps: int | None = None,
    drop_remainder: bool = True,
    context: int | None = None,
) -> int:
    """Turn a duration into optimizer steps: the one place where batch size and accumulation count.

    With ``B = batch_size × num_devices × accumulation_steps`` examples per optimizer update
    (``batch_size`` is per device and per micro-batch):

    * ``"steps"``: optimizer steps already; ``value`` is rounded to the nearest integer.
    * ``"examples"``: ``round(value / B)``.
    * ``"epochs"``: ``round(value × steps_per_epoch)``, with
      :func:`steps_per_epoch` ``(num_examples, ...)`` (floor by default: ``drop_remainder``).
    * ``"fraction"``: of the run, ``round(value × total_steps)``; ``value`` in [0, 1].
    * ``"tokens"``: ``round(value / (B × context))``, ``context`` the tokens of one example (a language
      model's window): ``"20M tokens"`` is ``20M / context`` examples.

    Rounding is to the nearest integer, halves up. A positive duration never becomes 0
    steps silently: it raises instead, naming the inputs.

    Returns:
      A non-negative int number of optimizer updates.

    >>> import lrjax
    >>> lrjax.to_steps(2, "epochs", batch_size=128, accumulation_steps=2, num_examples=50_000)
    390
    >>> lrjax.to_steps(0.05, "fraction", batch_size=128, total_steps=10_000)
    500
    >>> lrjax.to_steps(20e6, "tokens", batch_size=32, context=128, num_devices=2)
    2441
    """
    fn = "to_steps"
    if unit not in UNITS:
        raise ValueError(f"{fn}: unit must be one of {', '.join(map(repr, UNITS))}, got unit={unit!r}{closest(unit, UNITS)}")
    v = number(fn, "value", value, lo=0)
    eff = _effective(fn, "batch_size", batch_size, num_devices, accumulation_steps)
    if unit == "steps":
        steps = _round(v)
    elif unit == "examples":
        steps = _round(v / eff)
    elif unit == "tokens":
        if context is None:
            raise ValueError(f"{fn}: unit='tokens' needs context (tokens per example), got context=None")
        per_example = integer(fn, "context", context, lo=1, integral_floats=True)
        steps = _round(v / (eff * per_example))
        eff *= per_example
    elif unit == "epochs":
        if num_examples is None:
            raise ValueError(f"{fn}: unit='epochs' needs num_examples (examples per epoch), got num_examples=None")
        steps = _round(v * steps_per_epoch(num_examples, batch_size, accumulation_steps=accumulation_steps,
                                           num_devices=num_devices, drop_remainder=drop_remainder))
    else:
        if total_steps is None:
            raise ValueError(f"{fn}: unit='fraction' needs total_steps (optimizer steps of the run), got total_steps=None")
        total = int(total_steps)
        if total < 0 or total != total_steps:
            raise ValueError(f"{fn}: total_steps must be an integer >= 0, got total_steps={total_steps!r}")
        if v > 1:
            raise ValueError(f"{fn}: a fraction of the run must be in [0, 1], got value={value!r}")
        steps = _round(v * total)
    if v > 0 and steps == 0:
        what = f"{eff} tokens (context={context} × " if unit == "tokens" else f"{eff} examples ("
        raise ValueError(
            f"{fn}: {value!r} {unit} is less than half an optimizer update of {what}"
            f"batch_size={batch_size} × num_devices={num_devices} × accumulation_steps={accumulation_steps}); "
            f"give a longer duration or 0"
        )
    return steps
