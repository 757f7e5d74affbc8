"""lrjax.plot: the figure holds the schedule's values, momentum goes on a twin axis, and
`lrjax plot` reads one spec, a list or a mapping, and fails cleanly on bad files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lrjax
from lrjax.plot import describe, gallery_schedules, main, plot_schedules


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


def test_cli_plots_spec_files(tmp_path, capsys):
    one = tmp_path / "one.yaml"
    one.write_text("name: one_cycle\nmax_lr: 0.1\ntotal_steps: 500\n")
    many = tmp_path / "many.yaml"
    many.write_text("warm: {name: warmup, warmup_steps: 10, schedule: {name: cosine_decay, peak: 1, decay_steps: 90}}\n"
                    "step: {name: step_decay, init_value: 1, step_size: 20}\n")
    lst = tmp_path / "list.yaml"
    lst.write_text("- {name: constant, value: 0.3}\n- {name: linear, init_value: 0, end_value: 1, steps: 50}\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("steps: 100\nschedule: {name: constant, value: 0.1}\n")
    out = tmp_path / "out.png"
    assert main([str(one), str(many), str(lst), str(cfg), "--steps", "300", "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote 6 schedule(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text,match",
    [
        ("name: cosine_decy\npeak: 1\n", r"BAD.yaml: unknown schedule name 'cosine_decy' \(did you mean 'cosine_decay'\?\)"),
        ("name: cosine_decay\npeak: 1\ndecay_step: 10\n", r"BAD.yaml: unknown key 'decay_step'.*did you mean 'decay_steps'"),
        ("name: [unclosed\n", r"BAD.yaml: not valid YAML"),
        ("42\n", r"BAD.yaml: expected a schedule spec"),
        ("name: one_cycle\nmax_lr: 1\ntotal_steps: 10\npct_start: 3\n", r"BAD.yaml: OneCycle: pct_start must be in"),
    ],
)
def test_cli_bad_spec_exit_2_names_the_path(tmp_path, capsys, text, match):
    bad = tmp_path / "BAD.yaml"
    bad.write_text(text)
    assert main([str(bad), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrjax plot: ") and "Traceback" not in err
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "x.png").exists()


def test_cli_missing_file_through_the_console_entry(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lrjax.cli", "plot", str(tmp_path / "nope.yaml")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert "nope.yaml: no such file" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_cli_without_spec_writes_the_gallery(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert (tmp_path / "lrjax-gallery.png").stat().st_size > 50_000
    assert "lrjax-gallery.png" in capsys.readouterr().out
