"""What a model is trained to do: its loss, and the metrics that follow from it.

A :class:`Task` wraps a loss function ``loss(outputs, targets)`` returning per-example losses ``(B,)`` or
their mean (a scalar), and knows which metrics make sense:

* ``cross_entropy`` — softmax cross-entropy with integer labels; metrics: loss and accuracy
  (:math:`\\frac1N\\sum_i [\\arg\\max_c o_{ic} = y_i]`).
* ``mse`` — mean squared error over each example's targets, :math:`\\ell_i = \\frac1T\\sum_t (o_{it}-y_{it})^2`;
  metrics: loss, and in evaluations the coefficient of determination
  :math:`R^2 = \\frac1T\\sum_t \\big(1 - \\frac{\\sum_i (o_{it}-y_{it})^2}{\\sum_i (y_{it}-\\bar y_t)^2}\\big)`
  (scikit-learn's ``r2_score``, uniform average over targets).
* your own function (``loss: "MODULE:NAME"`` or ``loss=`` in Python): metrics: loss, plus accuracy when
  the targets are integer labels and the outputs ``(B, C)`` scores, plus R² when the targets are floats of
  the outputs' size.

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
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax.engine._config import ConfigError

__all__ = ["Task", "make_task", "cross_entropy", "mse"]


def cross_entropy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy of scores ``(B, C)`` against integer labels ``(B,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), targets)


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example mean squared error; ``outputs`` are reshaped to the targets' shape (``(B, 1)`` for ``(B,)``)."""
    err = outputs.astype(jnp.float32).reshape(targets.shape) - targets.astype(jnp.float32)
    return jnp.mean(jnp.square(err).reshape(err.shape[0], -1), axis=1)


_BUILTIN = {"cross_entropy": cross_entropy, "mse": mse}


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A loss and its metrics (see the module docs). ``per_example``: the loss returns ``(B,)``."""

    name: str
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array]
    per_example: bool
    classification: bool
    regression: bool

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names an evaluation reports (``loss``, then ``accuracy`` or ``r2``)."""
        return ("loss",) + (("accuracy",) if self.classification else ()) + (("r2",) if self.regression else ())

    def batch_loss(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """The scalar training loss of a batch (the mean of per-example losses)."""
        out = self.loss_fn(outputs, targets)
        return jnp.mean(out.astype(jnp.float32)) if self.per_example else jnp.asarray(out, jnp.float32)

    def example_losses(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Per-example losses ``(B,)`` (a mean-returning loss is applied to one example at a time)."""
        if self.per_example:
            return self.loss_fn(outputs, targets).astype(jnp.float32)
        one = lambda o, t: jnp.asarray(self.loss_fn(o[None], t[None]), jnp.float32)  # noqa: E731
        return jax.vmap(one)(outputs, targets)

    def train_metrics(self, outputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
        """Metrics of a training batch besides the loss (accuracy for classification)."""
        if self.classification:
            return {"accuracy": jnp.mean((jnp.argmax(outputs, -1) == targets).astype(jnp.float32))}
        return {}

    def eval_sums(self, outputs: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """Sums over the real (``mask == 1``) examples of a padded batch."""
        mask = mask.astype(jnp.float32)
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

    def summarize(self, sums: dict[str, Any]) -> dict[str, Any]:
        """Metrics from summed evaluation totals (device or host values)."""
        xp = jnp if isinstance(sums["count"], jax.Array) else np
        n = sums["count"]
        out = {"loss": sums["loss_sum"] / n}
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

    Raises :class:`ConfigError` when the loss does not fit the targets (float targets with
    ``cross_entropy``, class labels with ``mse``) or a function's result has the wrong shape.
    """
    integer = np.dtype(targets_dtype).kind in "iu"
    if isinstance(loss, str) and loss in _BUILTIN:
        if loss == "cross_entropy" and not integer:
            raise ConfigError("loss='cross_entropy' needs integer class labels, but the targets are floats "
                              f"({np.dtype(targets_dtype)}); regression targets train with loss: mse")
        if loss == "mse" and integer:
            raise ConfigError("loss='mse' needs float targets, but the targets are integer class labels; "
                              "use loss: cross_entropy (or store the targets as floats)")
        return Task(loss, _BUILTIN[loss], True, loss == "cross_entropy", loss == "mse")
    if isinstance(loss, str):
        from lrjax.engine._models import load_reference

        fn, name = load_reference(loss, "loss"), loss
    elif callable(loss):
        fn, name = loss, getattr(loss, "__name__", "loss")
    else:
        raise TypeError(f"loss must be 'cross_entropy', 'mse', 'MODULE:NAME' or a function (outputs, targets) "
                        f"-> losses, got {loss!r}")
    batch = 4
    out_shape = (batch, num_outputs) if integer else (batch, *targets_shape) if targets_shape else (batch, 1)
    try:
        res = jax.eval_shape(fn, jax.ShapeDtypeStruct(out_shape, jnp.float32),
                             jax.ShapeDtypeStruct((batch, *targets_shape), targets_dtype))
    except Exception as e:  # noqa: BLE001 - report whatever the user's function raised, with context
        raise ConfigError(f"loss {name!r} failed on outputs {out_shape} and targets {(batch, *targets_shape)}: "
                          f"{type(e).__name__}: {e}") from e
    shape = getattr(res, "shape", None)
    if shape not in ((batch,), ()):
        raise ConfigError(f"loss {name!r} must return per-example losses (B,) or their mean (a scalar); on a batch "
                          f"of {batch} it returned {type(res).__name__} of shape {shape}")
    classification = integer and not targets_shape and num_outputs > 1
    regression = not integer and num_outputs == int(np.prod(targets_shape or (1,)))
    return Task(name, fn, shape == (batch,), classification, regression)
