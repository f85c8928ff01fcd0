"""Report of an evaluation: markdown tables, ``results.md``, ``results.json`` and the figures beside them.

Takes the ``results`` dict of :func:`train.evaluation.evaluate.evaluate` (layout in that module's docstring) and
writes it: :func:`format_main_table` and :func:`format_tissue_table` render one scenario as markdown tables
(also printed by ``relaxomap evaluate``, with the lines of :func:`format_summary`); :func:`write_outputs` writes
``results.json``, ``results.md``, one montage per kept example and the PSNR curves of each scenario into a
folder, atomically. Non-finite numbers are shown as "–" in the tables; the JSON holds ``null`` for them
(``results`` is already sanitised by ``evaluate``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from relaxomap.atomic import atomic_output_dir
from relaxomap.train.evaluation.figures import curves_png, montage_png
from relaxomap.train.evaluation.metrics import MAP_LABELS, MAP_NAMES
from relaxomap.train.evaluation.results import Evaluation

__all__ = ["format_main_table", "format_tissue_table", "format_summary", "write_outputs"]


# ------------------------------------------------------------------------------------------------ tables
_MAE_UNIT = {"t1": "ms", "t2": "ms", "pd": ""}


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _pm(summary: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not summary or summary.get("mean") is None:
        return "–"
    std = summary.get("std")
    return _fmt(summary["mean"], digits) + ("" if std is None else f" ± {_fmt(std, digits)}")


def format_main_table(results: Mapping[str, Any], scenario: str) -> str:
    """Markdown table of one scenario: rows model × map; brain-mask PSNR/SSIM (mean ± std over slices),
    pooled MAE and MPE, PSNR and MPE without CSF, whole-slice PSNR and SSIM."""
    head = ("| model | map | slices | PSNR [dB] | SSIM | MAE | MPE [%] | PSNR no CSF [dB] | MPE no CSF [%] "
            "| PSNR whole [dB] | SSIM whole |")
    lines = [head, "|" + "|".join(["---"] * 11) + "|"]
    for name, entry in results["scenarios"][scenario]["models"].items():
        m, ps = entry["metrics"], entry["per_slice"]
        for mp in MAP_NAMES:
            brain = (m.get("brain") or {}).get(mp, {})
            no_csf = (m.get("brain_no_csf") or {}).get(mp, {})
            whole = (m.get("whole_slice") or {}).get(mp, {})
            unit = _MAE_UNIT[mp]
            mae_txt = _fmt(brain.get("mae"), 1 if unit else 3) + (f" {unit}" if unit and brain.get("mae") is not None
                                                                  else "")
            lines.append(
                f"| {name} | {MAP_LABELS[mp]} | {entry['n_slices']} | {_pm(ps[mp]['psnr_db'])} | "
                f"{_pm(ps[mp]['ssim'], 3)} | {mae_txt} | {_fmt(brain.get('mpe_pct'), 1)} | "
                f"{_fmt(no_csf.get('psnr_db'))} | {_fmt(no_csf.get('mpe_pct'), 1)} | {_fmt(whole.get('psnr_db'))} | "
                f"{_fmt(whole.get('ssim'), 3)} |")
    return "\n".join(lines)


def format_tissue_table(results: Mapping[str, Any], scenario: str) -> str:
    """Markdown table of one scenario per tissue group: MAE [map unit], MPE [%] and bias of each map."""
    head = "| model | tissue | voxels | " + " | ".join(
        f"{MAP_LABELS[m]} MAE{' [' + _MAE_UNIT[m] + ']' if _MAE_UNIT[m] else ''} | {MAP_LABELS[m]} MPE [%] | "
        f"{MAP_LABELS[m]} bias{' [' + _MAE_UNIT[m] + ']' if _MAE_UNIT[m] else ''}" for m in MAP_NAMES) + " |"
    lines = [head, "|" + "|".join(["---"] * (3 + 3 * len(MAP_NAMES))) + "|"]
    for name, entry in results["scenarios"][scenario]["models"].items():
        for tissue, maps in (entry["metrics"].get("tissue") or {}).items():
            cells = []
            for mp in MAP_NAMES:
                d = maps[mp]
                dig = 1 if _MAE_UNIT[mp] else 3
                cells += [_fmt(d.get("mae"), dig), _fmt(d.get("mpe_pct"), 1), _fmt(d.get("bias"), dig)]
            lines.append(f"| {name} | {tissue} | {maps['t1'].get('n_voxels', 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown(results: Mapping[str, Any], figures: Mapping[str, list[str]]) -> str:
    meta = results["meta"]
    out = ["# relaxomap evaluation", "",
           f"Created {meta['created']} by relaxomap {meta['package_version']}; split `{meta['split']}`, "
           f"max samples {meta['max_samples'] or 'all'}, device `{meta['device']}`.", "", "## Models", "",
           "| name | arch | checkpoint | step |", "|---|---|---|---|"]
    for name, info in results["models"].items():
        out.append(f"| {name} | {info.get('arch')} | {info.get('path') or '–'} | {info.get('step', '–')} |")
    out += ["", "Metrics (train/evaluation/metrics.py): PSNR with peak = ground-truth maximum inside the region, SSIM "
            "(Gaussian window 11, σ 1.5 px) averaged over the region; PSNR/SSIM are means ± std over slices, MAE "
            "(map unit) and MPE (mean |error| / truth, %) are pooled over the region's voxels. Region: the brain "
            "mask; 'no CSF' excludes label 1; 'whole' is the unmasked slice (background included). The NLLS "
            "baseline anchors its unknown gains to the tissue table (physics/voxel_fit.py) and needs all three "
            "contrasts.",
            ""]
    for scen, s in results["scenarios"].items():
        out += [f"## Scenario `{scen}`", "", f"Store `{s['store']}`, split `{s['split']}`, {s['n_samples']} slices.",
                "", format_main_table(results, scen), "", "### Per tissue (pooled over voxels)", "",
                format_tissue_table(results, scen), "", "### Time per slice", "",
                "| model | seconds per slice |", "|---|---|"]
        for name, entry in s["models"].items():
            out.append(f"| {name} | {_fmt(entry['seconds_per_slice'], 3)} |")
        out.append("")
        for png in figures.get(scen, []):
            out.append(f"![{png}]({png})")
        out.append("")
    return "\n".join(out)


def format_summary(results: Mapping[str, Any]) -> str:
    """One line per scenario: the model with the best mean brain PSNR [dB] of each map, and the models that
    skipped slices (a missing contrast)."""
    lines = ["Summary (best brain PSNR per scenario and map):"]
    for scen, s in results["scenarios"].items():
        parts = []
        for mp in MAP_NAMES:
            scores = {name: e["per_slice"][mp]["psnr_db"]["mean"] for name, e in s["models"].items()
                      if e["per_slice"][mp]["psnr_db"]["mean"] is not None}
            if scores:
                best = max(scores, key=scores.get)
                parts.append(f"{MAP_LABELS[mp]} {best} {scores[best]:.2f} dB")
        skipped = {n: e["n_skipped"] for n, e in s["models"].items() if e["n_skipped"]}
        note = f"; skipped (missing contrast): {skipped}" if skipped else ""
        lines.append(f"  {scen}: " + ", ".join(parts) + note)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ outputs
def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def write_outputs(evaluation: Evaluation, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``results.md``, ``results.json``, montages and curves into ``out_dir`` atomically.

    The files are written into a temporary sibling folder that is renamed to ``out_dir`` at the end
    (:func:`relaxomap.atomic.atomic_output_dir`): ``out_dir`` is never left half-written. A non-empty existing
    ``out_dir`` is replaced only with ``overwrite``.

    Returns the output folder.
    """
    res = evaluation.results
    figures: dict[str, list[str]] = {}
    with atomic_output_dir(out_dir, overwrite) as tmp:
        for scen in res["scenarios"]:
            names = []
            for k, ex in enumerate(evaluation.examples.get(scen, [])):
                fname = f"montage_{_safe(scen)}_{k}.png"
                montage_png(tmp / fname, ex["inputs"], ex["present"], ex["targets"], ex["mask"], ex["predictions"],
                            title=f"{scen} · sample {ex['index']}")
                names.append(fname)
            curves = res["curves"].get(scen) or {}
            if curves:
                fname = f"curves_{_safe(scen)}.png"
                curves_png(tmp / fname, curves, title=f"{scen}: brain PSNR vs acquisition")
                names.append(fname)
            figures[scen] = names
        (tmp / "results.json").write_text(json.dumps(res, indent=1, allow_nan=False))
        (tmp / "results.md").write_text(_markdown(res, figures))
    return Path(out_dir)
