"""lrjax.plot: the figure holds the schedule's values, momentum goes on a twin axis, the gallery has every
family (the ``lrjax plot`` command: tests/cli/test_plot.py)."""

from __future__ import annotations

import numpy as np
import pytest

import lrjax
from lrjax.plot import companion_momentum, describe, gallery_schedules, plot_schedules


def _lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_plot_draws_the_schedule_values():
    s = lrjax.CosineDecay(1.0, 100, floor=0.1)
    fig = plot_schedules({"cos": s, "step": lrjax.StepDecay(1.0, 30, 0.5)}, steps=150, title="two")
    ax = fig.axes[0]
    lines = _lines(ax)
    assert set(lines) == {"cos", "step"} and ax.get_title() == "two"
    x, y = lines["cos"].get_data()
    np.testing.assert_array_equal(x, np.arange(150))
    np.testing.assert_allclose(y, s(np.arange(150)))
    assert len(fig.axes) == 1  # no momentum schedule: no twin axis


def test_momentum_of_one_cycle_goes_on_a_twin_axis():
    s = lrjax.OneCycle(1.0, 200)
    fig = plot_schedules(s)
    assert len(fig.axes) == 2
    (mline,) = fig.axes[1].get_lines()
    x, y = mline.get_data()
    np.testing.assert_allclose(y, s.momentum(x))
    assert x[-1] >= 200  # default steps cover the horizon
    assert len(plot_schedules(s, momentum=False).axes) == 1


def test_momentum_mapping_says_which_momentum_goes_with_which_label():
    one, const = lrjax.OneCycle(1.0, 200), lrjax.Constant(0.1)
    mom = lrjax.Cyclic(0.8, 0.9, 50).momentum
    fig = plot_schedules({"a": one, "b": const}, steps=100, momentum={"b": mom, "a": None})
    (line,) = fig.axes[1].get_lines()  # a's companion is not drawn: the mapping names none for it
    x, y = line.get_data()
    assert line.get_label() == "b momentum" and line.get_color() == _lines(fig.axes[0])["b"].get_color()
    np.testing.assert_allclose(y, mom(x))
    spec = {"name": "constant", "value": 0.9}  # a spec works too
    np.testing.assert_allclose(plot_schedules({"b": const}, 10, momentum={"b": spec}).axes[1].lines[0].get_ydata(), 0.9)
    assert len(plot_schedules({"a": one}, 10, momentum={}).axes) == 1
    assert companion_momentum(one) is not None and companion_momentum(const) is None


def test_inputs_sequence_spec_and_existing_axis():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    out = plot_schedules([lrjax.Constant(0.5), {"name": "constant", "value": 0.25}], steps=[0, 5, 10], ax=ax)
    assert out is fig
    ys = [ln.get_ydata() for ln in ax.get_lines()]
    np.testing.assert_allclose(ys, [[0.5] * 3, [0.25] * 3])
    with pytest.raises(TypeError, match=r"plot_schedules expects a schedule.*got int"):
        plot_schedules(3)
    with pytest.raises(ValueError, match=r"steps must be >= 1, got steps=0"):
        plot_schedules(lrjax.Constant(1.0), steps=0)


def test_gallery_has_every_family():
    names = {type(s).name for s in gallery_schedules().values()}
    core = {n for n, c in lrjax.registered_schedules().items() if c.__module__.startswith("lrjax.schedules")}
    assert core <= names, sorted(core - names)


def test_describe_lists_non_default_hyperparameters():
    assert describe(lrjax.OneCycle(1.0, 1000)) == "OneCycle(max_lr=1, total_steps=1000)"
    assert describe(lrjax.Warmup(lrjax.Constant(1.0), 10)) == "Warmup[Constant](warmup_steps=10)"
