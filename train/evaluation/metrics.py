"""Map metrics of predicted T1 / T2 / PD maps: the definitions, the regions, the CSF anchor of PD.

Everything is NumPy float64. The per-slice functions work on one ``(H, W)`` image; the accumulation over
slices and subjects is :class:`train.evaluation.accumulate.MetricAccumulator`.

Regions (per slice; ``M`` the brain mask, ``lab`` the tissue labels of :mod:`physics.tissues`)
------------------------------------------------------------------------------------------
- ``brain``: ``M`` -- the whole brain mask. Its PSNR / SSIM peak is the truth's maximum in ``M``, which is the
  CSF maximum of every map (T1 ~4000 ms, T2 ~1650-1800 ms, PD = 1): "whole brain mask, peak = CSF maximum".
  With that peak a T2 PSNR measures almost only the CSF T2 error; it is kept for continuity, labelled.
- ``parenchyma``: ``M ∧ lab ≠ 1`` -- the brain without CSF (WM, GM, deep GM, lesions, other).
- tissue groups (:data:`TISSUE_GROUPS`): WM {3}, GM {2}, deep_GM {13}, CSF {1}, lesion {12, 14-17},
  other = ``M`` without all of these (vessels, unlabelled brain voxels).
- ``whole_slice``: every pixel, background included (PSNR / SSIM only; peak = the slice's maximum).

Voxel-wise metrics of one map inside a region ``R`` (``p`` prediction, ``t`` truth; map unit ``u``:
ms for T1 and T2, 1 for PD relative to CSF = 1; :data:`MAP_UNITS`)
------------------------------------------------------------------------------------------
- ``mae = mean_R |p − t|`` [u]
- ``mpe_pct = mean_{R, t>0} |p − t| / t × 100`` [%] (mean percentage error)
- ``bias = mean_R (p − t)`` [u]
- ``bias_pct = mean_{R, t>0} (p − t) / t × 100`` [%] (signed bias: negative = under-estimate)

Image metrics of one map inside ``R``
------------------------------------------------------------------------------------------
- ``psnr_db = 10 log10(L² / mean_R (p − t)²)`` [dB]; ``inf`` for a perfect prediction.
- ``ssim``: the SSIM map of Wang et al. (2004) computed by :func:`train.ssim.ssim_map` (the package's one
  SSIM) in float64: an 11-tap Gaussian window (σ = 1.5 px, i.e. truncated at 3.5 σ), borders repeated
  symmetrically as SciPy's ``reflect`` does, K1 = 0.01, K2 = 0.03, population covariances, data range ``L``,
  computed on the images with everything outside ``R`` set to 0 and averaged over the voxels of ``R``. The
  whole-slice variant is exactly ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=L)``: the SSIM map averaged after cropping the 5-pixel
  border.
- ``L``, the peak / data range: in the ``parenchyma`` the fixed physiological range :data:`PARENCHYMA_RANGE`
  (T1 4000 ms, T2 300 ms, PD 1.2); in ``brain`` and ``whole_slice`` the truth's maximum in the region.

Why a fixed range in the parenchyma: a peak taken from the region's own maximum is the CSF or a lesion
(T2 1650 ms at 3 T against 70-100 ms in WM / GM), so the same WM error reads as 15 dB better on a slice that
holds CSF. 0-4000 ms, 0-300 ms and 0-1.2 span normal parenchyma and most lesions at 1.5 and 3 T (WM T1
650-850 ms, GM 1050-1450 ms, lesions up to ~2800 ms; WM / GM T2 70-100 ms, plaques and oedema 120-200 ms; PD
<= 1 relative to CSF, with headroom for over-estimates) and are the maps' display windows; values above
``L`` are not clipped. With ``L`` fixed, PSNR is an RMS error on one scale for every slice, subject and model:
``RMSE = L 10^(−PSNR / 20)`` (30 dB on T1 = 126 ms, on T2 = 9.5 ms). SSIM remains nearly blind to a uniform
bias whatever ``L`` (its luminance term of a 10 % WM T1 bias is 0.995): biases are measured by ``bias_pct``.

PD on the CSF = 1 scale (``pd_csf``; the raw prediction is ``pd``)
------------------------------------------------------------------------------------------
PD is defined relative to CSF, so a PD error is scored after anchoring the prediction on the subject's own
CSF: over all evaluated slices of one subject (one slice set), with ``C`` the *core* CSF voxels -- label 1
inside ``M`` with a true PD >= :data:`CSF_CORE_PD` (0.95; partial-volume voxels of thin sulci, which the
labels also call CSF, are left out) --

    s = median_C(p_PD) / median_C(t_PD),   pd_csf = p_PD / s.

``median_C(t_PD)`` is ~1 (pure CSF has PD = 1; the phantoms' smooth texture and global field move it by a
few %, e.g. 0.988 in the demo case); dividing by it keeps a perfect prediction at 0 error. The anchor is a
single scale set by CSF, not a least-squares gain fitted to the error: a wrong WM / CSF or GM / CSF ratio
stays a full error. **Fallback**:
a subject with fewer than :data:`MIN_CSF_VOXELS` core CSF voxels over its evaluated slices, or a non-positive
median, is scored with ``s = 1`` (its raw PD, which the network already predicts on the CSF = 1 scale) and
listed in the result's ``pd_anchor`` entry.

Subjects
------------------------------------------------------------------------------------------
Subjects, not slices, are the statistical unit: each metric is computed per subject (voxel-wise metrics
pooled over its voxels, PSNR / SSIM averaged over its slices), then summarised as mean ± sample standard
deviation (ddof 1) over subjects. The pooled value over every voxel of every subject is reported beside it.

References
----------
Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 13:600 (2004).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from relaxomap.physics.tissues import LESION_LABELS
from relaxomap.train import ssim as _ssim

__all__ = [
    "MAP_NAMES",
    "SCORED_MAPS",
    "MAP_LABELS",
    "MAP_UNITS",
    "PARENCHYMA_RANGE",
    "TISSUE_GROUPS",
    "TISSUE_LABELS_TEXT",
    "CSF_LABEL",
    "MIN_CSF_VOXELS",
    "CSF_CORE_PD",
    "psnr",
    "ssim",
    "ssim_map",
    "mae",
    "mean_percentage_error",
    "signed_bias_pct",
    "tissue_regions",
    "csf_anchor",
]

#: Channel order of the map stacks: T1 [ms], T2 [ms], PD [relative to CSF = 1].
MAP_NAMES: tuple[str, ...] = ("t1", "t2", "pd")
#: Maps that are scored: the channels plus ``pd_csf``, the PD anchored on the subject's CSF (module docstring).
SCORED_MAPS: tuple[str, ...] = ("t1", "t2", "pd_csf", "pd")
#: How each scored map is named in tables and figures.
MAP_LABELS: dict[str, str] = {"t1": "T1", "t2": "T2", "pd_csf": "PD (CSF = 1)", "pd": "PD raw"}
#: Unit of each scored map (MAE and bias carry it).
MAP_UNITS: dict[str, str] = {"t1": "ms", "t2": "ms", "pd_csf": "1 (CSF = 1)", "pd": "1 (CSF = 1)"}
#: Fixed physiological data range ``L`` of each map for PSNR / SSIM in the parenchyma (module docstring):
#: T1 0-4000 ms, T2 0-300 ms, PD 0-1.2.
PARENCHYMA_RANGE: dict[str, float] = {"t1": 4000.0, "t2": 300.0, "pd_csf": 1.2, "pd": 1.2}
CSF_LABEL = 1
#: Tissue groups reported separately (labels of :data:`physics.tissues.TISSUE_LABELS`); ``other`` is every
#: brain-mask voxel in none of the listed groups.
TISSUE_GROUPS: dict[str, tuple[int, ...]] = {
    "WM": (3,),
    "GM": (2,),
    "deep_GM": (13,),
    "CSF": (CSF_LABEL,),
    "lesion": tuple(LESION_LABELS),
    "other": (),
}
#: The labels of each group, as the tables' notes write them.
TISSUE_LABELS_TEXT: dict[str, str] = {
    "WM": "3", "GM": "2", "deep_GM": "13", "CSF": "1", "lesion": ", ".join(str(v) for v in LESION_LABELS),
    "other": "any other label in the brain mask",
}
#: Fewest core CSF voxels (label 1 in the brain mask with a true PD >= CSF_CORE_PD, over a subject's evaluated
#: slices) that anchor its PD; fewer and its raw PD is scored (the fallback of the module docstring).
MIN_CSF_VOXELS = 100
#: Smallest true PD of a core CSF voxel (pure CSF has PD = 1; lower values are partial-volume mixtures).
CSF_CORE_PD = 0.95

# Half-width of the SSIM window [pixels]: the border skimage crops for the whole-slice mean.
_RADIUS = _ssim.SSIM_WINDOW // 2


def _as_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred has shape {p.shape} but true has shape {t.shape}; they must match")
    return p, t


def _as_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask has shape {m.shape}; it must match the image shape {shape}")
    return m.astype(bool, copy=False)


def _range_of(true: np.ndarray, mask: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        return float(data_range)
    return float(true[mask].max()) if mask.any() else math.nan


def psnr(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None,
         data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio [dB] of one image inside ``mask``.

    Parameters
    ----------
    pred, true : (H, W) (or any equal shape) arrays; converted to float64.
    mask : same shape, bool; ``None`` = every voxel.
    data_range : peak value; ``None`` = ``max(true[mask])``.

    Returns
    -------
    float : ``10 log10(data_range² / MSE)``; ``inf`` if MSE is 0; ``nan`` for an empty mask or a zero range.
    """
    p, t = _as_pair(pred, true)
    m = _as_mask(mask, t.shape)
    rng = _range_of(t, m, data_range)
    if not m.any() or not rng > 0:
        return math.nan
    mse = float(np.mean((p[m] - t[m]) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(rng * rng / mse)


def _as_batch(x: np.ndarray) -> torch.Tensor:
    """(..., H, W) float64 array -> (N, 1, H, W) tensor (one channel per image)."""
    return torch.from_numpy(np.ascontiguousarray(x).reshape(-1, 1, *x.shape[-2:]))


def ssim_map(pred: np.ndarray, true: np.ndarray, data_range: float) -> np.ndarray:
    """Per-pixel SSIM of two 2-D images: :func:`train.ssim.ssim_map` in float64 with symmetric borders.

    Parameters
    ----------
    pred, true : (H, W) arrays, or (..., H, W) stacks filtered slice by slice; float64 internally.
    data_range : dynamic range ``L`` in ``C1 = (K1 L)²``, ``C2 = (K2 L)²``.

    Returns
    -------
    (..., H, W) float64 SSIM map (same as ``structural_similarity(..., full=True)[1]`` of skimage).
    """
    p, t = _as_pair(pred, true)
    if p.ndim < 2:
        raise ValueError(f"ssim_map needs images of at least 2 dimensions (..., H, W); got shape {p.shape}")
    s = _ssim.ssim_map(_as_batch(p), _as_batch(t), (float(data_range),), padding="symmetric")
    return s.numpy().reshape(p.shape)


def ssim(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None,
         data_range: float | None = None) -> float:
    """Mean SSIM of one (H, W) image pair, over ``mask`` or (``mask=None``) over the whole slice.

    Parameters
    ----------
    pred, true : (H, W) arrays (at least 11 × 11).
    mask : (H, W) bool region; outside it both images are set to 0 before filtering, and the SSIM map is
        averaged over the region. ``None``: skimage's convention, the map averaged after cropping the
        5-pixel border.
    data_range : ``None`` = ``max(true[mask])`` (or ``max(true)`` without a mask).

    Returns
    -------
    float : mean SSIM in [-1, 1]; ``nan`` for an empty mask or a zero range.
    """
    p, t = _as_pair(pred, true)
    if p.ndim != 2:
        raise ValueError(f"ssim takes one (H, W) image; got shape {p.shape}")
    if min(p.shape) < 2 * _RADIUS + 1:
        raise ValueError(f"ssim needs images of at least {2 * _RADIUS + 1} x {2 * _RADIUS + 1}; got {p.shape}")
    m = _as_mask(mask, t.shape)
    rng = _range_of(t, m, data_range)
    if not m.any() or not rng > 0:
        return math.nan
    if mask is None:
        s = ssim_map(p, t, rng)
        return float(s[_RADIUS:-_RADIUS, _RADIUS:-_RADIUS].mean())
    s = ssim_map(np.where(m, p, 0.0), np.where(m, t, 0.0), rng)
    return float(s[m].mean())


def mae(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error over ``mask`` in the unit of the maps (ms for T1/T2); ``nan`` if empty."""
    p, t = _as_pair(pred, true)
    m = _as_mask(mask, t.shape)
    return float(np.abs(p[m] - t[m]).mean()) if m.any() else math.nan


def mean_percentage_error(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean ``|pred − true| / true × 100`` [%] over the voxels of ``mask`` where ``true > 0``; ``nan`` if none."""
    p, t = _as_pair(pred, true)
    m = _as_mask(mask, t.shape) & (t > 0)
    return float((np.abs(p[m] - t[m]) / t[m]).mean() * 100.0) if m.any() else math.nan


def signed_bias_pct(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Signed bias: mean ``(pred − true) / true × 100`` [%] over the voxels of ``mask`` where ``true > 0``;
    negative for an under-estimate; ``nan`` if no voxel."""
    p, t = _as_pair(pred, true)
    m = _as_mask(mask, t.shape) & (t > 0)
    return float(((p[m] - t[m]) / t[m]).mean() * 100.0) if m.any() else math.nan


def tissue_regions(mask: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The regions of one slice that need labels: ``parenchyma`` and each of :data:`TISSUE_GROUPS`.

    Parameters
    ----------
    mask : (H, W) bool brain mask.
    labels : (H, W) integer tissue labels.

    Returns
    -------
    ``{"parenchyma": (H, W) bool, "WM": ..., ..., "other": ...}`` (every group, empty ones included).
    """
    m = np.asarray(mask, bool)
    lab = np.asarray(labels)
    if lab.shape != m.shape:
        raise ValueError(f"labels has shape {lab.shape}; it must match the mask shape {m.shape}")
    out = {"parenchyma": m & (lab != CSF_LABEL)}
    listed = np.zeros(m.shape, bool)
    for group, group_labels in TISSUE_GROUPS.items():
        if group_labels:
            r = m & np.isin(lab, group_labels)
            listed |= r
            out[group] = r
    out["other"] = m & ~listed
    return out


def csf_anchor(pred_csf: np.ndarray, true_csf: np.ndarray, min_voxels: int = MIN_CSF_VOXELS) -> dict[str, Any]:
    """The CSF anchor of a subject's predicted PD (module docstring): ``s = median_C(pred) / median_C(true)``.

    Parameters
    ----------
    pred_csf, true_csf : (n,) predicted and true PD of the subject's CSF voxels (label 1 in the brain mask, over
        its evaluated slices); the core ``C`` is those with ``true >= CSF_CORE_PD``.
    min_voxels : fewest core voxels that anchor; fewer (or a non-positive median) gives the fallback ``s = 1``.

    Returns
    -------
    ``{"scale": s, "anchored": bool, "csf_voxels": n_core, "pred_median": float | nan, "true_median": float |
    nan}`` (medians over the core); ``pd_csf = pred_pd / scale``.
    """
    p = np.asarray(pred_csf, np.float64).ravel()
    t = np.asarray(true_csf, np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"csf_anchor needs as many predicted as true values; got {p.size} and {t.size}")
    core = t >= CSF_CORE_PD
    p, t = p[core], t[core]
    pm = float(np.median(p)) if p.size else math.nan
    tm = float(np.median(t)) if t.size else math.nan
    ok = p.size >= int(min_voxels) and pm > 0 and tm > 0
    return {"scale": pm / tm if ok else 1.0, "anchored": bool(ok), "csf_voxels": int(p.size),
            "pred_median": pm, "true_median": tm}
