"""lrjax.compat.transformers against Hugging Face's numbers (tests/golden/transformers.json):
every step, rtol 1e-5 + atol 1e-6 x peak."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_vectors import load

import lrjax
from lrjax.compat.transformers import SCHEDULER_NAMES, get_scheduler

GOLDEN, CASES, PLATEAU, ERRORS = load("transformers", is_plateau=lambda c: c["scheduler"] == "reduce_lr_on_plateau")


def build(case):
    return get_scheduler(case["scheduler"], case["learning_rate"], num_warmup_steps=case["num_warmup_steps"],
                         num_training_steps=case["num_training_steps"],
                         scheduler_specific_kwargs=case["scheduler_specific_kwargs"])



@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_hugging_face_at_every_step(name, assert_matches):
    case = CASES[name]
    sched = build(case)
    assert isinstance(sched, lrjax.Schedule)
    assert_matches(sched(np.arange(len(case["lr_values"]))), case["lr_values"], name)


def test_every_name_is_covered_and_runs_three_lengths():
    names = {c["scheduler"] for c in GOLDEN["cases"]}
    assert names == set(SCHEDULER_NAMES)
    for name, case in CASES.items():
        length = max(case["num_training_steps"] or 0, case["num_warmup_steps"] or 0, 1)
        if case["scheduler"] == "inverse_sqrt":
            length = max(case["num_warmup_steps"], 100)
        assert len(case["lr_values"]) >= min(3 * length, 300) or case["scheduler"] == "constant", name


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_raises_where_hugging_face_raises(name):
    with pytest.raises(ValueError, match=r"\w"):
        build(ERRORS[name])


def test_plateau_matches_hugging_face(assert_matches):
    case = PLATEAU["plateau"]
    tx = lrjax.inject(optax.adamw, learning_rate=case["learning_rate"], plateau=build(case))
    state = tx.init(jnp.zeros(1))

    def one(state, metric):
        state = lrjax.observe_metric(state, metric)
        return state, lrjax.current_hyperparams(state)["learning_rate"]

    _, rates = jax.lax.scan(one, state, jnp.asarray(case["metrics"], jnp.float32))
    assert_matches(rates, case["lr_values"], "plateau")


def test_native_equivalent_in_the_spec():
    spec = lrjax.to_spec(get_scheduler("warmup_stable_decay", 1e-3, 10, 100, {"num_decay_steps": 20}))
    assert spec["name"] == "warmup_stable_decay" and spec["stable_steps"] == 70
    spec = lrjax.to_spec(get_scheduler("cosine", 1e-3, 10, 100))
    assert spec["name"] == "warmup" and spec["schedule"]["periodic"] is True


def test_unknown_kwargs_and_greedy_are_refused():
    with pytest.raises(TypeError, match="num_cycle"):
        get_scheduler("cosine", 1e-3, 10, 100, {"num_cycle": 2})
    with pytest.raises(ValueError, match="greedy"):
        get_scheduler("greedy", 1e-3)
