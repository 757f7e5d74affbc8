"""Every recipe in configs/ validates and trains for a few steps."""

import glob
import os

import pytest

from lrjax.train import load_config, load_dataset, read_metrics, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
DATA = load_dataset("digits", seed=0)


def test_every_family_has_a_recipe():
    names = {os.path.basename(p)[:-5] for p in CONFIGS}
    assert {"step_decay", "exponential", "cosine", "warmup_cosine", "restarts", "one_cycle", "cyclic", "plateau",
            "wsd"} <= names
    assert load_config(os.path.join(ROOT, "configs", "warmup_cosine.yaml")).schedule == load_config(None).schedule


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_recipe_runs(path, tmp_path):
    short = ["train.steps=24", "train.log_every=8", "train.eval_every=8", "model.hidden=[16]"]
    cfg = load_config(path, short)
    text = cfg.data.source == "text"  # a language model trains on its own text, smaller here
    if text:
        cfg = load_config(path, [*short, "model.d_model=16", "model.heads=2", "model.layers=1", "data.context=32",
                                 "data.eval_windows=16"])
    s = train(cfg, out_dir=str(tmp_path / "r"), data=None if text else DATA, progress=False, verbose=False,
              plot=False)
    assert s["status"] == "completed" and s["steps"] == 24
    cols = read_metrics(str(tmp_path / "r"))
    assert len(cols["train"]["lr"]) == 3 and all(lr is not None and lr >= 0 for lr in cols["train"]["lr"])
    if cfg.optimizer.cycle_momentum:
        assert len(set(cols["train"]["momentum"])) > 1  # the momentum moved with the cycle
