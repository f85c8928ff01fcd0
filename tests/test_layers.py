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
