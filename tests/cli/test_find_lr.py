"""``lrjax find-lr`` and ``lrjax train --find-lr`` end to end on a small digits config."""

import json

import pytest
import yaml

from lrjax.cli import main as lrjax_main

SMALL = ["--set", "train.steps=40", "--set", "model.hidden=[32]", "--set", "data.batch_size=32"]


def test_find_lr_writes_json_and_png_and_prints_the_rate(tmp_path, capsys):
    out = tmp_path / "flr"
    rc = lrjax_main(["find-lr", *SMALL, "--steps", "40", "--min-lr", "1e-5", "--max-lr", "10",
                     "--parallel", "3", "--parallel-steps", "10", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    d = json.load(open(out / "range_test.json"))
    assert d["chosen"]["method"] == "steepest" and d["chosen"]["lr"] == d["sweep"]["suggestions"]["steepest"]["lr"]
    assert len(d["sweep"]["curve"]["lr"]) == d["sweep"]["num_steps_run"] and len(d["parallel"]["lrs"]) == 3
    assert d["settings"]["data"] == "digits"
    assert (out / "range_test.png").read_bytes()[:4] == b"\x89PNG"
    assert f"suggested peak rate (steepest): {d['chosen']['lr']:.4g}" in text


def test_find_lr_without_a_suggestion_exits_1_with_the_reason(tmp_path, capsys):
    rc = lrjax_main(["find-lr", *SMALL, "--steps", "20", "--min-lr", "1e-12", "--max-lr", "2e-12",
                     "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "too flat" in err
    assert json.load(open(tmp_path / "range_test.json"))["chosen"]["lr"] is None


def test_find_lr_bad_arguments_exit_2(tmp_path, capsys):
    assert lrjax_main(["find-lr", "--set", "train.stepz=3", "--out", str(tmp_path)]) == 2
    assert "unknown key 'train.stepz'" in capsys.readouterr().err
    assert lrjax_main(["find-lr", "--min-lr", "0", "--out", str(tmp_path)]) == 2
    assert "min_lr must be a finite number > 0, got min_lr=0.0" in capsys.readouterr().err
    assert lrjax_main(["find-lr", "--method", "parallel", "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_train_find_lr_sets_and_records_the_peak(tmp_path, capsys):
    out = tmp_path / "run"
    rc = lrjax_main(["train", *SMALL, "--find-lr", "minimum", "--out", str(out), "--no-progress"])
    assert rc == 0
    cfg = yaml.safe_load(open(out / "config.yaml"))
    found = json.load(open(out / "range_test.json"))  # one name for range-test results in both commands
    assert not (out / "find_lr.json").exists() and (out / "range_test.png").exists()
    lr = found["chosen"]["lr"]
    assert found["chosen"]["method"] == "minimum" and lr == found["sweep"]["suggestions"]["minimum"]["lr"]
    assert cfg["schedule"]["schedule"]["peak"] == pytest.approx(lr, rel=1e-6)
    assert cfg["find_lr"]["method"] == "minimum" and cfg["find_lr"]["lr"] == pytest.approx(lr)
    text = capsys.readouterr().out  # the suggestion block, the chosen peak and where it went
    assert f"minimum/10: lr={lr:.3g} (a tenth of" in text and f"suggested peak rate (minimum/10): {lr:.4g}" in text
    assert f"peak set to {lr:.4g}: schedule.schedule.peak: 0.003 -> " in text
    metrics = [json.loads(line) for line in open(out / "metrics.jsonl")]
    logged = [m["lr"] for m in metrics if "lr" in m]
    assert logged and max(logged) <= lr * (1 + 1e-6)  # the run followed the new peak


def test_find_lr_refuses_bad_steps_and_an_impossible_out_in_one_line(tmp_path, capsys):
    assert lrjax_main(["find-lr", *SMALL, "--steps", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lrjax find-lr: --steps must be >= 2 (or use --parallel K alone), got --steps 0"
    assert not (tmp_path / "o").exists()  # nothing half-written
    f = tmp_path / "file"
    f.write_text("x")
    assert lrjax_main(["find-lr", *SMALL, "--steps", "10", "--out", str(f / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write to" in err[0] and "Not a directory" in err[0]
