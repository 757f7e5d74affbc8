"""Suggestions on synthetic curves whose answer is known (pure numpy)."""

import numpy as np
import pytest

from lrjax.finder import minimum, steepest, suggest, valley

LRS = np.logspace(-5, 0, 60)
X = np.log10(LRS)


def sigmoid_drop(center: float) -> np.ndarray:
    """A loss falling from 2 to 1 around log10(lr) = center, steepest exactly there."""
    return 1.0 + 1.0 / (1.0 + np.exp(6.0 * (X - center)))


def test_steepest_finds_the_centre_of_the_drop():
    s = steepest(LRS, sigmoid_drop(-3.0))
    assert s.ok and s.message == ""
    assert abs(np.log10(s.lr) - (-3.0)) <= 0.09  # within one grid point (grid step 5/59)
    assert s.lr == LRS[s.index] and s.loss == pytest.approx(sigmoid_drop(-3.0)[s.index])


def test_steepest_skips_start_end_and_non_finite_points():
    loss = sigmoid_drop(-3.0)
    loss[:4] = [10.0, 0.0, 10.0, 0.0]  # a wild start that the default skip (10%: 6 points) drops
    loss[30] = np.nan
    loss[-1] = -100.0  # the last point is skipped
    s = steepest(LRS, loss)
    assert s.ok and 4 <= s.index < 59 and abs(np.log10(s.lr) + 3.0) <= 0.09
    # without skipping, the plunge at the end wins
    assert steepest(LRS, loss, skip_start=0, skip_end=0).index == 59


def test_minimum_is_lowest_loss_over_ten():
    loss = (X + 2.0) ** 2  # lowest at lr = 1e-2
    m = minimum(LRS, loss)
    i = int(np.argmin(loss))
    assert m.index == i and m.lr == pytest.approx(LRS[i] / 10) and m.loss == loss[i]
    assert minimum(LRS, loss, factor=4.0).lr == pytest.approx(LRS[i] / 4)


def test_valley_is_one_half_into_the_longest_decreasing_run():
    loss = np.array([5, 5, 4.9, 4.5, 4, 3, 2, 1.5, 1.2, 1.1, 3, 8, 20.0])
    lrs = np.logspace(-4, 0, loss.size)
    v = valley(lrs, loss)
    # longest decreasing run: indices 0..9, span 9 -> 0 + 9//3 + 9//6 = 4
    assert v.index == 4 and v.lr == lrs[4]


def test_valley_follows_a_non_contiguous_decreasing_run():
    # a blip inside the descent: the run skips it
    loss = np.array([9, 8, 7, 7.5, 6, 5, 4, 3, 2, 1, 50.0])
    v = valley(np.logspace(-3, 0, loss.size), loss)
    # run 0,1,2,4,...,9: first 0, last 9 -> index 4
    assert v.index == 4


@pytest.mark.parametrize("rule", [steepest, minimum, valley])
def test_flat_curve_gives_a_message_not_a_number(rule):
    s = rule(LRS, np.full(LRS.size, 3.0) + 1e-6 * np.sin(np.arange(LRS.size)))
    assert not s.ok and s.lr is None and "too flat" in s.message


@pytest.mark.parametrize("rule", [steepest, minimum, valley])
def test_short_curve_gives_a_message_not_a_number(rule):
    s = rule(LRS[:4], [3.0, 2.0, 1.0, 9.0])
    assert not s.ok and "too short" in s.message and "num_steps" in s.message


@pytest.mark.parametrize("rule", [steepest, minimum, valley])
def test_all_non_finite_curve_is_too_short(rule):
    s = rule(LRS, np.full(LRS.size, np.nan))
    assert not s.ok and "too short: 0 usable" in s.message


def test_rising_curve_has_no_steepest_descent_nor_minimum():
    loss = 1.0 + np.exp(X)
    assert "never decreases" in steepest(LRS, loss).message
    assert "never decreases" in minimum(LRS, loss).message
    assert not valley(LRS, loss).ok


def test_suggest_runs_each_method_and_rejects_unknown_names():
    out = suggest(LRS, sigmoid_drop(-2.0))
    assert list(out) == ["steepest", "minimum", "valley"] and all(s.ok for s in out.values())
    assert list(suggest(LRS, sigmoid_drop(-2.0), "valley")) == ["valley"]
    with pytest.raises(ValueError, match=r"got 'steep'.*did you mean 'steepest'"):
        suggest(LRS, sigmoid_drop(-2.0), ["steep"])


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match=r"len\(lrs\)=60 and len\(losses\)=3"):
        steepest(LRS, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="factor must be > 0, got factor=0"):
        minimum(LRS, sigmoid_drop(-2.0), factor=0)


def test_suggestion_str_and_dict():
    s = steepest(LRS, sigmoid_drop(-3.0))
    assert str(s).startswith("steepest: lr=") and s.to_dict()["lr"] == s.lr
    f = steepest(LRS, np.ones(LRS.size))
    assert str(f).startswith("steepest: no suggestion — the curve is too flat")


def test_a_fall_smaller_than_the_batch_noise_is_flat():
    from lrjax.finder import loss_noise

    rng = np.random.default_rng(0)
    raw = 2.3 + 0.12 * rng.normal(size=LRS.size)  # no learning, only batch noise
    avg, sm = 0.0, []
    for i, x in enumerate(raw):  # the range test's bias-corrected EMA
        avg = 0.98 * avg + 0.02 * x
        sm.append(avg / (1 - 0.98 ** (i + 1)))
    assert loss_noise(raw) == pytest.approx(0.12, rel=0.3)
    assert steepest(LRS, sm).ok  # without the noise level, a wobble passes for a descent
    out = suggest(LRS, sm, raw=raw)
    assert all(not s.ok and "less than the batch-to-batch noise" in s.message for s in out.values())
    # a real descent passes the same noise test
    learn = sigmoid_drop(-3.0)
    assert all(s.ok for s in suggest(LRS, learn, raw=learn + 0.05 * rng.normal(size=LRS.size)).values())


def test_steepest_reads_the_descent_not_the_unstable_part_past_the_minimum():
    loss = sigmoid_drop(-3.0)                                   # 2 -> 1 around 1e-3: the descent
    past = X > -1.0
    loss[past] = 1.0 + 4.0 * (X[past] + 1.0)                   # past 1e-1 the loss climbs ...
    loss[X > -0.5] -= 1.5                                       # ... with a sharp fall inside the climb
    i_min = int(np.argmin(loss))
    assert X[i_min] < -0.5 and np.argmin(np.gradient(loss, X)) > i_min  # the sharpest fall is past the minimum
    s = steepest(LRS, loss)
    assert abs(np.log10(s.lr) + 3.0) <= 0.09


def test_the_default_smoothing_lags_a_tenth_of_the_sweep():
    from lrjax.finder import default_smoothing

    for n in (40, 100, 1000):
        beta = default_smoothing(n)
        j = np.arange(200 * n)
        weights = (1 - beta) * beta**j                          # the EMA's weight on the loss j updates ago
        assert np.sum(j * weights) == pytest.approx(n / 10, rel=1e-6)
        assert np.sum(weights**2) == pytest.approx(1 / (1 + n / 5), rel=1e-6)  # noise variance kept
    assert default_smoothing(100) == pytest.approx(0.909, abs=1e-3)


def test_minimum_says_it_is_a_tenth_of_the_minimums_rate():
    from lrjax.finder import Suggestion

    m = minimum(LRS, (X + 2.0) ** 2)
    assert m.label == "minimum/10" and str(m).startswith(f"minimum/10: lr={m.lr:.3g} (a tenth of {10 * m.lr:.3g}, "
                                                         "the rate at the lowest smoothed loss")
    assert str(Suggestion("minimum", None, message="too flat")) == "minimum/10: no suggestion — too flat"
    assert steepest(LRS, sigmoid_drop(-3.0)).label == "steepest"
