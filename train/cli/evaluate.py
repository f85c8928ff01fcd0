"""``relaxomap evaluate``: compare checkpoints and the NLLS baseline on test stores, side by side.

Parses the options, calls :func:`train.evaluation.evaluate.run_evaluate` and prints the main table of each scenario and
a summary. Input errors (missing checkpoint or store, empty split, non-empty --out) are one ``Error:`` line,
exit status 1.
"""
from __future__ import annotations

import time

import click

__all__ = ["register"]


def register(main: click.Group, bench: click.Group) -> None:
    """Add ``evaluate`` to the ``relaxomap`` group (``bench`` is not extended)."""

    @main.command("evaluate")
    @click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False),
                  help="Checkpoint (.pt) to evaluate; repeatable. Named by its architecture (file stem added "
                       "when two share one).")
    @click.option("--nlls/--no-nlls", default=True, show_default=True,
                  help="Also evaluate the voxel-wise least-squares baseline (physics/voxel_fit.py).")
    @click.option("--store", "stores", multiple=True, required=True, type=click.Path(dir_okay=False),
                  help="Synth store (.h5), one scenario each (named by its 'scenario' attribute or file stem); "
                       "repeatable.")
    @click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
                  help="Output folder: results.md, results.json, PNG montages and curves (written atomically).")
    @click.option("--max-samples", type=click.IntRange(min=1), default=None,
                  help="At most N samples per scenario, evenly spaced over it. Default: all.")
    @click.option("--split", type=click.Choice(["test", "all"]), default="test", show_default=True,
                  help="test: the store's subject-wise test split; all: every sample (scenario stores).")
    @click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True,
                  help="Slices per forward pass.")
    @click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
    @click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
                  help="Montage PNGs per scenario.")
    @click.option("--overwrite", is_flag=True, help="Replace a non-empty --out folder.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def evaluate_cmd(models: tuple[str, ...], nlls: bool, stores: tuple[str, ...], out_dir: str,
                     max_samples: int | None, split: str, batch: int, device: str, examples: int, overwrite: bool,
                     quiet: bool) -> None:
        """Evaluate T1/T2/PD predictions against the ground truth of synth stores (PSNR, SSIM, MAE, MPE)."""
        from relaxomap.train.evaluation.evaluate import NLLS_NAME, run_evaluate
        from relaxomap.train.evaluation.report import format_main_table, format_summary

        specs: list[str] = list(models) + ([NLLS_NAME] if nlls else [])
        if not specs:
            raise click.UsageError("nothing to evaluate: give --model CKPT and/or --nlls")
        t0 = time.perf_counter()
        try:
            ev = run_evaluate(specs, list(stores), out_dir, overwrite=overwrite, split=split,
                              max_samples=max_samples, batch=batch, device=device, n_examples=examples,
                              progress=not quiet)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
        for scen, s in ev.results["scenarios"].items():
            click.echo(f"\n## {scen} ({s['n_samples']} slices, split {s['split']})\n")
            click.echo(format_main_table(ev.results, scen))
        click.echo("\n" + format_summary(ev.results))
        click.echo(f"\nWrote {out_dir}/results.md, results.json and figures in {time.perf_counter() - t0:.1f} s")
