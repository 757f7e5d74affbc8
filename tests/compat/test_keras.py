"""lrjax.compat.keras against keras's own numbers (tests/golden/keras.json, made by
tests/golden/generate.py): every step, rtol 1e-5 + atol 1e-6 x peak."""

import json
from pathlib import Path

import numpy as np
import pytest

import lrjax
from lrjax.compat import keras as compat

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "keras.json").read_text())
CASES = {c["name"]: c for c in GOLDEN["cases"]}
ERRORS = {e["name"]: e for e in GOLDEN["errors"]}


def build(case):
    args = (case["lr"],) if "lr" in case else ()
    return getattr(compat, case["class"])(*args, **case["kwargs"])



@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_at_every_step(name, assert_matches):
    case = CASES[name]
    sched = build(case)
    assert isinstance(sched, lrjax.Schedule)
    assert_matches(sched(np.arange(len(case["lr_values"]))), case["lr_values"], name)


def test_every_class_is_covered():
    assert {c["class"] for c in GOLDEN["cases"]} == set(compat.__all__)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_raises_where_the_original_raises(name):
    with pytest.raises(ValueError, match=r"\w+: "):
        build(ERRORS[name])
