"""``lrjax plot``: spec files (one spec, a list or a mapping) and training configs (their schedule as training
builds it, over train.steps, with the optimizer's momentum), overlays, the gallery, and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lrjax
import lrjax.cli.plot as cli_plot
from lrjax.cli import main as lrjax_main
from lrjax.engine import load_config, load_data, make_schedule, with_validation

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def figures(monkeypatch):
    """The figures ``lrjax plot`` draws, to read the drawn lines' data."""
    drawn = []
    real = cli_plot.plot_schedules

    def spy(*args, **kw):
        drawn.append(real(*args, **kw))
        return drawn[-1]

    monkeypatch.setattr(cli_plot, "plot_schedules", spy)
    return drawn


def _lines(ax):
    return {ln.get_label(): ln.get_data() for ln in ax.get_lines()}


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_cli_plots_spec_files(tmp_path, capsys, figures):
    one = _write(tmp_path / "one.yaml", "name: one_cycle\nmax_lr: 0.1\ntotal_steps: 500\n")
    many = _write(tmp_path / "many.yaml",
                  "warm: {name: warmup, warmup_steps: 10, schedule: {name: cosine_decay, peak: 1, decay_steps: 90}}\n"
                  "step: {name: step_decay, init_value: 1, step_size: 20}\n")
    lst = _write(tmp_path / "list.yaml",
                 "- {name: constant, value: 0.3}\n- {name: linear, init_value: 0, end_value: 1, steps: 50}\n")
    cfg = _write(tmp_path / "config.yaml", "train: {steps: 100}\nschedule: {name: constant, value: 0.1}\n")
    out = tmp_path / "out.png"
    assert lrjax_main(["plot", one, many, lst, cfg, "--steps", "300", "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote 6 schedule(s)" in capsys.readouterr().out
    (fig,) = figures
    lines = _lines(fig.axes[0])
    assert list(lines) == ["one", "many: warm", "many: step", "list[0] Constant", "list[1] Linear", "config"]
    x, y = lines["many: step"]
    np.testing.assert_array_equal(x, np.arange(300))
    np.testing.assert_allclose(y, lrjax.StepDecay(1.0, 20)(x))
    np.testing.assert_allclose(lines["config"][1], 0.1)
    assert [ln.get_label() for ln in fig.axes[1].get_lines()] == ["one momentum"]  # the spec's companion


def test_training_config_draws_the_rate_training_builds(tmp_path, figures):
    """'10%' of train.steps, and batch scaling (sqrt: 16 -> 64 doubles the peak), over train.steps."""
    path = _write(tmp_path / "run.yaml",
                  "name: my-run\n"
                  "schedule: {name: warmup, warmup_steps: 10%, schedule: {name: cosine_decay, peak: 0.01, "
                  "decay_steps: 90%}}\n"
                  "optimizer: {name: adamw, batch_scaling: sqrt, base_batch_size: 16}\n"
                  "data: {batch_size: 64}\ntrain: {steps: 300}\n")
    assert lrjax_main(["plot", path, "-o", str(tmp_path / "run.svg")]) == 0
    assert (tmp_path / "run.svg").read_text().lstrip().startswith("<?xml")
    (fig,) = figures
    assert len(fig.axes) == 1  # adamw without cycle_momentum: no momentum schedule
    x, y = _lines(fig.axes[0])["run"]
    np.testing.assert_array_equal(x, np.arange(300))
    np.testing.assert_allclose(y, make_schedule(load_config(path))(x), rtol=1e-6)
    assert int(np.argmax(y)) == 30 and y.max() == pytest.approx(0.02, rel=1e-6)  # 10% of 300; 0.01 x sqrt(4)
    assert y[-1] == pytest.approx(0.01 * (1 + np.cos(np.pi * 269 / 270)), rel=1e-3)  # cosine over the last 90%


def test_one_cycle_config_draws_the_momentum_it_feeds_the_optimizer(tmp_path, figures):
    path = str(ROOT / "configs" / "one_cycle.yaml")
    cfg = load_config(path)
    assert cfg.optimizer.cycle_momentum and cfg.schedule["name"] == "one_cycle"
    assert lrjax_main(["plot", path, "-o", str(tmp_path / "a.png")]) == 0
    fig = figures[-1]
    x, y = _lines(fig.axes[0])["one_cycle"]
    sched = make_schedule(cfg)
    np.testing.assert_array_equal(x, np.arange(cfg.train.steps))
    np.testing.assert_allclose(y, sched(x), rtol=1e-6)
    (mx, my), = _lines(fig.axes[1]).values()
    np.testing.assert_allclose(my, sched.momentum(mx), rtol=1e-6)
    assert my.min() == pytest.approx(0.85) and my[0] == pytest.approx(0.95)

    assert lrjax_main(["plot", path, "--no-momentum", "-o", str(tmp_path / "b.png")]) == 0
    assert len(figures[-1].axes) == 1
    off = _write(tmp_path / "off.yaml", Path(path).read_text().replace("cycle_momentum: true", "cycle_momentum: false"))
    assert lrjax_main(["plot", off, "-o", str(tmp_path / "c.png")]) == 0
    assert len(figures[-1].axes) == 1  # the optimizer does not get the companion: not drawn


def test_config_epochs_load_the_data_and_a_momentum_spec_is_drawn(tmp_path, figures):
    path = _write(tmp_path / "ep.yaml",
                  "schedule: {name: warmup, warmup_steps: 1 epoch, schedule: {name: constant, value: 0.1}}\n"
                  "optimizer: {name: sgd, args: {momentum: {name: momentum_of, schedule: "
                  "{name: one_cycle, max_lr: 1, total_steps: 50%}}}}\n"
                  "train: {steps: 200}\n")
    assert lrjax_main(["plot", path, "-o", str(tmp_path / "ep.png")]) == 0
    (fig,) = figures
    x, y = _lines(fig.axes[0])["ep"]
    cfg = load_config(path)
    n = load_data(with_validation(cfg)).num_train  # digits' training set
    epoch = int(lrjax.to_steps(1, "epochs", batch_size=cfg.data.batch_size, num_examples=n))
    assert 10 < epoch < 100
    np.testing.assert_allclose(y, make_schedule(cfg, num_examples=n)(x), rtol=1e-6)
    assert y[epoch - 1] < 0.1 and y[epoch] == pytest.approx(0.1)
    (mx, my), = _lines(fig.axes[1]).values()
    np.testing.assert_allclose(my, lrjax.OneCycle(1.0, 100).momentum(mx), rtol=1e-6)  # 50% of 200 steps


def test_overlay_one_line_per_file_momentum_on_the_twin_axis(tmp_path, capsys, figures):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _write(tmp_path / "a" / "x.yaml", "name: cosine_decay\npeak: 1\ndecay_steps: 800\n")
    b = _write(tmp_path / "b" / "x.yaml", "name: constant\nvalue: 0.5\n")
    files = [str(ROOT / "configs" / "warmup_cosine.yaml"), str(ROOT / "configs" / "one_cycle.yaml"), a, b]
    assert lrjax_main(["plot", *files, "-o", str(tmp_path / "all.pdf")]) == 0
    assert (tmp_path / "all.pdf").read_bytes()[:4] == b"%PDF"
    assert "wrote 4 schedule(s)" in capsys.readouterr().out
    (fig,) = figures
    rate, twin = fig.axes
    lines = _lines(rate)
    assert list(lines) == ["warmup_cosine", "one_cycle", "x", "x #2"]  # same stem: both drawn
    assert [ln.get_label() for ln in twin.get_lines()] == ["one_cycle momentum"]
    x = lines["x"][0]
    assert x[-1] == 919  # the longest: 1.15 x the spec's 800 steps, beyond the configs' 600
    np.testing.assert_allclose(lines["x"][1], lrjax.CosineDecay(1.0, 800)(x))
    np.testing.assert_allclose(lines["warmup_cosine"][1],
                               make_schedule(load_config(files[0]))(x), rtol=1e-6)
    assert rate.get_title() == "warmup_cosine.yaml, one_cycle.yaml, x.yaml, x.yaml"


def _bad(tmp_path, name, text):
    return _write(tmp_path / name, text)


BAD_FILES = [
    ("missing", None, r"missing\.yaml: no such file$"),
    ("invalid", "name: [unclosed\n", r"invalid\.yaml: not valid YAML: .* at line 2, column 1$"),
    ("empty", "", r"empty\.yaml: the file is empty"),
    ("neither", "foo: 1\n", r"neither\.yaml: neither a schedule spec .* nor a training config .*got dict"),
    ("name", "name: cosine_decy\npeak: 1\n", r"name\.yaml: unknown schedule name 'cosine_decy' "
                                              r"\(did you mean 'cosine_decay'\?\)"),
    ("cfgname", "name: my-run\nschedule: {name: one-cycle, max_lr: 1, total_steps: 10}\n",
     r"cfgname\.yaml: schedule: unknown schedule name 'one-cycle' \(did you mean 'one_cycle'\?\)"),
    ("key", "name: cosine_decay\npeak: 1\ndecay_step: 10\n", r"key\.yaml: unknown key 'decay_step'.*did you mean"),
    ("cfgkey", "train: {stepz: 3}\n", r"cfgkey\.yaml: unknown key 'train\.stepz'"),
    ("value", "name: one_cycle\nmax_lr: 1\ntotal_steps: 10\npct_start: 3\n",
     r"value\.yaml: OneCycle: pct_start must be in"),
    ("epochs", "schedule: {name: cosine_decay, peak: 1, decay_steps: 2 epochs}\ndata: {source: /nowhere/mnist}\n",
     r"epochs\.yaml: schedule\.decay_steps='2 epochs' counts epochs/examples, which needs the size of the "
     r"training set, and data\.source='/nowhere/mnist' could not be loaded: "),
]


@pytest.mark.parametrize("name,text,match", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_exit_2_one_line_naming_it(tmp_path, capsys, name, text, match):
    path = str(tmp_path / f"{name}.yaml") if text is None else _bad(tmp_path, f"{name}.yaml", text)
    assert lrjax_main(["plot", path, "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrjax plot: ") and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(match, err.strip()), err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("out,match", [
    ("nofolder/x.png", r"-o .*nofolder/x\.png: the folder '.*nofolder' does not exist; create it first"),
    ("x.bmp", r"-o .*x\.bmp: matplotlib cannot write the extension '\.bmp'; use one of: png, pdf, svg, .*jpg"),
    ("x", r"-o .*x: matplotlib cannot write a file name without an extension; use one of: png, pdf, svg"),
    (".", r"-o .*: is a directory; give a file name"),
])
def test_bad_output_exit_2_one_line_before_any_work(tmp_path, capsys, out, match):
    spec = _write(tmp_path / "s.yaml", "name: constant\n")
    target = str(tmp_path / out) if out != "." else str(tmp_path)
    for argv in (["plot", spec, "-o", target], ["plot", "-o", target]):  # a file, or the gallery
        assert lrjax_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(match, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_bad_steps_exit_2(tmp_path, capsys):
    assert lrjax_main(["plot", "--steps", "0"]) == 2
    assert capsys.readouterr().err == "lrjax plot: --steps must be >= 1, got --steps 0\n"


def test_missing_file_through_the_console_entry_and_specs_stay_light(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lrjax.cli", "plot", str(tmp_path / "nope.yaml")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr == f"lrjax plot: {tmp_path / 'nope.yaml'}: no such file\n"
    spec = _write(tmp_path / "s.yaml", "name: one_cycle\nmax_lr: 1\ntotal_steps: 100\n")
    code = ("import json, sys\nfrom lrjax.cli import main\n"
            f"rc = main(['plot', {spec!r}, '-o', {str(tmp_path / 's.png')!r}])\n"
            "print(json.dumps([rc, sorted(m for m in sys.modules if m.split('.')[0] in ('flax', 'orbax'))]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [0, []]  # a spec file needs no flax (no model)


@pytest.mark.slow
def test_cli_without_spec_writes_the_gallery(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lrjax_main(["plot"]) == 0
    assert (tmp_path / "lrjax-gallery.png").stat().st_size > 50_000
    assert "lrjax-gallery.png" in capsys.readouterr().out
