"""Reading a fidelity study (:mod:`physics.fidelity`): its protocols named by preset, its terminal tables and
its figure.

- :func:`resolve_presets`: preset names, full (``flair_3t``) or base names (``flair``) completed with a field
  strength (``flair`` at 1.5 T is ``flair_1.5t``), to :data:`physics.protocol.PRESETS` protocols;
- :func:`format_fidelity_table`: signals and relative errors per protocol and tissue, then the summary;
- :func:`plot_fidelity`: a PNG of the relative error of the closed forms against Bloch, per protocol (bars per
  tissue, or a T1 × T2 scatter for a grid), written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from relaxomap.atomic import atomic_path
from relaxomap.physics.fidelity import FidelityReport
from relaxomap.physics.protocol import PRESETS, Protocol

__all__ = ["field_tag", "resolve_presets", "format_fidelity_table", "plot_fidelity"]


def field_tag(field_t: float) -> str:
    """The field strength [T] as preset names end: 3.0 -> ``"3t"``, 1.5 -> ``"1.5t"``."""
    return f"{field_t:g}t"


def resolve_presets(names: Sequence[str], field_t: float) -> list[Protocol]:
    """The preset protocols of ``names``, in order; a base name gets the field strength ``field_t`` [T].

    Raises
    ------
    ValueError
        A base name that exists at other field strengths only (the message names ``field_t`` and the
        strengths it exists at), or an unknown name (the message lists the full and base names).
    """
    out = []
    for name in names:
        full = name if name in PRESETS else f"{name}_{field_tag(field_t)}"
        if full not in PRESETS and any(n.startswith(f"{name}_") for n in PRESETS):
            fields = sorted({n.rsplit("_", 1)[1] for n in PRESETS if n.rsplit("_", 1)[0] == name})
            raise ValueError(f"preset {name!r} exists at {', '.join(fields)} only; got field_t {field_t:g} T")
        if full not in PRESETS:
            bases = sorted({n.rsplit("_", 1)[0] for n in PRESETS})
            raise ValueError(
                f"unknown preset {name!r} at field {field_t:g} T; full names: {', '.join(sorted(PRESETS))}; "
                f"base names (completed with the field strength, 1.5 or 3): {', '.join(bases)}")
        out.append(PRESETS[full])
    return out


def _pct(x: float) -> str:
    return "   n/a" if x != x else f"{100 * x:6.3g}"


def _tissue_lines(report: FidelityReport) -> list[str]:
    lines = ["signals (M0 = PD) and relative error [%] against Bloch",
             f"{'protocol':<14} {'tissue':<10} {'T1 ms':>7} {'T2 ms':>7} {'PD':>5} {'Bloch':>8} {'EPG':>8} "
             f"{'closed':>8} {'err %':>6} {'textbook':>8} {'err %':>6}"]
    rel_c, rel_t = report.rel_error("closed", "bloch"), report.rel_error("textbook", "bloch")
    for i, p in enumerate(report.protocols):
        for j, name in enumerate(report.points):
            s = {k: report.signals[k][i, j] for k in report.signals}
            epg = "     n/a" if s["epg"] != s["epg"] else f"{s['epg']:8.5f}"
            lines.append(f"{p.name or p.kind:<14} {name:<10} {report.t1_ms[i, j]:7.0f} {report.t2_ms[i, j]:7.0f} "
                         f"{report.pd[i, j]:5.2f} {s['bloch']:8.5f} {epg} {s['closed']:8.5f} {_pct(rel_c[i, j])} "
                         f"{s['textbook']:8.5f} {_pct(rel_t[i, j])}")
    return lines + [""]


def format_fidelity_table(report: FidelityReport) -> str:
    """Terminal tables of a report: per tissue (not for grids), then the summary per protocol and model."""
    lines = [] if report.grid else _tissue_lines(report)
    what = "grid points" if report.grid else "tissues"
    lines.append(f"relative error [%] over {len(report.points)} {what} (floor {100 * report.floor:g} % of PD)")
    lines.append(f"{'protocol':<14} {'model':<9} {'vs EPG max':>10} {'mean':>7} {'vs Bloch max':>12} {'mean':>7}  "
                 "worst (Bloch)")
    rows = {(r["protocol"], r["model"], r["reference"]): r for r in report.summary()}
    nan = float("nan")
    for p in report.protocols:
        pname = p.name or p.kind
        for model in ("closed", "textbook"):
            e, b = rows.get((pname, model, "epg")), rows.get((pname, model, "bloch"))
            lines.append(f"{pname:<14} {model:<9} {_pct(e['max_rel_error'] if e else nan):>10} "
                         f"{_pct(e['mean_rel_error'] if e else nan):>7} {_pct(b['max_rel_error']):>12} "
                         f"{_pct(b['mean_rel_error']):>7}  {b['worst']}")
    return "\n".join(lines)


def _grid_axes(fig: Any, report: FidelityReport) -> None:
    from matplotlib.ticker import NullFormatter

    n = len(report.protocols)
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


def _tissue_axes(fig: Any, report: FidelityReport) -> None:
    axes = fig.subplots(1, len(report.protocols), squeeze=False)[0]
    x = np.arange(len(report.points))
    for i, p in enumerate(report.protocols):
        ax = axes[i]
        for k, model in enumerate(("closed", "textbook")):
            ax.bar(x + (k - 0.5) * 0.4, 100 * report.rel_error(model, "bloch")[i], 0.4, label=f"{model} vs Bloch")
        ax.set_xticks(x, report.points, rotation=45, ha="right")
        ax.set(ylabel="relative error [%]", title=f"{p.name or p.kind} (TR {p.tr_ms:g}, TE {p.te_ms:g}"
               + (f", TI {p.ti_ms:g}" if p.ti_ms else "") + " ms)")
        ax.legend(fontsize="small")


def plot_fidelity(report: FidelityReport, path: str | os.PathLike) -> Path:
    """Write the PNG of the module docstring to ``path`` (atomically); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(report.protocols)
    if report.grid:
        fig = Figure(figsize=(4.2 * n, 7.0), layout="constrained")
        _grid_axes(fig, report)
    else:
        fig = Figure(figsize=(max(5.0, 4.5 * n), 4.0), layout="constrained")
        _tissue_axes(fig, report)
    FigureCanvasAgg(fig)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
