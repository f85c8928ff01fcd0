"""The ``relaxomap`` command line: the click group :func:`main` and its ``bench`` group.

One module per command group — :mod:`~relaxomap.train.cli.physics` (``fidelity``, ``bounds``, ``bench physics``,
``bench refine``),
:mod:`~relaxomap.train.cli.synth` (``synth``, ``bench synth``), :mod:`~relaxomap.train.cli.train` (``train``,
``export``, ``bench train``), :mod:`~relaxomap.train.cli.evaluate`, :mod:`~relaxomap.train.cli.clinical`
(``predict``, ``render``, ``demo``) and :mod:`~relaxomap.train.cli.experiment` — each command thin: parse the
options, build the configuration, make one library call, print a summary. Command modules import the
library inside the commands, so ``relaxomap --help`` stays fast. Nothing else in the package imports this one.

Entry points: the ``relaxomap`` console script and ``python -m relaxomap.train.cli`` (also under ``torchrun``).
"""
from __future__ import annotations

import os

# Before NumPy / SciPy load OpenBLAS: its worker threads busy-wait after every threaded call and take CPU from
# Numba kernels and from `synth --workers` processes on small machines, while the products relaxomap computes
# with NumPy are small (3 x 3 rotations, 3 x N lesion frames). An explicit setting by the user wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from relaxomap import __version__  # noqa: E402
from relaxomap.train.cli import clinical, evaluate, experiment, physics, synth  # noqa: E402
from relaxomap.train.cli import train as train_commands  # noqa: E402

__all__ = ["main", "bench"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relaxomap")
def main() -> None:
    """relaxomap: T1, T2 and PD maps from clinical T1w / T2w / T2-FLAIR MRI and their TR/TE/TI."""


@main.group()
def bench() -> None:
    """Throughput benchmarks: ratios against a baseline measured in the same run."""


for _command in (physics.fidelity_command, physics.bounds_command, synth.synth_group, train_commands.train_command,
                 train_commands.export_command, evaluate.evaluate_command, clinical.predict_command,
                 clinical.render_command, clinical.demo_command, experiment.experiment_group):
    main.add_command(_command)
for _command in (physics.bench_physics_command, physics.bench_refine_command, synth.bench_synth_command,
                 train_commands.bench_train_command):
    bench.add_command(_command)
del _command
