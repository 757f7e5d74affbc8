"""``lrjax plot [SPEC.yaml ...] [--steps N] [-o out.png]``: schedule specs from YAML files, or the gallery.

The pictures themselves are :mod:`lrjax.plot`'s (:func:`~lrjax.plot.plot_schedules`, :func:`~lrjax.plot.gallery`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from collections.abc import Sequence as Seq
from pathlib import Path

from lrjax.plot import gallery, plot_schedules
from lrjax.schedules import Schedule, from_spec

__all__ = ["main"]

DEFAULT_GALLERY = "lrjax-gallery.png"


class SpecFileError(Exception):
    """A spec file that cannot be read or built; the message names the path."""


def _load_file(path: str) -> dict[str, Schedule]:
    import yaml

    from lrjax._yaml import load as load_yaml  # YAML 1.2 numbers: 1e-3 is a number

    p = Path(path)
    try:
        data = load_yaml(p.read_text())
    except FileNotFoundError:
        raise SpecFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecFileError(f"{path}: cannot read it ({e})") from None
    except yaml.YAMLError as e:
        raise SpecFileError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if isinstance(data, Mapping) and "schedule" in data and "name" not in data:  # a training config
        data = data["schedule"]
    try:
        if isinstance(data, Mapping) and "name" in data:
            s = from_spec(data, where=path)
            return {p.stem: s}
        if isinstance(data, list):
            out = {}
            for i, d in enumerate(data):
                s = from_spec(d, where=f"{path}[{i}]")
                out[f"{p.stem}[{i}] {type(s).__name__}"] = s
            return out
        if isinstance(data, Mapping) and data:
            return {str(k): from_spec(v, where=f"{path}:{k}") for k, v in data.items()}
    except (ValueError, TypeError) as e:
        raise SpecFileError(str(e) if path in str(e) else f"{path}: {e}") from None
    raise SpecFileError(
        f"{path}: expected a schedule spec (a mapping with a 'name' key), a list of specs, or a mapping "
        f"label -> spec; got {type(data).__name__}: {data!r}"
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="lrjax plot",
        description="Plot schedule specs from YAML files; with no file, draw the gallery of every family.",
    )
    ap.add_argument("specs", nargs="*", metavar="SPEC.yaml",
                    help="a spec, a list of specs, or a mapping label -> spec (also a config with a 'schedule' key)")
    ap.add_argument("--steps", type=int, default=None, help="steps to draw (default: 1.15 x the longest horizon)")
    ap.add_argument("-o", "--output", default=None, help=f"output PNG (default: {DEFAULT_GALLERY} or SPEC.png)")
    ap.add_argument("--log", action="store_true", help="logarithmic rate axis")
    ap.add_argument("--no-momentum", action="store_true", help="do not draw the companion momentum")
    return ap


def main(argv: Seq[str] | None = None) -> int:
    """``lrjax plot [SPEC.yaml ...] [--steps N] [-o out.png]``; returns the exit code."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.steps is not None and args.steps < 1:
        print(f"lrjax plot: --steps must be >= 1, got {args.steps}", file=sys.stderr)
        return 2
    if not args.specs:
        out = args.output or DEFAULT_GALLERY
        gallery(out, steps=args.steps or 1000)
        print(f"wrote the gallery of every schedule family to {out}")
        return 0
    named: dict[str, Schedule] = {}
    try:
        for path in args.specs:
            named.update(_load_file(path))
    except SpecFileError as e:
        print(f"lrjax plot: {e}", file=sys.stderr)
        return 2
    out = args.output or (Path(args.specs[0]).with_suffix(".png").name if len(args.specs) == 1 else "lrjax-schedules.png")
    title = ", ".join(Path(p).name for p in args.specs)
    fig = plot_schedules(named, args.steps, momentum=not args.no_momentum, title=title, log=args.log)
    fig.savefig(out, dpi=120)
    print(f"wrote {len(named)} schedule(s) to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
