"""Shared by the compat tests: the golden-vector tolerance, in one place."""

import numpy as np
import pytest


def _assert_matches(got, want, what):
    """Every step within rtol 1e-5 plus atol 1e-6 x the run's peak (float32 against the originals)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    peak = np.max(np.abs(want))
    bad = np.abs(got - want) > 1e-5 * np.abs(want) + 1e-6 * peak
    assert not bad.any(), f"{what}: first mismatch at step {np.argmax(bad)}: lrjax {got[bad][:3]} vs {want[bad][:3]}"


@pytest.fixture(scope="session")
def assert_matches():
    return _assert_matches
