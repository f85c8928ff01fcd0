"""``relaxomap experiment ablation``: the whole ablation (stores, training, evaluation, results page) in one call.

Parses the options, builds the :class:`train.experiment.config.ExperimentConfig` (default or ``--quick``
size, ``--steps`` overriding), calls :func:`train.experiment.ablation.run_experiment` and prints
:func:`train.experiment.page.format_summary`. Heavy imports happen inside the command.
"""
from __future__ import annotations

import shlex
import sys
import time
from typing import Any

import click

from relaxomap.train.cli._options import LibraryDefault, given

__all__ = ["experiment_group"]

_HELP = """Run the ablation from nothing: synthesise the training, validation and scenario stores, train the
four network variants (PE-UNet with and without the physics loss, plain U-Net, parameters as channels) on the
same store with the same budget and seed, evaluate them and the voxel-wise NLLS fit on every scenario
(internal test, unseen lesions, out-of-range protocols, SNR 5-12 and 80-150, held-out subject 47, missing
FLAIR), and write a results page with paired Wilcoxon tests and the targets.

\b
Default size: 2048 training slices of 256^2, 1500 steps x 8 crops of 128^2 per variant, 64-slice
scenario stores with 32 slices evaluated each. Estimated from rates measured on an idle 2-core CPU
(0.67 s per training step): about 1.3 h (stores ~2 min, training ~71 min, evaluation ~6 min); longer on
a loaded machine. On a GPU the training takes minutes.
--quick: smoke size for CI (64^2 slices, a tiny network, 5 steps), about 30 s on 2 cores.

An interrupted run continues with --resume (finished stages are skipped; training restarts from last.pt).
"""


def _steps_default(steps: Any) -> str:
    from relaxomap.train.experiment.config import ExperimentConfig

    return f"{steps}; --quick: {ExperimentConfig.quick().steps}"


def _command_line(quick: bool, steps: int | None) -> str:
    """The command shown on the results page: this process's own when it is ``relaxomap experiment``."""
    if sys.argv[1:2] == ["experiment"]:
        return "relaxomap " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return "relaxomap experiment ablation" + (" --quick" if quick else "") + (f" --steps {steps}" if steps else "")


@click.group("experiment")
def experiment_group() -> None:
    """Reproducible experiments that end in a results page."""


@experiment_group.command("ablation", help=_HELP)
@click.option("--quick", is_flag=True, help="Smoke size for CI (< 1 min on 2 cores); numbers mean nothing.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Work folder: stores, runs, evaluations. Default: ablation/ (--quick: ablation-quick/).")
@click.option("--results", type=click.Path(dir_okay=False), default=None,
              help="Results page (markdown); <stem>.json and <stem>_figures/ are written beside it. "
                   "Default: docs/results.md (--quick: OUT/results.md).")
@click.option("--steps", type=click.IntRange(min=1), cls=LibraryDefault,
              default_from=("relaxomap.train.experiment.config:ExperimentConfig", "steps"), show_as=_steps_default,
              help="Optimisation steps per variant.")
@click.option("--device", cls=LibraryDefault,
              default_from=("relaxomap.train.experiment.ablation:run_experiment", "device"),
              help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.")
@click.option("--resume", is_flag=True, help="Continue an interrupted experiment in --out.")
def ablation_command(quick: bool, out: str | None, results: str | None, steps: int | None, device: str | None,
                     resume: bool) -> None:
    from pathlib import Path

    from relaxomap.synth.store.failure import StoreWriteError
    from relaxomap.train.experiment.ablation import run_experiment
    from relaxomap.train.experiment.config import ExperimentConfig
    from relaxomap.train.experiment.page import format_summary

    config = ExperimentConfig.quick() if quick else ExperimentConfig()
    if steps is not None:
        config = config.replace(steps=steps)
    out_dir = Path(out or ("ablation-quick" if quick else "ablation"))
    page = Path(results) if results else (out_dir / "results.md" if quick else Path("docs/results.md"))
    t0 = time.perf_counter()
    try:
        report = run_experiment(config, out_dir, page, resume=resume, echo=click.echo,
                                command=_command_line(quick, steps), **given(device=device))
    except (ValueError, FileNotFoundError, StoreWriteError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"\nSummary ({time.perf_counter() - t0:.1f} s):")
    click.echo(format_summary(report))
    click.echo(f"Wrote {page}, {page.with_suffix('.json')} and {page.stem}_figures/")
