"""Exam-level unknowns, fitted jointly with a subsample of voxels: gains, transmit field, refocusing angles,
inversion efficiency and receive fields, with their posterior uncertainty.

Model of series c at voxel v (PD relative, signals in the series' own units)

    y_c(v) = g_c · r_c(v) · PD(v) · |s_c(T1(v), T2(v); b(v), α_c, κ)|

s_c: the exam dictionary (:mod:`physics.refine.dictionary`); b(v) = b₀ + Σ_k β_k φ_k(v) the transmit field
(or a measured map); r_c(v) = exp(Σ_k ρ_ck φ_k(v)) the receive field (off by default); φ: the polynomial
basis of :func:`basis` in the voxel position. The parameter vector θ holds ln g_c, b₀, β, the unknown α_c,
κ and ρ; :class:`ExamLayout` names them with their Gaussian priors (sd = inf: flat).

The fit minimises, over θ and every subsample voxel's x = (ln T1, ln T2, PD),

    Σ_v Σ_c ((m_c(v) − y_c(v)) / σ_c(v))² + Σ_v |(x_v − x̂_v) / s_v|² + |(θ − θ₀) / s_θ|²

(x̂: the network's maps, s_v: the voxel priors of :class:`~physics.refine.config.RefineConfig`) by
Levenberg–Marquardt with the per-voxel 3 × 3 blocks eliminated (Schur complement): each step costs
O(N·P²) for N voxels and P exam parameters. The derivatives in x and b are those of the trilinear
interpolant; in α_c and κ, forward differences of rebuilt tables (δ = 1°, 0.005). At the optimum the Schur
complement's inverse is the posterior covariance of θ with the voxels marginalised (Laplace), and
d x_v / d θ = −H_vv⁻¹ H_vθ propagates it to the maps (:func:`t1_scale_sd`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol
from relaxomap.physics.refine.config import RefineConfig
from relaxomap.physics.refine.dictionary import ExamDictionary, interp_tables

__all__ = ["basis", "ExamLayout", "ExamState", "exam_model", "sync_tables"]

_D_REFOCUS_DEG = 1.0
_D_KAPPA = 0.005
_B1_BOUNDS = (0.55, 1.45)


def basis(coords_mm: np.ndarray, center_mm: np.ndarray, degree: int) -> np.ndarray:
    """(N, K) polynomial basis of positions (N, 3) [mm] per 100 mm from ``center_mm``, without the constant:
    degree 1 → (x, y, z); degree 2 adds (x², y², z², xy, xz, yz); degree 0 → (N, 0)."""
    u = (np.asarray(coords_mm, np.float64) - np.asarray(center_mm, np.float64)) / 100.0
    cols = [] if degree < 1 else [u[:, 0], u[:, 1], u[:, 2]]
    if degree >= 2:
        cols += [u[:, 0] ** 2, u[:, 1] ** 2, u[:, 2] ** 2, u[:, 0] * u[:, 1], u[:, 0] * u[:, 2], u[:, 1] * u[:, 2]]
    return np.stack(cols, axis=1) if cols else np.zeros((len(u), 0))


@dataclass
class ExamLayout:
    """Names, prior means / sds and bounds of θ, and where each group sits in it.

    ``gain`` (C,) indices of ln g_c; ``b1`` (1 + K_b,) of b₀ and β (empty with a measured B1 map);
    ``refocus`` {series: index} of the fitted refocusing angles [deg]; ``kappa`` index or None;
    ``receive`` (C, K_r) indices of ρ.
    """

    names: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    sd: list[float] = field(default_factory=list)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    gain: list[int] = field(default_factory=list)
    b1: list[int] = field(default_factory=list)
    refocus: dict[int, int] = field(default_factory=dict)
    kappa: int | None = None
    receive: list[list[int]] = field(default_factory=list)

    def _add(self, name: str, mean: float, sd: float, lo: float = -math.inf, hi: float = math.inf) -> int:
        self.names.append(name)
        self.mean.append(mean)
        self.sd.append(sd)
        self.lo.append(lo)
        self.hi.append(hi)
        return len(self.names) - 1

    @classmethod
    def build(cls, protocols: Sequence[Protocol], known_refocus: Sequence[bool], config: RefineConfig,
              b1_measured: bool, n_b1_basis: int, n_receive_basis: int, labels: Sequence[str],
              receive_series: Sequence[bool] | None = None) -> "ExamLayout":
        """The layout of one exam; ``receive_series`` (C,) flags the series with a receive field (None: all
        when ``n_receive_basis`` > 0)."""
        lay = cls()
        lay.gain = [lay._add(f"log_gain_{lab}", 0.0, math.inf) for lab in labels]
        if not b1_measured:
            lay.b1 = [lay._add("b1_0", 1.0, config.b1_sd, *_B1_BOUNDS)]
            lay.b1 += [lay._add(f"b1_coef_{k}", 0.0, config.b1_slope_sd) for k in range(n_b1_basis)]
        for c, (p, known) in enumerate(zip(protocols, known_refocus)):
            if p.kind in SPIN_ECHO_KINDS and not known and config.refocus_sd_deg > 0:
                lay.refocus[c] = lay._add(f"refocus_deg_{labels[c]}", p.refocus_deg, config.refocus_sd_deg, 60.0,
                                          180.0)
        if any(p.kind in ("ir_tse", "mprage") for p in protocols) and config.kappa_sd > 0:
            lay.kappa = lay._add("inversion_efficiency", config.kappa_mean, config.kappa_sd, 0.5, 1.0)
        flags = list(receive_series) if receive_series is not None else [True] * len(labels)
        lay.receive = [[lay._add(f"receive_{lab}_{k}", 0.0, config.receive_sd) for k in range(n_receive_basis)]
                       if on and config.receive_sd > 0 else [] for lab, on in zip(labels, flags)]
        return lay

    def carry(self, other: "ExamLayout", theta: np.ndarray) -> np.ndarray:
        """θ of this layout: the prior means, with every parameter ``other`` also has taken from ``theta``."""
        out = np.array(self.mean, np.float64)
        for i, name in enumerate(self.names):
            if name in other.names:
                out[i] = theta[other.names.index(name)]
        return out


    def clip(self, theta: np.ndarray) -> np.ndarray:
        return np.clip(theta, self.lo, self.hi)


@dataclass
class ExamState:
    """Everything the model needs besides θ and x: data, noise, bases, dictionary, fixed B1 and κ."""

    y: np.ndarray  # (N, C) signals
    sigma: np.ndarray  # (N, C) noise sd incl. model error
    phi_b1: np.ndarray  # (N, K_b)
    phi_rx: np.ndarray  # (N, K_r)
    dictionary: ExamDictionary
    layout: ExamLayout
    b1_fixed: np.ndarray | None = None  # (N,) measured transmit scale
    kappa_default: float = 0.96

    def refocus(self, theta: np.ndarray) -> list[float | None]:
        out: list[float | None] = list(self.dictionary.refocus_deg)
        for c, i in self.layout.refocus.items():
            out[c] = float(theta[i])
        return out

    def kappa(self, theta: np.ndarray) -> float:
        return float(theta[self.layout.kappa]) if self.layout.kappa is not None else self.kappa_default

    def b1(self, theta: np.ndarray) -> np.ndarray:
        if self.b1_fixed is not None:
            return self.b1_fixed
        lay = self.layout
        return np.clip(theta[lay.b1[0]] + self.phi_b1 @ theta[lay.b1[1:]], *_B1_BOUNDS)

    def gains(self, theta: np.ndarray) -> np.ndarray:
        """(N, C) g_c · r_c(v)."""
        lay = self.layout
        log_g = np.empty(self.y.shape)
        for c, i in enumerate(lay.gain):
            log_g[:, c] = theta[i] + (self.phi_rx @ theta[lay.receive[c]] if lay.receive[c] else 0.0)
        return np.exp(log_g)


def sync_tables(state: ExamState, theta: np.ndarray) -> None:
    """Rebuild the dictionary's tables where θ's refocusing angles or κ moved."""
    d = state.dictionary
    ref, kap = state.refocus(theta), state.kappa(theta)
    for c in range(len(d.protocols)):
        if ref[c] != d.refocus_deg[c] or (kap != d.kappa and d.protocols[c].kind in ("ir_tse", "mprage")):
            d.tables[c] = d.series(c, ref[c], kap)
    d.refocus_deg, d.kappa = ref, kap


def exam_model(state: ExamState, theta: np.ndarray, x: np.ndarray, jac: bool = True
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Model signals m (N, C) at θ and x = (ln T1, ln T2, PD) (N, 3); with ``jac`` also dm/dx (N, C, 3) and
    dm/dθ (N, C, P)."""
    sync_tables(state, theta)
    d, lay = state.dictionary, state.layout
    g = d.grid
    b = state.b1(theta)
    look = interp_tables(d.tables, *g.positions(b, x[:, 0], x[:, 1]))
    sgn = np.where(look[..., 0] < 0, -1.0, 1.0)
    gain = state.gains(theta)
    pd = x[:, 2:3]
    m = gain * pd * np.abs(look[..., 0])
    if not jac:
        return m, None, None
    gp = gain * pd * sgn
    dx = np.stack([gp * look[..., 2] / g.dlog_t1, gp * look[..., 3] / g.dlog_t2, gain * np.abs(look[..., 0])], -1)
    dth = np.zeros((*m.shape, len(lay.names)))
    for c, i in enumerate(lay.gain):
        dth[:, c, i] = m[:, c]
        for k, j in enumerate(lay.receive[c]):
            dth[:, c, j] = m[:, c] * state.phi_rx[:, k]
    if lay.b1:
        db = gp * look[..., 1] / g.db1
        inside = (b > _B1_BOUNDS[0]) & (b < _B1_BOUNDS[1])
        db = db * inside[:, None]
        dth[:, :, lay.b1[0]] = db
        for k, j in enumerate(lay.b1[1:]):
            dth[:, :, j] = db * state.phi_b1[:, k:k + 1]
    pos = g.positions(b, x[:, 0], x[:, 1])
    for c, i in lay.refocus.items():
        step = _D_REFOCUS_DEG if d.refocus_deg[c] + _D_REFOCUS_DEG <= 180.0 else -_D_REFOCUS_DEG
        tab = d.series(c, d.refocus_deg[c] + step, d.kappa)[None]
        dth[:, c, i] = (gain[:, c] * x[:, 2] * np.abs(interp_tables(tab, *pos)[:, 0, 0]) - m[:, c]) / step
    if lay.kappa is not None:
        step = _D_KAPPA if d.kappa + _D_KAPPA <= 1.0 else -_D_KAPPA
        for c, p in enumerate(d.protocols):
            if p.kind in ("ir_tse", "mprage"):
                tab = d.series(c, d.refocus_deg[c], d.kappa + step)[None]
                dth[:, c, lay.kappa] = (gain[:, c] * x[:, 2] * np.abs(interp_tables(tab, *pos)[:, 0, 0])
                                        - m[:, c]) / step
    return m, dx, dth
