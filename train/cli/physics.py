"""Physics commands: ``relaxomap fidelity`` (closed-form signal equations against EPG and Bloch),
``relaxomap bounds`` (what a set of protocols allows, :mod:`physics.bounds`) and ``relaxomap bench physics``.

Options default to ``None`` and fall through to the library defaults; the protocols come from
:func:`physics.fidelity_report.resolve_presets` (preset names) and from the timing flags (one custom
protocol); the table and the figure from :mod:`physics.fidelity_report`. Heavy imports (Numba kernels,
matplotlib) happen inside the commands.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import click

from relaxomap.atomic import atomic_write_text

__all__ = ["PROTOCOL_FLAGS", "build_protocols", "fidelity_command", "bench_physics_command", "bench_refine_command",
           "bounds_command"]

#: Protocol field -> the ``relaxomap fidelity`` flag that sets it (used to name the flag in errors).
PROTOCOL_FLAGS: dict[str, str] = {
    "kind": "--kind", "tr_ms": "--tr", "te_ms": "--te", "ti_ms": "--ti", "etl": "--etl", "esp_ms": "--esp",
    "flip_deg": "--flip", "refocus_deg": "--refocus", "inversion_efficiency": "--kappa", "field_t": "--field",
}


def _hint_for(message: str) -> str | None:
    """The flag of the Protocol field an error message names (``Protocol.ti_ms must ...`` -> ``--ti``, ``...
    field_t ...`` -> ``--field``)."""
    match = re.search(r"Protocol\.(\w+)", message) or re.search(r"\b(" + "|".join(PROTOCOL_FLAGS) + r")\b", message)
    return PROTOCOL_FLAGS.get(match.group(1)) if match else None


def _custom_protocol(kind: str, field_t: float, given: dict[str, Any]) -> Any:
    from relaxomap.physics.protocol import Protocol

    for required in ("tr_ms", "te_ms"):
        if required not in given:
            raise click.BadParameter(f"is required with --kind {kind}", param_hint=PROTOCOL_FLAGS[required])
    try:
        return Protocol(kind, field_t=field_t, name=f"custom_{kind}", **given)
    except (TypeError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint=_hint_for(str(err)) or "--kind") from None


def build_protocols(presets: tuple[str, ...] = (), *, kind: str | None = None, field: float | None = None,
                    **timing: float | int | None) -> list[Any]:
    """The protocols of a ``relaxomap fidelity`` call.

    Parameters
    ----------
    presets : preset names, full (``flair_3t``) or base names (``flair``) completed with ``field``.
    kind : sequence kind of one custom protocol built from ``timing``; None for presets only.
    field : field strength [T] of the custom protocol and of base preset names (default: Protocol's).
    timing : ``tr_ms, te_ms, ti_ms, etl, esp_ms, flip_deg, refocus_deg, inversion_efficiency`` (None = default).

    Returns
    -------
    list of Protocol: the presets in order, then the custom protocol; the fidelity default presets at ``field``
    if neither is given.

    Raises
    ------
    click.BadParameter naming the flag (``--preset``, ``--field``, ``--tr``, ...), click.UsageError for timing
    without --kind.
    """
    from relaxomap.physics.fidelity import DEFAULT_PRESETS
    from relaxomap.physics.fidelity_report import resolve_presets
    from relaxomap.physics.protocol import Protocol

    field_default = {f.name: f.default for f in dataclasses.fields(Protocol)}["field_t"]
    field_t = field_default if field is None else float(field)
    given = {k: v for k, v in timing.items() if v is not None}
    if kind is None and given:
        flags = ", ".join(PROTOCOL_FLAGS[k] for k in given)
        raise click.UsageError(f"{flags} describe a custom protocol and need --kind "
                               "(one of se, tse, ir_tse, spgr, mprage)")
    names = list(presets) if (presets or kind is not None) else list(DEFAULT_PRESETS)
    try:
        out = resolve_presets(names, field_t)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=_hint_for(str(err)) or "--preset") from None
    if kind is not None:
        out.append(_custom_protocol(kind, field_t, given))
    return out


def _fidelity_hint(message: str) -> str | None:
    return ("--tissue" if "tissue" in message and "field_t" not in message else "--field" if "field_t" in message
            else "--b1" if "b1" in message else "--bloch-pulse" if "pulse" in message else None)


@click.command("fidelity")
@click.option("--preset", "presets", multiple=True, help="Preset protocol (repeatable): full name (flair_3t) or base "
              "name (flair) completed with --field. Default: t1w_se, t2w_tse, flair.")
@click.option("--kind", type=click.Choice(["se", "tse", "ir_tse", "spgr", "mprage"]), default=None,
              help="Kind of one custom protocol built from the timing flags.")
@click.option("--tr", "tr_ms", type=float, default=None, help="Custom protocol TR [ms].")
@click.option("--te", "te_ms", type=float, default=None, help="Custom protocol (effective) TE [ms].")
@click.option("--ti", "ti_ms", type=float, default=None, help="Custom protocol TI [ms].")
@click.option("--etl", type=int, default=None, help="Custom protocol echo-train length.")
@click.option("--esp", "esp_ms", type=float, default=None, help="Custom protocol echo spacing [ms].")
@click.option("--flip", "flip_deg", type=float, default=None, help="Custom protocol excitation flip [deg].")
@click.option("--refocus", "refocus_deg", type=float, default=None, help="Custom protocol refocusing flip [deg].")
@click.option("--kappa", "inversion_efficiency", type=float, default=None, help="Custom protocol inversion efficiency.")
@click.option("--field", type=float, default=None, help="Field strength [T]: 1.5 or 3 (presets and tissue values).")
@click.option("--tissue", "tissues", multiple=True, help="Tissue (repeatable); default WM, GM, CSF, deep GM, fat, "
              "MS lesion.")
@click.option("--grid", type=click.IntRange(2, 200), default=None,
              help="Use an N×N log-spaced T1×T2 grid (T1 200–5000 ms, T2 20–2000 ms, T2 < T1) "
                   "instead of tissues.")
@click.option("--b1", type=float, default=None, help="Relative B1 for EPG and Bloch (closed forms assume 1).")
@click.option("--bloch-pulse", type=click.Choice(["hard", "sinc"]), default=None, help="Bloch RF pulses.")
@click.option("--bloch-spoiling", type=click.Choice(["ideal", "rf"]), default=None,
              help="Bloch spoiling of gradient echoes: ideal, or 117° RF spoiling.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False), default=None,
              help="Figure path (default: fidelity.png in --out).")
@click.option("--no-png", is_flag=True, help="Do not write the figure.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for default output names (default: the current directory).")
def fidelity_command(presets: tuple[str, ...], kind: str | None, field: float | None, tissues: tuple[str, ...],
                     grid: int | None, b1: float | None, bloch_pulse: str | None, bloch_spoiling: str | None,
                     json_path: str | None, png_path: str | None, no_png: bool, out_dir: str | None,
                     **timing: Any) -> None:
    """How far the closed-form signal equations are from EPG and Bloch simulations, per contrast and tissue."""
    from relaxomap.physics.fidelity import fidelity
    from relaxomap.physics.fidelity_report import format_fidelity_table, plot_fidelity
    from relaxomap.train.cli._options import given

    protocols = build_protocols(presets, kind=kind, field=field, **timing)
    try:
        report = fidelity(protocols, tissues=tissues or None, grid=grid,
                          **given(b1=b1, bloch_pulse=bloch_pulse, bloch_spoiling=bloch_spoiling))
    except (TypeError, ValueError) as err:
        hint = _fidelity_hint(str(err))
        if hint is None:
            raise click.UsageError(str(err)) from None
        raise click.BadParameter(str(err), param_hint=hint) from None
    click.echo(format_fidelity_table(report))
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report.to_dict(), indent=1))
        click.echo(f"wrote {json_path}")
    if not no_png:
        png = plot_fidelity(report, Path(png_path) if png_path is not None else Path(out_dir or ".") / "fidelity.png")
        click.echo(f"wrote {png}")


@click.command("physics")
@click.option("--voxels", type=click.IntRange(min=1000), default=None,
              help="Voxels for the closed-form renderer (default 4,000,000).")
@click.option("--epg-voxels", type=click.IntRange(min=100), default=None,
              help="Voxels with distinct T1/T2 for the EPG train (default 100,000).")
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Timed rounds (best is kept; default 5).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the results as JSON.")
def bench_physics_command(voxels: int | None, epg_voxels: int | None, repeats: int | None,
                          json_path: str | None) -> None:
    """Closed-form renderer and EPG throughput, as ratios to NumPy measured in the same run."""
    from relaxomap.physics.bench import bench_closed_form, bench_epg

    kw = {} if repeats is None else {"repeats": repeats}
    closed = bench_closed_form(**({"n_vox": voxels} if voxels else {}), **kw)
    click.echo(f"closed form: T1w SE + T2w TSE + FLAIR, {closed['n_vox']:,} voxels "
               f"(max |kernel - float64| = {closed['max_abs_error_vs_float64']:.1e} of PD)")
    for name in ("numba_kernel", "signal", "numpy"):
        r = closed[name]
        click.echo(f"  {name:<14} {r['voxel_contrasts_per_s'] / 1e6:9.1f} M voxel-contrasts/s   "
                   f"best {r['best_s'] * 1e3:8.2f} ms   x{r['ratio_to_numpy']:.1f} NumPy")
    epg = bench_epg(**({"n_vox": epg_voxels} if epg_voxels else {}), **kw)
    click.echo(f"EPG: {epg['etl']}-echo TSE, {epg['refocus_deg']:g} deg refocusing, {epg['n_vox']:,} voxels "
               f"(dictionary built in {epg['dictionary_build_s'] * 1e3:.0f} ms; "
               f"max |dict - direct| = {epg['max_abs_diff_dictionary_vs_direct']:.1e})")
    for name in ("numba_direct", "dictionary", "numpy"):
        r = epg[name]
        click.echo(f"  {name:<14} {r['voxel_echoes_per_s'] / 1e6:9.1f} M voxel-echoes/s     "
                   f"best {r['best_s'] * 1e3:8.2f} ms   x{r['ratio_to_numpy']:.1f} NumPy")
    if json_path:
        atomic_write_text(json_path, json.dumps({"closed_form": closed, "epg": epg}, indent=2))
        click.echo(f"wrote {json_path}")


@click.command("refine")
@click.option("--shape", type=(int, int, int), default=(256, 256, 30), show_default=True,
              help="Exam grid (X Y Z); the issue's target is 256 x 256 x 30 in <= 60 s on 2 cores.")
@click.option("--no-nlls", is_flag=True, help="Skip the NLLS baseline.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the results as JSON.")
def bench_refine_command(shape: tuple[int, int, int], no_nlls: bool, json_path: str | None) -> None:
    """Test-time refinement of a synthetic clinical-size exam, beside the NLLS voxel fit on the same exam."""
    from relaxomap.physics.refine.bench import bench_refine

    r = bench_refine(tuple(shape), nlls=not no_nlls)
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r["refine_stages_s"].items())
    click.echo(f"refine: {r['shape']} grid, {r['n_brain_voxels']:,} brain voxels: {r['refine_s']:.1f} s ({stages}); "
               f"median |T1 error| {r['prior_median_abs_t1_error_pct']:.1f} % (prior) -> "
               f"{r['refine_median_abs_t1_error_pct']:.1f} %")
    if "nlls_s" in r:
        click.echo(f"NLLS fit, same exam: {r['nlls_s']:.1f} s; refine is x{r['refine_speed_ratio_to_nlls']:.2f} "
                   "the NLLS fit's speed")
    if json_path:
        atomic_write_text(json_path, json.dumps(r, indent=2))
        click.echo(f"wrote {json_path}")


@click.command("bounds")
@click.option("--preset", "presets", multiple=True,
              help="Preset protocol (repeatable): full name (flair_3t) or base name (flair) completed with --field. "
                   "Default: t1w_tse, t2w_tse, flair.")
@click.option("--sidecar", "sidecars", multiple=True, type=(click.Choice(["t1w", "t2w", "flair"]), click.Path()),
              help="A contrast and its BIDS JSON sidecar (repeatable), e.g. --sidecar flair sub-01_FLAIR.json.")
@click.option("--field", type=float, default=None, help="Field strength [T]: 1.5 or 3 (presets and tissue values).")
@click.option("--snr", type=float, default=None, help="SNR of one parenchyma voxel in every contrast (default 30).")
@click.option("--voxels", "n_voxels", type=click.IntRange(min=1), default=None,
              help="Voxels per tissue seen by the tissue-mean fit (default 1000).")
@click.option("--tissue", "tissues", multiple=True, help="Tissue (repeatable); default WM, GM, deep GM, CSF, "
              "MS lesion.")
@click.option("--forward", type=click.Choice(["epg", "closed"]), default=None,
              help="Forward model: EPG for spin-echo kinds (default), or the closed form only.")
@click.option("--known-refocus", is_flag=True, help="Treat the headers' refocusing angles as known.")
@click.option("--known-inversion", is_flag=True, help="Treat the inversion efficiency as known.")
@click.option("--no-advice", is_flag=True, help="Skip the extra-contrast advice.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the result as JSON.")
def bounds_command(presets: tuple[str, ...], sidecars: tuple[tuple[str, str], ...], field: float | None,
                   snr: float | None, n_voxels: int | None, tissues: tuple[str, ...], forward: str | None,
                   known_refocus: bool, known_inversion: bool, no_advice: bool, json_path: str | None) -> None:
    """What the inputs allow: the best achievable precision of T1, T2 and PD per tissue (docs/bounds.md)."""
    from relaxomap.physics.bounds import BoundsConfig, advise, bounds
    from relaxomap.train.cli._options import given
    from relaxomap.train.clinical.sidecar import protocol_from_sidecar

    try:
        protocols = [protocol_from_sidecar(path, contrast, field) for contrast, path in sidecars]
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--sidecar") from None
    if presets or not protocols:
        protocols += build_protocols(presets or ("t1w_tse", "t2w_tse", "flair"), field=field)
    try:
        config = BoundsConfig(**given(snr=snr, n_voxels=n_voxels, forward=forward, tissues=tissues or None),
                              unknown_refocus=not known_refocus, unknown_inversion=not known_inversion)
        result = bounds(protocols, config)
        advice = [] if no_advice else advise(protocols, config)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"protocols: {', '.join(p.name or p.kind for p in protocols)}; SNR {config.snr}, "
               f"{config.n_voxels} voxels per tissue; forward {config.forward}\n")
    click.echo(result.to_markdown())
    for a in advice:
        click.echo(f"advice: {a.line}")
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result.to_dict() | {"advice": [vars(a) for a in advice]}, indent=1))
        click.echo(f"wrote {json_path}")
