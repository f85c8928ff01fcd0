"""Installed import names: only ``relaxomap.*``; the package list in setup.cfg is complete; a wheel works.

The four layers live in top-level folders of the source tree but must never be importable as bare
``physics`` / ``synth`` / ``model`` / ``train`` from an install, where they would collide with a user's own
``model.py`` or ``train.py``.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LAYERS = ("physics", "synth", "model", "train")


def _setup_packages() -> tuple[list[str], dict[str, str]]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    packages = cfg["options"]["packages"].split()
    package_dir = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
    return packages, package_dir


def _run(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env)


def test_bare_layer_names_are_not_importable(tmp_path: Path) -> None:
    # A fresh interpreter outside the source tree sees only the install.
    for name in LAYERS:
        out = _run(f"import {name}", tmp_path)
        assert out.returncode != 0 and f"No module named '{name}'" in out.stderr, (name, out.stderr[-300:])
    out = _run("import relaxomap.train.cli as c, relaxomap; print(relaxomap.__version__, c.main.name)", tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    version, name = out.stdout.split()
    assert name == "main" and version != "0+unknown"


def test_every_package_folder_is_listed_in_setup_cfg() -> None:
    packages, package_dir = _setup_packages()
    assert package_dir == {"relaxomap": "relaxomap", **{f"relaxomap.{layer}": layer for layer in LAYERS}}
    found = {"relaxomap"}
    for layer in LAYERS:
        for init in (REPO / layer).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO).parts
            found.add(".".join(("relaxomap", *rel)))
    assert sorted(packages) == sorted(found)


def test_wheel_installs_under_relaxomap_only(tmp_path: Path) -> None:
    # Built from a copy of the sources: setuptools' in-tree build/ folder keeps files that no longer exist.
    src, wheel_dir, site = tmp_path / "src", tmp_path / "wheel", tmp_path / "site"
    skip = shutil.ignore_patterns(".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__",
                                  "tests", "docs")
    shutil.copytree(REPO, src, ignore=skip)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheel_dir), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = wheel_dir.glob("relaxomap-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "relaxomap"]
    # The wheel's copy comes first on the path (ahead of this environment's editable install).
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import relaxomap, relaxomap.train.cli, relaxomap.physics.signal as s\n"
            "from pathlib import Path\n"
            "root = Path(relaxomap.__file__).parent\n"
            "assert Path(s.__file__).is_relative_to(root), s.__file__\n"
            "assert (root / 'train' / 'clinical' / 'default_model' / 'model.pt').is_file()\n"
            "print('ok')\n")
    out = _run(code, tmp_path, env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
