"""Write notebooks/07_your_own_model.ipynb, 08_sweeps_that_decide.ipynb and 09_language_model.ipynb from their
cells here (the notebooks are generated, then executed once with nbclient so their pictures are committed).

    python scripts/make_notebooks.py            # write all three, unexecuted
    python scripts/make_notebooks.py --execute  # and run them in place (outputs saved)
    python scripts/make_notebooks.py --execute 09_language_model.ipynb   # one of them
"""

from __future__ import annotations

import argparse
import pathlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = pathlib.Path(__file__).resolve().parents[1]

NB07 = [
    new_markdown_cell("""# 7. Your own model, loss and data

lrjax's commands train *your* model, not only the built-in classifiers. A model is any callable that returns a
Flax NNX module mapping a batch `x` to outputs; a config names it as `MODULE:NAME`, looked up next to the
config file first. Here: a small 1-D convolutional network for MNIST-1D (signals of length 40, ten classes,
generated locally and cached by `data.source: mnist1d`), with BatchNorm and Dropout — state that is not a
parameter, which lrjax carries in the train state and checkpoints. Then one run, a sweep of its peak rate
(one compiled program) and a range test of it, all through the same engine."""),
    new_code_cell("""%matplotlib inline
import pathlib, tempfile, textwrap
from IPython.display import Image, Markdown, display

project = pathlib.Path(tempfile.mkdtemp(prefix="lrjax-07-"))
(project / "seqnet.py").write_text(textwrap.dedent('''
    from flax import nnx


    class SeqNet(nnx.Module):
        \"\"\"Two 1-D convolutions over (batch, length) signals, then a linear head.\"\"\"

        def __init__(self, width, *, input_shape, num_outputs, rngs):
            (length,) = input_shape                     # one example's shape, from the data
            self.conv1 = nnx.Conv(1, width, kernel_size=(5,), rngs=rngs)
            self.norm = nnx.BatchNorm(width, rngs=rngs)  # running statistics: state, not parameters
            self.conv2 = nnx.Conv(width, width, kernel_size=(5,), rngs=rngs)
            self.drop = nnx.Dropout(0.1, rngs=rngs)      # its RNG stream lives in the train state too
            self.head = nnx.Linear(width * length, num_outputs, rngs=rngs)

        def __call__(self, x):
            h = nnx.relu(self.norm(self.conv1(x[..., None])))
            h = nnx.relu(self.conv2(h))
            return self.head(self.drop(h).reshape(x.shape[0], -1))
'''))
(project / "seqnet.yaml").write_text(textwrap.dedent('''
    model: {factory: "seqnet:SeqNet", args: {width: 16}}
    data: {source: mnist1d, batch_size: 64}
    schedule:
      name: warmup
      warmup_steps: 10%
      schedule: {name: cosine_decay, peak: 3.0e-3, decay_steps: 90%, floor: 0.01, floor_mode: relative}
    train: {steps: 500, log_every: 20, eval_every: 100, checkpoint_every: 500, progress: false}
'''))
print(*sorted(p.name for p in project.iterdir()))"""),
    new_markdown_cell("""## One run

`lrjax train path/to/seqnet.yaml` from any directory would do the same; from Python it is `train(config)`
(or `train(config, model=factory, loss=fn, data=arrays)` without a file). The resolved `config.yaml` records
the module by its file, so `--resume` finds it again from anywhere."""),
    new_code_cell("""from lrjax.engine import load_config
from lrjax.train import plot_run, train

config = load_config(project / "seqnet.yaml")
print("model.factory resolved to", config.model.factory)
summary = train(config, out_dir=str(project / "run"), verbose=False)
print("test accuracy", round(summary["final_eval"]["test_accuracy"], 4), "| run name", summary["name"])
display(Image(filename=plot_run(str(project / "run"))))"""),
    new_markdown_cell("""## A sweep of the peak rate

Five peaks of the same model structure: their train states (parameters, BatchNorm statistics, optimizer
state with the schedule inside) are stacked and trained by one compiled program. A validation split (10 %
of the training signals) ranks them; the test accuracy is reported, never used to choose."""),
    new_code_cell("""from lrjax.sweep import run_sweep, sweep_from_dict

spec = sweep_from_dict({"base": str(project / "seqnet.yaml"), "config": {"train": {"steps": 300}},
                        "grid": {"schedule.schedule.peak": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]}},
                       root=str(project))
res = run_sweep(spec, out_dir=str(project / "sweep"), verbose=False)
print("compiled groups:", len(res.groups), "| chunk sizes:", res.groups[0]["sizes"], "| winner:", res.winner)
cols = ["rank", "label", "val_accuracy", "test_accuracy", "val_loss"]
display(Markdown("| " + " | ".join(cols) + " |\\n|" + "---|" * len(cols) + "\\n" + "\\n".join(
    "| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |" for r in res.rows)))
display(Image(filename=str(project / "sweep" / "sweep.png")))"""),
    new_markdown_cell("""The peak of the recipe above (3e-3) is not this model's: the sweep's best peak is ten times higher,
at the top of the grid — the range test below agrees that the loss still falls steeply there. One compiled
program trained all five; a wider grid would cost no new compilation."""),
    new_markdown_cell("""## A range test of it

The range test runs the config's own experiment — this model, its loss, data, optimizer and batches — with
an exponential ramp in place of the schedule, in one compiled loop that stops on the device when the
smoothed loss blows up. The parallel test trains five constant rates side by side and ranks them on the
validation split."""),
    new_code_cell("""from lrjax.finder import range_test_config

found = range_test_config(config, min_lr=1e-5, max_lr=1.0, num_steps=100, parallel_rates=5, parallel_steps=60)
print(found.sweep)
print(found.grid)
paths = found.save(str(project / "find-lr"), "steepest")
display(Image(filename=paths["png"]))"""),
]

NB08 = [
    new_markdown_cell("""# 8. Sweeps that decide: grid, successive halving and PBT in one compiled program

Sixteen configurations of the MNIST-1D MLP (8 peaks from 1e-4 to 0.3 × warmup 0 or 200 updates; the recipes
`configs/sweeps/mnist1d_grid.yaml`, `halving.yaml`, `pbt.yaml`), shortened here to 600 updates so that the
notebook runs in well under a minute. Three strategies, one engine:

* **grid** — every configuration to the end;
* **halving** — at each rung the configurations still training are ranked on the *validation* accuracy and
  the best quarter goes on; the others leave the stacked state, so they stop costing compute;
* **PBT** — every interval the worst quarter copies the parameters and optimizer state (the schedule lives
  in it) of one of the best quarter, an on-device gather, and multiplies its peak and weight decay.

Every choice looks at a validation split carved from the training signals; the test accuracy is reported
beside it and never used. `benchmarks/decide.py` runs the full 2,000-update version and Optuna for
comparison; its figures are in `benchmarks/RESULTS.md`."""),
    new_code_cell("""%matplotlib inline
import pathlib, time
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from lrjax.sweep import load_sweep, run_sweep

root = pathlib.Path.cwd()
if not (root / "configs").is_dir():
    root = root.parent                      # executed from notebooks/
short = ["config.train.steps=600", "config.train.eval_every=30", "config.train.log_every=30",
         "config.train.progress=false"]
runs = {}
for name, extra in (("grid", []), ("halving", ["strategy.rungs=[60, 180]"]), ("pbt", ["strategy.interval=75"])):
    spec = load_sweep(root / "configs/sweeps" / f"{'mnist1d_grid' if name == 'grid' else name}.yaml", short + extra)
    t = time.perf_counter()
    runs[name] = run_sweep(spec, write=False, verbose=False)
    runs[name].wall = time.perf_counter() - t

rows = []
for name, res in runs.items():
    best = next(r for r in res.results if r.label == res.winner)
    rows.append(f"| {name} | {res.config_steps} | {sum(len(g['sizes']) for g in res.groups)} | {res.wall:.1f} s | "
                f"{res.winner} | {best.final_eval['val_accuracy']:.4f} | {best.final_eval['test_accuracy']:.4f} |")
display(Markdown("| strategy | config-steps | compilations | wall | winner | val acc | test acc |\\n|---|---|---|---|---|---|---|\\n"
                 + "\\n".join(rows)))"""),
    new_markdown_cell("""## What each strategy saw

Validation accuracy of every configuration over the updates: the grid trains all sixteen to the end; halving
drops three quarters at each rung (the lines end where they were pruned); PBT's members jump when they copy
a better one."""),
    new_code_cell("""fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True, constrained_layout=True)
for ax, (name, res) in zip(axes, runs.items()):
    for r in res.results:
        ev = [x for x in r.records if x.get("val_accuracy") is not None]
        win = r.label == res.winner
        ax.plot([x["step"] for x in ev], [x["val_accuracy"] for x in ev], lw=2.5 if win else 0.9,
                alpha=1 if win else 0.6, color="C3" if win else "C0")
    ax.set_title(f"{name}: {res.config_steps} configuration-steps")
    ax.set_xlabel("update")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("validation accuracy")
plt.show()"""),
    new_markdown_cell("""Reading the table: halving spends a fifth of the grid's configuration-steps, but its wall time is
dominated here by compiling a program per survivor count (three, on this short run) and its early rankings
are noisy — a schedule with a 200-update warmup looks bad at the first rung and may never get to show its
end. On the full 2,000-update problem (`benchmarks/decide.py`) the rungs sit later relative to the
compilation cost. PBT trains on the grid's budget in one compiled program; compare its winner with the
grid's, and read its lineage below (empty when the winner never copied anyone: the exploits only ever
replace the worst quarter)."""),
    new_markdown_cell("""## PBT's piecewise rates

A member's schedule after an exploit is the copied member's, with its peak scaled: the rate each update
applied, read back from the optimizer state, is piecewise. `summary.json` (with `--out`) records the lineage;
each result carries its effective schedule as an lrjax spec, which re-trains it alone."""),
    new_code_cell("""import lrjax

pbt = runs["pbt"]
fig, ax = plt.subplots(figsize=(10, 4), constrained_layout=True)
for r in pbt.results:
    win = r.label == pbt.winner
    ax.plot(np.arange(1, len(r.rates) + 1), r.rates, lw=2.5 if win else 0.8, alpha=1 if win else 0.5,
            label=r.label if win else None)
    for e in r.lineage:
        ax.axvline(e["step"], color="0.85", lw=0.5, zorder=0)
ax.set_yscale("log")
ax.set_xlabel("update")
ax.set_ylabel("learning rate applied")
ax.legend(title="winner")
plt.show()
winner = next(r for r in pbt.results if r.label == pbt.winner)
print("winner's lineage:", winner.lineage)
sched = lrjax.from_spec(winner.schedule_spec)        # its effective schedule, as an lrjax spec
print("the spec reproduces the applied rates:", np.allclose(sched(np.arange(len(winner.rates))), winner.rates, rtol=1e-5))"""),
]

NB09 = [
    new_markdown_cell("""# 9. A language model: bytes, a transformer, and the schedules LLMs use now

`data.source: text` reads bytes — of a file, of every text file under a folder, or, with no `path`, of the
running Python's own standard library (real text on every machine, no download) — and the tokens are the
bytes themselves (a vocabulary of 256, no tokenizer). Training windows of `context + 1` bytes are drawn at
random offsets *on the device* from the `uint8` stream every step, so memory is the corpus plus the model.
`model.kind: transformer` is a decoder-only, pre-LN GPT-2-shaped transformer in Flax NNX; the metrics are
nats per byte (`loss`), `bits_per_token` and next-byte `accuracy`, and every duration may count tokens
(`train.steps: "1M tokens"`).

This notebook trains a small one on the standard library (a shortened `configs/lm.yaml`), samples from it,
then runs a short version of `configs/sweeps/lm_schedules.yaml`: warmup + cosine to 10 %, linear decay to
zero, warmup-stable-decay with linear and 1-sqrt cooldowns, constant, and schedule-free AdamW at one token
budget. The full comparison and what it says about the papers behind these schedules: `docs/lm.md`."""),
    new_code_cell("""%matplotlib inline
import pathlib, tempfile
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Image, Markdown, display
from lrjax.engine import load_config
from lrjax.train import load_checkpoint, plot_run, train

root = pathlib.Path.cwd()
if not (root / "configs").is_dir():
    root = root.parent                      # executed from notebooks/
work = pathlib.Path(tempfile.mkdtemp(prefix="lrjax-09-"))

# configs/lm.yaml, smaller: d_model 64, windows of 64 bytes, 1M tokens (488 updates of 32 windows)
config = load_config(root / "configs/lm.yaml", ["model.d_model=64", "data.context=64", "train.steps=1M tokens",
                                                "train.eval_every=25%", "train.progress=false"])
summary = train(config, out_dir=str(work / "run"), verbose=False)
d, fe = summary["data"], summary["final_eval"]
print(f"corpus: {d['name']} (Python {d['python']}), {d['num_bytes']:,} bytes, sha256 {d['sha256'][:16]}...,"
      f" {len(d['files']['train'])} training files")
print(f"model: {summary['parameters']:,} parameters; {summary['steps']} updates in {summary['time_s']:.0f} s")
print(f"validation: {fe['val_loss']:.3f} nats/byte = {fe['val_bits_per_token']:.3f} bits/byte, "
      f"next-byte accuracy {fe['val_accuracy']:.3f}")
display(Image(filename=plot_run(str(work / "run"))))"""),
    new_markdown_cell("""## What it learned

The checkpoint is an ordinary train state: restore it, and sample bytes one at a time from the model's
next-byte distribution (temperature 0.8), starting from a window of the validation split. Five hundred
updates on bytes learn the surface — indentation, `if`, common words and how they are spelt — not yet Python's
syntax, let alone its meaning; the full `configs/lm.yaml` (6M tokens, 1.5 nats per byte) gets further."""),
    new_code_cell("""import jax
import jax.numpy as jnp

exp, state, _ = load_checkpoint(str(work / "run"))
T = exp.data.context
params = exp.eval_params(state)


@jax.jit
def next_byte(window, key):
    logits, _ = exp.model.apply(params, state.extra, window[None], train=False)
    return jax.random.categorical(key, logits[0, -1] / 0.8)


window = jnp.asarray(exp.data.x_val[3], jnp.int32)      # 64 bytes of a held-out file
out = bytearray(np.asarray(window, np.uint8).tobytes())
key = jax.random.key(0)
for i in range(300):
    b = next_byte(window, jax.random.fold_in(key, i))
    out.append(int(b))
    window = jnp.concatenate([window[1:], b[None].astype(jnp.int32)])
print(out[:T].decode("utf-8", "replace"), end="")
print("\\u2588", end="")                                  # where the model takes over
print(out[T:].decode("utf-8", "replace"))"""),
    new_markdown_cell("""## The schedules, at one token budget

Six schedules at one peak (3e-3), the same initialisation and the same windows, ranked on the validation loss.
The five AdamW schedules differ only in the schedule, so they are branches of one `lrjax.Switch` and train
in one compiled, vmapped program; schedule-free AdamW has another optimizer state and is a second program.
Shortened here to 300K tokens of a one-layer model so the notebook stays quick: at this length the ranking is
not the full run's (`docs/lm.md`: 2M tokens, two peaks)."""),
    new_code_cell("""import yaml
from lrjax.sweep import run_sweep, sweep_from_dict

spec = yaml.safe_load((root / "configs/sweeps/lm_schedules.yaml").read_text())
spec["configs"] = [c for c in spec["configs"] if c["label"].endswith(" 3e-3")]
spec["config"]["model"].update(d_model=32, layers=1, heads=2)
spec["config"]["data"].update(eval_windows=128)
spec["config"]["train"].update(steps="300K tokens", eval_every="30K tokens", log_every="10K tokens", progress=False)
res = run_sweep(sweep_from_dict(spec, root=str(root / "configs/sweeps")), write=False, verbose=False)
print(f"{len(res.results)} schedules, {len(res.groups)} compiled programs, winner: {res.winner}")
cols = ["rank", "label", "val_loss", "val_bits_per_token", "test_loss"]
display(Markdown("| " + " | ".join(cols) + " |\\n|" + "---|" * len(cols) + "\\n" + "\\n".join(
    "| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |" for r in res.rows)))

tokens = 32 * 64                                        # per update: batch x context
fig, (ax, lr) = plt.subplots(2, 1, figsize=(10, 6.5), height_ratios=(3, 1), sharex=True, constrained_layout=True)
for r in res.results:
    ev = [x for x in r.records if x.get("val_loss") is not None]
    line, = ax.plot([x["step"] * tokens / 1e3 for x in ev], [x["val_loss"] for x in ev], marker="o", ms=3,
                    label=r.label)
    lr.plot(np.arange(1, len(r.rates) + 1) * tokens / 1e3, r.rates, color=line.get_color())
ax.set_ylabel("validation loss (nats per byte)")
ax.set_ylim(top=min(3.0, ax.get_ylim()[1]))
ax.legend()
ax.grid(alpha=0.3)
lr.set_ylabel("learning rate")
lr.set_xlabel("tokens (thousands)")
lr.grid(alpha=0.3)
plt.show()"""),
    new_markdown_cell("""Reading it: the schedules that keep the rate high for longest (constant, the stable phase of WSD,
schedule-free) are ahead while the others decay; what a decay buys shows only in its last stretch — WSD's
cooldown drops the loss fast in its last 20 %. At 300K tokens of a tiny model and one seed, differences of a
few hundredths of a nat are within what another seed moves. The full run (`lrjax sweep
configs/sweeps/lm_schedules.yaml`, about ten minutes on two cores), the table with two peaks per schedule,
three seeds of the close ones, and which published findings reproduce at this scale are in `docs/lm.md`."""),
]


def write(name: str, cells: list, execute: bool) -> None:
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                            "name": "python3"}})
    path = ROOT / "notebooks" / name
    if execute:
        import nbclient

        nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    print("wrote", path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--execute", action="store_true")
    ap.add_argument("only", nargs="*", help="notebook names to write (default: all), e.g. 09_language_model.ipynb")
    args = ap.parse_args()
    for name, cells in (("07_your_own_model.ipynb", NB07), ("08_sweeps_that_decide.ipynb", NB08),
                        ("09_language_model.ipynb", NB09)):
        if not args.only or name in args.only:
            write(name, cells, args.execute)


if __name__ == "__main__":
    main()
