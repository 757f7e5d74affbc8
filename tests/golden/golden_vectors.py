"""The committed golden vectors (``<library>.json``, made by ``generate.py``), read by the compat tests.

``pyproject.toml`` puts this folder on ``sys.path`` for pytest, so a test imports it as ``golden_vectors``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import lrjax


def load(library: str, is_plateau: Callable[[dict], bool] = lambda case: False
         ) -> tuple[dict[str, Any], dict[str, dict], dict[str, dict], dict[str, dict]]:
    """``(golden, cases, plateau_cases, errors)`` of ``<library>.json``, each case dict keyed by its name;
    ``is_plateau`` sends metric-driven cases to ``plateau_cases`` instead of ``cases``."""
    golden = json.loads((Path(__file__).parent / f"{library}.json").read_text())
    cases = {c["name"]: c for c in golden["cases"] if not is_plateau(c)}
    plateau = {c["name"]: c for c in golden["cases"] if is_plateau(c)}
    errors = {e["name"]: e for e in golden["errors"]}
    return golden, cases, plateau, errors


def class_suite(compat: ModuleType, library: str) -> tuple[Callable, ...]:
    """The three tests of a compat module of scheduler classes built as ``Class([lr], **kwargs)``
    (keras, timm): every golden case matches at every step, every class has a case, and every input the
    original refuses raises a ``ValueError`` naming the argument."""
    golden, cases, _, errors = load(library)

    def build(case: dict) -> lrjax.Schedule:
        args = (case["lr"],) if "lr" in case else ()
        return getattr(compat, case["class"])(*args, **case["kwargs"])

    @pytest.mark.parametrize("name", sorted(cases))
    def test_matches_at_every_step(name, assert_matches):
        case = cases[name]
        sched = build(case)
        assert isinstance(sched, lrjax.Schedule)
        assert_matches(sched(np.arange(len(case["lr_values"]))), case["lr_values"], name)

    def test_every_class_is_covered():
        assert {c["class"] for c in golden["cases"]} == set(compat.__all__)

    @pytest.mark.parametrize("name", sorted(errors))
    def test_raises_where_the_original_raises(name):
        with pytest.raises(ValueError, match=r"\w+: "):
            build(errors[name])

    return test_matches_at_every_step, test_every_class_is_covered, test_raises_where_the_original_raises
