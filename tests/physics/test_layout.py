"""The physics layer's layout rules: small modules and functions, explicit ``__all__``, documented modules."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import relaxomap.physics
from relaxomap.physics import checks

PHYSICS = Path(__file__).resolve().parents[2] / "physics"
MODULES = sorted(".".join(p.relative_to(PHYSICS).with_suffix("").parts) for p in PHYSICS.rglob("*.py")
                 if p.stem != "__init__" and "__pycache__" not in p.parts)
PACKAGES = sorted(p.parent.relative_to(PHYSICS).as_posix().replace("/", ".") for p in PHYSICS.rglob("__init__.py")
                  if p.parent != PHYSICS)
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80  # end_lineno − lineno, docstring included


@pytest.mark.parametrize("name", MODULES)
def test_module_size_and_function_length(name: str) -> None:
    text = (PHYSICS / f"{name.replace('.', '/')}.py").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    long = [f"{n.name} ({n.end_lineno - n.lineno} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno > MAX_FUNCTION_LINES]
    assert long == []


@pytest.mark.parametrize("name", MODULES)
def test_explicit_all_names_defined_names(name: str) -> None:
    module = importlib.import_module(f"relaxomap.physics.{name}")
    assert isinstance(module.__all__, list)
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_package_docstring_lists_every_module() -> None:
    """The physics docstring lists its modules and subpackages; each subpackage's docstring lists its own."""
    listed = set(re.findall(r"``(\w+)``", relaxomap.physics.__doc__))
    assert [m for m in MODULES if "." not in m and m not in listed] == []
    assert [p for p in PACKAGES if p not in listed] == []
    for pkg in PACKAGES:
        doc = importlib.import_module(f"relaxomap.physics.{pkg}").__doc__
        own = set(re.findall(r"``(\w+)``", doc))
        assert [m for m in MODULES if m.startswith(pkg + ".") and m.split(".")[-1] not in own] == []


def test_checks_docstring_documents_every_public_helper() -> None:
    documented = set(re.findall(r":(?:func|data):`(\w+)`", checks.__doc__))
    assert set(checks.__all__) <= documented
    assert [n for n in documented if n not in checks.__all__] == []
