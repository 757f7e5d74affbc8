"""``lrjax plot``: spec files (one spec, a list or a mapping), the gallery, and one-line errors on bad files."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from lrjax.cli import main as lrjax_main


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
    assert lrjax_main(["plot", str(one), str(many), str(lst), str(cfg), "--steps", "300", "-o", str(out)]) == 0
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
    assert lrjax_main(["plot", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrjax plot: ") and "Traceback" not in err
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
    assert lrjax_main(["plot"]) == 0
    assert (tmp_path / "lrjax-gallery.png").stat().st_size > 50_000
    assert "lrjax-gallery.png" in capsys.readouterr().out
