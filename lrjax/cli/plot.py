"""``lrjax plot [FILE.yaml ...] [--steps N] [-o out.png] [--log] [--no-momentum]``: schedules from YAML files.

Each file is either

* a **schedule spec** (a mapping whose ``name`` is a schedule family, see :func:`lrjax.from_spec`), a list
  of specs, or a mapping ``label -> spec``; drawn over 1.15 x the longest horizon; or
* a **training config** (``lrjax train``'s: keys such as ``schedule``, ``optimizer``, ``train``, ``data``,
  ``model``): its schedule exactly as training builds it (:func:`lrjax.engine._build.make_schedule`:
  ``"10%"`` of ``train.steps``, ``"2 epochs"`` of the config's training set, which is then loaded for its
  size, and ``optimizer.batch_scaling``), drawn over ``train.steps`` (``"5 epochs"`` counted the same way),
  with the momentum the optimizer is given (``optimizer.cycle_momentum``, or a schedule spec as its
  ``b1``/``momentum`` argument).

Several files go on one axis, labelled by file stem, momentum dashed on a twin axis. With no file: the
gallery of every family. Every bad input (a file that is missing, not YAML, neither kind; an unknown
schedule name; an output folder that does not exist or a format matplotlib cannot write) is one line on
stderr and exit status 2. The pictures themselves are :mod:`lrjax.plot`'s.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lrjax.cli._common import fail, file_kind
from lrjax.plot import companion_momentum, default_steps, gallery, plot_schedules
from lrjax.schedules import Schedule, from_spec

__all__ = ["main"]

PROG = "lrjax plot"
DEFAULT_GALLERY = "lrjax-gallery.png"
_FIRST_FORMATS = ("png", "pdf", "svg")


class PlotInputError(Exception):
    """A file or an argument ``lrjax plot`` cannot use; the message names it."""


class _Curves:
    """What the files give: label -> schedule, label -> momentum (or None), and the steps to draw."""

    def __init__(self) -> None:
        self.rates: dict[str, Schedule] = {}
        self.momenta: dict[str, Schedule | None] = {}
        self.lengths: list[int] = []

    def add(self, label: str, rate: Schedule, momentum: Schedule | None) -> None:
        unique, n = label, 2
        while unique in self.rates:  # two files with one stem: both drawn
            unique, n = f"{label} #{n}", n + 1
        self.rates[unique] = rate
        self.momenta[unique] = momentum


# -- reading files ---------------------------------------------------------------

def _read_yaml(path: str) -> Any:
    import yaml

    from lrjax._yaml import describe_error
    from lrjax._yaml import load as load_yaml  # YAML 1.2 numbers: 1e-3 is a number

    p = Path(path)
    if p.is_dir():
        raise PlotInputError(f"{path}: is a directory, not a YAML file")
    try:
        return load_yaml(p.read_text())
    except FileNotFoundError:
        raise PlotInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlotInputError(f"{path}: cannot read it ({e})") from None
    except yaml.YAMLError as e:
        raise PlotInputError(f"{path}: not valid YAML: {describe_error(e)}") from None


def _kind(data: Any) -> str:
    """``spec``, ``specs`` (a list), ``labelled`` (label -> spec), ``config`` (a training config), ``sweep``
    or ``neither``: :func:`lrjax.cli._common.file_kind`, the one reading every command shares. A mapping
    whose ``name`` is a schedule family and that has no key only a training config has is a spec (``warmup``
    has a ``schedule`` key too); an unknown ``name`` is a spec too (:func:`lrjax.from_spec` says which names
    there are)."""
    return file_kind(data)


def _neither(path: str, data: Any) -> PlotInputError:
    if data is None:
        return PlotInputError(f"{path}: the file is empty (expected a schedule spec or a training config)")
    shown = repr(data)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return PlotInputError(
        f"{path}: neither a schedule spec (a mapping whose 'name' is a schedule family, a list of them, or a "
        f"mapping label -> spec) nor a training config (a mapping with schedule/optimizer/train/data/model "
        f"keys); got {type(data).__name__}: {shown}")


def _add_specs(curves: _Curves, path: str, data: Any, kind: str, momentum: bool) -> None:
    stem = Path(path).stem
    try:
        if kind == "spec":
            items = [(stem, from_spec(data, where=path))]
        elif kind == "specs":
            items = []
            for i, d in enumerate(data):
                s = from_spec(d, where=f"{path}[{i}]")
                items.append((f"{stem}[{i}] {type(s).__name__}", s))
        else:
            items = [(f"{stem}: {k}", from_spec(v, where=f"{path}:{k}")) for k, v in data.items()]
    except (ValueError, TypeError) as e:
        msg = str(e)
        if kind == "spec" and "unknown schedule name" in msg:
            msg += " (nor is it a training config: it has no schedule/optimizer/train/data/model key)"
        raise PlotInputError(msg if path in msg else f"{path}: {msg}") from None
    for label, s in items:
        curves.add(label, s, companion_momentum(s) if momentum else None)
        curves.lengths.append(default_steps([s]))


def _epoch_durations(spec: Any, where: str) -> list[str]:
    """The durations in ``spec`` counted in epochs or examples (they need the training set's size)."""
    from lrjax.engine import ConfigError
    from lrjax.engine._config import parse_duration

    found: list[str] = []
    if isinstance(spec, Mapping):
        for k, v in spec.items():
            if k != "name":
                found += _epoch_durations(v, f"{where}.{k}")
    elif isinstance(spec, list):
        for i, v in enumerate(spec):
            found += _epoch_durations(v, f"{where}[{i}]")
    elif isinstance(spec, str):
        try:
            _, unit = parse_duration(spec, where)
        except ConfigError:  # not a duration ('cos', '1-sqrt')
            return found
        if unit in ("epochs", "examples"):
            found.append(f"{where}={spec!r}")
    return found


def _add_config(curves: _Curves, path: str, momentum: bool) -> None:
    """The config's schedule as training builds it, over ``train.steps``, with the optimizer's momentum."""
    from lrjax.engine import ConfigError, DataError, load_config, with_validation

    def named(e: Exception) -> str:
        return str(e) if path in str(e) else f"{path}: {e}"

    try:
        cfg = load_config(path)
    except (ConfigError, OSError) as e:
        raise PlotInputError(named(e)) from None
    from lrjax.engine import load_data, make_schedule, momentum_arg, spec_schedule, train_steps

    o = cfg.optimizer
    key = momentum_arg(o.name)
    mom_spec = o.args.get(key) if key is not None and isinstance(o.args.get(key), Mapping) else None
    needs = _epoch_durations(cfg.train.steps, "train.steps") + _epoch_durations(cfg.schedule, "schedule")
    if mom_spec is not None:
        needs += _epoch_durations(mom_spec, f"optimizer.args.{key}")
    num_examples = None
    if needs:  # "2 epochs": the size of the training set the run would see (its validation split held out)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                num_examples = load_data(with_validation(cfg)).num_train
        except (ConfigError, DataError, OSError, ValueError) as e:
            raise PlotInputError(
                f"{path}: {needs[0]} counts epochs/examples, which needs the size of the training set, and "
                f"data.source={cfg.data.source!r} could not be loaded: {e}") from None
    try:
        rate = make_schedule(cfg, num_examples=num_examples)
        mom = None
        if momentum and o.cycle_momentum and key is not None:
            mom = getattr(rate, "momentum", None)
        elif momentum and mom_spec is not None:
            mom = spec_schedule(mom_spec, cfg, num_examples, f"optimizer.args.{key}")
    except (ConfigError, ValueError, TypeError) as e:
        raise PlotInputError(named(e)) from None
    curves.add(Path(path).stem, rate, mom)
    curves.lengths.append(train_steps(cfg, num_examples))


def _load(paths: list[str], momentum: bool) -> _Curves:
    curves = _Curves()
    for path in paths:
        data = _read_yaml(path)
        kind = _kind(data)
        if kind == "neither":
            raise _neither(path, data)
        if kind == "sweep":
            raise PlotInputError(f"{path} is a sweep file, which lrjax plot does not draw; run it with: lrjax sweep "
                                 f"{path} (its sweep.png draws every configuration's rate), or plot the training "
                                 "config it names as base:")
        if kind == "config":
            _add_config(curves, path, momentum)
        else:
            _add_specs(curves, path, data, kind, momentum)
    return curves


# -- the output file --------------------------------------------------------------

def _check_output(out: str) -> None:
    """Refuse, before any work, an output matplotlib could not write."""
    from matplotlib.backend_bases import FigureCanvasBase

    p = Path(out)
    if p.is_dir():
        raise PlotInputError(f"-o {out}: is a directory; give a file name, e.g. -o {p / 'lr.png'}")
    if not p.parent.is_dir():
        raise PlotInputError(f"-o {out}: the folder {str(p.parent)!r} does not exist; create it first")
    ext = p.suffix.lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext not in formats:
        names = [f for f in _FIRST_FORMATS if f in formats] + sorted(set(formats) - set(_FIRST_FORMATS))
        what = f"the extension {p.suffix!r}" if ext else "a file name without an extension"
        raise PlotInputError(f"-o {out}: matplotlib cannot write {what}; use one of: {', '.join(names)}")


def _save(fig: Any, out: str, dpi: int) -> None:
    try:
        fig.savefig(out, dpi=dpi)
    except OSError as e:
        raise PlotInputError(f"-o {out}: cannot write it ({e.strerror or e})") from None
    except (RuntimeError, ValueError) as e:  # e.g. pgf without LaTeX
        raise PlotInputError(f"-o {out}: matplotlib could not write it: {' '.join(str(e).split())}") from None


# -- the command ------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Plot learning-rate schedules from YAML files: schedule specs, or training configs (their "
                    "schedule as `lrjax train` builds it, over train.steps). Several files go on one axis; the "
                    "momentum is drawn dashed on a right-hand axis. With no file: the gallery of every family.",
        epilog="Examples:\n  lrjax plot\n  lrjax plot configs/one_cycle.yaml\n"
               "  lrjax plot configs/warmup_cosine.yaml configs/wsd.yaml -o lr.pdf\n"
               "  lrjax plot my_schedule.yaml --steps 5000 --log",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="*", metavar="FILE.yaml",
                   help="a schedule spec, a list of specs, a mapping label -> spec, or a training config")
    p.add_argument("--steps", type=int, default=None,
                   help="steps to draw (default: a config's train.steps, 1.15 x a spec's horizon; the longest)")
    p.add_argument("-o", "--output", default=None,
                   help=f"output file, any format matplotlib writes: .png, .pdf, .svg, ... (default: "
                        f"{DEFAULT_GALLERY}, FILE.png for one file, lrjax-schedules.png for several)")
    p.add_argument("--log", action="store_true", help="logarithmic rate axis")
    p.add_argument("--no-momentum", action="store_true", help="do not draw the momentum")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``lrjax plot``; return the exit status (0 written, 2 bad input)."""
    args = _parser().parse_args(argv)
    if args.steps is not None and args.steps < 1:
        return fail(PROG, f"--steps must be >= 1, got --steps {args.steps}")
    if not args.files:
        out = args.output or DEFAULT_GALLERY
        try:
            _check_output(out)
            _save(gallery(None, steps=args.steps or 1000), out, 100)
        except PlotInputError as e:
            return fail(PROG, e)
        print(f"wrote the gallery of every schedule family to {out}")
        return 0
    out = args.output or (f"{Path(args.files[0]).stem}.png" if len(args.files) == 1 else "lrjax-schedules.png")
    try:
        _check_output(out)
        curves = _load(args.files, momentum=not args.no_momentum)
        title = ", ".join(Path(f).name for f in args.files)
        fig = plot_schedules(curves.rates, args.steps or max(curves.lengths), momentum=curves.momenta,
                             title=title, log=args.log)
        _save(fig, out, 120)
    except PlotInputError as e:
        return fail(PROG, e)
    print(f"wrote {len(curves.rates)} schedule(s) to {out}")
    return 0
