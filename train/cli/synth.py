"""``relaxomap synth`` (generate a training store), ``synth inspect``, ``synth merge`` and ``bench synth``.

Options default to ``None`` and fall through: a value comes from the option if given, else from
``--config FILE.json`` (a :class:`synth.generate.SynthConfig` JSON, e.g. the ``config`` attribute of an
existing store), else from the dataclass defaults. Heavy imports happen inside the commands.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["build_synth_config", "synth_group", "bench_synth_command"]


def build_synth_config(config_file: str | None = None, *, seed: int | None = None, forward: str | None = None,
                       source: str | None = None, real: tuple[str, ...] = (), field: str | None = None,
                       healthy_only: bool | None = None, size: int | None = None,
                       slices: int | None = None) -> Any:
    """The SynthConfig of a ``relaxomap synth`` call (precedence in the module docstring).

    Raises
    ------
    click.UsageError : unreadable or invalid configuration (the message names the file and field).
    """
    from relaxomap.synth.generate import SynthConfig

    base: dict[str, Any] = {}
    if config_file is not None:
        try:
            base = json.loads(Path(config_file).read_text())
        except (OSError, ValueError) as err:
            raise click.UsageError(f"configuration {config_file} could not be read: {err}") from None
        if not isinstance(base, dict):
            raise click.UsageError(f"configuration {config_file} must hold a JSON object of SynthConfig fields")
    try:
        config = SynthConfig.from_dict(base)
        src = config.source.to_dict()
        if source is not None:
            src["kind"] = source
        if real:
            src["kind"] = "real" if source is None else src["kind"]
            src["paths"] = [str(p) for p in real]
        if field is not None:
            src["field_t"] = float(field)
        if healthy_only is not None:
            src["healthy_only"] = bool(healthy_only)
        changes: dict[str, Any] = {"source": type(config.source).from_dict(src)}
        if seed is not None:
            changes["seed"] = seed
        if forward is not None:
            changes["forward"] = forward
        if size is not None:
            changes["image_size"] = (size, size)
        if slices is not None:
            changes["slices_per_subject"] = slices
        return config.replace(**changes)
    except (TypeError, ValueError) as err:
        where = f" (from {config_file})" if config_file else ""
        raise click.UsageError(f"invalid synth configuration{where}: {err}") from None


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise click.BadParameter(f"must be i/n, e.g. 0/4; got {text!r}", param_hint="--shard") from None
    if not (n >= 1 and 0 <= i < n):
        raise click.BadParameter(f"must be i/n with 0 <= i < n; got {text!r}", param_hint="--shard")
    return i, n


@click.group("synth", invoke_without_command=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Store to write (HDF5), e.g. train.h5.")
@click.option("--n", "n_samples", type=int, default=None, help="Number of samples (2-D slices, 3 contrasts each).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="SynthConfig JSON; options given here override it.")
@click.option("--workers", type=int, default=None, help="Parallel generator processes (default 1).")
@click.option("--shard", default=None, help="i/n: write only shard i of n (cluster arrays); then `synth merge`.")
@click.option("--healthy-only", is_flag=True, default=None, help="No lesions in the ground-truth maps.")
@click.option("--forward", type=click.Choice(["closed", "epg"]), default=None,
              help="Signal model: closed-form equations or EPG (SynthConfig.forward).")
@click.option("--seed", type=int, default=None, help="Master seed (SynthConfig.seed).")
@click.option("--source", type=click.Choice(["phantom", "real"]), default=None,
              help="Ground-truth maps: procedural phantoms or real maps (SourceConfig.kind).")
@click.option("--real", "real", multiple=True, type=click.Path(exists=True),
              help="Real map file(s) or folder(s) (.npz with t1_ms, t2_ms, pd, labels, mask); repeatable.")
@click.option("--field", type=click.Choice(["1.5", "3"]), default=None, help="Field strength [T] of the maps.")
@click.option("--size", type=int, default=None, help="Image side [px], square (SynthConfig.image_size).")
@click.option("--slices", type=int, default=None, help="Samples per subject (SynthConfig.slices_per_subject).")
@click.option("--part-subjects", type=int, default=None, hidden=True, help="Subjects per part file.")
@click.pass_context
def synth_group(ctx: click.Context, out: str | None, n_samples: int | None, config_file: str | None,
                workers: int | None, shard: str | None, healthy_only: bool | None, forward: str | None,
                seed: int | None, source: str | None, real: tuple[str, ...], field: str | None,
                size: int | None, slices: int | None, part_subjects: int | None) -> None:
    """Generate a synthetic training store: relaxomap synth --out STORE.h5 --n N [options].

    An interrupted run (even kill -9) resumes when started again with the same options. Subcommands:
    `synth inspect STORE.h5` and `synth merge STORE.h5`.
    """
    if ctx.invoked_subcommand is not None:
        if out is not None or n_samples is not None:
            raise click.UsageError("--out/--n generate a store; they do not go with a subcommand")
        return
    if out is None or n_samples is None:
        raise click.UsageError("relaxomap synth needs --out STORE.h5 and --n N (or a subcommand: inspect, merge)")
    if n_samples < 1:
        raise click.BadParameter(f"must be >= 1; got {n_samples}", param_hint="--n")
    if workers is not None and workers < 1:
        raise click.BadParameter(f"must be >= 1; got {workers}", param_hint="--workers")
    shard_t = _parse_shard(shard)
    config = build_synth_config(config_file, seed=seed, forward=forward, source=source, real=real, field=field,
                                healthy_only=healthy_only, size=size, slices=slices)
    from tqdm import tqdm

    from relaxomap.synth._alloc import prepare_generation_process
    from relaxomap.synth.store.writer import write_store

    prepare_generation_process()  # this process only generates (synth._alloc)
    t0 = time.perf_counter()
    total = n_samples
    if shard_t is not None:  # this shard's share of the samples
        from relaxomap.synth.store.parts import Layout, default_part_subjects

        ps = part_subjects or default_part_subjects(config)
        layout = Layout(n_samples, config.slices_per_subject, ps)
        total = sum(b - a for a, b in (layout.part_samples(p) for p in range(layout.n_parts)
                                       if p % shard_t[1] == shard_t[0]))
    from relaxomap.synth.store.failure import StoreWriteError

    with tqdm(total=total, unit="sample", desc=Path(out).name, dynamic_ncols=True) as bar:
        try:
            report = write_store(config, out, n_samples, workers=workers or 1, shard=shard_t,
                                 part_subjects=part_subjects, progress=bar.update,
                                 note=lambda line: bar.write(f"note: {line}"))
        except (ValueError, StoreWriteError) as err:
            raise click.ClickException(str(err)) from None
    dt = time.perf_counter() - t0
    rate = report.generated / dt if report.generated else 0.0
    if report.merged:
        click.echo(f"{report.path}: {report.n_samples} samples, {report.bytes / 1e6:.1f} MB; generated "
                   f"{report.generated} now in {dt:.1f} s ({rate:.1f} samples/s)")
    else:
        click.echo(f"shard {shard}: {report.parts} parts ({report.bytes / 1e6:.1f} MB) in "
                   f"{Path(str(out) + '.parts')}; generated {report.generated} samples in {dt:.1f} s "
                   f"({rate:.1f} samples/s). When every shard is done: relaxomap synth merge {out}")


@synth_group.command("inspect")
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--png", type=click.Path(dir_okay=False), default=None, help="Write a montage of random samples.")
@click.option("--samples", type=int, default=4, show_default=True, help="Rows of the montage.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which random samples.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Save the summary as JSON.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Read every sample: checksums of each part and finite values (exit status 1 if any fails).")
def inspect_command(store: str, png: str | None, samples: int, seed: int, json_path: str | None,
                    verify: bool) -> None:
    """Check a store against the schema; print counts and parameter ranges; verify its data (checksums, finite
    values); optionally a PNG montage."""
    from tqdm import tqdm

    from relaxomap.atomic import atomic_write_text, check_output_file
    from relaxomap.synth.store.summary import format_summary, montage, summarize
    from relaxomap.synth.store.verify import verify_store

    try:
        for path, option in ((png, "--png"), (json_path, "--json")):
            if path:
                check_output_file(path, option, overwrite=True)
        summary = summarize(store, seed=seed)
        click.echo(format_summary(summary))
        if verify:
            with tqdm(total=summary["n_samples"], unit="sample", desc="verify", leave=False, disable=None) as bar:
                report = verify_store(store, progress=bar.update)
            summary["verify"] = {"ok": report.ok, "checksums": report.checksums, "nonfinite": report.nonfinite,
                                 "problems": [str(p) for p in report.problems], "more_problems": report.more}
            click.echo("\n".join(report.lines()))
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    if json_path:
        atomic_write_text(json_path, json.dumps(summary, indent=1))
    if verify and not report.ok:
        raise click.ClickException(f"store {store} failed verification ({len(report.problems) + report.more} "
                                   "problem(s) listed above); do not train or evaluate on it")
    if png:
        click.echo(f"montage: {montage(store, png, n=samples, seed=seed)}")


@synth_group.command("merge")
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--self-contained", is_flag=True, help="Copy the parts into one movable file (and remove STORE.parts/) "
              "instead of a view over them; also converts an existing view store.")
@click.option("--verify", is_flag=True, help="First read every part back: checksums and finite values (a damaged "
              "part is named and nothing is merged).")
def merge_command(store: str, self_contained: bool, verify: bool) -> None:
    """Join the parts written by `synth --shard i/n` jobs into STORE (all shards must be done).

    By default STORE is a view (HDF5 virtual datasets) over STORE.parts/, which must stay beside it (move or
    rename the two together).
    """
    from relaxomap.synth.store.failure import StoreWriteError
    from relaxomap.synth.store.format import store_bytes
    from relaxomap.synth.store.merge import merge_parts

    try:
        path = merge_parts(store, self_contained=self_contained, verify=verify)
    except (ValueError, StoreWriteError) as err:
        raise click.ClickException(str(err)) from None
    kind = "one self-contained file" if self_contained else f"a view over {Path(str(path) + '.parts')}/"
    checked = "; every part verified" if verify else ""
    click.echo(f"merged into {path}, {kind} ({store_bytes(path) / 1e6:.1f} MB){checked}")


@click.command("synth")
@click.option("--n", "n_samples", type=int, default=2048, show_default=True,
              help="Samples per closed-form run (enough that worker start-up and the last part are a small share).")
@click.option("--n-epg", type=int, default=192, show_default=True, help="Samples per EPG run.")
@click.option("--size", type=int, default=None, help="Image side [px] (SynthConfig.image_size).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="SynthConfig JSON.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="Where the stores are written (default: a temporary folder, removed afterwards).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Save results as JSON.")
def bench_synth_command(n_samples: int, n_epg: int, size: int | None, config_file: str | None,
                        folder: str | None, json_path: str | None) -> None:
    """Samples/s into HDF5 (closed form, EPG; 1 and 2 workers) and Dataset reads; ratios between them."""
    from relaxomap.synth._alloc import prepare_generation_process
    from relaxomap.synth.bench import run_bench

    prepare_generation_process()  # as `relaxomap synth` does (synth._alloc)
    config = build_synth_config(config_file, size=size)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    res = run_bench(config, n_samples, n_epg, folder=folder)
    h, w = res["image_size"]
    click.echo(f"synth store throughput at {h}x{w}")
    for r in res["write"]:
        click.echo(f"  write {r['forward']:<6} {r['workers']} worker(s): {r['samples_per_s']:8.1f} samples/s "
                   f"({r['n_samples']} samples, {r['bytes_per_sample'] / 1e3:.0f} kB/sample)")
    for r in res["read"]:
        what = "whole slices" if r["patch"] is None else f"{r['patch']}x{r['patch']} patches"
        click.echo(f"  read  {what:<16}: {r['samples_per_s']:8.1f} samples/s (first pass after writing: "
                   f"{r['first_pass_samples_per_s']:.1f})")
    click.echo(f"  draw_subject: {res['draw_s_per_subject']:.2f} s/subject "
               f"({res['slices_per_subject']} samples per subject)")
    click.echo("  one sample, step by step (min of repeats): " +
               ", ".join(f"{k} {v:.2f} ms" for k, v in res["stages_ms"].items()))
    for forward, ms in res["ms_per_sample_excluding_draw"].items():
        click.echo(f"  {forward:<6} per sample excluding the subject draw: {ms:.1f} ms")
    for name, v in res["ratios"].items():
        click.echo(f"  ratio {name}: {v:.2f}")
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=1))
