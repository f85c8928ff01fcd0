"""``refine_exam``: the whole test-time refinement of one exam — noise, exam-level fit, per-voxel look-up,
residuals and the exam's uncertainty.

Steps (each module's docstring has the details)
1. Each series is scaled by its brain median (gains then start near 1) and its noise sd σ_c measured on the
   images: 1.4826·MAD of the differences between neighbouring brain voxels along x, / √2 (edges and texture
   make it an upper bound); a relative model error is added in quadrature per voxel.
2. Exam fit (:mod:`physics.refine.exam`, :mod:`physics.refine.solver`) on a fixed-seed subsample of brain
   voxels: the gains start where they best render the network's maps, then a grid scan of the gain ratios over
   the profile cost (each voxel's MAP found by the look-up) moves them along the unknown-gain family, then
   Levenberg–Marquardt fits every exam parameter jointly with the subsample's maps.
3. Per-voxel MAP look-up over the whole mask (:mod:`physics.refine.voxel`) under the fitted exam.
4. ``outer`` − 1 more rounds of 2–3 (same priors), each starting from the previous exam.
5. Residuals 100·(y − ŷ)/ŷ [% of the local model signal] per series, the fitted exam with posterior sds,
   the T1-scale sd (:func:`physics.refine.solver.t1_scale_sd`) and the T1 scale's response to a water-content
   error (:func:`physics.refine.solver.prior_shift_response`: the mean ln T1 change when the parenchyma's PD
   prior moves by ``pd_rel_sd``), both over subsample voxels with prior T1 < 2500 ms (parenchyma and
   lesions, not CSF). For the sd the network's prior counts once for the whole exam (its errors are shared,
   not independent per voxel), so it measures how tightly the *data* pin the unknown-gain family.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap.physics.protocol import Protocol
from relaxomap.physics.refine.config import RefineConfig
from relaxomap.physics.refine.dictionary import ExamDictionary, Grid
from relaxomap.physics.refine.exam import ExamLayout, ExamState, basis, exam_model, sync_tables
from relaxomap.physics.refine.solver import fit_exam, prior_shift_response, t1_scale_sd
from relaxomap.physics.refine.voxel import search_voxels

__all__ = ["RefineResult", "noise_sd", "refine_exam"]

_PARENCHYMA_T1_MS = 2500.0


@dataclass
class RefineResult:
    """Refined maps (X, Y, Z): ``t1_ms``, ``t2_ms`` [ms], ``pd`` (the prior's scale, CSF = 1); ``residual_pct``
    (C, X, Y, Z); ``branch`` (X, Y, Z) int8 (voxel module); ``b1`` (X, Y, Z) the transmit field used; ``exam``:
    fitted parameters with posterior sds, noise, T1-scale sd [%], iterations and timings."""

    t1_ms: np.ndarray
    t2_ms: np.ndarray
    pd: np.ndarray
    residual_pct: np.ndarray
    branch: np.ndarray
    b1: np.ndarray
    exam: dict[str, Any] = field(default_factory=dict)


def noise_sd(image: np.ndarray, mask: np.ndarray) -> float:
    """Noise sd of one image (X, Y, Z) from neighbouring brain voxels along x: 1.4826·MAD(Δ)/√2 (an upper
    bound where edges and texture add to Δ); 0 when fewer than 10 pairs."""
    pair = mask[1:] & mask[:-1]
    d = (image[1:] - image[:-1])[pair]
    if d.size < 10:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))


def _prior(maps: Mapping[str, np.ndarray], sel: np.ndarray, config: RefineConfig, dic: ExamDictionary
           ) -> tuple[np.ndarray, np.ndarray]:
    g = dic.grid
    t1 = np.clip(np.log(np.maximum(maps["t1_ms"][sel], 1e-3)), g.log_t1[0], g.log_t1[-1])
    t2 = np.clip(np.log(np.maximum(maps["t2_ms"][sel], 1e-3)), g.log_t2[0], g.log_t2[-1])
    pd = np.maximum(maps["pd"][sel].astype(np.float64), 1e-3)
    x0 = np.stack([t1, t2, pd], axis=1)
    sd = np.stack([np.full(len(pd), config.t1_log_sd), np.full(len(pd), config.t2_log_sd),
                   config.pd_rel_sd * np.maximum(pd, 0.2)], axis=1)
    return x0, sd


def _start_theta(state: ExamState, x0: np.ndarray) -> np.ndarray:
    """Prior means, with each ln gain the median log ratio of data to the prior's rendering at unit gain."""
    theta = np.array(state.layout.mean, np.float64)
    theta[state.layout.gain] = 0.0
    m, _, _ = exam_model(state, theta, x0, jac=False)
    ok = (m > 0) & (state.y > 0)
    for c, i in enumerate(state.layout.gain):
        theta[i] = float(np.median(np.log(state.y[ok[:, c], c] / m[ok[:, c], c]))) if ok[:, c].any() else 0.0
    return theta


def _search_sub(state: ExamState, theta: np.ndarray, x0: np.ndarray, sd: np.ndarray, inv_c: int,
                window: float) -> np.ndarray:
    """The subsample's per-voxel MAP x = (ln T1, ln T2, PD) (N, 3) at θ (the exam fit's start)."""
    f = search_voxels(state.dictionary.tables, state.dictionary.grid, state.y, state.sigma, state.gains(theta),
                      state.b1(theta), x0, sd, inv_c, window)
    return np.stack([np.log(f["t1_ms"]), np.log(f["t2_ms"]), f["pd"]], axis=1)


def _scan_gains(state: ExamState, theta: np.ndarray, x0: np.ndarray, sd: np.ndarray, inv_c: int,
                window: float, steps: Sequence[float]) -> np.ndarray:
    """θ with its gain ratios (each series' ln gain against the last series') moved to the best point of 5 × 5
    grids (± 2 ``steps``, each grid centred on the previous best) of the profile cost Σ_v min_x (voxel cost):
    the per-voxel search does the minimisation over x exactly, so the scan cannot stall in the long valley
    along the unknown-gain family where a joint local step creeps. The common gain (PD's scale, pinned by its
    prior) is left to the joint fit."""
    import itertools

    lay = state.layout
    free = lay.gain[:-1]
    best, best_cost = theta.copy(), math.inf
    for step in steps:
        centre = best.copy()
        for d in itertools.product((-2, -1, 0, 1, 2), repeat=len(free)):
            t = centre.copy()
            t[free] += step * np.asarray(d, np.float64)
            found = search_voxels(state.dictionary.tables, state.dictionary.grid, state.y, state.sigma,
                                  state.gains(t), state.b1(t), x0, sd, inv_c, window)
            cost = float(found["cost"].sum())
            if cost < best_cost:
                best, best_cost = t, cost
    return best


def _exam_record(layout: ExamLayout, theta: np.ndarray, cov: np.ndarray) -> dict[str, Any]:
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    return {n: {"value": float(v), "sd": float(s), "prior_mean": float(m), "prior_sd": float(p)}
            for n, v, s, m, p in zip(layout.names, theta, sd, layout.mean, layout.sd)}


def _selection(images: np.ndarray, n_c: int, mask: np.ndarray, prior_maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """The voxels refined: in the mask, signal in every series, a prior; ValueError for bad shapes or < 100."""
    if images.ndim != 4 or images.shape[0] != n_c or images.shape[1:] != np.shape(mask):
        raise ValueError(f"images must be (C={n_c}, *mask.shape={np.shape(mask)}); got {images.shape}")
    sel = np.asarray(mask, bool) & np.all(images > 0, axis=0) & (prior_maps["t1_ms"] > 0) & (prior_maps["t2_ms"] > 0)
    if sel.sum() < 100:
        raise ValueError(f"refine: only {int(sel.sum())} brain voxels with signal in every series and a prior; "
                         "at least 100 are needed")
    return sel


def refine_exam(images: np.ndarray, protocols: Sequence[Protocol], mask: np.ndarray,
                prior_maps: Mapping[str, np.ndarray], voxel_mm: Sequence[float], config: RefineConfig | None = None,
                *, labels: Sequence[str] | None = None, known_refocus: Sequence[bool] | None = None,
                b1_map: np.ndarray | None = None, normalised: Sequence[bool] | None = None) -> RefineResult:
    """Refine the network's maps of one exam (module docstring).

    Parameters
    ----------
    images : (C, X, Y, Z) magnitudes of the C series, on one grid (arbitrary units per series).
    protocols : C protocols (times [ms]) as the headers give them.
    mask : (X, Y, Z) bool brain mask; prior_maps : ``{"t1_ms", "t2_ms", "pd"}`` (X, Y, Z), the network's maps.
    voxel_mm : voxel size (3,) [mm] (for the smooth fields' coordinates).
    labels : series names (default ``s0``, ``s1``, ...); known_refocus : (C,) True where the headers give the
    refocusing angle (not fitted); b1_map : (X, Y, Z) measured transmit scale (then B1 is not fitted);
    normalised : (C,) True where the headers say the series was intensity-normalised (a receive field is
    fitted for it unless ``config.receive == "off"``).
    """
    config = config or RefineConfig()
    t0 = time.perf_counter()
    images = np.asarray(images, np.float64)
    n_c = len(protocols)
    sel = _selection(images, n_c, mask, prior_maps)
    labels = list(labels or [f"s{c}" for c in range(n_c)])
    known = list(known_refocus) if known_refocus is not None else [False] * n_c
    scale = np.array([np.median(images[c][sel]) for c in range(n_c)])
    y = (images[:, sel] / scale[:, None]).T  # (N, C)
    sigma_n = np.array([noise_sd(images[c] / scale[c], sel) for c in range(n_c)])
    sigma = np.sqrt(sigma_n[None] ** 2 + (config.model_error * y) ** 2) + 1e-6
    coords = np.argwhere(sel) * np.asarray(voxel_mm, np.float64)[None]
    center = coords.mean(axis=0)
    phi_b1, phi_rx = basis(coords, center, config.b1_degree), basis(coords, center, config.receive_degree)
    rx = [config.receive == "all" or (config.receive == "auto" and bool(f))
          for f in (normalised if normalised is not None else [False] * n_c)]
    b1_vox = None if b1_map is None else np.asarray(b1_map, np.float64)[sel]
    dic = ExamDictionary(protocols, config, [None] * n_c, config.kappa_mean, Grid(config, coarsen=2))
    layout = ExamLayout.build(protocols, known, config, b1_vox is not None, phi_b1.shape[1], phi_rx.shape[1], labels,
                              rx)
    x0, sd = _prior(prior_maps, sel, config, dic)
    sub = np.sort(np.random.default_rng(config.seed).choice(len(y), min(config.n_exam_voxels, len(y)), replace=False))
    state = ExamState(y[sub], sigma[sub], phi_b1[sub], phi_rx[sub], dic, layout,
                      None if b1_vox is None else b1_vox[sub], config.kappa_mean)
    full = ExamState(y, sigma, phi_b1, phi_rx, dic, layout, b1_vox, config.kappa_mean)  # same dictionary
    inv_c = next((c for c, p in enumerate(protocols) if p.kind == "ir_tse"), -1)
    theta, x_sub, timings = _start_theta(state, x0[sub]), x0[sub], {}
    for round_ in range(config.outer):
        t = time.perf_counter()
        theta = _scan_gains(state, theta, x0[sub], sd[sub], inv_c, config.window_sd,
                            (0.2, 0.05) if round_ == 0 else (0.05,))
        x_sub = _search_sub(state, theta, x0[sub], sd[sub], inv_c, config.window_sd)
        fit = fit_exam(state, theta, x_sub, x0[sub], sd[sub], config.exam_iterations)
        theta = fit.theta
        sync_tables(state, theta)
        timings[f"exam_fit_{round_}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        fine = ExamDictionary(protocols, config, dic.refocus_deg, dic.kappa)
        found = search_voxels(fine.tables, fine.grid, y, sigma, full.gains(theta), full.b1(theta), x0, sd, inv_c,
                              config.window_sd)
        timings[f"voxel_search_{round_}_s"] = time.perf_counter() - t
        if config.receive == "auto" and round_ + 1 < config.outer:
            shows = _receive_shows(full, fine, theta, found, phi_rx, config.receive_detect)
            if any(s_ and not r for s_, r in zip(shows, rx)):
                rx = [a or b for a, b in zip(rx, shows)]
                layout = ExamLayout.build(protocols, known, config, b1_vox is not None, phi_b1.shape[1],
                                          phi_rx.shape[1], labels, rx)
                theta, state.layout, full.layout = layout.carry(state.layout, theta), layout, layout
    xs = np.stack([np.log(found["t1_ms"]), np.log(found["t2_ms"]), found["pd"]], axis=1)
    final = ExamState(y, sigma, phi_b1, phi_rx, fine, layout, b1_vox, config.kappa_mean)
    model, _, _ = exam_model(final, theta, xs, jac=False)
    resid = 100.0 * (y - model) / np.maximum(model, 1e-9)  # (N, C)
    vol = _volumes(sel, found, resid, full.b1(theta), prior_maps, np.asarray(mask, bool))
    parenchyma = np.exp(x0[sub, 0]) < _PARENCHYMA_T1_MS
    exam = {"parameters": _exam_record(layout, theta, fit.covariance), "series": labels,
            "receive_field": dict(zip(labels, rx)),
            "noise_sd_rel": sigma_n.tolist(), "series_median": scale.tolist(),
            "t1_scale_sd_pct": 100.0 * t1_scale_sd(state, fit, x0[sub], sd[sub], parenchyma),
            "t1_per_pd_prior_pct": 100.0 * prior_shift_response(fit, x0[sub], sd[sub], parenchyma, config.pd_rel_sd),
            "n_voxels": int(sel.sum()), "n_mask_voxels_not_refined": int((np.asarray(mask, bool) & ~sel).sum()),
            "n_exam_voxels": int(len(sub)), "exam_iterations": fit.iterations,
            **_search_record(found, resid, labels), "config": config.to_dict(),
            "timings_s": {**timings, "total": time.perf_counter() - t0}}
    return RefineResult(*vol, exam)


def _receive_shows(full: ExamState, fine: ExamDictionary, theta: np.ndarray, found: Mapping[str, np.ndarray],
                   phi: np.ndarray, detect: float) -> list[bool]:
    """Per series: does the smooth part of ln(input / re-rendered) (a least-squares fit of the polynomial basis
    with a constant) vary with an sd above ``detect`` over the voxels?"""
    xs = np.stack([np.log(found["t1_ms"]), np.log(found["t2_ms"]), found["pd"]], axis=1)
    probe = ExamState(full.y, full.sigma, full.phi_b1, full.phi_rx, fine, full.layout, full.b1_fixed,
                      full.kappa_default)
    model, _, _ = exam_model(probe, theta, xs, jac=False)
    ok = np.all((model > 0) & (full.y > 0), axis=1)
    design = np.concatenate([np.ones((int(ok.sum()), 1)), phi[ok]], axis=1)
    out = []
    for c in range(full.y.shape[1]):
        r = np.log(full.y[ok, c] / model[ok, c])
        coef, *_ = np.linalg.lstsq(design, r, rcond=None)
        out.append(bool(np.std(design[:, 1:] @ coef[1:]) > detect))
    return out


def _volumes(sel: np.ndarray, found: Mapping[str, np.ndarray], resid: np.ndarray, b1: np.ndarray,
             prior_maps: Mapping[str, np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """(t1_ms, t2_ms, pd, residual_pct (C, ...), branch, b1) volumes from the voxel values; mask voxels that
    were not refined (a series without signal there) keep the prior's maps, the rest is 0."""
    out = []
    for k in ("t1_ms", "t2_ms", "pd"):
        v = np.where(mask, np.asarray(prior_maps[k], np.float32), np.float32(0.0))
        v[sel] = found[k]
        out.append(v)
    r = np.zeros((resid.shape[1], *sel.shape), np.float32)
    r[:, sel] = resid.T
    branch = np.zeros(sel.shape, np.int8)
    branch[sel] = found["branch"]
    b = np.zeros(sel.shape, np.float32)
    b[sel] = b1
    return (*out, r, branch, b)


def _search_record(found: Mapping[str, np.ndarray], resid: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Branch counts (and voxels whose other branch costs < 1 more), median |residual| [%] per series."""
    return {"branch_counts": {"positive": int((found["branch"] > 0).sum()),
                              "negative": int((found["branch"] < 0).sum())},
            "ambiguous_branch_voxels": int(np.sum(found["cost_other"] - found["cost"] < 1.0)),
            "median_abs_residual_pct": {lab: float(np.median(np.abs(resid[:, c]))) for c, lab in enumerate(labels)}}
