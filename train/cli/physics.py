"""Physics commands: ``relaxomap fidelity`` (closed-form signal equations against EPG and Bloch).

``register(main, bench)`` adds the commands of this module to the ``relaxomap`` group (and, later, to its
``bench`` group). Options default to ``None`` and fall through to the dataclass defaults; heavy imports
(Numba kernels, matplotlib) happen inside the commands.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import click

from relaxomap.atomic import atomic_path, atomic_write_text

__all__ = ["register", "build_protocols", "fidelity_command", "format_fidelity_table", "bench_physics_command"]

#: Protocol field -> the ``relaxomap fidelity`` flag that sets it (used to name the flag in errors).
PROTOCOL_FLAGS: dict[str, str] = {
    "kind": "--kind", "tr_ms": "--tr", "te_ms": "--te", "ti_ms": "--ti", "etl": "--etl", "esp_ms": "--esp",
    "flip_deg": "--flip", "refocus_deg": "--refocus", "inversion_efficiency": "--kappa", "field_t": "--field",
}


def _field_tag(field_t: float) -> str:
    return f"{field_t:g}t"  # 3.0 -> "3t", 1.5 -> "1.5t", as in the preset names


def _hint_for(message: str) -> str | None:
    """The flag whose Protocol field an error message names (``Protocol.ti_ms must ...`` -> ``--ti``)."""
    match = re.search(r"Protocol\.(\w+)", message)
    return PROTOCOL_FLAGS.get(match.group(1)) if match else None


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
    click.BadParameter naming the flag (``--preset``, ``--tr``, ...), click.UsageError for timing without --kind.
    """
    from relaxomap.physics.fidelity import DEFAULT_PRESETS
    from relaxomap.physics.protocol import PRESETS, Protocol

    field_default = {f.name: f.default for f in dataclasses.fields(Protocol)}["field_t"]
    field_t = field_default if field is None else float(field)
    given = {k: v for k, v in timing.items() if v is not None}
    if kind is None and given:
        flags = ", ".join(PROTOCOL_FLAGS[k] for k in given)
        raise click.UsageError(f"{flags} describe a custom protocol and need --kind "
                               "(one of se, tse, ir_tse, spgr, mprage)")
    names = list(presets) if (presets or kind is not None) else list(DEFAULT_PRESETS)
    out = []
    for name in names:
        full = name if name in PRESETS else f"{name}_{_field_tag(field_t)}"
        if full not in PRESETS and any(n.startswith(f"{name}_") for n in PRESETS):
            fields = sorted({n.rsplit("_", 1)[1] for n in PRESETS if n.rsplit("_", 1)[0] == name})
            raise click.BadParameter(f"preset {name!r} exists at {', '.join(fields)} only; got {field_t:g} T",
                                     param_hint="--field")
        if full not in PRESETS:
            bases = sorted({n.rsplit("_", 1)[0] for n in PRESETS})
            raise click.BadParameter(
                f"unknown preset {name!r} at field {field_t:g} T; full names: {', '.join(sorted(PRESETS))}; "
                f"base names (completed with --field 1.5 or 3): {', '.join(bases)}", param_hint="--preset")
        out.append(PRESETS[full])
    if kind is not None:
        for required in ("tr_ms", "te_ms"):
            if required not in given:
                raise click.BadParameter(f"is required with --kind {kind}", param_hint=PROTOCOL_FLAGS[required])
        try:
            out.append(Protocol(kind, field_t=field_t, name=f"custom_{kind}", **given))
        except (TypeError, ValueError) as err:
            raise click.BadParameter(str(err), param_hint=_hint_for(str(err)) or "--kind") from None
    return out


def _pct(x: float) -> str:
    return "   n/a" if x != x else f"{100 * x:6.3g}"


def format_fidelity_table(report: Any) -> str:
    """Terminal tables of a :class:`physics.fidelity.FidelityReport`: per tissue (not for grids), then the summary."""
    lines = []
    if not report.grid:
        lines.append("signals (M0 = PD) and relative error [%] against Bloch")
        lines.append(f"{'protocol':<14} {'tissue':<10} {'T1 ms':>7} {'T2 ms':>7} {'PD':>5} {'Bloch':>8} {'EPG':>8} "
                     f"{'closed':>8} {'err %':>6} {'textbook':>8} {'err %':>6}")
        rel_c, rel_t = report.rel_error("closed", "bloch"), report.rel_error("textbook", "bloch")
        for i, p in enumerate(report.protocols):
            for j, name in enumerate(report.points):
                s = {k: report.signals[k][i, j] for k in report.signals}
                epg = "     n/a" if s["epg"] != s["epg"] else f"{s['epg']:8.5f}"
                lines.append(f"{p.name or p.kind:<14} {name:<10} {report.t1_ms[i, j]:7.0f} {report.t2_ms[i, j]:7.0f} "
                             f"{report.pd[i, j]:5.2f} {s['bloch']:8.5f} {epg} {s['closed']:8.5f} {_pct(rel_c[i, j])} "
                             f"{s['textbook']:8.5f} {_pct(rel_t[i, j])}")
        lines.append("")
    what = "grid points" if report.grid else "tissues"
    lines.append(f"relative error [%] over {len(report.points)} {what} (floor {100 * report.floor:g} % of PD)")
    lines.append(f"{'protocol':<14} {'model':<9} {'vs EPG max':>10} {'mean':>7} {'vs Bloch max':>12} {'mean':>7}  "
                 "worst (Bloch)")
    rows = {(r["protocol"], r["model"], r["reference"]): r for r in report.summary()}
    for p in report.protocols:
        pname = p.name or p.kind
        for model in ("closed", "textbook"):
            e, b = rows.get((pname, model, "epg")), rows.get((pname, model, "bloch"))
            nan = float("nan")
            lines.append(f"{pname:<14} {model:<9} {_pct(e['max_rel_error'] if e else nan):>10} "
                         f"{_pct(e['mean_rel_error'] if e else nan):>7} {_pct(b['max_rel_error']):>12} "
                         f"{_pct(b['mean_rel_error']):>7}  {b['worst']}")
    return "\n".join(lines)


def _plot(report: Any, path: Path) -> None:
    """PNG: per protocol, relative error [%] of closed form and textbook against Bloch (bars or T1×T2 scatter)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    n = len(report.protocols)
    if report.grid:
        fig = Figure(figsize=(4.2 * n, 7.0), layout="constrained")
        axes = fig.subplots(2, n, squeeze=False)
        for i, p in enumerate(report.protocols):
            errs = {m: 100 * report.rel_error(m, "bloch")[i] for m in ("closed", "textbook")}
            vmax = max(float(np.nanmax(e)) for e in errs.values()) or 1.0  # one colour scale per protocol
            for r, (model, err) in enumerate(errs.items()):
                ax = axes[r, i]
                sc = ax.scatter(report.t1_ms[i], report.t2_ms[i], c=err, s=40, cmap="viridis", vmin=0, vmax=vmax)
                ax.set(xscale="log", yscale="log", xlabel="T1 [ms]", ylabel="T2 [ms]",
                       title=f"{p.name or p.kind}: {model} vs Bloch (max {np.nanmax(err):.2g} %)")
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.yaxis.set_minor_formatter(NullFormatter())
                fig.colorbar(sc, ax=ax, label="relative error [%]")
    else:
        fig = Figure(figsize=(max(5.0, 4.5 * n), 4.0), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        x = np.arange(len(report.points))
        for i, p in enumerate(report.protocols):
            ax = axes[i]
            for k, model in enumerate(("closed", "textbook")):
                ax.bar(x + (k - 0.5) * 0.4, 100 * report.rel_error(model, "bloch")[i], 0.4, label=f"{model} vs Bloch")
            ax.set_xticks(x, report.points, rotation=45, ha="right")
            ax.set(ylabel="relative error [%]", title=f"{p.name or p.kind} (TR {p.tr_ms:g}, TE {p.te_ms:g}"
                   + (f", TI {p.ti_ms:g}" if p.ti_ms else "") + " ms)")
            ax.legend(fontsize="small")
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


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
    import inspect

    from relaxomap.physics.fidelity import fidelity

    protocols = build_protocols(presets, kind=kind, field=field, **timing)
    defaults = {k: v.default for k, v in inspect.signature(fidelity).parameters.items()}
    kwargs = {"b1": b1, "bloch_pulse": bloch_pulse, "bloch_spoiling": bloch_spoiling}
    kwargs = {k: (defaults[k] if v is None else v) for k, v in kwargs.items()}
    try:
        report = fidelity(protocols, tissues=tissues or None, grid=grid, **kwargs)
    except (TypeError, ValueError) as err:
        msg = str(err)
        hint = ("--tissue" if "tissue" in msg and "field_t" not in msg else "--field" if "field_t" in msg
                else "--b1" if "b1" in msg else "--bloch-pulse" if "pulse" in msg else None)
        if hint is None:
            raise click.UsageError(msg) from None
        raise click.BadParameter(msg, param_hint=hint) from None
    click.echo(format_fidelity_table(report))
    if json_path is not None:
        text = json.dumps(report.to_dict(), indent=1)
        atomic_write_text(json_path, text)
        click.echo(f"wrote {json_path}")
    if not no_png:
        png = Path(png_path) if png_path is not None else Path(out_dir or ".") / "fidelity.png"
        _plot(report, png)
        click.echo(f"wrote {png}")


def register(main: click.Group, bench: click.Group) -> None:
    """Add this module's commands to the ``relaxomap`` group (``bench`` subcommands are added here too)."""
    main.add_command(fidelity_command)
    bench.add_command(bench_physics_command)


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
        text = json.dumps({"closed_form": closed, "epg": epg}, indent=2)
        atomic_write_text(json_path, text)
        click.echo(f"wrote {json_path}")
