"""``relaxomap experiment ablation``: the whole ablation (stores, training, evaluation, results page) in one call;
``relaxomap experiment mismatch``: the mismatch suite (:mod:`train.experiment.mismatch`);
``relaxomap experiment scenarios``: the ablation's scenario stores alone (:mod:`train.experiment.stores`);
``relaxomap experiment shipped``: the shipped model on those stores (:mod:`train.experiment.shipped`).

Parses the options, builds the :class:`train.experiment.config.ExperimentConfig` (default or ``--quick``
size, ``--steps`` overriding), calls :func:`train.experiment.ablation.run_experiment` and prints
:func:`train.experiment.page.format_summary`. Heavy imports happen inside the command.
"""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from relaxomap.train.cli._options import LibraryDefault, given

__all__ = ["experiment_group"]

_HELP = """Run the ablation from nothing: synthesise the training, validation and scenario stores, train the
four network variants (PE-UNet with and without the physics loss, plain U-Net, parameters as channels) on the
same store with the same budget and seed, evaluate them, the voxel-wise NLLS fit and the segmentation-only
oracle prior on every scenario (internal test, unseen lesions, out-of-range protocols, SNR 5-12 and 80-150,
held-out subject 47, missing FLAIR, and tissue values moved off the tables: new phantoms, subject 47, and an
oedema-like PD shift), and write a results page with per-tissue errors over subjects, subject-level paired
comparisons and the targets with the floor the inputs allow beside each.

\b
Default size: 2048 training slices of 256^2, 1500 steps x 8 crops of 128^2 per variant, 64-slice
scenario stores with 32 slices evaluated each. Estimated from rates measured on an idle 2-core CPU
(0.67 s per training step): about 1.4 h (stores ~2 min, training ~71 min, evaluation ~8 min); longer on
a loaded machine. On a GPU the training takes minutes.
--quick: smoke size for CI (64^2 slices, a tiny network, 5 steps), about 30 s on 2 cores.

An interrupted run continues with --resume (finished stages are skipped; training restarts from last.pt).
"""


def _steps_default(steps: Any) -> str:
    from relaxomap.train.experiment.config import ExperimentConfig

    return f"{steps}; --quick: {ExperimentConfig.quick().steps}"


def _this_command(fallback: str) -> str:
    """The command shown on a results page: this process's own when it is ``relaxomap experiment``."""
    if sys.argv[1:2] == ["experiment"]:
        return "relaxomap " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return fallback


def _command_line(quick: bool, steps: int | None) -> str:
    return _this_command("relaxomap experiment ablation" + (" --quick" if quick else "")
                         + (f" --steps {steps}" if steps else ""))


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


@experiment_group.command("mismatch")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Network to test (default: the shipped model).")
@click.option("--subjects", "n_subjects", type=click.IntRange(min=1), default=None, help="Held-out subjects (3).")
@click.option("--slices", "n_slices", type=click.IntRange(min=4), default=None, help="Axial 1 mm slices each (16).")
@click.option("--snr", type=float, default=None, help="SNR of every series (30).")
@click.option("--no-value-shift", is_flag=True, help="Keep tissue values at the tables (default: moved off them).")
@click.option("--no-nlls", is_flag=True, help="Skip the voxel-wise least-squares fit.")
@click.option("--no-refine", is_flag=True, help="Skip the test-time physics refinement (predict --refine).")
@click.option("--source", type=click.Choice(["phantom", "subject47"]), default=None,
              help="Held-out subjects: procedural phantom slabs (default) or slabs of BrainWeb subject 47.")
@click.option("--case", "cases", multiple=True, help="Run only these cases (repeatable): none, a factor, all.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Markdown table to write (and <stem>.json beside it).")
def mismatch_command(checkpoint: str | None, n_subjects: int | None, n_slices: int | None, snr: float | None,
                     no_value_shift: bool, no_nlls: bool, no_refine: bool, source: str | None,
                     cases: tuple[str, ...], device: str, out_path: str | None) -> None:
    """Per-tissue bias of the network, its physics refinement, the NLLS fit and the oracle prior when the exam's physics differs
    from the sidecars (refocusing angle, B1, inversion efficiency, slice profile, receive fields,
    misregistration): each factor alone and all together, on held-out subjects with shifted tissue values."""
    import json
    from pathlib import Path

    from relaxomap.atomic import atomic_write_text
    from relaxomap.train.experiment.mismatch import (
        CASES,
        MismatchStudyConfig,
        format_mismatch_table,
        run_mismatch_study,
    )

    try:
        config = MismatchStudyConfig(**given(n_subjects=n_subjects, n_slices=n_slices, snr=snr, source=source),
                                     value_shift=not no_value_shift, nlls=not no_nlls, refine=not no_refine)
        results = run_mismatch_study(config, checkpoint=checkpoint, device=device, cases=cases or CASES,
                                     echo=click.echo)
    except (FileNotFoundError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    table = format_mismatch_table(results)
    click.echo("\nsigned bias [%], mean ± sd over subjects (PD on the CSF = 1 scale)\n" + table)
    if out_path is not None:
        atomic_write_text(out_path, table + "\n")
        atomic_write_text(Path(out_path).with_suffix(".json"), json.dumps(results, indent=1, allow_nan=True))
        click.echo(f"wrote {out_path} and {Path(out_path).with_suffix('.json')}")


def _size(quick: bool) -> Any:
    from relaxomap.train.experiment.config import ExperimentConfig

    return ExperimentConfig.quick() if quick else ExperimentConfig()


@experiment_group.command("scenarios")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the stores: <scenario>.h5 each (a rerun makes only what is missing).")
@click.option("--only", "names", multiple=True, help="Only this scenario (repeatable); default: all.")
@click.option("--quick", is_flag=True, help="The --quick experiment's sizes (64^2 slices, 8 per store).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def scenarios_command(out: str, names: tuple[str, ...], quick: bool, quiet: bool) -> None:
    """Write the ablation's scenario stores (the same recipes, sizes and seeds as `experiment ablation`) without
    training anything; a scenario whose data are absent (BrainWeb subject 47) is skipped with its reason."""
    from relaxomap.synth.store.failure import StoreWriteError
    from relaxomap.train.experiment.stores import write_scenario_stores

    t0 = time.perf_counter()
    try:
        _, paths = write_scenario_stores(_size(quick), out, names, progress=not quiet, echo=click.echo)
    except (ValueError, FileNotFoundError, StoreWriteError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Wrote {len(paths)} stores to {out} in {time.perf_counter() - t0:.1f} s")


@experiment_group.command("shipped")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Work folder: stores/ and eval/ (finished stores and evaluations are reused).")
@click.option("--results", type=click.Path(dir_okay=False), default="docs/evaluation/results.md",
              show_default=True, help="Results page; <stem>.json and <stem>_figures/ are written beside it.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Network to evaluate (default: the shipped train/clinical/default_model/model.pt).")
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="Slices evaluated per scenario (default: the experiment's 32).")
@click.option("--examples", type=click.IntRange(min=0), default=None, help="Montages per scenario (default 3).")
@click.option("--quick", is_flag=True, help="The --quick experiment's sizes; numbers mean nothing.")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def shipped_command(out: str, results: str, checkpoint: str | None, max_samples: int | None,
                    examples: int | None, quick: bool, device: str, quiet: bool) -> None:
    """Evaluate the shipped default model, the NLLS fit and the oracle prior on every scenario store of the
    ablation (made if missing) and write a results page with per-tissue tables and the targets, each beside
    the oracle prior and the floor the inputs allow (`relaxomap bounds`). No training."""
    from relaxomap.synth.store.failure import StoreWriteError
    from relaxomap.train.experiment.shipped import run_shipped

    config = _size(quick).replace(**given(max_eval_slices=max_samples, n_examples=examples))
    try:
        report = run_shipped(config, out, results, checkpoint=checkpoint, device=device, progress=not quiet,
                             echo=click.echo, command=_this_command("relaxomap experiment shipped"))
    except (ValueError, FileNotFoundError, StoreWriteError) as err:
        raise click.ClickException(str(err)) from None
    met = [t for t in report["targets"] if t["met"]]
    missed = [t for t in report["targets"] if t["met"] is False]
    click.echo(f"Targets: {len(met)} met, {len(missed)} missed ({report['seconds']:.0f} s)")
    click.echo(f"Wrote {results}, {Path(results).with_suffix('.json')} and {Path(results).stem}_figures/")
