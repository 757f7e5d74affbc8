"""The ramp injected into the user's optimizer with :func:`lrjax.inject`.

The schedule lives in the optimizer state; each update evaluates it at the
number of updates already applied, and records the value it used, which the
sweep reads back: the rate logged at index ``i`` is the rate applied at update ``i``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax


def inject_learning_rate(factory: Callable[..., Any], schedule: Any):
    """``factory(learning_rate=schedule)`` with the schedule in the state (``lrjax.inject``)."""
    from lrjax.optim import inject

    return inject(factory, learning_rate=schedule)


def applied_learning_rate(opt_state: Any) -> jax.Array:
    """The learning rate the last update used (``lrjax.current_hyperparams``)."""
    from lrjax.optim import current_hyperparams

    hp = current_hyperparams(opt_state)
    rates = [v for k, v in hp.items() if k == "learning_rate" or k.endswith("/learning_rate")]
    if len(rates) != 1:
        raise ValueError(
            "range test: the optimizer state must hold exactly one injected learning_rate (lrjax.inject) so the "
            f"applied rate can be read back; found {len(rates)} among {sorted(hp) or 'none'}"
        )
    return rates[0]
