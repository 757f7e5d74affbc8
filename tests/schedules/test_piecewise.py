"""PiecewiseConstant and Shift against direct definitions (Keras: values[i] for b[i-1] < t <= b[i])."""

from __future__ import annotations

import numpy as np
import pytest

import lrjax

T = np.arange(0, 60)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("bounds", [[10, 20, 35], [5], [7, 7, 30]])
def test_piecewise_constant(side, bounds):
    vals = [1.0, 0.5, 0.25, 0.1][: len(bounds) + 1]
    s = lrjax.PiecewiseConstant(bounds, vals, side=side)
    idx = [sum((t > b) if side == "left" else (t >= b) for b in bounds) for t in T]
    np.testing.assert_allclose(s(T), np.asarray(vals)[idx])


def test_shift():
    inner = lrjax.Linear(0.0, 1.0, 10)
    np.testing.assert_allclose(lrjax.Shift(inner, 3)(T), inner(T + 3))
