"""``relaxomap experiment ablation``: the whole ablation (stores, training, evaluation, results page) in one call.

Parses the options, builds the :class:`train.experiment.config.ExperimentConfig` (default or ``--quick`` size,
``--steps`` overriding), calls :func:`train.experiment.ablation.run_experiment` and prints a summary. Heavy imports
happen inside the command.
"""
from __future__ import annotations

import shlex
import sys
import time

import click

__all__ = ["register"]

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


def register(main: click.Group, bench: click.Group) -> None:
    """Add the ``experiment`` group (with ``ablation``) to the ``relaxomap`` group; ``bench`` is not extended."""

    @main.group("experiment")
    def experiment_group() -> None:
        """Reproducible experiments that end in a results page."""

    @experiment_group.command("ablation", help=_HELP)
    @click.option("--quick", is_flag=True, help="Smoke size for CI (< 1 min on 2 cores); numbers mean nothing.")
    @click.option("--out", type=click.Path(file_okay=False), default=None,
                  help="Work folder: stores, runs, evaluations. Default: ablation/ (--quick: ablation-quick/).")
    @click.option("--results", type=click.Path(dir_okay=False), default=None,
                  help="Results page (markdown); <stem>.json and <stem>_figures/ are written beside it. "
                       "Default: docs/results.md (--quick: OUT/results.md).")
    @click.option("--steps", type=click.IntRange(min=1), default=None,
                  help="Optimisation steps per variant (default 1500; --quick 5).")
    @click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
    @click.option("--resume", is_flag=True, help="Continue an interrupted experiment in --out.")
    def ablation_cmd(quick: bool, out: str | None, results: str | None, steps: int | None, device: str,
                     resume: bool) -> None:
        from pathlib import Path

        from relaxomap.train.experiment.ablation import run_experiment
        from relaxomap.train.experiment.config import ExperimentConfig

        config = ExperimentConfig.quick() if quick else ExperimentConfig()
        if steps is not None:
            config = config.replace(steps=steps)
        out_dir = Path(out or ("ablation-quick" if quick else "ablation"))
        page = Path(results) if results else (out_dir / "results.md" if quick else Path("docs/results.md"))
        command = "relaxomap " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["experiment"] \
            else "relaxomap experiment ablation" + (" --quick" if quick else "") + \
            (f" --steps {steps}" if steps else "")
        t0 = time.perf_counter()
        try:
            report = run_experiment(config, out_dir, page, device=device, resume=resume, echo=click.echo,
                                    command=command)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None
        click.echo(f"\nSummary ({time.perf_counter() - t0:.1f} s):")
        for scen, s in report["scenarios"].items():
            ref = (s.get("summary") or {}).get(report["reference"])
            if ref is None:
                click.echo(f"  {scen}: not evaluated ({s.get('note') or 'no store'})")
                continue
            psnr = " / ".join(f"{ref[m]['psnr_db']['mean']:.1f}" if ref[m]["psnr_db"]["mean"] is not None else "–"
                              for m in ("t1", "t2", "pd"))
            click.echo(f"  {scen}: {report['reference']} masked PSNR T1 / T2 / PD {psnr} dB")
        met = [t for t in report["targets"] if t["met"]]
        missed = [t for t in report["targets"] if t["met"] is False]
        click.echo(f"Targets: {len(met)} met, {len(missed)} missed, "
                   f"{len(report['targets']) - len(met) - len(missed)} not checked")
        for t in report["targets"]:
            state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
            value = "–" if t["value"] is None else f"{t['value']:.2f}"
            click.echo(f"  {t['scenario']}: {t['target']} = {value} ({t['op']} {t['threshold']:g}): {state}")
        click.echo(f"Wrote {page}, {page.with_suffix('.json')} and {page.stem}_figures/")
