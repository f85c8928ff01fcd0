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

The per-voxel solver and its settings are in :mod:`physics.voxel_solver`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from relaxomap.physics.protocol import Protocol
from relaxomap.physics.tissues import tissue_values
from relaxomap.physics.voxel_solver import NLLSConfig, as_protocols, fit_voxels, tissue_signals

__all__ = ["NLLSResult", "calibrate_gains", "fit_slice"]


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
    prots = as_protocols(protocols)
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


# ------------------------------------------------------------------------------------------------ slice
def _fit_calibrated(y: np.ndarray, prots: list[Protocol], calib: np.ndarray, field_t: float, cfg: NLLSConfig
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Calibrate the gains on the ``calib`` voxels, fit, fix the global scale and refit (module docstring).

    Parameters
    ----------
    y : (P, N) normalised intensities of the fitted voxels.
    prots : the P present protocols.
    calib : (N,) bool, the voxels that calibrate the gains.
    field_t : field strength [T] of the anchor tissues.
    cfg : fit settings.

    Returns
    -------
    maps (N, 3) [T1 ms, T2 ms, PD], cost (N,), gains (P,), assigned fraction, iterations.
    """
    cvox = np.flatnonzero(calib)  # positions inside the fitted voxels
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
    return maps, cost, g, assigned_fraction, it1 + it2


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
    prots_all = as_protocols(protocols)
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
    if gains is None:
        calib = fg if m is None else m.ravel()
        maps, cost, g, assigned_fraction, n_iter = _fit_calibrated(y, prots, calib[vox], field_t, cfg)
    else:
        g = np.asarray(gains, np.float64).reshape(-1)
        if g.shape != (p_all,):
            raise ValueError(f"gains must have shape ({p_all},); got {np.shape(gains)}")
        g = g[idx]
        maps, cost, n_iter = fit_voxels(y, prots, g, config=cfg, field_t=field_t)
        assigned_fraction = math.nan
    out = np.zeros((3, h * w), np.float32)
    out[:, vox] = maps.T
    cost_img = np.zeros(h * w, np.float32)
    cost_img[vox] = cost
    gains_all = np.zeros(p_all)
    gains_all[idx] = g
    return NLLSResult(maps=out.reshape(3, h, w), gains=gains_all, fitted=fg.reshape(h, w),
                      cost=cost_img.reshape(h, w), assigned_fraction=assigned_fraction, n_iter=int(n_iter))
