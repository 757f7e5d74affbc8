"""lrjax._yaml: YAML 1.2 numbers (1e-3 is a number), everything else as yaml.safe_load reads it."""

from __future__ import annotations

import datetime
import io
import math

import pytest
import yaml

import lrjax
from lrjax import _yaml

# text -> the number YAML 1.2 (and lrjax) reads; PyYAML's safe_load reads some of them as text
NUMBERS = {
    "1e-3": 1e-3, "3E-4": 3e-4, "1e3": 1000.0, "1E+3": 1000.0, "-2e-5": -2e-5, "+1.5e3": 1500.0,
    ".5": 0.5, "-.5": -0.5, "+.5": 0.5, ".5e-3": 5e-4, "1.": 1.0, "1.5": 1.5, "-2.5": -2.5, "0.001": 1e-3,
    "1.0e-05": 1e-5, "1_000.5": 1000.5, "6.02e23": 6.02e23, "0.0": 0.0, "-0.0": -0.0,
    "1e400": math.inf, "007.5": 7.5,
}
INTS = {
    "0": 0, "-2": -2, "+7": 7, "42": 42, "1_000": 1000, "1_000_000": 10**6, "007": 7, "-0": 0,
    "0x1F": 31, "0x1f": 31, "-0x10": -16, "0o17": 15, "0b101": 5, "12345678901234567890": 12345678901234567890,
}
SPECIAL = {".inf": math.inf, ".Inf": math.inf, ".INF": math.inf, "+.inf": math.inf, "-.inf": -math.inf,
           "-.Inf": -math.inf}
NANS = [".nan", ".NaN", ".NAN"]
# text that must stay text (some of it YAML 1.1 read as numbers: 1:30 was 90, 017 octal 15)
TEXT = ["1e-3x", "10%", "3 epochs", "1-sqrt", "exp", "e3", "1e", "1e-", ".e3", ".", "+", "_1", "1_",
        "1__0", "1_.5", "inf", "-inf", "nan", "NaN", "1:30", "190:20:30", "0x", "0xZ", "0o8", "0b2",
        "1.5.2", "1,000", "5e-3s", "2k", "1/3", "--1", "+-1", "1e3.5", "0x1.8p3", "∞", "١٢", "1 000"]


@pytest.mark.parametrize("text,want", sorted(NUMBERS.items()))
def test_floats_every_way_people_write_them(text, want):
    got = _yaml.load(f"x: {text}")["x"]
    assert type(got) is float and got == want, (text, got)
    assert math.copysign(1.0, got) == math.copysign(1.0, want)


@pytest.mark.parametrize("text,want", sorted(INTS.items()))
def test_ints_stay_ints(text, want):
    got = _yaml.load(f"x: {text}")["x"]
    assert type(got) is int and got == want, (text, got)


@pytest.mark.parametrize("text,want", sorted(SPECIAL.items()))
def test_infinities(text, want):
    assert _yaml.load(f"[{text}]") == [want]


@pytest.mark.parametrize("text", NANS)
def test_nan(text):
    got = _yaml.load(f"x: {text}")["x"]
    assert type(got) is float and math.isnan(got)


@pytest.mark.parametrize("text", TEXT)
def test_text_that_only_looks_numeric_stays_text(text):
    assert _yaml.load(f"x: {text}") == {"x": text}


def test_quoted_numbers_are_text():
    assert _yaml.load("a: '1e-3'\nb: \"7\"\nc: !!str 1.5") == {"a": "1e-3", "b": "7", "c": "1.5"}


def test_explicit_tags_still_work():
    assert _yaml.load("a: !!float 1\nb: !!int '12'") == {"a": 1.0, "b": 12}


def test_the_rest_is_safe_load():
    text = "a: true\nb: no\nc: null\nd: ~\ne: 2024-01-02\nf: [1, {g: h}]\ni: hello world\n"
    assert _yaml.load(text) == yaml.safe_load(text) == {
        "a": True, "b": False, "c": None, "d": None, "e": datetime.date(2024, 1, 2), "f": [1, {"g": "h"}],
        "i": "hello world"}
    with pytest.raises(yaml.constructor.ConstructorError):  # safe: no Python objects
        _yaml.load("!!python/object/apply:os.system ['true']")


def test_pyyaml_itself_is_unchanged():
    # the resolvers were copied, not edited in place: yaml.safe_load keeps YAML 1.1
    _yaml.load("x: 1e-3")
    assert yaml.safe_load("x: 1e-3") == {"x": "1e-3"}
    assert yaml.safe_load("x: 1:30") == {"x": 90}
    assert yaml.safe_dump("1e-3") == "1e-3\n...\n"


def test_streams_and_bytes():
    assert _yaml.load(io.StringIO("peak: 1e-3\n")) == {"peak": 1e-3}
    assert _yaml.load(b"peak: 3E-4\n") == {"peak": 3e-4}
    assert _yaml.load("") is None


def test_round_trip_through_dump():
    data = {"name": "cosine_decay", "peak": 1e-3, "tiny": 1e-30, "big": 1e30, "steps": 1000, "neg": -2,
            "text": ["1e-3", "3E-4", ".5", "1_000", "007", "0x1F", ".inf", "1e-3x", "10%", "1-sqrt", "1:30"],
            "inf": math.inf, "ninf": -math.inf, "flag": True, "none": None, "nested": [{"a": 0.1}, [2.5e-7]]}
    text = _yaml.dump(data)
    assert _yaml.load(text) == data
    assert list(_yaml.load(text)) == list(data)  # key order kept
    assert math.isnan(_yaml.load(_yaml.dump({"x": math.nan}))["x"])
    # numbers are written so that YAML 1.1 readers get numbers too; number-like text is quoted for both
    assert yaml.safe_load(text) == data
    out = io.StringIO()
    assert _yaml.dump({"peak": 1e-5}, out) is None and out.getvalue() == "peak: 1.0e-05\n"


def test_every_schedule_spec_round_trips_through_dump_and_load():
    s = lrjax.Warmup(lrjax.CosineDecay(peak=3e-4, decay_steps=9000, floor=1e-7), warmup_steps=1000)
    back = lrjax.from_spec(_yaml.load(_yaml.dump(lrjax.to_spec(s))))
    assert lrjax.to_spec(back) == lrjax.to_spec(s)


def test_load_spec_reads_exponents_without_a_dot(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("schedule:\n  name: cosine_decay\n  peak: 1e-3\n  decay_steps: 1_000\n  floor: 1E-5\n")
    s = lrjax.load_spec(str(p))
    assert isinstance(s, lrjax.CosineDecay)
    assert float(s.peak) == pytest.approx(1e-3) and float(s.floor) == pytest.approx(1e-5)
    assert float(s.decay_steps) == 1000.0


def test_a_number_as_text_is_still_refused_by_from_spec():
    # the loader gives numbers; from_spec never turns text into a number
    with pytest.raises(TypeError, match=r"CosineDecay: peak must be a number.*got peak='1e-3'.*without quotes"):
        lrjax.from_spec(yaml.safe_load("name: cosine_decay\npeak: 1e-3\ndecay_steps: 10"))
    assert float(lrjax.from_spec(_yaml.load("name: cosine_decay\npeak: 1e-3\ndecay_steps: 10")).peak) == \
        pytest.approx(1e-3)


def test_float32_values_are_written_as_their_shortest_decimal():
    import numpy as np

    rate = float(np.float32(3e-3))          # 0.003000000026077032: a rate lrjax computed
    text = _yaml.dump({"peak": rate, "third": 1 / 3, "tenth": 0.1, "huge": 1e300,
                       "arr": np.array([0.1, 2.5], np.float32)})
    assert text.splitlines()[:4] == ["peak: 0.003", "third: 0.3333333333333333", "tenth: 0.1", "huge: 1.0e+300"]
    back = _yaml.load(text)
    assert np.float32(back["peak"]) == np.float32(rate) and back["third"] == 1 / 3  # float32 exact; float64 as is
    assert back["arr"] == [0.1, 2.5]
