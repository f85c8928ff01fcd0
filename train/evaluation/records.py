"""Per-slice records of an evaluation: each sample's acquisition facts and its metrics per model.

A record is ``{"index", "subject_id", "slice_index", "field_t", "present", "kinds", "params": {contrast:
{"tr_ms", "te_ms", "ti_ms"}}, "snr": {contrast: SNR}, "metrics": {model: {map: {metric: value}} | None}}``
(absent contrasts hold None); the metrics are :data:`RECORD_METRICS` of :mod:`train.evaluation.metrics`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from relaxomap.physics.protocol import CONTRASTS, SEQUENCE_KIND_NAMES
from relaxomap.train.evaluation.metrics import (
    CSF_LABEL,
    MAP_NAMES,
    mae,
    mean_percentage_error,
    psnr,
    ssim,
)

__all__ = ["PARAM_KEYS", "RECORD_METRICS", "record_metrics", "per_slice_summary", "sample_meta"]

#: Acquisition times of each contrast, in the store's ``params`` column order [ms].
PARAM_KEYS = ("tr_ms", "te_ms", "ti_ms")
#: Per-slice metrics of each map: brain mask unless named (``no_csf``: without label 1; ``whole``: unmasked).
RECORD_METRICS = ("psnr_db", "ssim", "mae", "mpe_pct", "psnr_no_csf_db", "mpe_no_csf_pct", "psnr_whole_db")


def record_metrics(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per-slice metrics of one prediction (:data:`RECORD_METRICS` of each map: brain mask, no CSF, whole slice)."""
    no_csf = mask & (labels != CSF_LABEL)
    out = {}
    for c, name in enumerate(MAP_NAMES):
        p, t = pred[c], true[c]
        out[name] = {
            "psnr_db": psnr(p, t, mask), "ssim": ssim(p, t, mask), "mae": mae(p, t, mask),
            "mpe_pct": mean_percentage_error(p, t, mask), "psnr_no_csf_db": psnr(p, t, no_csf),
            "mpe_no_csf_pct": mean_percentage_error(p, t, no_csf), "psnr_whole_db": psnr(p, t),
        }
    return out


def per_slice_summary(records: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Mean, std (population) and count over slices of each record metric, skipping non-finite values."""
    out: dict[str, Any] = {}
    for name in MAP_NAMES:
        out[name] = {}
        for metric in RECORD_METRICS:
            v = np.array([r[name][metric] for r in records if r is not None], np.float64)
            v = v[np.isfinite(v)]
            out[name][metric] = {"mean": float(v.mean()) if v.size else math.nan,
                                 "std": float(v.std()) if v.size else math.nan, "n": int(v.size)}
    return out


def sample_meta(f: Any, i: int) -> dict[str, Any]:
    """Acquisition facts of store row ``i``: present flags, kinds, TR/TE/TI [ms], SNR, field [T], ids."""
    present = f["present"][i].astype(bool)
    params = f["params"][i]
    prot = f["protocols"][i]
    snr = f["snr"][i]
    sid = f["subject_id"][i]
    meta = {
        "index": int(i),
        "subject_id": sid.decode() if isinstance(sid, bytes) else str(sid),
        "slice_index": int(f["slice_index"][i]),
        "field_t": float(f["field_t"][i]),
        "present": [int(v) for v in present],
        "kinds": {name: (SEQUENCE_KIND_NAMES.get(int(prot[c, 0]), "?") if present[c] else None)
                  for c, name in enumerate(CONTRASTS)},
        "params": {name: ({k: float(params[c, j]) for j, k in enumerate(PARAM_KEYS)} if present[c] else None)
                   for c, name in enumerate(CONTRASTS)},
        "snr": {name: (float(snr[c]) if present[c] else None) for c, name in enumerate(CONTRASTS)},
    }
    return meta
