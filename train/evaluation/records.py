"""Per-slice records of an evaluation: each sample's acquisition facts and its metrics per model.

A record is ``{"index", "subject_id", "slice_index", "field_t", "present", "kinds", "params": {contrast:
{"tr_ms", "te_ms", "ti_ms"}}, "snr": {contrast: SNR}, "metrics": {model: {map: {metric: value}} | None}}``
(absent contrasts hold None); the metrics are the per-slice :data:`RECORD_METRICS` of the raw maps t1, t2 and
pd returned by :meth:`train.evaluation.accumulate.MetricAccumulator.update` (parenchyma MPE, signed bias,
PSNR / SSIM with the fixed range; brain-mask PSNR / SSIM with peak = CSF maximum; whole-slice PSNR). They feed
the curves (:mod:`train.evaluation.curves`); the statistics are over subjects, from the accumulator.
"""
from __future__ import annotations

from typing import Any

from relaxomap.physics.protocol import CONTRASTS, SEQUENCE_KIND_NAMES
from relaxomap.train.evaluation.accumulate import RECORD_METRICS

__all__ = ["PARAM_KEYS", "RECORD_METRICS", "sample_meta"]

#: Acquisition times of each contrast, in the store's ``params`` column order [ms].
PARAM_KEYS = ("tr_ms", "te_ms", "ti_ms")


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
