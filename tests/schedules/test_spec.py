"""Specs: nested dicts that survive YAML/JSON exactly, and errors that teach."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import lrjax


def test_nested_spec_is_plain_and_exact():
    s = lrjax.Warmup(lrjax.CosineDecay(peak=1e-3, decay_steps=900, floor=1e-5), warmup_steps=100)
    spec = lrjax.to_spec(s)
    assert spec == {
        "name": "warmup",
        "schedule": {"name": "cosine_decay", "peak": 0.001, "decay_steps": 900, "floor": 1e-05, "exponent": 1,
                     "floor_mode": "absolute", "periodic": False},
        "warmup_steps": 100, "init_value": 0, "shape": "linear", "prefix": True,  # target unset: left out
    }
    for text, load in ((yaml.safe_dump(spec), yaml.safe_load), (json.dumps(spec), json.loads)):
        back = lrjax.from_spec(load(text))
        ts = np.arange(0, 1200, 7)
        np.testing.assert_array_equal(back(ts), s(ts))


def test_sequence_of_three_round_trips():
    s = lrjax.Sequence(
        [lrjax.Linear(0.0, 0.1, 10), lrjax.Constant(0.1), lrjax.CosineDecay(0.1, 100, floor=0.1, floor_mode="relative")],
        boundaries=[10, 50],
    )
    spec = lrjax.to_spec(s)
    assert [c["name"] for c in spec["schedules"]] == ["linear", "constant", "cosine_decay"]
    assert spec["boundaries"] == [10, 50]
    back = lrjax.from_spec(yaml.safe_load(yaml.safe_dump(spec)))
    np.testing.assert_array_equal(back(np.arange(200)), s(np.arange(200)))


def test_defaults_may_be_left_out():
    s = lrjax.from_spec({"name": "one_cycle", "max_lr": 0.1, "total_steps": 1000})
    assert float(s.pct_start) == pytest.approx(0.3) and s.anneal_strategy == "cos"


def test_unknown_name_lists_choices_and_suggests():
    with pytest.raises(ValueError, match=r"spec: unknown schedule name 'cosine_decy' \(did you mean 'cosine_decay'\?\); valid names: .*constant.*warmup_stable_decay"):
        lrjax.from_spec({"name": "cosine_decy", "peak": 1.0})


def test_unknown_key_lists_choices_and_suggests():
    with pytest.raises(ValueError, match=r"unknown key 'decay_step' for schedule 'cosine_decay' \(did you mean 'decay_steps'\?\); valid keys: peak, decay_steps, floor"):
        lrjax.from_spec({"name": "cosine_decay", "peak": 1.0, "decay_step": 10})


def test_nested_errors_say_where():
    spec = {"name": "warmup", "warmup_steps": 10, "schedule": {"name": "cosine", "peak": 1.0}}
    with pytest.raises(ValueError, match=r"spec\.schedule: unknown schedule name 'cosine' \(did you mean"):
        lrjax.from_spec(spec)
    spec = {"name": "sequence", "boundaries": [5], "schedules": [{"name": "constant"}, {"name": "linear", "init": 0}]}
    with pytest.raises(ValueError, match=r"spec\.schedules\[1\]: unknown key 'init'"):
        lrjax.from_spec(spec)


def test_missing_name_and_missing_required_keys():
    with pytest.raises(ValueError, match=r"needs a 'name' key, one of: .*cosine_decay"):
        lrjax.from_spec({"peak": 1.0})
    with pytest.raises(ValueError, match=r"schedule 'cosine_decay' needs 'decay_steps'"):
        lrjax.from_spec({"name": "cosine_decay", "peak": 1.0})
    with pytest.raises(TypeError, match=r"must be a mapping with a 'name' key, got 3"):
        lrjax.from_spec(3)


def test_bad_values_in_a_spec_are_the_constructor_errors():
    with pytest.raises(ValueError, match=r"OneCycle: pct_start must be in"):
        lrjax.from_spec({"name": "one_cycle", "max_lr": 1.0, "total_steps": 100, "pct_start": 2})
    with pytest.raises(ValueError, match=r"floor_mode must be one of .*did you mean 'relative'"):
        lrjax.from_spec({"name": "cosine_decay", "peak": 1.0, "decay_steps": 10, "floor_mode": "relativ"})


def test_load_spec_reads_yaml_files(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("schedule:\n  name: step_decay\n  init_value: 0.1\n  step_size: 30\n")
    s = lrjax.load_spec(str(p))
    assert isinstance(s, lrjax.StepDecay) and float(s(30)) == pytest.approx(0.01)
    p.write_text("name: nope\n")
    with pytest.raises(ValueError, match=str(p)):
        lrjax.load_spec(str(p))


def test_to_spec_rejects_non_schedules():
    with pytest.raises(TypeError, match=r"to_spec expects an lrjax schedule, got function"):
        lrjax.to_spec(lambda t: t)


def test_several_schedules_are_a_list_one_schedule_is_a_mapping():
    spec = {"name": "product", "schedules": {"a": {"name": "constant"}, "b": {"name": "constant", "value": 0.5}}}
    with pytest.raises(TypeError, match=r"spec\.schedules: schedule 'product' takes a list of schedule specs for "
                                        r"'schedules' .*got a mapping with keys \['a', 'b'\]"):
        lrjax.from_spec(spec)
    with pytest.raises(TypeError, match=r"spec\.schedules: .*got a mapping with keys \['name'\]"):
        lrjax.from_spec({"name": "sequence", "schedules": {"name": "constant"}, "boundaries": []})
    with pytest.raises(TypeError, match=r"spec\.branches: schedule 'switch' takes a list .*got str 'constant'"):
        lrjax.from_spec({"name": "switch", "branches": "constant"})
    with pytest.raises(TypeError, match=r"spec\.schedule: schedule 'warmup' takes one schedule spec for "
                                        r"'schedule' \(a mapping with a 'name' key\), got a list of 1"):
        lrjax.from_spec({"name": "warmup", "warmup_steps": 3, "schedule": [{"name": "constant"}]})


def test_numbers_given_as_text_are_refused_not_converted():
    with pytest.raises(TypeError, match=r"CosineDecay: peak must be a number.*got peak='1e-3'.*without quotes"):
        lrjax.from_spec({"name": "cosine_decay", "peak": "1e-3", "decay_steps": 10})
    with pytest.raises(TypeError, match=r"milestones\[0\] is '10', a str"):
        lrjax.from_spec({"name": "multi_step", "init_value": 1.0, "milestones": ["10", 20]})
    with pytest.raises(TypeError, match=r"milestones\[0\] is True, a bool"):
        lrjax.from_spec({"name": "multi_step", "init_value": 1.0, "milestones": [True, 20]})
    with pytest.raises(ValueError, match=r"staircase must be one of False, True, got staircase='true'"):
        lrjax.from_spec({"name": "exponential", "init_value": 1.0, "decay_rate": 0.5, "staircase": "true"})


def test_load_spec_reads_yaml_1_2_numbers(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: multi_step\ninit_value: 1e-2\nmilestones: [1_000, 2e3]\ngamma: .5\n")
    s = lrjax.load_spec(str(p))
    assert float(s.init_value) == pytest.approx(1e-2) and s.milestones.tolist() == [1000.0, 2000.0]
    assert float(s.gamma) == 0.5


def test_repr_and_spec_show_numbers_as_written_and_hide_unset_values():
    s = lrjax.Warmup(lrjax.CosineDecay(peak=3e-3, decay_steps=900, floor=1e-5), warmup_steps=100)
    assert float(np.asarray(s.schedule.peak)) == 0.003000000026077032  # float32: what it computes with
    text = repr(s)
    assert text == ("Warmup(schedule=CosineDecay(peak=0.003, decay_steps=900, floor=1e-05, exponent=1, "
                    "floor_mode='absolute', periodic=False), warmup_steps=100, init_value=0, shape='linear', "
                    "prefix=True)")
    assert lrjax.to_spec(s)["schedule"]["peak"] == 0.003 and "target" not in lrjax.to_spec(s)
    set_ = lrjax.Warmup(lrjax.Constant(0.1), 10, target=0.05)  # a target that is set is shown
    assert "target=0.05" in repr(set_) and lrjax.to_spec(set_)["target"] == 0.05
    c = lrjax.Cyclic(0.1, 1.0, 10)
    assert "step_size_down" not in repr(c) and "step_size_down" not in lrjax.to_spec(c)
    assert "step_size_down=7" in repr(lrjax.Cyclic(0.1, 1.0, 10, 7))
    for sched in (s, set_, c, lrjax.Cyclic(0.1, 1.0, 10, 7)):  # the values never change
        back = lrjax.from_spec(yaml.safe_load(yaml.safe_dump(lrjax.to_spec(sched))))
        np.testing.assert_array_equal(back(np.arange(0, 1200, 7)), sched(np.arange(0, 1200, 7)))
    assert repr(lrjax.MultiStep(0.1, [300, 600], 0.3)) == "MultiStep(init_value=0.1, milestones=[300, 600], gamma=0.3)"


def test_a_lambda_reads_as_its_code():
    s = lrjax.Lambda(lambda t, decay: decay ** (t / 100), decay=0.7)
    assert repr(s) == "Lambda(fn=lambda t, decay: decay ** (t / 100), decay=0.7, scale=1)"
    def halving(t, every):  # a local function: kept as the object, shown by name
        return 0.5 ** (t / every)

    assert repr(lrjax.Lambda(halving, every=10)) == "Lambda(fn=halving(t, every), every=10, scale=1)"
    from lrjax.plot import describe, gallery_schedules

    assert all("0x" not in describe(x) for x in gallery_schedules().values())
    assert describe(s) == "Lambda(lambda t, decay: decay ** (t / 100), decay=0.7)"
