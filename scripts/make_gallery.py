"""Write docs/gallery.png: every schedule family, one panel each (see lrjax.plot.gallery).

    python scripts/make_gallery.py [--out docs/gallery.png] [--steps 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lrjax.plot import gallery

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "gallery.png"))
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    fig = gallery(args.out, steps=args.steps, dpi=80)
    print(f"wrote {args.out} ({len(fig.axes)} axes)")


if __name__ == "__main__":
    main()
