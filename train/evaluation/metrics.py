"""Image-quality metrics for predicted T1 / T2 / PD maps: PSNR, SSIM, MAE and percentage error.

Everything is NumPy float64 and works on one ``(H, W)`` slice, on ``(3, H, W)`` map stacks and on
``(N, 3, H, W)`` batches. Definitions (per map, inside a region ``R`` — the brain mask, the brain mask
without CSF, or one tissue):

- ``psnr_db = 10 log10(range² / mean_R (pred − true)²)`` with ``range = max_R true`` (the ground-truth
  map's maximum in the region), in dB; ``inf`` for a perfect prediction.
- ``ssim``: the SSIM map of Wang et al. (2004) computed by :func:`train.ssim.ssim_map` (the package's one
  SSIM) in float64: an 11-tap Gaussian window (σ = 1.5 px, i.e. truncated at 3.5 σ), borders repeated
  symmetrically as SciPy's ``reflect`` does, K1 = 0.01, K2 = 0.03, population covariances,
  ``data_range = max_R true``, computed on the images with everything outside ``R`` set to 0 and averaged
  over the voxels of ``R``.
  The whole-slice variant (no region) is exactly ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=max true)``: the SSIM map
  averaged after cropping the 5-pixel border.
- ``mae``: mean ``|pred − true|`` over ``R`` in the map's unit (ms for T1 and T2, PD relative to CSF = 1).
- ``mpe_pct``: mean ``|pred − true| / true × 100`` over the voxels of ``R`` where ``true > 0`` [%].
- ``bias``: mean ``pred − true`` over ``R`` (map unit).

Over many slices (:class:`MetricAccumulator`) the voxel-wise errors (MAE, MPE, bias) are pooled over all
voxels, while PSNR and SSIM are averaged over the slices whose region is not empty.

References
----------
Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 13:600 (2004).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import torch

from relaxomap.physics.tissues import LESION_LABELS
from relaxomap.train import ssim as _ssim

__all__ = [
    "MAP_NAMES",
    "MAP_LABELS",
    "MAP_UNITS",
    "TISSUE_GROUPS",
    "CSF_LABEL",
    "psnr",
    "ssim",
    "ssim_map",
    "mae",
    "mean_percentage_error",
    "slice_metrics",
    "MetricAccumulator",
    "metrics_over",
    "flatten_metrics",
]

#: Channel order of the map stacks: T1 [ms], T2 [ms], PD [relative to CSF = 1].
MAP_NAMES: tuple[str, ...] = ("t1", "t2", "pd")
#: How each map is named in tables and figures.
MAP_LABELS: dict[str, str] = {"t1": "T1", "t2": "T2", "pd": "PD"}
#: Unit of each map (MAE and bias carry it).
MAP_UNITS: dict[str, str] = {"t1": "ms", "t2": "ms", "pd": "1 (CSF = 1)"}
#: Tissue groups reported separately (labels of :data:`physics.tissues.TISSUE_LABELS`).
TISSUE_GROUPS: dict[str, tuple[int, ...]] = {
    "WM": (3,),
    "GM": (2,),
    "CSF": (1,),
    "deep_GM": (13,),
    "lesion": tuple(LESION_LABELS),
}
CSF_LABEL = 1

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


def slice_metrics(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None,
                  labels: np.ndarray | None = None) -> dict[str, Any]:
    """All metrics of one slice's map stack.

    Parameters
    ----------
    pred, true : (3, H, W) [T1 ms, T2 ms, PD].
    mask : (H, W) or (1, H, W) bool brain mask; ``None`` = whole slice.
    labels : (H, W) integer tissue labels, or ``None`` (then no CSF-free region and no tissue rows).

    Returns
    -------
    dict : the structure of :meth:`MetricAccumulator.result` for this one slice.
    """
    acc = MetricAccumulator()
    acc.update(pred, true, mask, labels)
    return acc.result()


class _Pool:
    """Running sums of voxel-wise errors for one map in one region."""

    __slots__ = ("n", "abs_sum", "err_sum", "pct_sum", "n_pct", "true_sum", "pred_sum")

    def __init__(self) -> None:
        self.n = self.n_pct = 0
        self.abs_sum = self.err_sum = self.pct_sum = self.true_sum = self.pred_sum = 0.0

    def add(self, p: np.ndarray, t: np.ndarray) -> None:
        err = p - t
        pos = t > 0
        self.n += p.size
        self.abs_sum += float(np.abs(err).sum())
        self.err_sum += float(err.sum())
        self.true_sum += float(t.sum())
        self.pred_sum += float(p.sum())
        self.n_pct += int(pos.sum())
        self.pct_sum += float((np.abs(err[pos]) / t[pos]).sum() * 100.0)

    def result(self) -> dict[str, float]:
        nan = math.nan
        return {
            "mae": self.abs_sum / self.n if self.n else nan,
            "mpe_pct": self.pct_sum / self.n_pct if self.n_pct else nan,
            "bias": self.err_sum / self.n if self.n else nan,
            "mean_true": self.true_sum / self.n if self.n else nan,
            "mean_pred": self.pred_sum / self.n if self.n else nan,
            "n_voxels": self.n,
        }


class _SliceMean:
    """Mean of per-slice values, skipping NaN (empty regions)."""

    __slots__ = ("total", "count")

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, value: float) -> None:
        if not math.isnan(value):
            self.total += value
            self.count += 1

    def result(self) -> float:
        return self.total / self.count if self.count else math.nan


class MetricAccumulator:
    """Accumulates the metrics of many slices (e.g. a whole store) and reports them as one nested dict.

    Regions: ``brain`` (the mask), ``brain_no_csf`` (the mask without label 1; only with labels),
    ``whole_slice`` (PSNR/SSIM of the unmasked slice) and one entry per tissue group of
    :data:`TISSUE_GROUPS` that occurs inside the mask (voxel-wise errors only).
    """

    def __init__(self) -> None:
        self._n_slices = 0
        self._region_pool: dict[str, dict[str, _Pool]] = {}
        self._region_psnr: dict[str, dict[str, _SliceMean]] = {}
        self._region_ssim: dict[str, dict[str, _SliceMean]] = {}
        self._tissue_pool: dict[str, dict[str, _Pool]] = {}

    def update(self, pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None,
               labels: np.ndarray | None = None) -> None:
        """Add one slice ``(3, H, W)`` or a batch ``(N, 3, H, W)``.

        Parameters
        ----------
        pred, true : (3, H, W) or (N, 3, H, W) maps [T1 ms, T2 ms, PD].
        mask : (H, W), (1, H, W), (N, H, W) or (N, 1, H, W) bool brain mask; ``None`` = whole slice.
        labels : (H, W) or (N, H, W) (optionally with a singleton channel) integer labels, or ``None``.
        """
        p, t = _as_pair(pred, true)
        if p.ndim == 3:
            p, t = p[None], t[None]
        if p.ndim != 4 or p.shape[1] != len(MAP_NAMES):
            raise ValueError(f"maps must have shape (3, H, W) or (N, 3, H, W); got {np.shape(pred)}")
        n, _, h, w = p.shape
        m = np.ones((n, h, w), bool) if mask is None else np.asarray(mask).astype(bool).reshape(-1, h, w)
        if m.shape[0] != n:
            raise ValueError(f"mask has shape {np.shape(mask)}; expected {n} slice(s) of {(h, w)}")
        lab = None
        if labels is not None:
            lab = np.asarray(labels).reshape(-1, h, w)
            if lab.shape[0] != n:
                raise ValueError(f"labels has shape {np.shape(labels)}; expected {n} slice(s) of {(h, w)}")
        for i in range(n):
            self._add_slice(p[i], t[i], m[i], None if lab is None else lab[i])

    def _add_slice(self, p: np.ndarray, t: np.ndarray, m: np.ndarray, lab: np.ndarray | None) -> None:
        self._n_slices += 1
        regions = {"brain": m}
        if lab is not None:
            regions["brain_no_csf"] = m & (lab != CSF_LABEL)
        for c, name in enumerate(MAP_NAMES):
            for region, r in regions.items():
                self._region_pool.setdefault(region, {}).setdefault(name, _Pool()).add(p[c][r], t[c][r])
                self._region_psnr.setdefault(region, {}).setdefault(name, _SliceMean()).add(psnr(p[c], t[c], r))
                self._region_ssim.setdefault(region, {}).setdefault(name, _SliceMean()).add(ssim(p[c], t[c], r))
            self._region_psnr.setdefault("whole_slice", {}).setdefault(name, _SliceMean()).add(psnr(p[c], t[c]))
            self._region_ssim.setdefault("whole_slice", {}).setdefault(name, _SliceMean()).add(ssim(p[c], t[c]))
        if lab is None:
            return
        for tissue, tissue_labels in TISSUE_GROUPS.items():
            r = m & np.isin(lab, tissue_labels)
            if not r.any():
                continue
            pools = self._tissue_pool.setdefault(tissue, {})
            for c, name in enumerate(MAP_NAMES):
                pools.setdefault(name, _Pool()).add(p[c][r], t[c][r])

    def result(self) -> dict[str, Any]:
        """Nested dict ``{region: {map: {metric: value}}}`` plus ``"tissue": {group: {map: {...}}}``.

        Metric keys: ``psnr_db``, ``ssim`` (slice means); ``mae``, ``bias``, ``mean_true``, ``mean_pred``
        (map unit, see :data:`MAP_UNITS`), ``mpe_pct`` [%], ``n_voxels`` (pooled). ``whole_slice`` holds
        only ``psnr_db`` and ``ssim``. ``n_slices`` counts the slices added.
        """
        out: dict[str, Any] = {"n_slices": self._n_slices, "units": dict(MAP_UNITS)}
        for region in self._region_psnr:
            out[region] = {}
            for name in MAP_NAMES:
                entry = {"psnr_db": self._region_psnr[region][name].result(),
                         "ssim": self._region_ssim[region][name].result()}
                if region in self._region_pool:
                    entry.update(self._region_pool[region][name].result())
                out[region][name] = entry
        out["tissue"] = {
            tissue: {name: pools[name].result() for name in MAP_NAMES}
            for tissue, pools in self._tissue_pool.items()
        }
        return out


def metrics_over(items: Iterable[tuple[np.ndarray, ...]]) -> dict[str, Any]:
    """Aggregate metrics over an iterable of ``(pred, true, mask[, labels])`` tuples (slices or batches).

    Typical use: ``metrics_over((predict(b["inputs"]), b["targets"], b["mask"], b["labels"]) for b in store)``.
    """
    acc = MetricAccumulator()
    for item in items:
        if len(item) not in (3, 4):
            raise ValueError(f"metrics_over items must be (pred, true, mask[, labels]); got {len(item)} elements")
        acc.update(*item)
    return acc.result()


def flatten_metrics(result: dict[str, Any], sep: str = "/") -> dict[str, float]:
    """Flatten a nested result into ``{"brain/t1/psnr_db": 31.2, ...}`` (for tables and JSON lines)."""
    flat: dict[str, float] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{sep}{key}" if prefix else str(key), value)
        elif isinstance(node, (int, float)):
            flat[prefix] = node

    walk("", result)
    return flat
