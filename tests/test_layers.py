"""Layers import upward only: physics <- synth <- model <- train (checked in a fresh interpreter).

The layers are the subpackages ``relaxomap.physics`` ... ``relaxomap.train``; the package root ``relaxomap``
(version, shared helpers) sits above all of them and may be imported by each."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

LAYERS = ["physics", "synth", "model", "train"]
ROOT = "relaxomap"


def _loaded_layers(package: str) -> list[str]:
    code = (
        "import importlib, pkgutil, sys, json\n"
        f"pkg = importlib.import_module({ROOT + '.' + package!r})\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted({n.split('.')[1] for n in sys.modules if n.startswith('relaxomap.')})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("index", range(len(LAYERS) - 1))
def test_layer_imports_no_lower_layer(index: int) -> None:
    layer = LAYERS[index]
    loaded = set(_loaded_layers(layer))
    lower = [name for name in LAYERS[index + 1:] if name in loaded]
    assert lower == [], f"importing all of {layer}/ loaded lower layer(s) {lower}"


def test_package_root_imports_no_layer() -> None:
    code = ("import sys, json, relaxomap\n"
            "print(json.dumps(sorted(n for n in sys.modules if n.startswith('relaxomap.'))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------------------------------------ rooms of train/
TRAIN_ROOMS = ("clinical", "evaluation", "experiment", "cli")


def _room(module: str) -> str:
    """``relaxomap.train.<room>...`` -> room; modules directly in train/ belong to the training ``core``."""
    parts = module.split(".")
    return parts[2] if len(parts) >= 3 and parts[2] in TRAIN_ROOMS else "core"


def _train_imports() -> dict[str, set[str]]:
    """Static import graph of train/ (every ``import`` / ``from`` statement, also inside functions):
    module -> the ``relaxomap.train`` modules it names."""
    import ast

    graph: dict[str, set[str]] = {}
    for path in sorted((REPO / "train").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(("relaxomap",) + tuple(p for p in rel if p != "__init__"))
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
        graph[name] = {t for t in targets if t.startswith("relaxomap.train.")}
    return graph


def _room_edges() -> set[tuple[str, str]]:
    return {(_room(src), _room(dst)) for src, dsts in _train_imports().items() for dst in dsts
            if _room(src) != _room(dst)}


def test_no_room_of_train_imports_the_cli() -> None:
    importers = sorted(src for src, dsts in _train_imports().items() if _room(src) != "cli"
                       and any(_room(d) == "cli" for d in dsts))
    assert importers == []
    code = (
        "import importlib, pkgutil, sys, json\n"
        "import relaxomap.train as t\n"
        "for m in pkgutil.iter_modules(t.__path__, 'relaxomap.train.'):\n"
        "    if m.name != 'relaxomap.train.cli':\n"
        "        mod = importlib.import_module(m.name)\n"
        "        for sub in pkgutil.walk_packages(getattr(mod, '__path__', []), m.name + '.'):\n"
        "            importlib.import_module(sub.name)\n"
        "cli = [n for n in sys.modules if n == 'relaxomap.train.cli' or n.startswith('relaxomap.train.cli.')]\n"
        "print(json.dumps(sorted(cli)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_rooms_of_train_import_without_cycles() -> None:
    """The room graph (core <- evaluation <- clinical; experiment over both; cli over all) has no cycle, and the
    training core imports no room."""
    edges = _room_edges()
    assert {dst for src, dst in edges if src == "core"} == set()
    for a, b in edges:
        assert (b, a) not in edges, f"import cycle between train rooms {a} and {b}"
    # no longer cycle either: a topological order exists
    rooms = {"core", *TRAIN_ROOMS}
    order = []
    while rooms:
        free = {r for r in rooms if not any(src == r and dst in rooms for src, dst in edges)}
        assert free, f"import cycle among train rooms {sorted(rooms)}"
        order += sorted(free)
        rooms -= free
    assert order.index("core") < order.index("evaluation") < order.index("clinical") < order.index("cli")
