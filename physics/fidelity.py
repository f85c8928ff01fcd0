"""How far the closed-form signal equations are from EPG and from the Bloch simulator, per contrast and tissue.

For each protocol and each tissue (or each point of a log-spaced T1 × T2 grid) four steady-state magnitudes
are computed, all with M0 = PD:

* ``closed``   — :func:`physics.signal.signal_reference` (float64), ``model="closed"``: readout, κ and the
  refocusing-angle effect on M_z included, echo amplitude e^(−TE/T2) (ideal refocusing);
* ``textbook`` — the same with ``model="textbook"``
  (e.g. FLAIR ``|1 − 2e^(−TI/T1) + e^(−TR/T1)| e^(−TE/T2)``);
* ``epg``      — :func:`physics.epg_reference.epg_reference` (float64, steady state; spin-echo kinds only; NaN for
  ``spgr`` / ``mprage``, where EPG with ideal spoiling *is* the closed form);
* ``bloch``    — :func:`physics.bloch.bloch_signal` (the reference; hard pulses and ideal spoiling by default).

The relative error of a model against a reference is ``|model − ref| / max(|ref|, floor·PD)``: below
``floor`` (1 % of the fully relaxed signal by default) the error is measured against that floor, so a nulled
tissue (CSF in FLAIR near its null) cannot dominate the statistics with a ratio of two tiny numbers.

Known gaps this exposes: at refocusing angles below 180° the echo amplitude of a TSE train is set by
stimulated-echo pathways, not by e^(−TE/T2) (Hennig 1988), a few percent for brain tissue at 150°; the
textbook FLAIR formula ignores the echo-train readout (and the M_z it leaves), which for long-T1 tissue
such as CSF is an error of tens of percent, while the closed form includes readout and κ and is exact at 180°.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range
from relaxomap.physics.bloch import bloch_signal
from relaxomap.physics.epg_reference import epg_reference
from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol
from relaxomap.physics.signal import signal_reference
from relaxomap.physics.tissues import tissue_values

__all__ = [
    "DEFAULT_TISSUES",
    "DEFAULT_PRESETS",
    "MODELS",
    "REFERENCES",
    "FidelityReport",
    "fidelity",
    "t1_t2_grid",
]

#: Tissues of the default report (names of :mod:`physics.tissues`).
DEFAULT_TISSUES: tuple[str, ...] = ("WM", "GM", "CSF", "deep GM", "fat", "MS lesion")
#: Default protocols, as preset base names: ``PRESETS[f"{name}_{tag}"]`` with tag ``3t`` or ``1.5t``.
DEFAULT_PRESETS: tuple[str, ...] = ("t1w_se", "t2w_tse", "flair")
#: Approximations under test, and the references they are compared with.
MODELS: tuple[str, ...] = ("closed", "textbook")
REFERENCES: tuple[str, ...] = ("epg", "bloch")


def t1_t2_grid(n: int = 12, t1_range_ms: tuple[float, float] = (200.0, 5000.0),
               t2_range_ms: tuple[float, float] = (20.0, 2000.0)) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced ``n × n`` grid of (T1, T2) [ms], keeping only physical points T2 < T1.

    Returns
    -------
    t1_ms, t2_ms : (n_points,) float64 [ms], T1 varying slowest.
    """
    n = check_int_range("t1_t2_grid", "n", n, 2, 200)
    for name, (lo, hi) in (("t1_range_ms", t1_range_ms), ("t2_range_ms", t2_range_ms)):
        check_finite_range("t1_t2_grid", name + "[0]", lo, 0.0, 60_000.0, lo_open=True)
        check_finite_range("t1_t2_grid", name + "[1]", hi, lo, 60_000.0, lo_open=True)
    t1 = np.geomspace(*t1_range_ms, n)
    t2 = np.geomspace(*t2_range_ms, n)
    t1g, t2g = np.meshgrid(t1, t2, indexing="ij")  # (n, n): T1 along axis 0
    keep = t2g < t1g
    return t1g[keep], t2g[keep]


@dataclass(frozen=True, eq=False)
class FidelityReport:
    """Signals of every model and reference for ``n_prot`` protocols × ``n_pts`` tissues / grid points.

    Attributes
    ----------
    protocols : the protocols (rows).
    points : (n_pts,) names of the tissues or grid points (columns).
    t1_ms, t2_ms, pd : (n_prot, n_pts) float64 — tissue values at each protocol's field [ms], [ms], [relative].
    signals : ``"closed"``, ``"textbook"``, ``"epg"``, ``"bloch"`` -> (n_prot, n_pts) float64 magnitudes (M0 = PD);
        NaN where a reference does not apply (EPG for gradient echoes).
    floor : relative-error floor, a fraction of PD.
    grid : True when the points are a T1 × T2 grid rather than named tissues.
    settings : how the references were run (b1, Bloch pulse and spoiling).
    """

    protocols: tuple[Protocol, ...]
    points: tuple[str, ...]
    t1_ms: np.ndarray
    t2_ms: np.ndarray
    pd: np.ndarray
    signals: dict[str, np.ndarray]
    floor: float
    grid: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def abs_error(self, model: str, reference: str) -> np.ndarray:
        """``|model − reference|`` (n_prot, n_pts) float64, in units of M0."""
        _check_pair(model, reference)
        return np.abs(self.signals[model] - self.signals[reference])

    def rel_error(self, model: str, reference: str) -> np.ndarray:
        """``|model − ref| / max(|ref|, floor·PD)`` (n_prot, n_pts) float64; NaN where ``ref`` does not apply."""
        err = self.abs_error(model, reference)  # checks the names
        ref = self.signals[reference]
        denom = np.maximum(np.abs(ref), self.floor * self.pd)
        with np.errstate(invalid="ignore"):
            ok = denom > 0  # False for PD = 0 with a zero reference (background) and for NaN
        out = np.divide(err, denom, out=np.zeros_like(err), where=ok)
        out[np.isnan(ref) | np.isnan(err)] = np.nan
        return out

    def summary(self) -> list[dict[str, Any]]:
        """One row per protocol × model × reference: max / mean relative error, where the max is, max abs error.

        Rows for a reference that does not apply to a protocol (EPG for gradient echoes) are left out.
        """
        rows = []
        for i, prot in enumerate(self.protocols):
            for model in MODELS:
                for ref in REFERENCES:
                    rel = self.rel_error(model, ref)[i]
                    if np.isnan(rel).all():
                        continue
                    worst = int(np.nanargmax(rel))
                    rows.append({
                        "protocol": prot.name or prot.kind, "kind": prot.kind, "model": model, "reference": ref,
                        "max_rel_error": float(np.nanmax(rel)), "mean_rel_error": float(np.nanmean(rel)),
                        "worst": self.points[worst], "max_abs_error": float(np.nanmax(self.abs_error(model, ref)[i])),
                    })
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None): inputs, signals, relative errors, summary."""
        def clean(a: np.ndarray) -> list:
            return [[None if not math.isfinite(v) else float(v) for v in row] for row in np.asarray(a, float)]

        return {
            "protocols": [p.to_dict() for p in self.protocols],
            "points": list(self.points),
            "grid": self.grid,
            "floor": self.floor,
            "settings": dict(self.settings),
            "t1_ms": clean(self.t1_ms),
            "t2_ms": clean(self.t2_ms),
            "pd": clean(self.pd),
            "signals": {k: clean(v) for k, v in self.signals.items()},
            "rel_error": {f"{m}_vs_{r}": clean(self.rel_error(m, r)) for m in MODELS for r in REFERENCES},
            "summary": self.summary(),
        }


def _check_pair(model: str, reference: str) -> None:
    names = MODELS + REFERENCES
    for role, name in (("model", model), ("reference", reference)):
        if name not in names:
            raise ValueError(f"FidelityReport: {role} must be one of {list(names)}; got {name!r}")


def _tissue_table(names: Sequence[str], field_t: float) -> np.ndarray:
    """(3, n) float64 [T1 ms, T2 ms, PD] of named tissues at ``field_t``."""
    vals = [tissue_values(n, field_t) for n in names]
    return np.array([[v.t1_ms for v in vals], [v.t2_ms for v in vals], [v.pd for v in vals]], dtype=np.float64)


def fidelity(
    protocols: Sequence[Protocol],
    *,
    tissues: Sequence[str] | None = None,
    grid: int | None = None,
    t1_range_ms: tuple[float, float] = (200.0, 5000.0),
    t2_range_ms: tuple[float, float] = (20.0, 2000.0),
    b1: float = 1.0,
    bloch_pulse: str = "hard",
    bloch_spoiling: str = "ideal",
    floor: float = 0.01,
) -> FidelityReport:
    """Compare the closed-form and textbook signal equations with EPG and Bloch simulations.

    Parameters
    ----------
    protocols : one or more protocols (any kinds).
    tissues : tissue names of :mod:`physics.tissues` (values taken at each protocol's ``field_t``);
        default :data:`DEFAULT_TISSUES`. Ignored when ``grid`` is given.
    grid : if given, an ``n × n`` log-spaced T1 × T2 grid (T2 < T1, PD = 1) over the two ranges instead.
    t1_range_ms, t2_range_ms : grid ranges [ms].
    b1 : relative transmit field for EPG and Bloch (the closed forms assume b1 = 1, so b1 ≠ 1 shows that gap).
    bloch_pulse : ``"hard"`` or ``"sinc"`` (see :mod:`physics.bloch`).
    bloch_spoiling : ``"ideal"`` or ``"rf"`` (117° RF spoiling for gradient echoes).
    floor : relative-error floor as a fraction of PD, in (0, 1).

    Returns
    -------
    FidelityReport

    Raises
    ------
    ValueError / TypeError naming the bad argument (unknown tissue, no protocols, b1 out of range, ...).
    """
    prots = (protocols,) if isinstance(protocols, Protocol) else tuple(protocols)
    if not prots:
        raise ValueError("fidelity: protocols must hold at least one Protocol; got none")
    for p in prots:
        if not isinstance(p, Protocol):
            raise TypeError(f"fidelity: protocols must be physics.protocol.Protocol; got {type(p).__name__}")
    b1 = check_finite_range("fidelity", "b1", b1, 0.0, 3.0, lo_open=True)
    floor = check_finite_range("fidelity", "floor", floor, 0.0, 1.0, lo_open=True, hi_open=True)
    if grid is not None:
        g1, g2 = t1_t2_grid(grid, t1_range_ms, t2_range_ms)
        points = tuple(f"T1={a:.0f},T2={b:.0f}" for a, b in zip(g1, g2))
        tables = [np.stack([g1, g2, np.ones_like(g1)]) for _ in prots]  # each (3, n_pts)
    else:
        names = tuple(DEFAULT_TISSUES if tissues is None else tissues)
        if not names:
            raise ValueError("fidelity: tissues must name at least one tissue; got none")
        points = names
        tables = [_tissue_table(names, p.field_t) for p in prots]
    t1, t2, pd = (np.stack([tab[k] for tab in tables]) for k in range(3))  # each (n_prot, n_pts)
    sig = {k: np.full(t1.shape, np.nan) for k in MODELS + REFERENCES}
    for i, p in enumerate(prots):
        for model in MODELS:
            sig[model][i] = signal_reference(t1[i], t2[i], pd[i], [p], model=model)[0]
        if p.kind in SPIN_ECHO_KINDS:  # float64 EPG (about 1 ms per point): its precision, not float32's, is measured
            k = p.echo_index - 1
            sig["epg"][i] = [pd[i, j] * epg_reference(t1[i, j], t2[i, j], p, b1=b1)[k] for j in range(t1.shape[1])]
        sig["bloch"][i] = bloch_signal(t1[i], t2[i], pd[i], p, b1=b1, pulse=bloch_pulse, spoiling=bloch_spoiling)
    settings = {"b1": b1, "bloch_pulse": bloch_pulse, "bloch_spoiling": bloch_spoiling}
    return FidelityReport(prots, points, t1, t2, pd, sig, floor, grid is not None, settings)
