"""The ``relaxomap`` command line: one click group; each command module registers its commands.

Command modules (``train/cli_*.py``) expose ``register(main, bench)`` and import heavy libraries inside
the commands, so ``relaxomap --help`` stays fast.
"""
from __future__ import annotations

import importlib
import os

# Before NumPy / SciPy load OpenBLAS: its worker threads busy-wait after every threaded call and take CPU from
# Numba kernels and from `synth --workers` processes on small machines, while the products relaxomap computes
# with NumPy are small (3 x 3 rotations, 3 x N lesion frames). An explicit setting by the user wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from relaxomap import __version__  # noqa: E402

__all__ = ["main", "bench"]

_COMMAND_MODULES = (
    "relaxomap.train.cli.physics",
    "relaxomap.train.cli.synth",
    "relaxomap.train.cli.train",
    "relaxomap.train.cli.evaluate",
    "relaxomap.train.cli.clinical",
    "relaxomap.train.cli.experiment",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relaxomap")
def main() -> None:
    """relaxomap: T1, T2 and PD maps from clinical T1w / T2w / T2-FLAIR MRI and their TR/TE/TI."""


@main.group()
def bench() -> None:
    """Throughput benchmarks: ratios against a baseline measured in the same run."""


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a command module not written yet
            if err.name == name:
                continue
            raise
        module.register(main, bench)


_register()

if __name__ == "__main__":
    main()
