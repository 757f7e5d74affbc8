"""`import lrjax` stays light: the schedule core must not pull in flax, orbax or matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys

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
