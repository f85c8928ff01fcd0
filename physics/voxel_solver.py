"""The voxel-wise solver of the NLLS baseline (:mod:`physics.voxel_fit`): its settings (:class:`NLLSConfig`),
packed protocol rows, the signal factorisation ``S_c = PD · F_c(T1) · exp(−TE_c / T2)`` and the bounded fit of
(T1 [ms], T2 [ms], PD) per voxel with known per-contrast gains.

Voxel fit (:func:`fit_voxels`)
------------------------------
Unknowns ``θ = (ln T1, ln T2, PD)``, bounded to ``t1_bounds_ms``, ``t2_bounds_ms``, ``pd_bounds``.
Initialisation: the best point of a log-spaced T1 grid, with (PD, T2) solved in closed form at each point
(linear in log space, see :func:`_grid_init`) — this picks the right branch of the inversion-recovery
magnitude ``|Mz(TI)|``.
Refinement: Levenberg–Marquardt vectorised over voxels (3 × 3 normal equations per voxel, projected onto the
bounds, per-voxel damping); analytic Jacobian in ln T2 and PD, forward difference (step 1e-6) in ln T1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from relaxomap.physics.protocol import PACK_COLUMNS, SEQUENCE_KIND_NAMES, Protocol
from relaxomap.physics.signal import signal_reference
from relaxomap.physics.tissues import tissue_values

__all__ = [
    "NLLSConfig",
    "protocols_from_packed",
    "as_protocols",
    "tissue_signals",
    "fit_voxels",
]

_T2_INF_MS = 1e30  # "T2 → ∞": exp(−TE / 1e30) == 1 in float64
_FD_STEP = 1e-6  # forward-difference step in ln T1
_OWNER = "NLLSConfig"


@dataclass(frozen=True)
class NLLSConfig:
    """Settings of the baseline fit.

    Parameters
    ----------
    t1_bounds_ms, t2_bounds_ms : bounds of the fitted T1 and T2 [ms].
    pd_bounds : bounds of the fitted PD (relative, CSF = 1).
    grid_t1 : points of the log-spaced T1 grid of the initialisation (T2 and PD are solved per point).
    max_iter : Levenberg–Marquardt iterations at most.
    tol : convergence when the largest change of (ln T1, ln T2, PD) in an accepted step is below this.
    foreground : voxels are fitted where the largest present normalised intensity exceeds this (or inside
        the mask); the others are background (maps 0). 0.1 of the normalised bright end is the head/background
        threshold of :mod:`synth.normalize` (``FOREGROUND_FRACTION``), above the Rician noise floor.
    floor : normalised intensity below which a log-intensity is not used by the gain calibration.
    trim_log : trimming radius of the calibration [natural-log intensity units].
    tie_cost : two local solutions whose squared residuals differ by less than this [normalised intensity²]
        count as equally consistent with the data (about the noise variance of a clinical image with the
        bright end at 1 and SNR ~ 100); the one nearer an anchor tissue is kept (see :func:`fit_voxels`).
    calibration_voxels : at most this many brain voxels (an evenly strided subset) calibrate the gains.
    anchor_labels : tissue labels (:data:`physics.tissues.TISSUE_LABELS`) the gains are anchored to.
    """

    t1_bounds_ms: tuple[float, float] = (10.0, 8000.0)
    t2_bounds_ms: tuple[float, float] = (2.0, 4000.0)
    pd_bounds: tuple[float, float] = (0.0, 1.5)
    grid_t1: int = 200
    max_iter: int = 50
    tol: float = 1e-9
    foreground: float = 0.1
    floor: float = 0.05
    trim_log: float = 0.3
    tie_cost: float = 1e-4
    calibration_voxels: int = 6000
    anchor_labels: tuple[int, ...] = (3, 2, 1)

    def __post_init__(self) -> None:
        for name in ("t1_bounds_ms", "t2_bounds_ms", "pd_bounds"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
                raise ValueError(f"{_OWNER}.{name} must be (low, high) with 0 <= low < high, finite; got {(lo, hi)}")
            if name != "pd_bounds" and lo <= 0:
                raise ValueError(f"{_OWNER}.{name} low must be > 0 ms (the fit works in log T); got {lo}")
            object.__setattr__(self, name, (lo, hi))
        for name, lo in (("grid_t1", 2), ("max_iter", 1), ("calibration_voxels", 10)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{_OWNER}.{name} must be an int >= {lo}; got {v!r}")
        for name in ("tol", "foreground", "floor", "trim_log", "tie_cost"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{_OWNER}.{name} must be a finite number > 0; got {getattr(self, name)!r}")
        labels = tuple(int(v) for v in self.anchor_labels)
        if not labels:
            raise ValueError(f"{_OWNER}.anchor_labels must name at least one tissue label; got {self.anchor_labels!r}")
        object.__setattr__(self, "anchor_labels", labels)



# ------------------------------------------------------------------------------------------------ protocols
def protocols_from_packed(rows: np.ndarray) -> list[Protocol]:
    """Protocols from :func:`physics.protocol.pack_protocols` rows ``(P, len(PACK_COLUMNS))`` (validated again)."""
    arr = np.asarray(rows, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(PACK_COLUMNS):
        raise ValueError(f"packed protocols must have shape (P, {len(PACK_COLUMNS)}); got {arr.shape}")
    out = []
    for row in arr:
        col = dict(zip(PACK_COLUMNS, row.tolist()))
        code = int(round(col["kind_code"]))
        if code not in SEQUENCE_KIND_NAMES:
            raise ValueError(f"packed protocol kind_code must be one of {sorted(SEQUENCE_KIND_NAMES)}; "
                             f"got {col['kind_code']}")
        kind = SEQUENCE_KIND_NAMES[code]
        out.append(Protocol(kind, tr_ms=col["tr_ms"], te_ms=col["te_ms"], ti_ms=col["ti_ms"],
                            etl=int(round(col["etl"])), esp_ms=0.0 if kind == "spgr" else col["esp_ms"],
                            flip_deg=math.degrees(col["flip_rad"]), refocus_deg=math.degrees(col["refocus_rad"]),
                            inversion_efficiency=col["inversion_efficiency"]))
    return out


def as_protocols(protocols: Sequence[Protocol] | np.ndarray) -> list[Protocol]:
    """Protocol objects from Protocols (checked) or packed rows ``(P, len(PACK_COLUMNS))``."""
    if isinstance(protocols, np.ndarray) or (len(protocols) and not isinstance(protocols[0], Protocol)):
        return protocols_from_packed(np.asarray(protocols))
    bad = [type(p).__name__ for p in protocols if not isinstance(p, Protocol)]
    if bad:
        raise TypeError(f"protocols must be Protocol objects or packed rows; got {bad[0]}")
    return list(protocols)


class _Factor:
    """``F_c(T1)`` of each protocol (PD = 1, no T2 decay) and the echo times, for one slice's protocols."""

    def __init__(self, protocols: list[Protocol]) -> None:
        self.protocols = protocols
        self.te_ms = np.array([p.te_ms for p in protocols], np.float64)  # (P,) [ms]
        probe_t1 = np.array([300.0, 900.0, 1500.0, 4000.0])
        probe_t2 = np.array([40.0, 80.0, 300.0, 2000.0])
        full = signal_reference(probe_t1, probe_t2, np.ones(4), protocols)  # (P, 4)
        split = self(probe_t1) * np.exp(-self.te_ms[:, None] / probe_t2)
        if not np.allclose(full, split, rtol=1e-9, atol=1e-12):  # a future kind where T2 enters otherwise
            kinds = [p.kind for p in protocols]
            raise ValueError(f"NLLS baseline: the signal of protocols {kinds} does not factorise as "
                             "PD·F(T1)·exp(-TE/T2); this baseline supports only such closed forms")

    def __call__(self, t1_ms: np.ndarray) -> np.ndarray:
        """(N,) [ms] -> (P, N) float64."""
        t1 = np.ascontiguousarray(t1_ms, np.float64)
        return signal_reference(t1, np.full(t1.shape, _T2_INF_MS), np.ones(t1.shape), self.protocols)


def tissue_signals(protocols: Sequence[Protocol] | np.ndarray, labels: Sequence[int],
                   field_t: float = 3.0) -> np.ndarray:
    """Noise-free signals ``(K, P)`` float64 of tissue-table tissues (PD included) under each protocol."""
    prots = as_protocols(protocols)
    vals = [tissue_values(int(k), field_t) for k in labels]
    t1 = np.array([v.t1_ms for v in vals])
    t2 = np.array([v.t2_ms for v in vals])
    pd = np.array([v.pd for v in vals])
    return signal_reference(t1, t2, pd, prots).T


# ------------------------------------------------------------------------------------------------ voxel fit
def _grid_init(y: np.ndarray, g: np.ndarray, fac: _Factor, cfg: NLLSConfig, pd_hi: float) -> np.ndarray:
    """Two start values (ln T1, ln T2, PD) per voxel from a 1-D T1 grid; y (P, N) -> (2, N, 3).

    For a fixed T1 the model is linear in log space, ``ln y_c − ln(g_c F_c(T1)) = ln PD − TE_c / T2``, so
    (ln PD, 1/T2) follow from a 2 × 2 weighted least-squares solve (weights y_c², the first-order variance
    of ln y under additive noise); T2 is clipped to its bounds, PD is then recomputed in closed form in the
    linear domain (clipped to its bounds). The two lowest local minima of the linear-domain squared residual
    along the grid are returned (long-T1 voxels can have two exact solutions, see :func:`fit_voxels`). Exact
    for noise-free data at the grid's T1 values, so the starts lie in the right basins.
    """
    t1g = np.exp(np.linspace(*np.log(cfg.t1_bounds_ms), cfg.grid_t1))  # (G,) [ms]
    amp = np.maximum(g[:, None] * fac(t1g), 1e-300)  # (P, G) signal per unit PD before T2 decay
    log_a = np.log(amp)
    te = fac.te_ms  # (P,) [ms]
    r2_lo, r2_hi = 1.0 / cfg.t2_bounds_ms[1], 1.0 / cfg.t2_bounds_ms[0]  # [1/ms]
    pd_lo = cfg.pd_bounds[0]
    out = np.empty((2, y.shape[1], 3))
    for s in range(0, y.shape[1], 4096):
        yc = y[:, s:s + 4096]  # (P, n)
        w = yc ** 2  # (P, n)
        ly = np.log(np.maximum(yc, 1e-300))
        s0, s1, s2 = w.sum(0), te @ w, (te ** 2) @ w  # (n,) sums of w, w·TE, w·TE²
        det = s0 * s2 - s1 ** 2
        det = np.where(det > 1e-12 * np.maximum(s0 * s2, 1e-300), det, np.inf)  # equal TEs: no T2 information
        wz = (w * ly).sum(0)[:, None] - w.T @ log_a  # (n, G) Σ w z
        wtz = (w * ly * te[:, None]).sum(0)[:, None] - (w * te[:, None]).T @ log_a  # (n, G) Σ w TE z
        r2 = np.clip((s1[:, None] * wz - s0[:, None] * wtz) / det[:, None], r2_lo, r2_hi)  # (n, G) 1/T2
        r2 = np.where(np.isfinite(det)[:, None], r2, 1.0 / 100.0)
        m = amp[:, None, :] * np.exp(-te[:, None, None] * r2[None])  # (P, n, G)
        my = np.einsum("png,pn->ng", m, yc)
        mm = np.maximum(np.einsum("png,png->ng", m, m), 1e-300)
        pd = np.clip(my / mm, pd_lo, pd_hi)
        cost = (yc ** 2).sum(0)[:, None] - 2 * pd * my + pd ** 2 * mm
        # the two lowest local minima of the cost along T1 (the second = the first when there is one)
        pad = np.pad(cost, ((0, 0), (1, 1)), constant_values=np.inf)
        local = np.where((cost <= pad[:, :-2]) & (cost <= pad[:, 2:]), cost, np.inf)
        order = np.argsort(local, axis=1)[:, :2]  # (n, 2)
        rows = np.arange(cost.shape[0])
        order[:, 1] = np.where(np.isfinite(local[rows, order[:, 1]]), order[:, 1], order[:, 0])
        for k in range(2):
            j = order[:, k]
            out[k, s:s + 4096, 0] = np.log(t1g[j])
            out[k, s:s + 4096, 1] = -np.log(r2[rows, j])
            out[k, s:s + 4096, 2] = pd[rows, j]
    return out


def _model(theta: np.ndarray, g: np.ndarray, fac: _Factor, jac: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicted intensities (P, N) and, with ``jac``, the Jacobian (N, P, 3) w.r.t. (ln T1, ln T2, PD)."""
    t1, t2, pd = np.exp(theta[:, 0]), np.exp(theta[:, 1]), theta[:, 2]
    f = fac(t1)  # (P, N)
    e = g[:, None] * np.exp(-fac.te_ms[:, None] / t2[None])  # (P, N), gain included
    fe = f * e
    pred = pd[None] * fe
    if not jac:
        return pred, None
    df = (fac(t1 * math.exp(_FD_STEP)) - f) / _FD_STEP  # dF/d ln T1
    j = np.stack([pd[None] * df * e, pred * fac.te_ms[:, None] / t2[None], fe], axis=-1)  # (P, N, 3)
    return pred, np.moveaxis(j, 1, 0)


def _lm(y: np.ndarray, g: np.ndarray, fac: _Factor, theta: np.ndarray, lo: np.ndarray, hi: np.ndarray,
        cfg: NLLSConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Projected Levenberg–Marquardt from ``theta`` (N, 3); returns (theta, cost (N,), iterations)."""
    theta = np.clip(theta, lo, hi)
    n = y.shape[1]
    pred, _ = _model(theta, g, fac, False)
    cost = ((pred - y) ** 2).sum(0)
    mu = np.full(n, 1e-3)
    active = np.flatnonzero(cost > 0)
    it = 0
    while active.size and it < cfg.max_iter:
        it += 1
        th, ya = theta[active], y[:, active]
        pred, j = _model(th, g, fac, True)
        r = pred - ya  # (P, n)
        jtj = np.einsum("npi,npj->nij", j, j)  # (n, 3, 3)
        grad = np.einsum("npi,pn->ni", j, r)  # (n, 3)
        diag = np.maximum(np.diagonal(jtj, axis1=1, axis2=2), 1e-12)  # (n, 3)
        lhs = jtj + (mu[active, None] * diag)[:, :, None] * np.eye(3)
        step = np.linalg.solve(lhs, -grad[:, :, None])[:, :, 0]
        trial = np.clip(th + step, lo, hi)
        tp, _ = _model(trial, g, fac, False)
        tcost = ((tp - ya) ** 2).sum(0)
        ok = tcost <= cost[active]
        moved = np.max(np.abs(trial - th), axis=1)
        acc = active[ok]
        theta[acc], cost[acc] = trial[ok], tcost[ok]
        mu[active] = np.where(ok, mu[active] * 0.3, mu[active] * 10.0)
        done = (ok & (moved < cfg.tol)) | (mu[active] > 1e12) | (cost[active] == 0)
        active = active[~done]
    return theta, cost, it


def fit_voxels(images: np.ndarray, protocols: Sequence[Protocol] | np.ndarray, gains: np.ndarray, *,
               config: NLLSConfig | None = None, init: np.ndarray | None = None, pd_max: float | None = None,
               field_t: float = 3.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Bounded least-squares fit of (T1, T2, PD) per voxel with known gains.

    Without ``init``, Levenberg–Marquardt runs from the two best grid starts (:func:`_grid_init`) and the
    lower final cost wins. Long-T1 voxels can have two *exact* solutions under three clinical contrasts
    (e.g. CSF at 3 T, 4160 / 1650 ms / PD 1.0, and 4806 / 821 ms / PD 1.15 under the t1w_se, t2w_tse and
    flair presets); when the two costs differ by less than ``config.tie_cost`` the data cannot tell them
    apart and the solution nearer (in ln T1, ln T2) to an anchor tissue of the table is taken — a weak prior,
    stated here because it decides CSF values.

    Parameters
    ----------
    images : (P, N) normalised intensities.
    protocols : P protocols or packed rows.
    gains : (P,) gain of each contrast (> 0).
    config : bounds, grid and iteration settings.
    init : optional (N, 3) start [T1 ms, T2 ms, PD]; ``None`` = grid search.
    pd_max : upper PD bound overriding ``config.pd_bounds[1]`` (e.g. ``inf`` before the scale is fixed).
    field_t : field strength [T] of the anchor tissues used to break ties.

    Returns
    -------
    maps : (N, 3) float64 [T1 ms, T2 ms, PD].
    cost : (N,) float64 sum of squared residuals.
    n_iter : iterations run.
    """
    cfg = config or NLLSConfig()
    y = np.asarray(images, np.float64)
    prots = as_protocols(protocols)
    g = np.asarray(gains, np.float64)
    if y.ndim != 2 or y.shape[0] != len(prots) or g.shape != (len(prots),):
        raise ValueError(f"images must be (P={len(prots)}, N) and gains (P,); got {y.shape} and {g.shape}")
    if not (np.all(np.isfinite(g)) and np.all(g > 0)):
        raise ValueError(f"gains must be finite and > 0; got {g.tolist()}")
    fac = _Factor(prots)
    pd_hi = cfg.pd_bounds[1] if pd_max is None else float(pd_max)
    lo = np.array([math.log(cfg.t1_bounds_ms[0]), math.log(cfg.t2_bounds_ms[0]), cfg.pd_bounds[0]])
    hi = np.array([math.log(cfg.t1_bounds_ms[1]), math.log(cfg.t2_bounds_ms[1]), pd_hi])
    n = y.shape[1]
    if init is not None:
        ini = np.asarray(init, np.float64)
        if ini.shape != (n, 3):
            raise ValueError(f"init must have shape ({n}, 3) [T1 ms, T2 ms, PD]; got {ini.shape}")
        theta = np.stack([np.log(np.maximum(ini[:, 0], 1e-300)), np.log(np.maximum(ini[:, 1], 1e-300)), ini[:, 2]], 1)
        theta, cost, it = _lm(y, g, fac, theta, lo, hi, cfg)
    else:
        starts = _grid_init(y, g, fac, cfg, pd_hi)  # (2, N, 3)
        th2, c2, it = _lm(np.concatenate([y, y], axis=1), g, fac, starts.reshape(2 * n, 3), lo, hi, cfg)
        th2, c2 = th2.reshape(2, n, 3), c2.reshape(2, n)
        anchors = np.log([[tissue_values(k, field_t).t1_ms, tissue_values(k, field_t).t2_ms]
                          for k in cfg.anchor_labels])  # (K, 2)
        prior = np.min(((th2[:, :, None, :2] - anchors[None, None]) ** 2).sum(-1), axis=-1)  # (2, N)
        tie = np.abs(c2[0] - c2[1]) <= cfg.tie_cost
        pick = np.where(tie, prior[1] < prior[0], c2[1] < c2[0]).astype(int)  # (N,) 0 or 1
        rows = np.arange(n)
        theta, cost = th2[pick, rows], c2[pick, rows]
    maps = np.stack([np.exp(theta[:, 0]), np.exp(theta[:, 1]), theta[:, 2]], axis=1)
    return maps, cost, it
