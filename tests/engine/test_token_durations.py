"""Tokens as a duration: "20M tokens" = steps x global batch x context tokens (K/M/B/G suffixes)."""

import pytest

import lrjax
from lrjax.engine._config import ConfigError, parse_duration, resolve_durations, schedule_of


@pytest.mark.parametrize("text, value, unit", [
    ("20M tokens", 20e6, "tokens"), ("5e6 tokens", 5e6, "tokens"), ("1 token", 1.0, "tokens"),
    ("1.5K tokens", 1500.0, "tokens"), ("2B tokens", 2e9, "tokens"), ("3g tokens", 3e9, "tokens"),
    ("1.5k steps", 1500.0, "steps"), ("60K examples", 6e4, "examples"), ("10%", 0.1, "fraction"),
])
def test_durations_take_tokens_and_thousand_suffixes(text, value, unit):
    assert parse_duration(text, "x") == pytest.approx((value, unit))


def test_a_suffix_is_for_counts_only():
    with pytest.raises(ConfigError, match=r"x='10k%': '10k' is not a number"):
        parse_duration("10k%", "x")
    with pytest.raises(ConfigError, match=r"'3 epochs', '500 steps', '60000 examples' or '20M tokens'"):
        parse_duration("20 megatokens", "x")


def test_to_steps_counts_tokens_per_update():
    # 20M / (32 x 2 x 4 x 128) = 610.35 -> 610 updates, rounded like examples (halves up)
    assert lrjax.to_steps(20e6, "tokens", batch_size=32, accumulation_steps=2, num_devices=4, context=128) == 610
    # the same as the examples they are: tokens / context
    for v in (1e5, 3.3e6, 123_456):
        assert (lrjax.to_steps(v, "tokens", batch_size=16, context=64)
                == lrjax.to_steps(v / 64, "examples", batch_size=16))
    assert lrjax.to_steps(1536, "tokens", batch_size=4, context=256) == 2  # 1.5 updates: halves up
    assert lrjax.to_steps(0, "tokens", batch_size=4, context=256) == 0
    with pytest.raises(ValueError, match=r"unit='tokens' needs context \(tokens per example\), got context=None"):
        lrjax.to_steps(1e6, "tokens", batch_size=32)
    with pytest.raises(ValueError, match=r"context must be an integer >= 1, got context=0"):
        lrjax.to_steps(1e6, "tokens", batch_size=32, context=0)
    with pytest.raises(ValueError, match=r"100 tokens is less than half an optimizer update of 256 tokens "
                                         r"\(context=64 × batch_size=4 × num_devices=1 × accumulation_steps=1\)"):
        lrjax.to_steps(100, "tokens", batch_size=4, context=64)


def test_schedules_resolve_token_durations_with_the_context():
    spec = {"name": "warmup", "warmup_steps": "131072 tokens",
            "schedule": {"name": "cosine_decay", "peak": 1e-3, "decay_steps": "1.5M tokens"}}
    out = resolve_durations(spec, total_steps=1000, batch_size=32, accumulation_steps=2, context=128)
    assert out["warmup_steps"] == 16 and out["schedule"]["decay_steps"] == round(1.5e6 / 8192)
    # before the batch size is known (config checks): a placeholder, as for epochs
    assert resolve_durations("20M tokens", total_steps=10, context=128) == 1
    sched = schedule_of({"name": "linear", "init_value": 1.0, "end_value": 0.0, "steps": "65536 tokens"},
                        "schedule", total_steps=100, batch_size=8, context=128)
    assert float(sched(32)) == pytest.approx(0.5)  # 65536 tokens = 64 steps of 8 x 128


def test_a_token_duration_without_a_context_names_the_key():
    spec = {"name": "warmup", "warmup_steps": "1M tokens", "schedule": {"name": "constant", "value": 1e-3}}
    with pytest.raises(ConfigError, match=r"schedule.warmup_steps='1M tokens': a duration in tokens needs the "
                                          r"tokens per example \(data.context"):
        resolve_durations(spec, total_steps=100, batch_size=32)
    with pytest.raises(ConfigError, match=r"schedule.warmup_steps='1M tokens': a duration in tokens needs"):
        resolve_durations(spec, total_steps=100)  # also before the batch size is known
