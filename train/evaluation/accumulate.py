"""Accumulation of the map metrics over slices and subjects (:class:`MetricAccumulator`).

The metric definitions, regions, the fixed parenchyma data range and the CSF anchor of PD are written in
:mod:`train.evaluation.metrics`. This module adds them up:

- slices are added with the subject they belong to (``update(..., subject=...)``); a subject's PD is anchored
  on its CSF when the subject is closed (:meth:`MetricAccumulator.close_subject`, or :meth:`~MetricAccumulator.
  result` for the subjects still open), so each subject's PD slices are kept until then (float32 PD, mask and
  labels: 10 bytes per pixel and slice);
- per subject, each voxel-wise metric (MAE, MPE, bias, bias %) is pooled over the subject's voxels of a region
  and PSNR / SSIM are averaged over its slices whose region is not empty;
- the result gives, for every region and scored map, the value pooled over all voxels (PSNR / SSIM: the mean
  over all slices) and the mean ± sample sd (ddof 1) over subjects, and the per-subject values themselves.

Result layout (:meth:`MetricAccumulator.result`)
------------------------------------------------
``{"n_slices", "n_subjects", "units": MAP_UNITS, "data_range": {...},``
``  "brain" | "parenchyma": {map: ENTRY + {"psnr_db", "ssim"}},  "whole_slice": {map: {"psnr_db", "ssim",
"subjects"}},``
``  "tissue": {group: {map: ENTRY}}  (groups with at least one voxel),``
``  "pd_anchor": {"min_csf_voxels", "n_anchored", "n_fallback", "fallback": [subject, ...], "subjects": {subject:
csf_anchor(...)}},``
``  "per_subject": {subject: {"n_slices", "brain" | "parenchyma" | "whole_slice": {map: {metric: value}},
"tissue": {group: {map: {metric: value}}}}}}``

with ``ENTRY = {"mae", "mpe_pct", "bias", "bias_pct", "mean_true", "mean_pred", "n_voxels" (pooled),
"n_subjects", "subjects": {metric: {"mean", "std", "n"}}}``; maps are :data:`SCORED_MAPS` (``pd_csf`` =
CSF-anchored PD, ``pd`` = raw PD).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from relaxomap.train.evaluation.metrics import (
    CSF_LABEL,
    MAP_NAMES,
    MAP_UNITS,
    MIN_CSF_VOXELS,
    PARENCHYMA_RANGE,
    SCORED_MAPS,
    TISSUE_GROUPS,
    csf_anchor,
    mean_percentage_error,
    psnr,
    signed_bias_pct,
    ssim,
    tissue_regions,
)

__all__ = ["VOXEL_METRICS", "IMAGE_REGIONS", "RECORD_METRICS", "MetricAccumulator", "slice_metrics",
           "metrics_over", "flatten_metrics", "subject_stats"]

#: Voxel-wise metrics pooled per subject and over all voxels.
VOXEL_METRICS = ("mae", "mpe_pct", "bias", "bias_pct")
#: Regions with PSNR / SSIM (the parenchyma with the fixed range, the others with the truth's maximum).
IMAGE_REGIONS = ("brain", "parenchyma", "whole_slice")
#: Per-slice metrics returned by :meth:`MetricAccumulator.update` for each raw map (t1, t2, pd): the
#: evaluation's per-slice records.
RECORD_METRICS = ("mpe_parenchyma_pct", "bias_parenchyma_pct", "psnr_parenchyma_db", "ssim_parenchyma",
                  "psnr_brain_db", "ssim_brain", "psnr_whole_db")
_DEFAULT_SUBJECT = "all"


class _Pool:
    """Running sums of the voxel-wise errors of one map in one region."""

    __slots__ = ("n", "abs_sum", "err_sum", "n_pct", "pct_sum", "spct_sum", "true_sum", "pred_sum")

    def __init__(self) -> None:
        self.n = self.n_pct = 0
        self.abs_sum = self.err_sum = self.pct_sum = self.spct_sum = self.true_sum = self.pred_sum = 0.0

    def add(self, p: np.ndarray, t: np.ndarray) -> None:
        err = p - t
        pos = t > 0
        rel = err[pos] / t[pos]
        self.n += p.size
        self.abs_sum += float(np.abs(err).sum())
        self.err_sum += float(err.sum())
        self.true_sum += float(t.sum())
        self.pred_sum += float(p.sum())
        self.n_pct += int(pos.sum())
        self.pct_sum += float(np.abs(rel).sum() * 100.0)
        self.spct_sum += float(rel.sum() * 100.0)

    def merge(self, other: "_Pool") -> None:
        for k in self.__slots__:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def result(self) -> dict[str, Any]:
        nan = math.nan
        n, npct = self.n, self.n_pct
        return {"mae": self.abs_sum / n if n else nan, "mpe_pct": self.pct_sum / npct if npct else nan,
                "bias": self.err_sum / n if n else nan, "bias_pct": self.spct_sum / npct if npct else nan,
                "mean_true": self.true_sum / n if n else nan, "mean_pred": self.pred_sum / n if n else nan,
                "n_voxels": n}


def _finite_mean(values: Sequence[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def subject_stats(values: Iterable[Any]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof 1) of per-subject values, skipping None / NaN / inf.

    Returns
    -------
    ``{"mean", "std", "n"}``; ``std`` is NaN with fewer than two values, ``mean`` NaN without any.
    """
    v = np.array([x for x in values if x is not None and math.isfinite(x)], np.float64)
    return {"mean": float(v.mean()) if v.size else math.nan, "std": float(v.std(ddof=1)) if v.size > 1 else math.nan,
            "n": int(v.size)}


class _Subject:
    """One subject's pools, per-slice PSNR / SSIM values and buffered PD slices (until it is closed)."""

    def __init__(self) -> None:
        self.n_slices = 0
        self.pools: dict[str, dict[str, _Pool]] = {}
        self.images: dict[str, dict[str, dict[str, list[float]]]] = {}
        self.pd_slices: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.anchor: dict[str, Any] | None = None

    def score(self, name: str, p: np.ndarray, t: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, float]:
        """Add one slice of map ``name`` (``p``, ``t`` (H, W)); returns its per-slice image metrics."""
        for region, r in regions.items():
            if r.any():
                self.pools.setdefault(region, {}).setdefault(name, _Pool()).add(p[r], t[r])
        out = {}
        for region in IMAGE_REGIONS:
            if region == "whole_slice":
                v_psnr, v_ssim = psnr(p, t), ssim(p, t)
            elif region in regions:
                rng = PARENCHYMA_RANGE[name] if region == "parenchyma" else None
                v_psnr, v_ssim = psnr(p, t, regions[region], rng), ssim(p, t, regions[region], rng)
            else:
                continue
            lists = self.images.setdefault(region, {}).setdefault(name, {"psnr_db": [], "ssim": []})
            lists["psnr_db"].append(v_psnr)
            lists["ssim"].append(v_ssim)
            out[region] = (v_psnr, v_ssim)
        return out

    def close(self, min_csf_voxels: int) -> None:
        """Anchor the buffered PD on this subject's CSF and score ``pd_csf``; frees the buffer."""
        if self.anchor is not None:
            return
        csf_p = [p[m & (lab == CSF_LABEL)] for p, _, m, lab in self.pd_slices if lab is not None]
        csf_t = [t[m & (lab == CSF_LABEL)] for _, t, m, lab in self.pd_slices if lab is not None]
        self.anchor = csf_anchor(np.concatenate(csf_p) if csf_p else np.zeros(0),
                                 np.concatenate(csf_t) if csf_t else np.zeros(0), min_csf_voxels)
        scale = self.anchor["scale"]
        for p, t, m, lab in self.pd_slices:
            regions = _regions(m, lab)
            self.score("pd_csf", p.astype(np.float64) / scale, t.astype(np.float64), regions)
        self.pd_slices = []

    def values(self) -> dict[str, Any]:
        """This subject's metrics: ``{region: {map: {metric: value}}}`` and ``"tissue": {group: ...}``."""
        out: dict[str, Any] = {"n_slices": self.n_slices, "tissue": {}}
        for region in IMAGE_REGIONS:
            out[region] = {}
            for name in SCORED_MAPS:
                entry = self.pools[region][name].result() if name in self.pools.get(region, {}) else {}
                lists = self.images.get(region, {}).get(name)
                if lists is not None:
                    entry.update(psnr_db=_finite_mean(lists["psnr_db"]), ssim=_finite_mean(lists["ssim"]))
                out[region][name] = entry
        for group in TISSUE_GROUPS:
            if group in self.pools:
                out["tissue"][group] = {name: self.pools[group][name].result() for name in SCORED_MAPS
                                        if name in self.pools[group]}
        return out


def _regions(mask: np.ndarray, labels: np.ndarray | None) -> dict[str, np.ndarray]:
    regions = {"brain": mask}
    if labels is not None:
        regions.update(tissue_regions(mask, labels))
    return regions


def _subjects_of(subject: Any, n: int) -> list[str]:
    if subject is None:
        return [_DEFAULT_SUBJECT] * n
    if isinstance(subject, (str, bytes)):
        return [subject.decode() if isinstance(subject, bytes) else subject] * n
    ids = [s.decode() if isinstance(s, bytes) else str(s) for s in subject]
    if len(ids) != n:
        raise ValueError(f"subject has {len(ids)} ids; expected one per slice ({n})")
    return ids


class MetricAccumulator:
    """Accumulates the metrics of many slices of many subjects (layout of the result in the module docstring).

    Parameters
    ----------
    min_csf_voxels : fewest CSF voxels per subject that anchor its PD (:data:`metrics.MIN_CSF_VOXELS`).
    """

    def __init__(self, min_csf_voxels: int = MIN_CSF_VOXELS) -> None:
        self.min_csf_voxels = int(min_csf_voxels)
        self._n_slices = 0
        self._subjects: dict[str, _Subject] = {}

    def update(self, pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None,
               labels: np.ndarray | None = None, subject: str | Sequence[str] | None = None
               ) -> list[dict[str, dict[str, float]]]:
        """Add one slice ``(3, H, W)`` or a batch ``(N, 3, H, W)``.

        Parameters
        ----------
        pred, true : (3, H, W) or (N, 3, H, W) maps [T1 ms, T2 ms, PD].
        mask : (H, W), (1, H, W), (N, H, W) or (N, 1, H, W) bool brain mask; ``None`` = whole slice.
        labels : (H, W) or (N, H, W) (optionally with a singleton channel) integer labels, or ``None`` (then no
            parenchyma or tissue rows, and PD cannot be anchored: the fallback).
        subject : the subject of every slice (str), one id per slice, or ``None`` (one subject, ``"all"``).

        Returns
        -------
        One dict per slice: ``{map: {metric: value}}`` for the raw maps t1, t2, pd and :data:`RECORD_METRICS`.
        """
        p = np.asarray(pred, np.float64)
        t = np.asarray(true, np.float64)
        if p.shape != t.shape:
            raise ValueError(f"pred has shape {p.shape} but true has shape {t.shape}; they must match")
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
        ids = _subjects_of(subject, n)
        return [self._add_slice(p[i], t[i], m[i], None if lab is None else lab[i], ids[i]) for i in range(n)]

    def _add_slice(self, p: np.ndarray, t: np.ndarray, m: np.ndarray, lab: np.ndarray | None,
                   sid: str) -> dict[str, dict[str, float]]:
        subj = self._subjects.setdefault(sid, _Subject())
        if subj.anchor is not None:
            raise ValueError(f"subject {sid!r} was closed; add all of its slices before close_subject")
        self._n_slices += 1
        subj.n_slices += 1
        regions = _regions(m, lab)
        record = {}
        for c, name in enumerate(MAP_NAMES):
            img = subj.score(name, p[c], t[c], regions)
            par = regions.get("parenchyma")
            record[name] = {
                "mpe_parenchyma_pct": math.nan if par is None else mean_percentage_error(p[c], t[c], par),
                "bias_parenchyma_pct": math.nan if par is None else signed_bias_pct(p[c], t[c], par),
                "psnr_parenchyma_db": img.get("parenchyma", (math.nan, math.nan))[0],
                "ssim_parenchyma": img.get("parenchyma", (math.nan, math.nan))[1],
                "psnr_brain_db": img["brain"][0], "ssim_brain": img["brain"][1], "psnr_whole_db": img["whole_slice"][0],
            }
        subj.pd_slices.append((p[2].astype(np.float32), t[2].astype(np.float32), m.copy(),
                               None if lab is None else lab.astype(np.int16)))
        return record

    def close_subject(self, subject: str) -> None:
        """Anchor the subject's PD on its CSF and score its ``pd_csf`` (call once all its slices are added; frees
        its buffered PD slices). Unknown or already closed subjects are ignored."""
        if subject in self._subjects:
            self._subjects[subject].close(self.min_csf_voxels)

    def result(self) -> dict[str, Any]:
        """The nested result of the module docstring (closes every subject still open)."""
        for subj in self._subjects.values():
            subj.close(self.min_csf_voxels)
        per = {sid: s.values() for sid, s in self._subjects.items()}
        out: dict[str, Any] = {
            "n_slices": self._n_slices, "n_subjects": len(per), "units": dict(MAP_UNITS),
            "data_range": {"parenchyma": dict(PARENCHYMA_RANGE), "brain": "maximum of the truth in the brain mask "
                           "(the CSF maximum)", "whole_slice": "maximum of the truth in the slice"}}
        for region in IMAGE_REGIONS:
            if any(region in s.pools or region in s.images for s in self._subjects.values()):
                out[region] = {name: self._entry(region, name, per) for name in SCORED_MAPS}
        out["tissue"] = {}
        for group in TISSUE_GROUPS:
            if any(group in s.pools for s in self._subjects.values()):
                out["tissue"][group] = {name: self._entry(group, name, per, tissue=True) for name in SCORED_MAPS}
        anchors = {sid: s.anchor for sid, s in self._subjects.items()}
        fallback = [sid for sid, a in anchors.items() if not a["anchored"]]
        out["pd_anchor"] = {"min_csf_voxels": self.min_csf_voxels, "n_anchored": len(anchors) - len(fallback),
                            "n_fallback": len(fallback), "fallback": fallback, "subjects": anchors}
        out["per_subject"] = per
        return out

    def _entry(self, region: str, name: str, per: dict[str, Any], tissue: bool = False) -> dict[str, Any]:
        """Pooled values and the over-subject summary of one region and map."""
        pool = _Pool()
        for s in self._subjects.values():
            if name in s.pools.get(region, {}):
                pool.merge(s.pools[region][name])
        entry: dict[str, Any] = pool.result() if region != "whole_slice" else {}
        vals = [(v["tissue"].get(region, {}) if tissue else v.get(region, {})).get(name, {}) for v in per.values()]
        metrics = (VOXEL_METRICS if region != "whole_slice" else ()) + (() if tissue else ("psnr_db", "ssim"))
        if not tissue:
            for key in ("psnr_db", "ssim"):
                entry[key] = _finite_mean([x for s in self._subjects.values()
                                           for x in s.images.get(region, {}).get(name, {}).get(key, [])])
        entry["n_subjects"] = sum(1 for v in vals if v)
        entry["subjects"] = {k: subject_stats(v.get(k) for v in vals) for k in metrics}
        return entry


def slice_metrics(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None,
                  labels: np.ndarray | None = None) -> dict[str, Any]:
    """All metrics of one slice's map stack (``pred``, ``true`` (3, H, W); ``mask``, ``labels`` (H, W)): the
    result of a :class:`MetricAccumulator` holding that one slice (one subject)."""
    acc = MetricAccumulator()
    acc.update(pred, true, mask, labels)
    return acc.result()


def metrics_over(items: Iterable[tuple[Any, ...]]) -> dict[str, Any]:
    """Aggregate metrics over an iterable of ``(pred, true, mask[, labels[, subject]])`` tuples (slices or
    batches).

    Typical use: ``metrics_over((predict(b["inputs"]), b["targets"], b["mask"], b["labels"]) for b in store)``.
    """
    acc = MetricAccumulator()
    for item in items:
        if len(item) not in (3, 4, 5):
            raise ValueError(f"metrics_over items must be (pred, true, mask[, labels[, subject]]); got {len(item)} "
                             "elements")
        acc.update(*item)
    return acc.result()


def flatten_metrics(result: dict[str, Any], sep: str = "/") -> dict[str, float]:
    """Flatten a nested result into ``{"brain/t1/psnr_db": 31.2, ...}`` (for tables and JSON lines)."""
    flat: dict[str, float] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{sep}{key}" if prefix else str(key), value)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            flat[prefix] = node

    walk("", result)
    return flat
