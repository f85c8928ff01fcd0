"""The ``relaxomap`` group: every command module is registered explicitly, ``python -m relaxomap.train.cli``
works, and importing the CLI (``relaxomap --help``) loads no heavy library."""
from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from relaxomap.train.cli import bench, main
from tests.conftest import REPO

COMMANDS = {"fidelity", "synth", "train", "export", "evaluate", "predict", "render", "demo", "experiment", "bench",
            "bounds"}


def test_every_command_is_registered() -> None:
    assert set(main.commands) == COMMANDS
    assert set(bench.commands) == {"physics", "synth", "train", "refine"}
    assert set(main.commands["experiment"].commands) == {"ablation", "mismatch", "scenarios", "shipped"}


def test_python_dash_m_runs_the_group() -> None:
    out = subprocess.run([sys.executable, "-m", "relaxomap.train.cli", "--help"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert all(f"  {name}" in out.stdout for name in COMMANDS)


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = ("import json, sys, relaxomap.train.cli\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert loaded & {"torch", "numba", "scipy", "matplotlib", "h5py", "nibabel"} == set()


def test_version_option() -> None:
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("relaxomap, version ")
