"""Markdown tables of metric results (:meth:`train.evaluation.accumulate.MetricAccumulator.result`), shared by
``relaxomap evaluate`` (terminal and ``results.md``), the ablation page and ``relaxomap demo``.

Every function takes ``{row label: result}`` -- one accumulator result per model -- so the callers choose the
names. Cells are "mean ± sd" over subjects (the sample sd; only the mean with one subject) unless the header
says "pooled" (over every voxel of every subject); "–" marks a value that does not exist (empty region, a
skipped model). Column meanings are those of :mod:`train.evaluation.metrics`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from relaxomap.train.evaluation.metrics import CSF_CORE_PD, MAP_LABELS, PARENCHYMA_RANGE, SCORED_MAPS, TISSUE_GROUPS

__all__ = ["TISSUE_TABLE_MAPS", "fmt", "pm", "parenchyma_table", "tissue_table", "tissue_detail_table",
           "whole_table", "pd_anchor_note", "PARENCHYMA_NOTE", "WHOLE_NOTE"]

#: Maps of the compact per-tissue table (the raw PD is in the detail tables and the JSON).
TISSUE_TABLE_MAPS = ("t1", "t2", "pd_csf")
_PD_MAPS = ("pd", "pd_csf")

#: What the parenchyma table's columns are (printed under it).
PARENCHYMA_NOTE = (
    "Parenchyma = brain mask without CSF (label 1). Mean ± sd over subjects of each subject's value (MPE, bias "
    "and MAE pooled over its voxels; PSNR and SSIM averaged over its slices); 'pooled' = over every voxel. MPE = "
    "mean |pred − true| / true; bias = mean (pred − true) / true (signed, %). PSNR / SSIM use the fixed "
    f"physiological range L = T1 {PARENCHYMA_RANGE['t1']:g} ms, T2 {PARENCHYMA_RANGE['t2']:g} ms, PD "
    f"{PARENCHYMA_RANGE['pd']:g} (RMSE = L·10^(−PSNR/20)). PD (CSF = 1): the prediction divided by its median in "
    f"the subject's core CSF (label 1, true PD ≥ {CSF_CORE_PD:g}) over the truth's median there (~1); PD raw: as "
    "predicted.")
#: What the whole-mask table's columns are.
WHOLE_NOTE = ("Whole brain mask: PSNR / SSIM with peak = the truth's maximum in the mask, i.e. the CSF maximum "
              "(T2 PSNR measures almost only the CSF T2 error); whole slice: the unmasked slice, background "
              "included. Mean ± sd over subjects.")


def fmt(v: Any, digits: int = 2, signed: bool = False) -> str:
    """A number with ``digits`` decimals ("+" for positive ones when ``signed``); "–" for None / NaN / inf."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def pm(summary: Mapping[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    """``{"mean", "std"}`` as "mean ± std" (only the mean when the std is missing); "–" without a mean."""
    if not summary or fmt(summary.get("mean")) == "–":
        return "–"
    std = fmt(summary.get("std"), digits)
    return fmt(summary["mean"], digits, signed) + ("" if std == "–" else f" ± {std}")


def _mae_digits(mp: str) -> int:
    return 3 if mp in _PD_MAPS else 1


def _mae_unit(mp: str) -> str:
    return "" if mp in _PD_MAPS else " ms"


def _subj(entry: Mapping[str, Any] | None, metric: str) -> Mapping[str, Any] | None:
    return ((entry or {}).get("subjects") or {}).get(metric)


def parenchyma_table(results: Mapping[str, Mapping[str, Any] | None], maps: Sequence[str] = SCORED_MAPS) -> str:
    """Rows model × map: the parenchyma's MPE, bias [%], MAE, PSNR and SSIM (fixed range), mean ± sd over
    subjects, and the pooled MPE and bias. ``results``: ``{model: accumulator result or None}``."""
    lines = ["| model | map | subjects | MPE [%] | bias [%] | MAE | PSNR [dB] | SSIM | MPE pooled [%] "
             "| bias pooled [%] |", "|" + "---|" * 10]
    for name, res in results.items():
        for mp in maps:
            e = ((res or {}).get("parenchyma") or {}).get(mp) or {}
            mae = pm(_subj(e, "mae"), _mae_digits(mp))
            lines.append(
                f"| {name} | {MAP_LABELS[mp]} | {e.get('n_subjects', 0)} | {pm(_subj(e, 'mpe_pct'), 1)} | "
                f"{pm(_subj(e, 'bias_pct'), 1, signed=True)} | {mae}{_mae_unit(mp) if mae != '–' else ''} | "
                f"{pm(_subj(e, 'psnr_db'))} | {pm(_subj(e, 'ssim'), 3)} | {fmt(e.get('mpe_pct'), 1)} | "
                f"{fmt(e.get('bias_pct'), 1, signed=True)} |")
    return "\n".join(lines)


def tissue_table(results: Mapping[str, Mapping[str, Any] | None], maps: Sequence[str] = TISSUE_TABLE_MAPS) -> str:
    """Rows model × tissue group: voxels (pooled), subjects, and per map the MPE and signed bias [%] (mean ± sd
    over subjects)."""
    head = "| model | tissue | voxels | subjects | " + " | ".join(
        f"{MAP_LABELS[m]} MPE [%] | {MAP_LABELS[m]} bias [%]" for m in maps) + " |"
    lines = [head, "|" + "---|" * (4 + 2 * len(maps))]
    for name, res in results.items():
        for group in TISSUE_GROUPS:
            per_map = ((res or {}).get("tissue") or {}).get(group)
            if not per_map:
                continue
            cells = []
            for mp in maps:
                e = per_map.get(mp) or {}
                cells += [pm(_subj(e, "mpe_pct"), 1), pm(_subj(e, "bias_pct"), 1, signed=True)]
            first = per_map.get(maps[0]) or {}
            lines.append(f"| {name} | {group} | {first.get('n_voxels', 0)} | {first.get('n_subjects', 0)} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def tissue_detail_table(results: Mapping[str, Mapping[str, Any] | None], mp: str) -> str:
    """Rows model × tissue group for one map: MAE, MPE and signed bias [%], each pooled over voxels and as mean ±
    sd over subjects."""
    unit = "" if mp in _PD_MAPS else " [ms]"
    lines = [f"| model | tissue | voxels | subjects | MAE pooled{unit} | MAE{unit} | MPE pooled [%] | MPE [%] | "
             "bias pooled [%] | bias [%] |", "|" + "---|" * 10]
    dig = _mae_digits(mp)
    for name, res in results.items():
        for group in TISSUE_GROUPS:
            e = (((res or {}).get("tissue") or {}).get(group) or {}).get(mp)
            if not e:
                continue
            lines.append(f"| {name} | {group} | {e.get('n_voxels', 0)} | {e.get('n_subjects', 0)} | "
                         f"{fmt(e.get('mae'), dig)} | {pm(_subj(e, 'mae'), dig)} | {fmt(e.get('mpe_pct'), 1)} | "
                         f"{pm(_subj(e, 'mpe_pct'), 1)} | {fmt(e.get('bias_pct'), 1, signed=True)} | "
                         f"{pm(_subj(e, 'bias_pct'), 1, signed=True)} |")
    return "\n".join(lines)


def whole_table(results: Mapping[str, Mapping[str, Any] | None], maps: Sequence[str] = SCORED_MAPS) -> str:
    """Rows model × map: PSNR / SSIM of the whole brain mask (peak = CSF maximum) and of the whole slice, mean ±
    sd over subjects."""
    lines = ["| model | map | brain-mask PSNR [dB] (peak = CSF max) | brain-mask SSIM | whole-slice PSNR [dB] "
             "| whole-slice SSIM |", "|" + "---|" * 6]
    for name, res in results.items():
        for mp in maps:
            b = ((res or {}).get("brain") or {}).get(mp) or {}
            w = ((res or {}).get("whole_slice") or {}).get(mp) or {}
            lines.append(f"| {name} | {MAP_LABELS[mp]} | {pm(_subj(b, 'psnr_db'))} | {pm(_subj(b, 'ssim'), 3)} | "
                         f"{pm(_subj(w, 'psnr_db'))} | {pm(_subj(w, 'ssim'), 3)} |")
    return "\n".join(lines)


def pd_anchor_note(results: Mapping[str, Mapping[str, Any] | None]) -> str:
    """One sentence per model whose PD could not be anchored on CSF for some subject (the fallback), or a
    sentence saying every subject was anchored."""
    notes = []
    for name, res in results.items():
        a = (res or {}).get("pd_anchor")
        if a and a.get("n_fallback"):
            notes.append(f"{name}: raw PD scored for {a['n_fallback']} of {a['n_fallback'] + a['n_anchored']} "
                         f"subjects (fewer than {a['min_csf_voxels']} core CSF voxels): {', '.join(a['fallback'])}.")
    return " ".join(notes) if notes else "PD anchored on CSF for every subject of every model."
