"""``strategy: grid`` (the default): every configuration trains to the end; nothing is decided during the
run, and the validation split ranks them at the end."""

from __future__ import annotations

from lrjax.sweep.strategies._base import Strategy, register

__all__ = ["Grid"]


@register
class Grid(Strategy):
    """Every configuration to the end (no decision points)."""

    name = "grid"
    selects = False  # ranked at the end only; a sweep still holds out a validation split for that
    one_length = False
