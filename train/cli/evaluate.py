"""``relaxomap evaluate``: compare checkpoints, the NLLS baseline and the segmentation-only baseline
(``oracle-prior``: the tissue table at the true labels) on test stores, side by side.

Parses the options, calls :func:`train.evaluation.evaluate.run_evaluate` and prints the tables of each
scenario (:func:`train.evaluation.report.format_scenario`: parenchyma, per tissue, whole brain mask) and the
summary (:func:`train.evaluation.report.format_summary`). Input errors (missing checkpoint or store, empty split,
non-empty --out) are one ``Error:`` line, exit status 1. Options without a value of their own fall through to
:func:`train.evaluation.evaluate.evaluate`'s defaults (shown in ``--help``).
"""
from __future__ import annotations

import time

import click

from relaxomap.train.cli._options import LibraryDefault, deprecated_spelling, given

__all__ = ["evaluate_command"]

_EVALUATE = "relaxomap.train.evaluation.evaluate:evaluate"


@click.command("evaluate")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(dir_okay=False),
              help="Checkpoint (.pt) to evaluate; repeatable. Named by its architecture (file stem added when two "
                   "share one).")
@click.option("--model", "old_checkpoints", multiple=True, type=click.Path(dir_okay=False), hidden=True,
              help="Deprecated spelling of --checkpoint.")
@click.option("--nlls/--no-nlls", default=True, show_default=True,
              help="Also evaluate the voxel-wise least-squares baseline (physics/voxel_fit.py).")
@click.option("--oracle-prior/--no-oracle-prior", "oracle", default=True, show_default=True,
              help="Also evaluate the baseline that only segments: each voxel gets the tissue table's value at its "
                   "true label (physics/tissues.py, at the sample's field strength).")
@click.option("--store", "stores", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Synth store (.h5), one scenario each (named by its 'scenario' attribute or file stem); "
                   "repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: results.md, results.json, PNG montages and curves (written atomically).")
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="At most N samples per scenario, evenly spaced over it. Default: all.")
@click.option("--split", type=click.Choice(["test", "all"]), cls=LibraryDefault, default_from=(_EVALUATE, "split"),
              help="test: the store's subject-wise test split; all: every sample (scenario stores).")
@click.option("--batch", type=click.IntRange(1, 1024), cls=LibraryDefault, default_from=(_EVALUATE, "batch"),
              help="Slices per forward pass.")
@click.option("--device", cls=LibraryDefault, default_from=(_EVALUATE, "device"),
              help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.")
@click.option("--examples", type=click.IntRange(min=0), cls=LibraryDefault, default_from=(_EVALUATE, "n_examples"),
              help="Montage PNGs per scenario.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate_command(checkpoints: tuple[str, ...], old_checkpoints: tuple[str, ...], nlls: bool, oracle: bool,
                     stores: tuple[str, ...], out_dir: str, max_samples: int | None, split: str | None,
                     batch: int | None, device: str | None, examples: int | None, overwrite: bool,
                     quiet: bool) -> None:
    """Evaluate T1/T2/PD predictions against the ground truth of synth stores (per tissue and subject)."""
    from relaxomap.train.evaluation.evaluate import NLLS_NAME, ORACLE_NAME, run_evaluate
    from relaxomap.train.evaluation.report import format_scenario, format_summary

    checkpoints = deprecated_spelling(checkpoints, old_checkpoints, new="--checkpoint", old="--model",
                                      command="evaluate")
    specs: list[str] = list(checkpoints) + ([NLLS_NAME] if nlls else []) + ([ORACLE_NAME] if oracle else [])
    if not specs:
        raise click.UsageError("nothing to evaluate: give --checkpoint CKPT, --nlls and/or --oracle-prior")
    t0 = time.perf_counter()
    try:
        ev = run_evaluate(specs, list(stores), out_dir, overwrite=overwrite, max_samples=max_samples,
                          progress=not quiet, **given(split=split, batch=batch, device=device, n_examples=examples))
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    for scen, s in ev.results["scenarios"].items():
        click.echo(f"\n## {scen} ({s['n_samples']} slices, split {s['split']})\n")
        click.echo(format_scenario(ev.results, scen))
    click.echo("\n" + format_summary(ev.results))
    click.echo(f"\nWrote {out_dir}/results.md, results.json and figures in {time.perf_counter() - t0:.1f} s")
