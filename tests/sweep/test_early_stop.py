"""train.early_stop in a sweep: a member that stops is frozen and leaves the stacked state, like a pruned one,
at the update where `lrjax train` alone stops it."""

import json

import numpy as np

from lrjax.engine import load_config
from lrjax.sweep import train_many
from lrjax.train import train

BASE = ["model.hidden=[32]", "train.steps=200", "train.log_every=10", "train.eval_every=10",
        "train.checkpoint_every=1000", "data.batch_size=32", "data.validation_fraction=0.1",
        "train.early_stop={metric: loss, patience: 3}", "train.progress=false"]


def test_a_member_that_stops_early_stops_where_it_would_alone(tmp_path):
    cfgs = [load_config(None, BASE + [f"schedule={{name: constant, value: {v}}}"]) for v in (0.05, 1e-3)]
    results, _ = train_many(cfgs, labels=["high", "low"])
    high, low = results
    assert high.status == "early_stopped" and high.stopped_at < 200
    assert low.status in ("completed", "early_stopped")
    # it left the stacked state: it trained only up to its stop
    assert high.steps_trained == high.stopped_at and max(r["step"] for r in high.records) == high.stopped_at
    alone = train(cfgs[0], out_dir=str(tmp_path / "run"), progress=False, verbose=False, plot=False)
    assert alone["status"] == "early_stopped" and alone["steps"] == high.stopped_at
    with open(tmp_path / "run" / "metrics.jsonl") as fh:
        want = [json.loads(line) for line in fh]
    assert [sorted(r) for r in high.records] == [sorted(r) for r in want]
    for g, w in zip(high.records, want):
        for k in g:
            np.testing.assert_allclose(g[k], w[k], rtol=2e-5, atol=2e-6, err_msg=f"{k} at step {g['step']}")
