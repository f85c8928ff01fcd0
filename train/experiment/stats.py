"""Statistics of the ablation page: per-subject summaries of per-slice metrics, paired Wilcoxon tests between
variants, and the targets of tracker issue 7 checked on the reference variant.

Inputs are the ``samples`` records of :func:`train.evaluation.evaluate.evaluate`
(``record["metrics"][model][map][metric]`` with ``record["subject_id"]``) and the per-scenario entries of the
report built by :func:`train.experiment.report.build_report`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap.train.evaluation.metrics import MAP_LABELS, MAP_NAMES
from relaxomap.train.experiment.config import REFERENCE

__all__ = ["PAIRED_METRICS", "subject_summary", "paired_values", "paired_test", "check_targets",
           "TARGET_PSNR_DB", "TARGET_SSIM", "TARGET_LESION_MPE_PCT", "TARGET_OOR_GAIN_DB",
           "is_finite_number", "nested_get", "best_by_validation"]

#: Per-slice metrics compared between variants with the paired test.
PAIRED_METRICS = ("psnr_db", "mpe_pct")


def is_finite_number(v: Any) -> bool:
    """True for a finite int or float (None, NaN, inf and other types are not)."""
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def subject_summary(records: Sequence[Mapping[str, Any]], model: str, map_name: str, metric: str) -> dict[str, Any]:
    """Mean ± std over subjects of one per-slice metric.

    Each slice's value comes from ``record["metrics"][model][map_name][metric]`` (the ``samples`` records of
    :func:`train.evaluation.evaluate.evaluate`); slices are grouped by ``record["subject_id"]``, each subject
    contributes the mean of its finite values, and the summary is over those subject means.

    Returns
    -------
    ``{"mean", "std", "n_subjects", "n_slices"}``; ``std`` is the sample standard deviation (ddof 1), NaN with
    fewer than two subjects; ``mean`` is NaN without any finite value.
    """
    groups: dict[str, list[float]] = {}
    for rec in records:
        m = (rec.get("metrics") or {}).get(model)
        v = None if m is None else m[map_name][metric]
        if is_finite_number(v):
            groups.setdefault(str(rec["subject_id"]), []).append(float(v))
    means = np.array([np.mean(v) for v in groups.values()], np.float64)
    return {"mean": float(means.mean()) if means.size else math.nan,
            "std": float(means.std(ddof=1)) if means.size > 1 else math.nan,
            "n_subjects": int(means.size), "n_slices": int(sum(len(v) for v in groups.values()))}


def paired_values(records: Sequence[Mapping[str, Any]], model_a: str, model_b: str, map_name: str,
                  metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice values of two models on the slices where both have a finite value: ``(a, b)``, (n,) float64
    each, in record order (pairing by slice)."""
    a, b = [], []
    for rec in records:
        ma, mb = (rec.get("metrics") or {}).get(model_a), (rec.get("metrics") or {}).get(model_b)
        if ma is None or mb is None:
            continue
        va, vb = ma[map_name][metric], mb[map_name][metric]
        if is_finite_number(va) and is_finite_number(vb):
            a.append(float(va))
            b.append(float(vb))
    return np.array(a, np.float64), np.array(b, np.float64)


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired samples (``scipy.stats.wilcoxon(a, b)`` with its defaults:
    zero differences dropped, exact null distribution for small samples without ties).

    Returns
    -------
    ``{"n", "median_diff", "statistic", "p_value"}``: ``median_diff`` is the median of ``a - b`` over all pairs;
    ``statistic`` and ``p_value`` are NaN when there is no pair or every difference is zero (test undefined).
    """
    import warnings

    from scipy.stats import wilcoxon

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_test needs two 1-D arrays of one length; got shapes {a.shape} and {b.shape}")
    d = a - b
    out = {"n": int(d.size), "median_diff": float(np.median(d)) if d.size else math.nan,
           "statistic": math.nan, "p_value": math.nan}
    if d.size and np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample notes; the page states the test and n
            res = wilcoxon(a, b)
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def nested_get(d: Any, *keys: Any) -> Any:
    """``d[k0][k1]...`` or None where a key is missing or a level is not a mapping."""
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


#: Thresholds of tracker issue 7 (checked on the reference variant; never tuned on test stores).
TARGET_PSNR_DB = 38.0
TARGET_SSIM = 0.97
TARGET_LESION_MPE_PCT = 10.0
TARGET_OOR_GAIN_DB = 3.0


def check_targets(scen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The targets against the report's ``scenarios`` entries: one row per target and map, ``met`` True /
    False, or None when its scenario or model is missing.

    Internal test: the reference's masked PSNR >= 38 dB and SSIM >= 0.97 (subject means) on each map;
    lesions: its MPE in the lesion voxels (pooled) < 10 % for T1 and T2; out-of-range protocols: its masked
    PSNR minus the plain U-Net's >= 3 dB on each map.
    """
    rows = []

    def add(scenario: str, text: str, value: Any, threshold: float, op: str, kind: str, map_name: str) -> None:
        ok = None if not is_finite_number(value) else (value >= threshold if op == ">=" else value < threshold)
        rows.append({"scenario": scenario, "target": text, "kind": kind, "map": map_name,
                     "value": value if is_finite_number(value) else None, "threshold": threshold, "op": op, "met": ok})

    for mp in MAP_NAMES:
        v = nested_get(scen, "internal_test", "summary", REFERENCE, mp, "psnr_db", "mean")
        add("internal_test", f"masked PSNR {MAP_LABELS[mp]} [dB]", v, TARGET_PSNR_DB, ">=", "psnr", mp)
    for mp in MAP_NAMES:
        v = nested_get(scen, "internal_test", "summary", REFERENCE, mp, "ssim", "mean")
        add("internal_test", f"masked SSIM {MAP_LABELS[mp]}", v, TARGET_SSIM, ">=", "ssim", mp)
    for mp in ("t1", "t2"):
        v = nested_get(scen, "lesions", "tissue", REFERENCE, "lesion", mp, "mpe_pct")
        add("lesions", f"MPE in lesions {MAP_LABELS[mp]} [%]", v, TARGET_LESION_MPE_PCT, "<", "lesion", mp)
    for mp in MAP_NAMES:
        a = nested_get(scen, "out_of_range", "summary", REFERENCE, mp, "psnr_db", "mean")
        b = nested_get(scen, "out_of_range", "summary", "unet", mp, "psnr_db", "mean")
        gain = a - b if is_finite_number(a) and is_finite_number(b) else None
        add("out_of_range", f"masked PSNR {MAP_LABELS[mp]} gain over plain U-Net [dB]", gain, TARGET_OOR_GAIN_DB,
            ">=", "oor", mp)
    return rows


def best_by_validation(variants: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Name of the trained variant with the lowest ``best_val`` (validation masked L1; the selection criterion of
    the shipped model: test stores are never used), None when no variant has a finite one. Ties keep the first
    in ``variants`` order (the reference comes first)."""
    best, best_val = None, math.inf
    for name, v in variants.items():
        val = v.get("best_val")
        if not v.get("error") and is_finite_number(val) and val < best_val:
            best, best_val = name, float(val)
    return best
