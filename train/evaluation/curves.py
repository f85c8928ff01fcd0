"""Metric-versus-acquisition curves of an evaluation: a per-slice metric (default: the parenchyma mean percentage
error, :data:`CURVE_METRIC`) binned by each acquisition time that varies in a scenario (quantile bins) and by
the mean SNR (:func:`binned_curves`), drawn by :func:`train.evaluation.figures.curves_png`.

The parenchyma MPE rather than the brain-mask PSNR: the latter's peak is the CSF maximum, so its T2 curve
follows almost only the CSF T2 error (:mod:`train.evaluation.metrics`). PD is the raw prediction here (the
per-slice records are scored before a subject's CSF anchor is known).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from relaxomap.physics.protocol import CONTRASTS
from relaxomap.train.evaluation.metrics import MAP_NAMES
from relaxomap.train.evaluation.records import PARAM_KEYS

__all__ = ["CURVE_METRIC", "CURVE_METRIC_LABELS", "binned_curves"]

#: The per-slice record metric the curves bin (:data:`train.evaluation.accumulate.RECORD_METRICS`).
CURVE_METRIC = "mpe_parenchyma_pct"
#: Axis label of each curve metric.
CURVE_METRIC_LABELS: dict[str, str] = {"mpe_parenchyma_pct": "parenchyma MPE [%]",
                                       "bias_parenchyma_pct": "parenchyma bias [%]",
                                       "psnr_parenchyma_db": "parenchyma PSNR [dB]", "psnr_brain_db": "brain PSNR [dB]"}


def _x_values(rec: dict[str, Any]) -> dict[str, float]:
    """Curve abscissae of one sample: ``"<contrast> <param>"`` [ms] for present contrasts and ``"mean SNR"``."""
    xs: dict[str, float] = {}
    for c in CONTRASTS:
        par = rec["params"].get(c)
        if par is None:
            continue
        for k in PARAM_KEYS:
            if k == "ti_ms" and rec["kinds"].get(c) not in ("ir_tse", "mprage"):
                continue
            xs[f"{c} {k}"] = par[k]
    snrs = [v for v in rec["snr"].values() if v is not None and v > 0]
    if snrs:
        xs["mean SNR"] = float(np.exp(np.mean(np.log(snrs))))  # geometric mean over present contrasts
    return xs


def binned_curves(records: Sequence[dict[str, Any]], models: Sequence[str], max_bins: int = 6,
                  metric: str = CURVE_METRIC) -> dict[str, Any]:
    """A per-slice metric per model and map, binned by each varying acquisition time and by the mean SNR.

    Bins are quantile bins of the samples' values (at most ``max_bins``, fewer when there are fewer distinct
    values); a variable that is (nearly) constant over the scenario (relative spread < 1e-6) gets no curve.

    Returns
    -------
    ``{x: {"edges": [...], "x_mean": [...], "n": [...], "metric": metric, "values": {model: {map: [...]}}}}``;
    bins without a finite value hold NaN.
    """
    values: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for rec in records:
        for k, v in _x_values(rec).items():
            values.setdefault(k, []).append((v, rec))
    out: dict[str, Any] = {}
    for k, pairs in values.items():
        x = np.array([v for v, _ in pairs], np.float64)
        if x.size < 2 or (x.max() - x.min()) <= 1e-6 * max(abs(x.max()), 1.0):
            continue
        n_bins = int(min(max_bins, np.unique(x).size))
        edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
        nb = edges.size - 1
        curve = {"edges": edges.tolist(), "x_mean": [float(x[which == j].mean()) if (which == j).any() else math.nan
                                                     for j in range(nb)],
                 "n": [int((which == j).sum()) for j in range(nb)], "metric": metric, "values": {}}
        for m in models:
            curve["values"][m] = {}
            for name in MAP_NAMES:
                per_bin = []
                for j in range(nb):
                    vals = [rec["metrics"][m][name][metric] for (_, rec), w in zip(pairs, which)
                            if w == j and rec["metrics"].get(m) is not None]
                    vals = [v for v in vals if v is not None and math.isfinite(v)]
                    per_bin.append(float(np.mean(vals)) if vals else math.nan)
                curve["values"][m][name] = per_bin
        out[k] = curve
    return out
