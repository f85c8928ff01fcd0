"""Physics-only baseline: voxel-wise non-linear least-squares fit of T1 [ms], T2 [ms] and PD to the three
normalised weighted images of one slice, with the per-contrast gains unknown.

Model
-----
Every closed form of :mod:`physics.signal` factorises as ``S_c = PD · F_c(T1) · exp(−TE_c / T2)`` (T2 enters
only through the echo decay), so for contrast ``c`` with unknown gain ``g_c`` the measured normalised image is

    y_c(x) = g_c · PD(x) · F_c(T1(x)) · exp(−TE_c / T2(x)) + noise

``F_c`` is evaluated with :func:`physics.signal.signal_reference` (float64, PD = 1, T2 → ∞); the factorisation
is checked for each slice's protocols before fitting. A bias field shared by the contrasts (the simulator's
default) multiplies PD only, so it ends up in the PD map, not in T1 or T2.

Why the gains need an anchor
----------------------------
Per voxel there are 3 measurements and 3 unknowns, and per slice 3 more unknowns (the gains): for *any* gain
vector (almost) every voxel still has an exact solution, so the data alone fix neither the global scale
(``g·k, PD/k`` fit identically) nor the two gain *ratios*. The baseline therefore anchors the gains to the
tissue table (:mod:`physics.tissues`), which is a strong prior, stated here plainly:

1. **Gain ratios** (:func:`calibrate_gains`): brain voxels are matched to the predicted signals of WM, GM and
   CSF (tissue-table values at the slice's field strength) in log-intensity space. With the voxel-wise
   nuisance ``a_i`` = log(PD_i · bias_i / PD_tissue), ``log y_ic − log s_kc = log g_c + a_i`` for a voxel of
   tissue k; assignments (nearest tissue by the spread of that difference over contrasts, trimmed at
   ``trim_log``) and ``log g`` (median polish: ``a_i`` = mean over contrasts, ``log g_c`` = median over voxels)
   alternate from one start per tissue, and the start with the lowest trimmed cost wins. Coordinates where a
   tissue's predicted or a voxel's measured intensity is below ``floor`` (nulled CSF in FLAIR, noise) are not
   used. Lesions and partial-volume voxels fall outside the trimming radius or are outvoted by the medians.
2. **Global scale**: after the voxel fit, PD is rescaled so that the median of ``PD_tissue / PD_fit`` over the
   assigned voxels is 1 (the tissue table's PD is relative to CSF = 1).

When the slice's WM/GM/CSF take exactly the table values (crisp maps, noise-free), the gains are recovered
exactly and so are all maps; otherwise the calibration error (tissue values jitter ±10–20 % between subjects,
partial volume, noise) biases the whole slice's maps — that is the cost of having no absolute scale.

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
    "NLLSResult",
    "protocols_from_packed",
    "tissue_signals",
    "calibrate_gains",
    "fit_voxels",
    "fit_slice",
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


@dataclass
class NLLSResult:
    """Output of :func:`fit_slice`.

    maps : (3, H, W) float32 [T1 ms, T2 ms, PD]; 0 on background voxels.
    gains : (P,) float64 estimated gain of each contrast (normalised intensity per unit PD·F·E); 0 if absent.
    fitted : (H, W) bool, the voxels that were fitted.
    cost : (H, W) float32 sum of squared residuals of each fitted voxel [normalised intensity²].
    assigned_fraction : fraction of the calibration voxels matched to an anchor tissue.
    n_iter : Levenberg–Marquardt iterations run (the slowest voxel).
    """

    maps: np.ndarray
    gains: np.ndarray
    fitted: np.ndarray
    cost: np.ndarray
    assigned_fraction: float
    n_iter: int


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


def _as_protocols(protocols: Sequence[Protocol] | np.ndarray) -> list[Protocol]:
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
    prots = _as_protocols(protocols)
    vals = [tissue_values(int(k), field_t) for k in labels]
    t1 = np.array([v.t1_ms for v in vals])
    t2 = np.array([v.t2_ms for v in vals])
    pd = np.array([v.pd for v in vals])
    return signal_reference(t1, t2, pd, prots).T


# ------------------------------------------------------------------------------------------------ gains
def _assign(logy: np.ndarray, log_s: np.ndarray, t: np.ndarray, log_floor: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest tissue per voxel: (k (N,), dist (N,), valid (K, P, N)) with dist = RMS spread per dof."""
    k_n = log_s.shape[0]
    dist = np.full((k_n, logy.shape[1]), np.inf)
    valid = np.zeros((k_n,) + logy.shape, bool)
    for k in range(k_n):
        ok_k = np.isfinite(log_s[k]) & (log_s[k] + t > log_floor)  # (P,) tissue visible above the floor
        v = np.isfinite(logy) & ok_k[:, None]  # (P, N)
        d = np.where(v, logy - log_s[k][:, None] - t[:, None], 0.0)
        n = v.sum(0)
        mean = d.sum(0) / np.maximum(n, 1)
        ss = (np.where(v, d - mean, 0.0) ** 2).sum(0)
        dist[k] = np.where(n >= 2, np.sqrt(ss / np.maximum(n - 1, 1)), np.inf)
        valid[k] = v
    best = np.argmin(dist, axis=0)
    return best, dist[best, np.arange(logy.shape[1])], valid


def _polish(e: np.ndarray, v: np.ndarray, t: np.ndarray, n_iter: int = 20) -> np.ndarray:
    """Median polish of ``e_ic = t_c + a_i`` over valid entries: a_i mean over c, t_c median over i."""
    em = np.where(v, e, np.nan)
    for _ in range(n_iter):
        a = np.nanmean(em - t[:, None], axis=0)  # (N,)
        r = em - a[None]
        t_new = np.array([np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan for row in r])
        t_new = np.where(np.isfinite(t_new), t_new, t)
        if np.max(np.abs(t_new - t)) < 1e-13:
            return t_new
        t = t_new
    return t


def calibrate_gains(images: np.ndarray, protocols: Sequence[Protocol] | np.ndarray, *, field_t: float = 3.0,
                    config: NLLSConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gain of each contrast up to a common factor, anchored to the tissue table (module docstring, step 1).

    Parameters
    ----------
    images : (P, N) normalised intensities of the calibration voxels (brain voxels).
    protocols : P protocols (or packed rows).
    field_t : field strength [T] selecting the tissue table.
    config : fit settings (``floor``, ``trim_log``, ``anchor_labels``).

    Returns
    -------
    gains : (P,) float64, scaled so that the median voxel nuisance ``a_i`` is 0 (PD ≈ tissue PD).
    tissue : (N,) int64 index into ``config.anchor_labels`` of each voxel's tissue, -1 if trimmed.
    tissue_pd : (N,) float64 tissue-table PD of the assigned tissue (nan if trimmed).
    """
    cfg = config or NLLSConfig()
    y = np.asarray(images, np.float64)
    prots = _as_protocols(protocols)
    if y.ndim != 2 or y.shape[0] != len(prots):
        raise ValueError(f"images must be (P={len(prots)}, N) intensities; got shape {y.shape}")
    s = tissue_signals(prots, cfg.anchor_labels, field_t)  # (K, P)
    pd_k = np.array([tissue_values(k, field_t).pd for k in cfg.anchor_labels])
    with np.errstate(divide="ignore"):
        log_s = np.where(s > 0, np.log(np.maximum(s, 1e-300)), -np.inf)
    log_floor = math.log(cfg.floor)
    logy = np.where(y > cfg.floor, np.log(np.maximum(y, cfg.floor)), np.nan)
    if y.shape[1] == 0 or np.isfinite(logy).sum(0).max(initial=0) < 2:
        raise ValueError("calibrate_gains: no voxel has two contrasts above the floor "
                         f"({cfg.floor:g} normalised intensity); the slice cannot be calibrated")
    trim2 = cfg.trim_log ** 2
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    med = np.nanmedian(logy, axis=1)  # (P,)
    for k0 in range(len(cfg.anchor_labels)):
        t = np.where(np.isfinite(med) & np.isfinite(log_s[k0]), med - log_s[k0], 0.0)
        prev = None
        for _ in range(50):
            k, dist, valid = _assign(logy, log_s, t, log_floor)
            keep = dist < cfg.trim_log
            if keep.sum() < 2:
                break
            e = logy[:, keep] - log_s[k[keep]].T  # (P, n)
            v = valid[k[keep], :, np.flatnonzero(keep)].T  # (P, n)
            t = _polish(e, v, t)
            a = np.nanmean(np.where(v, e - t[:, None], np.nan), axis=0)
            t = t + np.median(a)  # common factor: median voxel has the tissue's PD
            assigned = np.where(keep, k, -1)
            if prev is not None and np.array_equal(assigned, prev[0]) and np.max(np.abs(t - prev[1])) < 1e-12:
                break
            prev = (assigned, t)
        k, dist, _ = _assign(logy, log_s, t, log_floor)
        cost = float(np.minimum(dist ** 2, trim2).sum())
        if best is None or cost < best[0]:
            best = (cost, t, np.where(dist < cfg.trim_log, k, -1))
    if best is None:  # pragma: no cover - the loop runs at least once
        raise ValueError("calibrate_gains: no anchor tissue")
    _, t, tissue = best
    tissue_pd = np.where(tissue >= 0, pd_k[np.maximum(tissue, 0)], np.nan)
    return np.exp(t), tissue.astype(np.int64), tissue_pd


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
    prots = _as_protocols(protocols)
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


# ------------------------------------------------------------------------------------------------ slice
def fit_slice(images: np.ndarray, protocols: Sequence[Protocol] | np.ndarray, mask: np.ndarray | None = None, *,
              present: np.ndarray | None = None, field_t: float = 3.0, gains: np.ndarray | None = None,
              config: NLLSConfig | None = None) -> NLLSResult:
    """Fit T1, T2 and PD maps to one slice's normalised images (the NLLS baseline).

    Parameters
    ----------
    images : (P, H, W) normalised intensities (P >= 3 present contrasts, e.g. T1w, T2w, FLAIR).
    protocols : P protocols, or (P, 10) packed rows (:func:`physics.protocol.pack_protocols`).
    mask : (H, W) bool brain mask used for the gain calibration (and always fitted); ``None`` = every
        foreground voxel calibrates.
    present : (P,) 0/1 flags; absent contrasts are ignored. At least 3 must be present.
    field_t : field strength [T] of the tissue table used as the anchor.
    gains : (P,) known gains — skips the calibration (for tests and studies of the calibration error).
    config : :class:`NLLSConfig`.

    Returns
    -------
    :class:`NLLSResult`.

    Raises
    ------
    ValueError
        Fewer than 3 present contrasts (the voxel problem is then under-determined), shapes that disagree,
        non-finite images, or a slice without foreground.
    """
    cfg = config or NLLSConfig()
    x = np.asarray(images, np.float64)
    prots_all = _as_protocols(protocols)
    if x.ndim != 3 or x.shape[0] != len(prots_all):
        raise ValueError(f"images must be (P={len(prots_all)}, H, W); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"images hold {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
    p_all, h, w = x.shape
    pres = np.ones(p_all, bool) if present is None else np.asarray(present).astype(bool).reshape(-1)
    if pres.shape != (p_all,):
        raise ValueError(f"present must have shape ({p_all},); got {np.shape(present)}")
    if pres.sum() < 3:
        raise ValueError(f"NLLS baseline needs at least 3 present contrasts to fit T1, T2 and PD per voxel; "
                         f"got {int(pres.sum())} (present={pres.astype(int).tolist()})")
    m = None if mask is None else np.asarray(mask).astype(bool).reshape(h, w)
    idx = np.flatnonzero(pres)
    prots = [prots_all[i] for i in idx]
    y_img = x[idx].reshape(len(idx), -1)  # (P', H·W)
    fg = y_img.max(0) > cfg.foreground
    if m is not None:
        fg |= m.ravel()
    vox = np.flatnonzero(fg)
    if vox.size == 0:
        raise ValueError(f"the slice has no voxel above the foreground level {cfg.foreground:g}")
    y = y_img[:, vox]
    assigned_fraction = math.nan
    if gains is None:
        calib = fg if m is None else m.ravel()
        cvox = np.flatnonzero(calib[vox])  # positions inside `vox`
        if cvox.size == 0:
            raise ValueError("the brain mask is empty; the gains cannot be calibrated")
        cvox = cvox[::-(-cvox.size // cfg.calibration_voxels)]  # evenly strided subset: medians need no more
        g, tissue, tissue_pd = calibrate_gains(y[:, cvox], prots, field_t=field_t, config=cfg)
        maps, _, it1 = fit_voxels(y, prots, g, config=cfg, pd_max=math.inf, field_t=field_t)
        sel = (tissue >= 0) & (maps[cvox, 2] > 0)
        assigned_fraction = float((tissue >= 0).mean())
        if sel.any():  # global scale: median tissue PD / fitted PD = 1
            kappa = float(np.median(tissue_pd[sel] / maps[cvox[sel], 2]))
            g = g / kappa
            maps[:, 2] *= kappa
        maps, cost, it2 = fit_voxels(y, prots, g, config=cfg, init=maps)
        n_iter = it1 + it2
    else:
        g = np.asarray(gains, np.float64).reshape(-1)
        if g.shape != (p_all,):
            raise ValueError(f"gains must have shape ({p_all},); got {np.shape(gains)}")
        g = g[idx]
        maps, cost, n_iter = fit_voxels(y, prots, g, config=cfg, field_t=field_t)
    out = np.zeros((3, h * w), np.float32)
    out[:, vox] = maps.T
    cost_img = np.zeros(h * w, np.float32)
    cost_img[vox] = cost
    gains_all = np.zeros(p_all)
    gains_all[idx] = g
    return NLLSResult(maps=out.reshape(3, h, w), gains=gains_all, fitted=fg.reshape(h, w),
                      cost=cost_img.reshape(h, w), assigned_fraction=assigned_fraction, n_iter=int(n_iter))
