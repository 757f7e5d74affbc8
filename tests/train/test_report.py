"""The run's figure and summary, read back from a run directory (no training: the files are written here)."""

import json

import numpy as np
import pytest

from lrjax.train._report import format_summary, run_figure, run_title


def _run_dir(tmp_path, lrs, momenta, name="digits-mlp-sgd-one_cycle"):
    d = tmp_path / "20250101-000000-run"
    d.mkdir()
    rows = []
    for i, (lr, m) in enumerate(zip(lrs, momenta)):
        rows.append({"step": 10 * (i + 1), "lr": lr, "momentum": m, "train_loss": 2.0 / (i + 1),
                     "train_accuracy": 0.1 * i, "grad_norm": 1.0})
        if i % 2:
            rows.append({"step": 10 * (i + 1), "test_loss": 2.0 / (i + 1), "test_accuracy": 0.1 * i})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "config.yaml").write_text(f"name: {name}\n")
    return d


def test_rates_over_decades_are_drawn_on_a_log_axis_and_a_constant_momentum_is_not_drawn(tmp_path):
    lrs = list(np.geomspace(3e-3, 3e-5, 8))                   # a cosine to 1 % of its peak: two decades
    fig = run_figure(str(_run_dir(tmp_path, lrs, [0.9] * 8)))
    rate = fig.axes[0]
    assert rate.get_yscale() == "log" and rate.get_ylabel() == "learning rate (log)"
    assert len(fig.axes) == 3  # no twin axis: AdamW's b1 does not move
    assert fig._suptitle.get_text() == "digits-mlp-sgd-one_cycle"  # the run's name, not the folder's


def test_a_moving_momentum_is_drawn_and_labelled_and_a_narrow_rate_range_stays_linear(tmp_path):
    lrs = [0.012, 0.05, 0.1, 0.05, 0.012, 0.015, 0.02, 0.04]   # within a decade
    moms = [0.95, 0.9, 0.85, 0.9, 0.95, 0.95, 0.92, 0.9]
    fig = run_figure(str(_run_dir(tmp_path, lrs, moms)))
    rate, twin = fig.axes[0], fig.axes[-1]
    assert rate.get_yscale() == "linear"
    assert twin.get_ylabel() == "momentum"
    np.testing.assert_allclose(twin.lines[0].get_ydata(), moms)
    assert [t.get_text() for t in rate.get_legend().get_texts()] == ["learning rate", "momentum"]


def test_the_title_falls_back_to_the_folder_and_the_summary_names_a_replan(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    assert run_title(str(d)) == "plain"
    s = {"name": "r", "status": "completed", "steps": 40, "total_steps": 40, "resumed_from": 20,
         "replanned": {"step": 20, "lr_before": 3e-5, "lr_after": 4.7e-4}, "time_s": 1.0, "compile_s": 0.5,
         "devices": 1, "run_dir": str(d)}
    assert "(resumed at 20); re-planned: lr 3e-05 -> 0.00047" in format_summary(s)


@pytest.mark.parametrize("values, wide", [([3e-3, 3e-5], True), ([1e-2, 2e-3], False), ([0.0, 1e-3, 5e-4], False)])
def test_spans_decades(values, wide):
    from lrjax.plot import spans_decades

    assert spans_decades(values) is wide
