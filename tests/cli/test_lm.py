"""Language models end to end through the command line (issue 19): lrjax's own ``kind: transformer`` and a
byte-level transformer written by a user (its module next to its config) train through ``lrjax train``,
``lrjax sweep`` (grid, halving, PBT on ``val_loss``) and ``lrjax find-lr``, on ``source: text`` and on a
``.npz`` of token windows; the per-token metrics equal a hand computation from the checkpoint; resume is
bitwise; durations count tokens; bad input is one line, exit 2, and nothing written.

Tiny sizes (d_model 32, one layer, windows of 16 bytes, a few dozen updates): each run compiles in ~2 s.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import textwrap

import jax
import numpy as np
import pytest
import yaml
from flax import nnx

from lrjax.cli import main
from lrjax.engine._transformer import parameter_count, transformer_parameter_count
from lrjax.train import load_checkpoint, load_config, read_metrics, train

LN2 = math.log(2.0)
T = 16
TRANSFORMER = {"kind": "transformer", "d_model": 32, "layers": 1, "heads": 2}
TRAIN = {"steps": 40, "log_every": 10, "eval_every": 20, "checkpoint_every": 20, "compilation_cache": False}
SCHEDULE = {"name": "warmup", "warmup_steps": 4, "schedule": {"name": "cosine_decay", "peak": 1.0e-2,
                                                               "decay_steps": "100%"}}

BYTE_LM = textwrap.dedent('''
    """A byte-level language model of one's own: token and position embeddings, one causal self-attention
    block (flax's MultiHeadAttention), an MLP, a head of one score per byte."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx


    class ByteLM(nnx.Module):
        def __init__(self, *, vocab, context, width, rngs):
            self.tok = nnx.Embed(vocab, width, rngs=rngs)
            self.pos = nnx.Embed(context, width, rngs=rngs)
            self.norm1 = nnx.LayerNorm(width, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=width, decode=False, rngs=rngs)
            self.norm2 = nnx.LayerNorm(width, rngs=rngs)
            self.up = nnx.Linear(width, 2 * width, rngs=rngs)
            self.down = nnx.Linear(2 * width, width, rngs=rngs)
            self.head = nnx.Linear(width, vocab, rngs=rngs)

        def __call__(self, x):
            h = self.tok(x) + self.pos(jnp.arange(x.shape[1]))[None]
            h = h + self.attn(self.norm1(h), mask=nnx.make_causal_mask(x))
            h = h + self.down(jax.nn.gelu(self.up(self.norm2(h))))
            return self.head(h)


    def make(*, rngs, input_shape, num_outputs, width=32):
        return ByteLM(vocab=num_outputs, context=input_shape[0], width=width, rngs=rngs)


    def sequence_loss(outputs, targets):
        """Per-sequence mean cross-entropy over the tokens that are not padding (targets < 0)."""
        valid = targets >= 0
        ce = optax.softmax_cross_entropy_with_integer_labels(outputs, jnp.where(valid, targets, 0))
        return jnp.sum(jnp.where(valid, ce, 0.0), axis=1) / jnp.maximum(jnp.sum(valid, axis=1), 1)
''')


def _write(folder, name, cfg):
    p = folder / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def _text(corpus, **extra):
    return {"source": "text", "path": str(corpus), "context": T, "batch_size": 16, "validation_fraction": 0.2,
            "eval_windows": 64, **extra}


def _npz(path, **extra):
    return {"source": str(path), "batch_size": 16, "validation_fraction": 0.1, **extra}


def _config(data, model=None, **over):
    cfg = {"data": data, "model": model or TRANSFORMER, "schedule": SCHEDULE, "train": dict(TRAIN),
           "optimizer": {"name": "adamw", "args": {"weight_decay": 0.01}, "clip_norm": 1.0}}
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


@pytest.fixture
def user_dir(tmp_path):
    """A user's folder: bytelm.py (the model and a loss) next to the configs that name it."""
    d = tmp_path / "mine"
    d.mkdir()
    (d / "bytelm.py").write_text(BYTE_LM)
    return d


def _user_params(num_outputs):
    ns = {}
    exec(compile(BYTE_LM, "bytelm.py", "exec"), ns)  # noqa: S102 - the test's own module text
    return parameter_count(ns["make"](rngs=nnx.Rngs(0), input_shape=(T,), num_outputs=num_outputs))


def _records(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "train_loss" in r], [r for r in rows if any(k.endswith("_loss") and not
                                                                          k.startswith("train") for k in r)]


def _check_bits(train_rows, eval_rows, splits):
    for r in train_rows:
        assert r["train_bits_per_token"] == pytest.approx(r["train_loss"] / LN2, rel=1e-6)
        assert 0.0 <= r["train_accuracy"] <= 1.0
    for r in eval_rows:
        for s in splits:
            assert r[f"{s}_bits_per_token"] == pytest.approx(r[f"{s}_loss"] / LN2, rel=1e-6)
            assert 0.0 <= r[f"{s}_accuracy"] <= 1.0


def _hand_metrics(run_dir, split):
    """The split's loss (nats per token), bits per token and token accuracy computed here from the run's last
    checkpoint: numpy's log-softmax of the model's logits, over the targets that are not padding."""
    exp, state, _ = load_checkpoint(str(run_dir))
    x, y = exp.data.split(split)
    out, _ = exp.model.apply(exp.eval_params(state), state.extra, jax.numpy.asarray(x), train=False)
    logits = np.asarray(out, np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    valid = y >= 0
    nll = -np.take_along_axis(logp, np.where(valid, y, 0)[..., None], -1)[..., 0]
    loss = nll[valid].mean()
    acc = (logits.argmax(-1) == y)[valid].mean()
    return {"loss": loss, "bits_per_token": loss / LN2, "accuracy": acc, "tokens": int(valid.sum()),
            "all": int(valid.size), "per_sequence": np.asarray(exp.task.loss_fn(out, jax.numpy.asarray(y)))}


# ----------------------------------------------------------------------------- lrjax train

def test_train_a_transformer_on_a_text_folder(lm_text_dir, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = _write(tmp_path, "lm.yaml", _config(_text(lm_text_dir)))
    assert main(["train", str(cfg), "--no-progress", "--out", str(out)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["steps"] == 40
    # the parameter count: the closed form, in summary.json and the header line
    n = transformer_parameter_count(d_model=32, layers=1, context=T)
    assert s["parameters"] == n == 21472
    assert f"model transformer ({n:,} parameters)" in header and "windows of 16" in header
    # the corpus's record: the six text files (hidden and binary ones skipped), their bytes and hash
    files = sorted(p for p in os.listdir(lm_text_dir) if p.endswith(".txt") and not p.startswith("."))
    data = [(lm_text_dir / f).read_bytes() for f in files]
    d = s["data"]
    assert d["num_bytes"] == sum(map(len, data)) == 60_000 and f"{d['num_bytes']:,} bytes of text" in header
    assert d["sha256"] == hashlib.sha256(b"".join(b + b"\0" for b in data)).hexdigest()
    assert sorted(d["files"]["train"] + d["files"]["val"] + d["files"]["test"]) == files
    assert all(d["files"][k] for k in ("train", "val", "test")) and d["vocab_size"] == 256 and d["context"] == T
    # training rows: loss from about ln 256 well down; bits per token = loss / ln 2
    train_rows, eval_rows = _records(out)
    assert [r["step"] for r in train_rows] == [10, 20, 30, 40] and [r["step"] for r in eval_rows] == [20, 40]
    _check_bits(train_rows, eval_rows, ("val", "test"))
    assert train_rows[0]["train_loss"] > 4.0 and train_rows[-1]["train_loss"] < train_rows[0]["train_loss"] - 1.0
    assert eval_rows[-1]["val_loss"] < eval_rows[0]["val_loss"] < 4.0
    # the recorded validation metrics are exact (masked) evaluations: the same numbers computed by hand
    hand = _hand_metrics(out, "val")
    fe = s["final_eval"]
    assert hand["tokens"] == 64 * T
    for k in ("loss", "bits_per_token", "accuracy"):
        assert fe[f"val_{k}"] == pytest.approx(hand[k], rel=2e-5), k
    assert s["best_eval"]["val_loss"] == min(r["val_loss"] for r in eval_rows)  # lower is better


def test_train_a_transformer_on_npz_windows_padding_counts_nowhere(lm_npz, tmp_path):
    """A .npz of windows of 16 tokens: data.context unset, durations in tokens count 16 per example (40
    updates of 16 windows, 5 of warmup); the padded targets of the test windows count nowhere."""
    sched = {"name": "warmup", "warmup_steps": "1280 tokens",
             "schedule": {"name": "cosine_decay", "peak": 1.0e-2, "decay_steps": "100%"}}
    cfg = _write(tmp_path, "lm.yaml", _config(_npz(lm_npz, num_classes=256), schedule=sched,
                                              train={"steps": "10240 tokens", "log_every": 1}))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--no-progress", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 40 and s["parameters"] == transformer_parameter_count(d_model=32, layers=1, context=T)
    train_rows, eval_rows = _records(out)
    assert [r["step"] for r in eval_rows] == [20, 40]
    lr = {r["step"]: r["lr"] for r in train_rows}
    assert lr[5] == pytest.approx(0.8e-2) and lr[6] == pytest.approx(1.0e-2)   # 1,280 tokens = 5 updates
    _check_bits(train_rows, eval_rows, ("val", "test"))
    assert train_rows[-1]["train_loss"] < train_rows[0]["train_loss"] - 1.0
    # the test windows hold 50 x 5 padding targets: the recorded test metrics are those of the 1,350 real ones
    hand = _hand_metrics(out, "test")
    assert (hand["tokens"], hand["all"]) == (100 * T - 50 * 5, 100 * T)
    for k in ("loss", "bits_per_token", "accuracy"):
        assert s["final_eval"][f"test_{k}"] == pytest.approx(hand[k], rel=2e-5), k


@pytest.mark.parametrize("source", ["text", "npz"])
def test_your_own_byte_transformer_next_to_its_config(source, user_dir, lm_text_dir, lm_npz, tmp_path, monkeypatch,
                                                      capsys):
    """model.factory and loss name bytelm.py beside the config; the command runs from another folder."""
    data = _text(lm_text_dir) if source == "text" else _npz(lm_npz)
    loss = {} if source == "text" else {"loss": "bytelm:sequence_loss"}
    cfg = _write(user_dir, "mine.yaml", _config(data, model={"factory": "bytelm:make", "args": {"width": 32}}, **loss))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--no-progress", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    vocab = 256 if source == "text" else int(np.load(lm_npz)["x_train"].max()) + 1  # the .npz: tokens seen
    assert s["parameters"] == _user_params(vocab)
    assert f"bytelm.py:make ({s['parameters']:,} parameters)" in capsys.readouterr().out
    train_rows, eval_rows = _records(out)
    assert train_rows[-1]["train_loss"] < train_rows[0]["train_loss"] - 1.0
    assert eval_rows[-1]["val_loss"] < eval_rows[0]["val_loss"]
    if source == "text":
        _check_bits(train_rows, eval_rows, ("val", "test"))
    else:
        # your loss's unit is yours: no bits per token; loss is the mean of its per-sequence values, accuracy
        # is over real tokens
        assert all("train_bits_per_token" not in r and "test_bits_per_token" not in r for r in train_rows + eval_rows)
        hand = _hand_metrics(out, "test")   # the loss function here is the user's
        assert hand["per_sequence"].shape == (100,)
        assert s["final_eval"]["test_loss"] == pytest.approx(hand["per_sequence"].mean(), rel=2e-5)
        assert s["final_eval"]["test_accuracy"] == pytest.approx(hand["accuracy"], rel=1e-6)


# ----------------------------------------------------------------------------- lrjax sweep

def _sweep(tmp_path, name, base, grid, strategy):
    spec = {"name": name, "config": base, "grid": grid, "strategy": strategy}
    p = _write(tmp_path, f"{name}.yaml", spec)
    out = tmp_path / name
    assert main(["sweep", str(p), "--out", str(out), "--no-plot"]) == 0
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    return json.loads((out / "summary.json").read_text()), rows, out


def test_sweep_with_halving_on_text_ranks_by_validation_loss(lm_text_dir, tmp_path):
    peaks = [1.0e-4, 1.0e-3, 1.0e-2, 3.0e-2]
    s, rows, _ = _sweep(tmp_path, "halving", _config(_text(lm_text_dir)), {"schedule.schedule.peak": peaks},
                        {"name": "halving", "rungs": [20], "keep": 0.5})
    assert s["rank_by"] == "loss" and s["compilations"] == 1 and s["configurations"] == 4
    done = [r for r in rows if r["status"] == "completed"]
    assert len(done) == 2 and sorted(r["status"] for r in rows if r not in done) == ["pruned", "pruned"]
    assert all(int(r["stopped_at"]) == 20 for r in rows if r not in done)
    val = [float(r["val_loss"]) for r in done]
    assert val == sorted(val) and s["winner"] == done[0]["label"]                   # lower is better
    assert s["winner_final_eval"]["val_loss"] == pytest.approx(min(val), rel=1e-6)
    assert s["config_steps"] == 4 * 20 + 2 * 20
    # the rung kept the two lowest validation losses at update 20: the smallest peaks were dropped
    assert {r["label"] for r in done} == {"peak=0.01", "peak=0.03"}
    assert s["winner_final_eval"]["val_bits_per_token"] == pytest.approx(min(val) / LN2, rel=1e-6)


def test_sweep_grid_of_your_own_model_on_npz_windows(user_dir, lm_npz, tmp_path):
    base = _config(_npz(lm_npz), model={"factory": str(user_dir / "bytelm.py") + ":make"})
    s, rows, out = _sweep(tmp_path, "grid", base, {"schedule.schedule.peak": [3.0e-4, 3.0e-3, 3.0e-2]},
                          {"name": "grid"})
    assert s["compilations"] == 1 and [r["status"] for r in rows] == ["completed"] * 3
    val = [float(r["val_loss"]) for r in rows]
    assert val == sorted(val) and s["winner"] == rows[0]["label"] == "peak=0.03"
    assert val[-1] > val[0] + 0.5  # 3e-4 for 40 updates learns least
    assert sorted(os.listdir(out / "metrics")) == ["peak=0.0003.jsonl", "peak=0.003.jsonl", "peak=0.03.jsonl"]


def test_population_based_training_of_a_language_model(lm_text_dir, tmp_path):
    strategy = {"name": "pbt", "interval": 10, "quantile": 0.25, "explore": {"schedule.schedule.peak": [0.8, 1.25]}}
    s, rows, _ = _sweep(tmp_path, "pbt", _config(_text(lm_text_dir)),
                        {"schedule.schedule.peak": [1.0e-4, 1.0e-3, 1.0e-2, 3.0e-2]}, strategy)
    assert s["compilations"] == 1 and all(r["status"] == "completed" and r["steps"] == "40" for r in rows)
    val = [float(r["val_loss"]) for r in rows]
    assert val == sorted(val) and s["winner"] == rows[0]["label"]
    # at each of the 3 exploits the worst of 4 (on val_loss) copies the best: the lowest peak is copied at once
    assert [e["step"] for e in s["lineage"]] == [10, 20, 30]
    first = s["lineage"][0]
    assert first["member"] == "peak=0.0001" and first["copied"] in ("peak=0.01", "peak=0.03")
    assert max(val) < 4.0  # nobody is left behind at ln 256


def test_halving_and_pbt_count_in_tokens(lm_text_dir, tmp_path):
    """Rungs and intervals in tokens (256 tokens per update), as train.steps: 5,120 tokens = update 20."""
    train = {**TRAIN, "steps": "10240 tokens", "eval_every": "2560 tokens"}
    base = _config(_text(lm_text_dir), train=train)
    grid = {"schedule.schedule.peak": [1.0e-4, 1.0e-3, 1.0e-2, 3.0e-2]}
    s, rows, _ = _sweep(tmp_path, "halving", base, grid, {"name": "halving", "rungs": ["5120 tokens"], "keep": 0.5})
    assert s["strategy"]["rungs"] == [20] and s["config_steps"] == 4 * 20 + 2 * 20
    assert sorted(int(r["stopped_at"]) for r in rows if r["status"] == "pruned") == [20, 20]
    s, rows, _ = _sweep(tmp_path, "pbt", base, grid, {"name": "pbt", "interval": "2560 tokens", "quantile": 0.25,
                                                      "explore": {"schedule.schedule.peak": [0.8, 1.25]}})
    assert s["strategy"]["interval"] == 10 and all(r["steps"] == "40" for r in rows)


def test_every_horizon_in_tokens_from_one_run(lm_text_dir, tmp_path):
    """Cooldowns with the run, its cadences, the warmup and the horizons in tokens (16 windows of 16 bytes =
    256 tokens per update): the strategy reads them in updates."""
    train = {**TRAIN, "steps": "10240 tokens", "eval_every": "5120 tokens", "log_every": "2560 tokens"}
    wsd = {"name": "warmup_stable_decay", "peak": 1.0e-2, "warmup_steps": "1280 tokens", "stable_steps": 25,
           "decay_steps": 10}
    base = {**_config(_text(lm_text_dir), train=train), "schedule": wsd}
    strategy = {"name": "cooldowns", "horizons": ["5120 tokens", "10240 tokens"], "fraction": 0.25,
                "shapes": ["linear"]}
    s, rows, out = _sweep(tmp_path, "cooldowns", base, {"train.seed": [0]}, strategy)
    cooled = sorted((int(r["horizon"]), int(r["steps"])) for r in rows if r["run"] == "cooldown")
    assert cooled == [(20, 5), (40, 10)]   # (horizon, updates of its own: the cooldown)
    assert s["compilations"] == 1 and s["config_steps"] == 30 + 5 + 10   # the trunk to the last fork, cooldowns
    lone = yaml.safe_load((out / "configs" / "40_linear.yaml").read_text())
    assert lone["train"]["steps"] == 40 and lone["schedule"]["stable_steps"] == 25
    assert lone["schedule"]["decay_steps"] == 10 and lone["schedule"]["warmup_steps"] == 5


# ----------------------------------------------------------------------------- lrjax find-lr

@pytest.mark.parametrize("source", ["text", "npz"])
def test_find_lr_on_a_language_model(source, user_dir, lm_text_dir, lm_npz, tmp_path):
    if source == "text":
        cfg = _config(_text(lm_text_dir))
        extra = []
    else:
        cfg = _config(_npz(lm_npz), model={"factory": str(user_dir / "bytelm.py") + ":make"})
        extra = ["--parallel", "3", "--parallel-steps", "10", "--min-lr", "1e-4", "--max-lr", "1e-1"]
    p = _write(tmp_path, "lm.yaml", cfg)
    out = tmp_path / "flr"
    assert main(["find-lr", str(p), "--steps", "30", "--out", str(out), *extra]) == 0
    r = json.loads((out / "range_test.json").read_text())
    curve = r["sweep"]["curve"]
    assert curve["loss"][0] == pytest.approx(math.log(256 if source == "text" else 126), abs=0.6)  # ~ln V at first
    assert min(curve["smoothed"]) < curve["smoothed"][0] - 0.5                                 # then it learns
    lo, hi = curve["lr"][0], curve["lr"][-1]
    assert lo <= r["chosen"]["lr"] <= hi
    if source == "npz":  # the parallel test: 3 rates for 10 updates each, ranked on the validation loss
        par = r["parallel"]
        assert par["settings"]["ranked_on"] == "val_loss" and par["settings"]["higher_is_better"] is False
        assert par["final"][par["order"][0]] == min(par["final"]) and par["best_lr"] == par["lrs"][par["order"][0]]
        assert par["initial"] == pytest.approx(math.log(126), abs=0.6)


# ----------------------------------------------------------------------------- resume, averaging, tokens



def test_resume_on_text_is_bitwise_with_averaged_weights(lm_text_dir, tmp_path, sigterm_once):
    """Windows are a function of (data key, micro-step): a run interrupted at update 13 and resumed with
    `lrjax train --resume` writes the same records and ends with the same parameters, average included."""
    cfg = _write(tmp_path, "lm.yaml", _config(_text(lm_text_dir), train={
        "average": {"kind": "ema", "decay": 0.9, "start": 8}, "log_every": 5}))
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", str(cfg), "--no-progress", "--out", str(full)]) == 0
    s = train(load_config(str(cfg)), out_dir=str(part), progress=False, verbose=False, plot=False,
              hooks=[sigterm_once(13)])
    assert s["status"] == "interrupted" and s["steps"] == 13
    assert main(["train", "--resume", str(part), "--no-progress"]) == 0
    s = json.loads((part / "summary.json").read_text())
    assert s["status"] == "completed" and s["resumed_from"] == 13
    assert (part / "metrics.jsonl").read_bytes() == (full / "metrics.jsonl").read_bytes()
    _, a, _ = load_checkpoint(str(full))
    _, b, _ = load_checkpoint(str(part))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(a.average.count) == 40 - 8
    ev = read_metrics(str(full))["eval"]
    assert ev["val_avg_loss"][-1] < ev["val_avg_loss"][0] and ev["val_avg_bits_per_token"][-1] == pytest.approx(
        ev["val_avg_loss"][-1] / LN2, rel=1e-6)


def test_resume_refuses_a_corpus_that_changed(tmp_path, make_lm_text, capsys):
    corpus = tmp_path / "book.txt"
    corpus.write_bytes(make_lm_text(20_000, 3))
    cfg = _write(tmp_path, "lm.yaml", _config(_text(corpus), model={**TRANSFORMER, "d_model": 16},
                                              train={"steps": 10, "eval_every": 10, "checkpoint_every": 10}))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--no-progress", "--out", str(out)]) == 0
    before = (out / "metrics.jsonl").read_bytes()
    corpus.write_bytes(make_lm_text(20_000, 4))   # same size, other text
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress", "--set", "train.steps=20"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--resume: the text of 'book.txt' changed since the checkpoint of step 10" in line, line
    assert (out / "metrics.jsonl").read_bytes() == before and not (out / "config.step10.yaml").exists()


def test_durations_in_tokens_end_to_end(lm_text_dir, tmp_path):
    """train.steps, the warmup, the evaluation cadence and the averaging start in tokens: steps x batch x
    context (16 x 16 = 256 tokens per update)."""
    sched = {"name": "warmup", "warmup_steps": "2560 tokens",
             "schedule": {"name": "constant", "value": 3.0e-3}}
    cfg = _write(tmp_path, "lm.yaml", _config(_text(lm_text_dir), schedule=sched, train={
        "steps": "12.8K tokens", "eval_every": "2560 tokens", "log_every": 1, "checkpoint_every": 1000,
        "average": {"kind": "swa", "start": "7680 tokens"}}))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--no-progress", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == s["total_steps"] == 50                    # 12,800 / 256
    cols = read_metrics(str(out))
    lr = dict(zip(cols["train"]["step"], cols["train"]["lr"]))
    assert lr[10] < 3.0e-3 * 0.95 and lr[11] == pytest.approx(3.0e-3) and lr[50] == pytest.approx(3.0e-3)  # 10 up
    ev = cols["eval"]
    assert ev["step"] == [10, 20, 30, 40, 50]                     # every 2,560 tokens
    # the average holds the updates after the first 30 (7,680 tokens): none at 10, 20, 30
    assert ev["val_avg_loss"][:3] == [None, None, None] and None not in ev["val_avg_loss"][3:]
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"] == "12.8K tokens"


# ----------------------------------------------------------------------------- bad input

def _bad_cases(tmp_path, corpus, npz):
    (tmp_path / "small.txt").write_text("tiny")
    (tmp_path / "few").mkdir()
    for i in range(3):
        (tmp_path / "few" / f"{i}.txt").write_text("ab" * 3)
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "a.bin").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "shape.py").write_text("import jax.numpy as jnp\n\ndef per_token(outputs, targets):\n"
                                       "    return jnp.zeros(targets.shape)\n")
    text = ["--set", "data.source=text", "--set", f"data.path={corpus}", "--set", f"data.context={T}"]
    return {
        "context longer than the positions": (
            [*text, "--set", "model.context=8"],
            "data.context=16 is longer than the model's positions (model.context=8)"),
        "npz windows longer than the positions": (
            ["--data", str(npz), "--set", "model.context=8"],
            "windows of 16 tokens are longer than the model's context=8 positions"),
        "a token out of the vocabulary": (
            ["--data", str(npz), "--set", "data.num_classes=100"],
            "is not a token of the vocabulary of 100"),
        "a file shorter than one window": (
            ["--set", "data.source=text", "--set", f"data.path={tmp_path / 'small.txt'}", "--set", "data.context=16"],
            "fewer than one window of context + 1 = 17 bytes"),
        "a folder shorter than one window": (
            ["--set", "data.source=text", "--set", f"data.path={tmp_path / 'few'}", "--set", "data.context=16"],
            "fewer than one window of context + 1 = 17 bytes"),
        "no readable text file": (
            ["--set", "data.source=text", "--set", f"data.path={tmp_path / 'binary'}", "--set", "data.context=16"],
            "no readable text file in this folder"),
        "no such path": (
            ["--set", "data.source=text", "--set", f"data.path={tmp_path / 'gone'}", "--set", "data.context=16"],
            "no such file or folder"),
        "context 0": (
            ["--set", "data.source=text", "--set", f"data.path={corpus}", "--set", "data.context=0"],
            "data.context must be > 0, got data.context=0"),
        "text without a context": (
            ["--set", "data.source=text", "--set", f"data.path={corpus}"],
            "data.source='text' needs data.context"),
        "tokens without a context": (
            ["--set", "train.steps=20K tokens", "--set", "model.kind=mlp"],
            "train.steps='20K tokens': a duration in tokens needs the tokens per example"),
        "warmup in tokens without a context": (
            ["--set", "schedule.warmup_steps=2K tokens", "--set", "model.kind=mlp"],
            "schedule.warmup_steps='2K tokens': a duration in tokens needs the tokens per example"),
        "a context the windows do not have": (
            ["--data", str(npz), "--set", "data.context=32"],
            "data.context=32, but the token windows of 'windows' hold 16 tokens"),
        "a sequence loss of the wrong shape": (
            [*text, "--set", f"loss={tmp_path / 'shape.py'}:per_token"],
            "must return per-sequence losses (B,) or their mean (a scalar); on outputs (4, 16, 256)"),
        "d_model not divisible by heads": (
            [*text, "--set", "model.d_model=18", "--set", "model.heads=4"],
            "model.d_model=18 must be divisible by model.heads=4"),
        "a model without a time axis": (
            [*text, "--set", "model.kind=mlp"],
            "a sequence model needs (B, 16, 256)"),
    }


BAD = ["context longer than the positions", "npz windows longer than the positions", "a token out of the vocabulary",
       "a file shorter than one window", "a folder shorter than one window", "no readable text file", "no such path",
       "context 0", "text without a context", "tokens without a context", "warmup in tokens without a context",
       "a context the windows do not have", "a sequence loss of the wrong shape", "d_model not divisible by heads",
       "a model without a time axis"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, lm_text_dir, lm_npz, tmp_path, capsys):
    args, expect = _bad_cases(tmp_path, lm_text_dir, lm_npz)[case]
    model = ["--set", "model.kind=transformer", "--set", "model.d_model=16", "--set", "model.layers=1",
             "--set", "model.heads=2"]
    out = tmp_path / "r"
    assert main(["train", "--no-progress", *model, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("lrjax train: ") and expect in line, line
    assert not out.exists()


def test_sweep_and_find_lr_refuse_bad_language_models_in_one_line(lm_text_dir, tmp_path, capsys):
    cfg = _config(_text(lm_text_dir), model={**TRANSFORMER, "d_model": 18, "heads": 4})
    p = _write(tmp_path, "bad.yaml", cfg)
    out = tmp_path / "r"
    assert main(["find-lr", str(p), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "model.d_model=18 must be divisible by model.heads=4" in line and not out.exists()
    sw = _write(tmp_path, "sw.yaml", {"name": "bad", "config": _config(_text(tmp_path / "none")),
                                      "grid": {"schedule.schedule.peak": [1e-3, 1e-2]}})
    assert main(["sweep", str(sw), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("lrjax sweep: ") and "none: no such file or folder" in line


def test_a_sweep_whose_data_is_refused_writes_nothing(lm_text_dir, tmp_path):
    sw = _write(tmp_path, "sw.yaml", {"name": "bad", "config": _config(_text(tmp_path / "none")),
                                      "grid": {"schedule.schedule.peak": [1e-3, 1e-2]}})
    out = tmp_path / "r"
    assert main(["sweep", str(sw), "--out", str(out)]) == 2
    assert not out.exists()
    mine = tmp_path / "mine"   # a folder the user made: kept, with what it held
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["sweep", str(sw), "--out", str(mine)]) == 2
    assert (mine / "notes.txt").read_text() == "keep"
