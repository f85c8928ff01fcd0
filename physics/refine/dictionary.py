"""The exam's own signal dictionary: signed signals of every series over (B1, ln T1, ln T2), trilinear look-up.

One table per series, ``(n_b1, n_t1, n_t2)`` float32, PD = 1 and unit gain, for the exam-level sequence
parameters in force (refocusing angle per spin-echo series, inversion efficiency κ). Spin-echo kinds run the
Numba EPG kernel of :mod:`physics.epg` (``signed=True``: the sign is that of Mz before the excitation, so an
inversion-recovery series keeps both branches apart and the magnitude is taken after interpolation, smooth
through the null); gradient-echo kinds use the closed forms of :mod:`physics.signal` with the flip scaled.
A transmit scale b multiplies every pulse; the inversion of a series follows ``inversion_b1``: ``"scaled"``
(κ_eff = κ·max(0, −cos π b), a conventional 180° pulse at angle b·180°) or ``"adiabatic"`` (κ_eff = κ).

:func:`interp_tables` evaluates the tables at fractional grid positions with the exact derivatives of the
trilinear interpolant (what the exam fit's Jacobian uses); :func:`interp_value` is the same formula for one
value, inlined into the voxel search kernel (:mod:`physics.refine.voxel`). Positions outside the grid are
clamped to its edge (derivative 0 there).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numba import njit, prange

from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol
from relaxomap.physics.refine.config import RefineConfig

__all__ = ["Grid", "ExamDictionary", "series_table", "interp_value", "interp_tables", "kappa_effective"]

_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}


class Grid:
    """The dictionary's nodes: B1 scales (linear), T1 and T2 [ms] (log-spaced), and position conversions.

    ``coarsen`` k > 1 keeps every k-th spacing (the exam fit's grid: its look-ups need derivatives, not the
    voxel search's resolution; bilinear error at a 6 % T1 step is ~0.05 % of the signal)."""

    def __init__(self, config: RefineConfig, coarsen: int = 1) -> None:
        lo, hi = config.b1_range
        step = config.b1_step * coarsen
        n_b = int(round((hi - lo) / step)) + 1
        self.b1 = lo + step * np.arange(n_b)
        self.log_t1 = np.linspace(math.log(config.t1_range_ms[0]), math.log(config.t1_range_ms[1]),
                                  (config.n_t1 - 1) // coarsen + 1)
        self.log_t2 = np.linspace(math.log(config.t2_range_ms[0]), math.log(config.t2_range_ms[1]),
                                  (config.n_t2 - 1) // coarsen + 1)
        self.db1 = float(step)
        self.dlog_t1 = float(self.log_t1[1] - self.log_t1[0])
        self.dlog_t2 = float(self.log_t2[1] - self.log_t2[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.b1), len(self.log_t1), len(self.log_t2)

    def positions(self, b1: np.ndarray, log_t1: np.ndarray, log_t2: np.ndarray) -> tuple[np.ndarray, ...]:
        """Fractional node indices (float64, unclamped) of B1 scales and ln T1 / ln T2 [ln ms]."""
        return ((np.asarray(b1, np.float64) - self.b1[0]) / self.db1,
                (np.asarray(log_t1, np.float64) - self.log_t1[0]) / self.dlog_t1,
                (np.asarray(log_t2, np.float64) - self.log_t2[0]) / self.dlog_t2)


def kappa_effective(kappa: float, b1: np.ndarray, mode: str) -> np.ndarray:
    """Effective inversion efficiency at transmit scales ``b1`` (module docstring), in [0, 1]."""
    b = np.asarray(b1, np.float64)
    if mode == "adiabatic":
        return np.full(b.shape, float(kappa))
    return np.clip(float(kappa) * np.maximum(0.0, -np.cos(np.pi * b)), 0.0, 1.0)


def series_table(protocol: Protocol, grid: Grid, *, refocus_deg: float | None, kappa: float,
                 inversion_b1: str) -> np.ndarray:
    """(n_b1, n_t1, n_t2) float32 signed signal of one series (PD = 1), at ``refocus_deg`` (None: the
    protocol's) and inversion efficiency ``kappa``."""
    n_b, n_1, n_2 = grid.shape
    t1 = np.repeat(np.exp(grid.log_t1), n_2).astype(np.float32)
    t2 = np.tile(np.exp(grid.log_t2), n_1).astype(np.float32)
    out = np.empty((n_b, n_1 * n_2), np.float32)
    inverts = protocol.kind in ("ir_tse", "mprage")
    k_eff = kappa_effective(kappa, grid.b1, inversion_b1) if inverts else np.ones(n_b)
    base = protocol if refocus_deg is None or protocol.kind not in SPIN_ECHO_KINDS else \
        protocol.with_(refocus_deg=float(refocus_deg))
    if protocol.kind in SPIN_ECHO_KINDS and not inverts:  # one kernel call, B1 per node
        from relaxomap.physics.epg import _run_kernel, _schedule_rad

        b1 = np.repeat(grid.b1, n_1 * n_2).astype(np.float32)
        sig = _run_kernel(np.tile(t1, n_b), np.tile(t2, n_b), b1, False, base, _schedule_rad(base, None),
                          base.echo_index, True, True)
        out[:] = sig[:, 0].reshape(n_b, n_1 * n_2)
    elif protocol.kind in SPIN_ECHO_KINDS:  # κ_eff depends on B1: one call per B1 node
        from relaxomap.physics.epg import _run_kernel, _schedule_rad

        for k, b in enumerate(grid.b1):
            p = base.with_(inversion_efficiency=float(k_eff[k])) if inverts else base
            b1 = np.full(t1.shape, b, np.float32)
            out[k] = _run_kernel(t1, t2, b1, True, p, _schedule_rad(p, None), p.echo_index, True, True)[:, 0]
    else:
        from relaxomap.physics.signal import signal

        ones = np.ones_like(t1)
        for k, b in enumerate(grid.b1):
            p = base.with_(flip_deg=float(min(180.0, b * base.flip_deg)),
                           **({"inversion_efficiency": float(k_eff[k])} if inverts else {}))
            out[k] = signal(t1, t2, ones, p)[0]
    return out.reshape(n_b, n_1, n_2)


@njit(inline="always", fastmath=_FM)
def interp_value(tab, bq, iq, jq):
    """Trilinear value of ``tab`` (n_b, n_1, n_2) at fractional indices (clamped to the grid)."""
    nb, n1, n2 = tab.shape
    bq = min(max(bq, 0.0), nb - 1.0)
    iq = min(max(iq, 0.0), n1 - 1.0)
    jq = min(max(jq, 0.0), n2 - 1.0)
    b0 = min(int(bq), nb - 2)
    i0 = min(int(iq), n1 - 2)
    j0 = min(int(jq), n2 - 2)
    fb, fi, fj = bq - b0, iq - i0, jq - j0
    v0 = ((tab[b0, i0, j0] * (1 - fj) + tab[b0, i0, j0 + 1] * fj) * (1 - fi)
          + (tab[b0, i0 + 1, j0] * (1 - fj) + tab[b0, i0 + 1, j0 + 1] * fj) * fi)
    v1 = ((tab[b0 + 1, i0, j0] * (1 - fj) + tab[b0 + 1, i0, j0 + 1] * fj) * (1 - fi)
          + (tab[b0 + 1, i0 + 1, j0] * (1 - fj) + tab[b0 + 1, i0 + 1, j0 + 1] * fj) * fi)
    return v0 * (1 - fb) + v1 * fb


@njit(parallel=True, fastmath=_FM, cache=True)
def _interp_kernel(tables, bq, iq, jq, out):
    nc, nb, n1, n2 = tables.shape
    for v in prange(bq.shape[0]):
        b_in = 0.0 <= bq[v] <= nb - 1.0
        i_in = 0.0 <= iq[v] <= n1 - 1.0
        j_in = 0.0 <= jq[v] <= n2 - 1.0
        b = min(max(bq[v], 0.0), nb - 1.0)
        i = min(max(iq[v], 0.0), n1 - 1.0)
        j = min(max(jq[v], 0.0), n2 - 1.0)
        b0 = min(int(b), nb - 2)
        i0 = min(int(i), n1 - 2)
        j0 = min(int(j), n2 - 2)
        fb, fi, fj = b - b0, i - i0, j - j0
        for c in range(nc):
            t = tables[c]
            c00 = t[b0, i0, j0] * (1 - fj) + t[b0, i0, j0 + 1] * fj
            c01 = t[b0, i0 + 1, j0] * (1 - fj) + t[b0, i0 + 1, j0 + 1] * fj
            c10 = t[b0 + 1, i0, j0] * (1 - fj) + t[b0 + 1, i0, j0 + 1] * fj
            c11 = t[b0 + 1, i0 + 1, j0] * (1 - fj) + t[b0 + 1, i0 + 1, j0 + 1] * fj
            d00 = t[b0, i0, j0 + 1] - t[b0, i0, j0]
            d01 = t[b0, i0 + 1, j0 + 1] - t[b0, i0 + 1, j0]
            d10 = t[b0 + 1, i0, j0 + 1] - t[b0 + 1, i0, j0]
            d11 = t[b0 + 1, i0 + 1, j0 + 1] - t[b0 + 1, i0 + 1, j0]
            v0 = c00 * (1 - fi) + c01 * fi
            v1 = c10 * (1 - fi) + c11 * fi
            out[v, c, 0] = v0 * (1 - fb) + v1 * fb
            out[v, c, 1] = (v1 - v0) if b_in else 0.0
            out[v, c, 2] = ((c01 - c00) * (1 - fb) + (c11 - c10) * fb) if i_in else 0.0
            out[v, c, 3] = (((d00 * (1 - fi) + d01 * fi) * (1 - fb) + (d10 * (1 - fi) + d11 * fi) * fb)
                            if j_in else 0.0)


def interp_tables(tables: np.ndarray, bq: np.ndarray, iq: np.ndarray, jq: np.ndarray) -> np.ndarray:
    """(N, C, 4) float64: value and its derivatives per unit of B1 / T1 / T2 node index, of every table
    (C, n_b, n_1, n_2) at N fractional positions (clamped; derivative 0 along an axis where clamped)."""
    out = np.empty((len(bq), tables.shape[0], 4), np.float64)
    _interp_kernel(np.ascontiguousarray(tables, np.float32), *(np.ascontiguousarray(a, np.float64)
                                                                for a in (bq, iq, jq)), out)
    return out


class ExamDictionary:
    """The tables of every series of one exam at given refocusing angles [deg] and inversion efficiency κ.

    ``tables`` (C, n_b1, n_t1, n_t2) float32 signed; :meth:`with_series` rebuilds one series (for the exam
    fit's finite differences in its refocusing angle or κ) without touching the others.
    """

    def __init__(self, protocols: Sequence[Protocol], config: RefineConfig, refocus_deg: Sequence[float | None],
                 kappa: float, grid: Grid | None = None) -> None:
        self.protocols = list(protocols)
        self.config = config
        self.grid = grid or Grid(config)
        self.refocus_deg = list(refocus_deg)
        self.kappa = float(kappa)
        self.tables = np.stack([self.series(c, self.refocus_deg[c], self.kappa)
                                for c in range(len(self.protocols))])

    def series(self, c: int, refocus_deg: float | None, kappa: float) -> np.ndarray:
        """Table of series ``c`` at the given refocusing angle [deg] and κ."""
        return series_table(self.protocols[c], self.grid, refocus_deg=refocus_deg, kappa=kappa,
                            inversion_b1=self.config.inversion_b1)

    def with_series(self, c: int, table: np.ndarray) -> np.ndarray:
        """A copy of ``tables`` with series ``c`` replaced."""
        out = self.tables.copy()
        out[c] = table
        return out
