"""`import lrjax` stays light: the schedule core must not pull in flax, orbax or matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

HEAVY = ("flax", "orbax", "matplotlib", "tensorflow", "torch")


def _loaded_after(code: str) -> list[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _heavy(mods: list[str]) -> list[str]:
    return [m for m in mods if m.split(".")[0] in HEAVY]


def test_import_lrjax_is_light():
    mods = _loaded_after("import lrjax; lrjax.CosineDecay(1.0, 10)(3)")
    assert "lrjax" in mods and "jax" in mods
    assert _heavy(mods) == [], f"import lrjax loaded {_heavy(mods)[:10]}"


def test_specs_and_cli_dispatch_stay_light():
    mods = _loaded_after(
        "import lrjax, lrjax.cli, yaml\n"
        "s = lrjax.from_spec(yaml.safe_load('{name: warmup, warmup_steps: 5, schedule: {name: constant}}'))\n"
        "lrjax.to_spec(s)"
    )
    assert _heavy(mods) == []


def test_plot_module_imports_matplotlib_lazily():
    mods = _loaded_after("import lrjax.plot")
    assert "matplotlib" not in mods


def _modules() -> list[str]:
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "lrjax"
    mods = []
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root.parent).with_suffix("").parts
        mods.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return mods


def test_every_module_imports_on_its_own():
    """Each module imported first, in a fresh interpreter: an import cycle fails here (four at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    def first_import(module: str) -> tuple[str, str]:
        r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        return module, (r.stderr.strip().splitlines() or [""])[-1] if r.returncode else ""

    with ThreadPoolExecutor(4) as pool:
        bad = {m: err for m, err in pool.map(first_import, _modules()) if err}
    assert bad == {}


# Layers, top-down: lower ones never import higher ones, and nothing below the commands imports the
# top-level ``lrjax`` namespace (only the package's own modules).
_LAYERS = {
    "lrjax._checks": 0, "lrjax._yaml": 0, "lrjax._rundir": 0,
    "lrjax.schedules": 1, "lrjax.optim": 2, "lrjax.compat": 3, "lrjax.plot": 3,
    "lrjax.engine": 4, "lrjax.train": 5, "lrjax.sweep": 5, "lrjax.finder": 5, "lrjax.cli": 6,
}


def _layer(module: str) -> int | None:
    best = None
    for prefix, level in _LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            best = level
    return best


def test_layers_import_top_down():
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "lrjax"
    bad = []
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root.parent).with_suffix("").parts
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        own = _layer(mod)
        if own is None:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name == "lrjax" and mod != "lrjax.cli":
                    bad.append(f"{mod} imports the top-level lrjax namespace")
                other = _layer(name)
                if other is not None and other > own:
                    bad.append(f"{mod} (layer {own}) imports {name} (layer {other})")
    assert bad == []


def _package(module: str) -> str:
    """``lrjax.engine._build`` -> ``lrjax.engine``; ``lrjax.plot`` -> ``lrjax.plot``."""
    return ".".join(module.split(".")[:2])


def _imports() -> list[tuple[str, str, list[str]]]:
    """``(importing module, imported module, names)`` of every absolute ``from lrjax... import`` in lrjax."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "lrjax"
    out = []
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root.parent).with_suffix("").parts
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("lrjax"):
                out.append((mod, node.module, [a.name for a in node.names]))
    return out


def test_no_private_name_crosses_a_package():
    """A package uses another through its public names: no ``_name`` imported across packages, and outside the
    command line no import from another package's private module (``lrjax.engine._util``)."""
    bad = []
    for mod, imported, names in _imports():
        if _package(mod) == _package(imported):
            continue
        bad += [f"{mod} imports {imported}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
        private_module = any(part.startswith("_") for part in imported.split(".")[2:])
        if private_module and not mod.startswith("lrjax.cli"):
            bad.append(f"{mod} imports from {imported}")
    assert bad == []


def _public(module: Any) -> set[str]:
    return set(module.__all__)


def test_the_lazy_export_lists_are_checked():
    """``lrjax``'s lazy names and its TYPE_CHECKING imports are the same list; ``lrjax.engine``'s ``__all__`` is its
    eager imports and its lazy names; every listed name resolves."""
    import ast
    import pathlib

    import lrjax
    import lrjax.engine

    src = (pathlib.Path(lrjax.__file__)).read_text()
    tree = ast.parse(src)
    typed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for sub in node.body:
                if isinstance(sub, ast.ImportFrom):
                    typed |= {(sub.module, a.name) for a in sub.names}
    assert typed == {(m, n) for n, m in lrjax._EXPORTS.items()}
    assert _public(lrjax) == set(lrjax._EXPORTS) | {"__version__"}
    eng = ast.parse(pathlib.Path(lrjax.engine.__file__).read_text())
    eager = {a.asname or a.name for node in eng.body if isinstance(node, ast.ImportFrom)
             and (node.module or "").startswith("lrjax.engine.") for a in node.names}
    assert _public(lrjax.engine) == eager | set(lrjax.engine._LAZY)
    for name in sorted(_public(lrjax.engine)):
        assert getattr(lrjax.engine, name) is not None, name
