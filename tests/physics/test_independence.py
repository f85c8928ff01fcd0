"""The float64 references share no code with the fast simulators they check: neither imports the other."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PHYSICS = Path(__file__).resolve().parents[2] / "physics"
# reference module -> the fast modules it checks (the public module and its private kernel / baseline)
PAIRS = {
    "epg_reference": ("epg", "epg_numpy", "epg_dictionary"),
    "bloch_reference": ("bloch", "_bloch_kernel"),
}


def _physics_imports(name: str) -> set[str]:
    """Modules of relaxomap.physics named by the import statements of physics/<name>.py (at any depth)."""
    found = set()
    for node in ast.walk(ast.parse((PHYSICS / f"{name}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        else:
            continue
        found.update(m.split(".")[2] for m in mods if m.startswith("relaxomap.physics.") and m.count(".") >= 2)
    return found


@pytest.mark.parametrize("reference, fast", PAIRS.items())
def test_no_import_statement_links_a_reference_and_its_fast_twin(reference: str, fast: tuple[str, ...]) -> None:
    assert not _physics_imports(reference) & set(fast), f"{reference} imports {_physics_imports(reference) & set(fast)}"
    for name in fast:
        assert reference not in _physics_imports(name), f"{name} imports {reference}"


def test_fresh_interpreter_loads_each_without_the_other() -> None:
    # Transitive imports too: importing a reference must not load its fast twin, and the other way round.
    code = (
        "import importlib, json, sys\n"
        f"pairs = {PAIRS!r}\n"
        "out = {}\n"
        "for ref, fast in pairs.items():\n"
        "    for first, others in ((ref, fast), (fast[0], (ref,))):\n"
        "        for m in [k for k in sys.modules if k.startswith('relaxomap')]:\n"
        "            del sys.modules[m]\n"
        "        importlib.import_module('relaxomap.physics.' + first)\n"
        "        out[first] = sorted(o for o in others if 'relaxomap.physics.' + o in sys.modules)\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    loaded = json.loads(res.stdout.strip().splitlines()[-1])
    assert loaded == {"epg_reference": [], "epg": [], "bloch_reference": [], "bloch": []}
