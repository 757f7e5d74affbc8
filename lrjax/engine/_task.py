"""What a model is trained to do: its loss, and the metrics that follow from it.

A :class:`Task` wraps a loss function ``loss(outputs, targets)`` returning per-example losses ``(B,)`` or
their mean (a scalar), and knows which metrics make sense:

* ``cross_entropy`` — softmax cross-entropy with integer labels; metrics: loss and accuracy
  (:math:`\\frac1N\\sum_i [\\arg\\max_c o_{ic} = y_i]`).
* ``mse`` — mean squared error over each example's targets, :math:`\\ell_i = \\frac1T\\sum_t (o_{it}-y_{it})^2`;
  metrics: loss, and in evaluations the coefficient of determination
  :math:`R^2 = \\frac1T\\sum_t \\big(1 - \\frac{\\sum_i (o_{it}-y_{it})^2}{\\sum_i (y_{it}-\\bar y_t)^2}\\big)`
  (scikit-learn's ``r2_score``, uniform average over targets).
* ``cross_entropy`` on a *sequence task* — integer targets with a time axis, ``(B, T)`` (a language model's
  next tokens), against outputs ``(B, T, V)``: the mean over the batch's tokens,
  :math:`\frac{1}{|M|}\\sum_{(b,t) \\in M} -\\log \\mathrm{softmax}(o_{bt})_{y_{bt}}` with
  :math:`M = \\{(b, t): y_{bt} \\ge 0\\}` (a negative target is padding and counts nowhere); metrics: ``loss``
  (nats per token), ``bits_per_token`` (:math:`\text{loss} / \\ln 2`) and token ``accuracy``, all over
  :math:`M` (and, in evaluations, the real sequences).
* your own function (``loss: "MODULE:NAME"`` or ``loss=`` in Python): metrics: loss, plus accuracy when
  the targets are integer labels and the outputs ``(B, C)`` scores, plus R² when the targets are floats of
  the outputs' size. On a sequence task it receives outputs ``(B, T, V)`` and targets ``(B, T)`` (padding
  included: it must leave targets < 0 out itself) and returns per-sequence losses ``(B,)`` or their mean;
  metrics: loss (the mean over sequences) and token accuracy — no ``bits_per_token``, as lrjax does not
  know your loss's unit.

Evaluation sums over padded batches with a ``mask`` (1 for real examples), so any split size is one
compiled program; a loss that returns a mean is applied to one example at a time (``vmap``) there, so
that padding never enters it.

>>> import jax.numpy as jnp
>>> t = make_task("mse", targets_dtype=jnp.float32, targets_shape=(), num_outputs=1)
>>> sums = t.eval_sums(jnp.array([[1.0], [2.0], [9.0]]), jnp.array([1.0, 3.0, 0.0]), jnp.array([1.0, 1.0, 0.0]))
>>> {k: round(float(v), 4) for k, v in t.summarize(sums).items()}
{'loss': 0.5, 'r2': 0.5}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax.engine._config import ConfigError
from lrjax.engine._models import load_reference

__all__ = ["Task", "make_task", "cross_entropy", "mse", "token_cross_entropy"]


def cross_entropy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy of scores ``(B, C)`` against integer labels ``(B,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), targets)


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example mean squared error; ``outputs`` are reshaped to the targets' shape (``(B, 1)`` for ``(B,)``)."""
    err = outputs.astype(jnp.float32).reshape(targets.shape) - targets.astype(jnp.float32)
    return jnp.mean(jnp.square(err).reshape(err.shape[0], -1), axis=1)


def token_cross_entropy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-token softmax cross-entropy of ``(B, T, V)`` scores against ``(B, T)`` integer targets; 0 where a
    target is negative (padding)."""
    valid = targets >= 0
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), jnp.where(valid, targets, 0))
    return jnp.where(valid, ce, 0.0)


def sequence_cross_entropy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-sequence mean token cross-entropy ``(B,)`` over the tokens that are not padding (0 for none)."""
    count = jnp.sum(targets >= 0, axis=1).astype(jnp.float32)
    return jnp.sum(token_cross_entropy(outputs, targets), axis=1) / jnp.maximum(count, 1.0)


_BUILTIN = {"cross_entropy": cross_entropy, "mse": mse}
_LN2 = float(np.log(2.0))


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A loss and its metrics (see the module docs). ``per_example``: the loss returns ``(B,)``.

    ``sequence``: integer targets ``(B, T)`` against outputs ``(B, T, V)`` (``num_outputs`` is ``V``);
    ``token_loss``: the built-in per-token loss of a sequence task (:func:`token_cross_entropy`), whose
    batch loss and evaluation are means over tokens; None for your own loss (means over sequences).
    ``classification`` is False on a sequence task: what chooses between runs is the loss (lower is
    better), and token ``accuracy`` is in :attr:`metrics` all the same.
    """

    name: str
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array]
    per_example: bool
    classification: bool
    regression: bool
    sequence: bool = False
    token_loss: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    num_outputs: int | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names an evaluation reports (``loss``, then ``accuracy`` or ``r2``; a sequence task:
        ``loss``, ``bits_per_token`` with the built-in loss, ``accuracy``)."""
        if self.sequence:
            return ("loss",) + (("bits_per_token",) if self.token_loss is not None else ()) + ("accuracy",)
        return ("loss",) + (("accuracy",) if self.classification else ()) + (("r2",) if self.regression else ())

    def check_outputs(self, outputs_shape: tuple[int, ...], targets_shape: tuple[int, ...]) -> None:
        """A :class:`ConfigError` when a model's outputs (``outputs_shape``, batch axis included) do not fit
        targets of ``targets_shape`` on a sequence task (they must be ``(B, T, num_outputs)``)."""
        if not self.sequence:
            return
        want = (*tuple(targets_shape), self.num_outputs)
        if tuple(outputs_shape) != want:
            raise ConfigError(f"loss {self.name!r} on token targets {tuple(targets_shape)} needs outputs (B, T, V) = "
                              f"{want} (one score per token of the vocabulary of {self.num_outputs} at every "
                              f"position), but the model gives {tuple(outputs_shape)}")

    def batch_loss(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """The scalar training loss of a batch (the mean of per-example losses; over the tokens that are not
        padding with the built-in loss of a sequence task)."""
        if self.token_loss is not None:
            count = jnp.sum(targets >= 0).astype(jnp.float32)
            return jnp.sum(self.token_loss(outputs, targets)) / jnp.maximum(count, 1.0)
        out = self.loss_fn(outputs, targets)
        return jnp.mean(out.astype(jnp.float32)) if self.per_example else jnp.asarray(out, jnp.float32)

    def example_losses(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Per-example losses ``(B,)`` (a mean-returning loss is applied to one example at a time)."""
        if self.per_example:
            return self.loss_fn(outputs, targets).astype(jnp.float32)
        one = lambda o, t: jnp.asarray(self.loss_fn(o[None], t[None]), jnp.float32)  # noqa: E731
        return jax.vmap(one)(outputs, targets)

    def train_metrics(self, outputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
        """Metrics of a training batch besides the loss (accuracy for classification; token accuracy over the
        tokens that are not padding for a sequence task)."""
        if self.sequence:
            valid = targets >= 0
            hits = jnp.sum((jnp.argmax(outputs, -1) == targets) & valid).astype(jnp.float32)
            return {"accuracy": hits / jnp.maximum(jnp.sum(valid).astype(jnp.float32), 1.0)}
        if self.classification:
            return {"accuracy": jnp.mean((jnp.argmax(outputs, -1) == targets).astype(jnp.float32))}
        return {}

    def eval_sums(self, outputs: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """Sums over the real (``mask == 1``) examples of a padded batch (and, for a sequence task, over their
        tokens that are not padding: ``tokens`` and ``correct`` count them; ``count`` is the loss's
        denominator, tokens with the built-in loss, sequences with yours)."""
        mask = mask.astype(jnp.float32)
        if self.sequence:
            return self._sequence_sums(outputs, targets, mask)
        losses = jnp.where(mask > 0, self.example_losses(outputs, targets), 0.0)  # padding may be non-finite
        sums = {"loss_sum": jnp.sum(losses), "count": jnp.sum(mask)}
        if self.classification:
            sums["correct"] = jnp.sum((jnp.argmax(outputs, -1) == targets).astype(jnp.float32) * mask)
        if self.regression:
            y = targets.astype(jnp.float32).reshape(targets.shape[0], -1)
            o = outputs.astype(jnp.float32).reshape(y.shape)
            m = mask[:, None]
            sums.update(sse=jnp.sum(jnp.square(o - y) * m, 0), sum_y=jnp.sum(y * m, 0),
                        sum_y2=jnp.sum(jnp.square(y) * m, 0))
        return sums

    def _sequence_sums(self, outputs: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        valid = (targets >= 0) & (mask[:, None] > 0)
        tokens = jnp.sum(valid).astype(jnp.float32)
        correct = jnp.sum((jnp.argmax(outputs, -1) == targets) & valid).astype(jnp.float32)
        if self.token_loss is not None:
            loss_sum = jnp.sum(jnp.where(valid, self.token_loss(outputs, targets), 0.0))
            count = tokens
        else:
            loss_sum = jnp.sum(jnp.where(mask > 0, self.example_losses(outputs, targets), 0.0))
            count = jnp.sum(mask)
        return {"loss_sum": loss_sum, "count": count, "tokens": tokens, "correct": correct}

    def summarize(self, sums: dict[str, Any]) -> dict[str, Any]:
        """Metrics from summed evaluation totals (device or host values)."""
        xp = jnp if isinstance(sums["count"], jax.Array) else np
        n = sums["count"]
        out = {"loss": sums["loss_sum"] / n}
        if self.sequence:
            if self.token_loss is not None:
                out["bits_per_token"] = out["loss"] / _LN2
            out["accuracy"] = sums["correct"] / sums["tokens"]
            return out
        if self.classification:
            out["accuracy"] = sums["correct"] / n
        if self.regression:
            sst = sums["sum_y2"] - xp.square(sums["sum_y"]) / n[..., None]
            r2 = 1.0 - sums["sse"] / xp.where(sst > 0, sst, xp.nan)
            out["r2"] = xp.mean(r2, axis=-1)
        return out


def make_task(loss: str | Callable, *, targets_dtype: Any, targets_shape: tuple[int, ...],
              num_outputs: int) -> Task:
    """The :class:`Task` of a loss (``"cross_entropy"``, ``"mse"``, ``"MODULE:NAME"`` or a function) for
    targets of ``targets_dtype`` and per-example shape ``targets_shape``, and ``num_outputs`` outputs.

    Integer targets with one axis, ``targets_shape=(T,)``, make a *sequence task* (tokens; outputs
    ``(T, num_outputs)`` per example). Raises :class:`ConfigError` when the loss does not fit the targets
    (float targets with ``cross_entropy``, class labels with ``mse``) or a function's result has the wrong
    shape.

    >>> t = make_task("cross_entropy", targets_dtype=jnp.int32, targets_shape=(16,), num_outputs=256)
    >>> t.sequence, t.metrics
    (True, ('loss', 'bits_per_token', 'accuracy'))
    """
    integer = np.dtype(targets_dtype).kind in "iu"
    targets_shape = tuple(int(s) for s in targets_shape)
    sequence = integer and len(targets_shape) == 1
    if isinstance(loss, str) and loss in _BUILTIN:
        if loss == "cross_entropy" and not integer:
            raise ConfigError("loss='cross_entropy' needs integer class labels, but the targets are floats "
                              f"({np.dtype(targets_dtype)}); regression targets train with loss: mse")
        if loss == "mse" and integer:
            raise ConfigError("loss='mse' needs float targets, but the targets are integer class labels; "
                              "use loss: cross_entropy (or store the targets as floats)")
        if sequence:
            return Task(loss, sequence_cross_entropy, True, False, False, sequence=True,
                        token_loss=token_cross_entropy, num_outputs=int(num_outputs))
        return Task(loss, _BUILTIN[loss], True, loss == "cross_entropy", loss == "mse")
    if isinstance(loss, str):
        fn, name = load_reference(loss, "loss"), loss
    elif callable(loss):
        fn, name = loss, getattr(loss, "__name__", "loss")
    else:
        raise TypeError(f"loss must be 'cross_entropy', 'mse', 'MODULE:NAME' or a function (outputs, targets) "
                        f"-> losses, got {loss!r}")
    batch = 4
    if sequence:
        out_shape: tuple[int, ...] = (batch, *targets_shape, num_outputs)
    else:
        out_shape = (batch, num_outputs) if integer else (batch, *targets_shape) if targets_shape else (batch, 1)
    try:
        res = jax.eval_shape(fn, jax.ShapeDtypeStruct(out_shape, jnp.float32),
                             jax.ShapeDtypeStruct((batch, *targets_shape), targets_dtype))
    except Exception as e:  # noqa: BLE001 - report whatever the user's function raised, with context
        raise ConfigError(f"loss {name!r} failed on outputs {out_shape} and targets {(batch, *targets_shape)}: "
                          f"{type(e).__name__}: {e}") from e
    shape = getattr(res, "shape", None)
    if shape not in ((batch,), ()):
        what = "per-sequence" if sequence else "per-example"
        raise ConfigError(f"loss {name!r} must return {what} losses (B,) or their mean (a scalar); on outputs "
                          f"{out_shape} and targets {(batch, *targets_shape)} it returned {type(res).__name__} of "
                          f"shape {shape}")
    if sequence:
        return Task(name, fn, shape == (batch,), False, False, sequence=True, num_outputs=int(num_outputs))
    classification = integer and not targets_shape and num_outputs > 1
    regression = not integer and num_outputs == int(np.prod(targets_shape or (1,)))
    return Task(name, fn, shape == (batch,), classification, regression)
