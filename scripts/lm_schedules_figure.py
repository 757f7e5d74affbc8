"""The figure and the table of docs/lm.md from a run of configs/sweeps/lm_schedules.yaml.

    lrjax sweep configs/sweeps/lm_schedules.yaml --out runs/lm-schedules
    python scripts/lm_schedules_figure.py runs/lm-schedules          # -> docs/lm_schedules.png, table on stdout

The figure: validation loss (nats per byte) against tokens, one line per schedule at its better peak (the other
peak thin and dashed), the rate each applied below it; a zoom on the last 40 % of the budget on the right.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from lrjax._rundir import safe_name  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLORS = {"cosine-10%": "C0", "linear-to-0": "C1", "wsd-linear": "C2", "wsd-1-sqrt": "C3", "constant": "C7",
          "schedule-free": "C4"}


def load(run: pathlib.Path) -> tuple[dict, list[dict], dict[str, list[dict]], int]:
    summary = json.loads((run / "summary.json").read_text())
    spec = yaml.safe_load((run / "sweep.yaml").read_text())
    data = spec["config"]["data"]
    tokens_per_update = int(data["batch_size"]) * int(data["context"])
    curves = {}
    for row in summary["table"]:
        path = run / "metrics" / f"{safe_name(row['label'], what=None)}.jsonl"
        curves[row["label"]] = [json.loads(x) for x in path.read_text().splitlines()]
    return summary, summary["table"], curves, tokens_per_update


def family(label: str) -> tuple[str, str]:
    name, _, peak = label.rpartition(" ")
    return name, peak


def table(rows: list[dict], tokens_per_update: int) -> str:
    best = min(r["val_loss"] for r in rows)
    out = ["| rank | schedule | peak | val loss (nats/byte) | val bits/byte | vs best | test loss | "
           "tokens to val loss 2.0 |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name, peak = family(r["label"])
        steps = r.get("steps_to_loss_2")
        to = f"{steps * tokens_per_update / 1e6:.2f}M" if steps else "—"
        out.append(f"| {r['rank']} | {name} | {peak} | {r['val_loss']:.4f} | {r['val_bits_per_token']:.4f} | "
                   f"{r['val_loss'] - best:+.4f} | {r['test_loss']:.4f} | {to} |")
    return "\n".join(out)


def figure(rows: list[dict], curves: dict[str, list[dict]], tokens_per_update: int, path: pathlib.Path) -> None:
    better = {}
    for r in rows:  # rows are ranked: the first of a family is its better peak
        better.setdefault(family(r["label"])[0], r["label"])
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5), height_ratios=(3, 1.2), sharex="col", constrained_layout=True)
    total = max(r["step"] for c in curves.values() for r in c) * tokens_per_update / 1e6
    for label, recs in curves.items():
        name, peak = family(label)
        main = better[name] == label
        ev = [r for r in recs if r.get("val_loss") is not None]
        x = [r["step"] * tokens_per_update / 1e6 for r in ev]
        y = [r["val_loss"] for r in ev]
        tr = [r for r in recs if "lr" in r]
        style = dict(color=COLORS.get(name, "k"), lw=2.0 if main else 0.9, ls="-" if main else "--",
                     alpha=1.0 if main else 0.6, label=f"{name} ({peak})" if main else None)
        for ax in axes[0]:
            ax.plot(x, y, marker="o" if main else None, ms=3, **style)
        for ax in axes[1]:
            ax.plot([r["step"] * tokens_per_update / 1e6 for r in tr], [r["lr"] for r in tr], **{**style, "label": None})
    lo = min(min(r["val_loss"] for r in c if r.get("val_loss") is not None and r["step"] * tokens_per_update / 1e6
                 >= 0.6 * total) for c in curves.values())
    hi = max(r["val_loss"] for c in curves.values() for r in c
             if r.get("val_loss") is not None and r["step"] * tokens_per_update / 1e6 >= 0.6 * total)
    axes[0][1].set_xlim(0.6 * total, total * 1.01)
    axes[0][1].set_ylim(lo - 0.01, min(hi, lo + 0.35) + 0.01)
    axes[0][0].set_ylim(top=min(3.2, axes[0][0].get_ylim()[1]))
    axes[0][0].set_ylabel("validation loss (nats per byte)")
    axes[1][0].set_ylabel("learning rate")
    for ax in axes[1]:
        ax.set_xlabel("tokens (millions)")
    axes[0][0].set_title("validation loss against tokens (thick: each schedule's better peak)")
    axes[0][1].set_title("the last 40 % of the budget")
    axes[0][0].legend(fontsize=9)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=pathlib.Path, help="the sweep's run directory")
    ap.add_argument("-o", "--out", type=pathlib.Path, default=ROOT / "docs" / "lm_schedules.png")
    a = ap.parse_args()
    summary, rows, curves, tpu = load(a.run)
    figure(rows, curves, tpu, a.out)
    print(table(rows, tpu))
    print(f"\n{summary['configurations']} configurations, {summary['compilations']} compilations, "
          f"{summary['time_s']:.0f} s; groups: " + "; ".join(
              f"{len(g['members'])} configs compile {g['compile_s']:.1f} s run {g['run_s']:.0f} s"
              for g in summary["groups"]))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
