"""Report of an evaluation: markdown tables, ``results.md``, ``results.json`` and the figures beside them.

Takes the ``results`` dict of :func:`train.evaluation.evaluate.evaluate` (layout in that module's docstring) and
writes it. :func:`format_scenario` renders one scenario with the tables of :mod:`train.evaluation.tables`: the
parenchyma (fixed data range, mean ± sd over subjects), the per-tissue MPE and signed bias, and the whole brain
mask / whole slice labelled as what they are (peak = CSF maximum); ``relaxomap evaluate`` prints it with the
lines of :func:`format_summary`. :func:`write_outputs` writes ``results.json``, ``results.md`` (which adds the
per-map tissue tables with pooled and per-subject MAE, MPE and bias), one montage per kept example and the
curves of each scenario into a folder, atomically. Non-finite numbers are shown as "–" in the tables; the JSON
holds ``null`` for them (``results`` is already sanitised by ``evaluate``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from relaxomap.atomic import atomic_output_dir
from relaxomap.train.evaluation.baselines import ORACLE_NAME
from relaxomap.train.evaluation.curves import CURVE_METRIC_LABELS
from relaxomap.train.evaluation.figures import curves_png, montage_png
from relaxomap.train.evaluation.metrics import MAP_LABELS, SCORED_MAPS
from relaxomap.train.evaluation.results import Evaluation
from relaxomap.train.evaluation.tables import (
    PARENCHYMA_NOTE,
    WHOLE_NOTE,
    fmt,
    parenchyma_table,
    pd_anchor_note,
    tissue_detail_table,
    tissue_table,
    whole_table,
)

__all__ = ["model_results", "format_scenario", "format_summary", "write_outputs"]


def model_results(results: Mapping[str, Any], scenario: str) -> dict[str, Any]:
    """``{model: accumulator result}`` of one scenario (the input of the :mod:`~train.evaluation.tables`)."""
    return {name: e.get("metrics") for name, e in results["scenarios"][scenario]["models"].items()}


def format_scenario(results: Mapping[str, Any], scenario: str, detail: bool = False) -> str:
    """One scenario as markdown: parenchyma table, per-tissue MPE / bias, whole-mask table, PD anchor note and the
    skipped slices; ``detail`` adds one tissue table per map (MAE, MPE, bias; pooled and over subjects)."""
    s = results["scenarios"][scenario]
    res = model_results(results, scenario)
    out = [f"Parenchyma (brain without CSF), {s.get('n_subjects', '–')} subjects:", "", parenchyma_table(res), "",
           PARENCHYMA_NOTE, "", "Per tissue: MPE and signed bias [%], mean ± sd over subjects:", "",
           tissue_table(res), ""]
    if detail:
        for mp in SCORED_MAPS:
            out += [f"{MAP_LABELS[mp]} per tissue, pooled over voxels and mean ± sd over subjects:", "",
                    tissue_detail_table(res, mp), ""]
    out += ["Whole brain mask (peak = CSF maximum) and whole slice:", "", whole_table(res), "", WHOLE_NOTE, "",
            pd_anchor_note(res)]
    skipped = {n: e["n_skipped"] for n, e in s["models"].items() if e.get("n_skipped")}
    if skipped:
        out += ["", "Slices not evaluated: " + ", ".join(f"{n} {k}" for n, k in skipped.items()) + "."]
    return "\n".join(out)


def _markdown(results: Mapping[str, Any], figures: Mapping[str, list[str]]) -> str:
    meta = results["meta"]
    out = ["# relaxomap evaluation", "",
           f"Created {meta['created']} by relaxomap {meta['package_version']}; split `{meta['split']}`, "
           f"max samples {meta['max_samples'] or 'all'}, device `{meta['device']}`.", "", "## Models", "",
           "| name | arch | checkpoint | step |", "|---|---|---|---|"]
    for name, info in results["models"].items():
        out.append(f"| {name} | {info.get('arch')} | {info.get('path') or '–'} | {info.get('step', '–')} |")
    out += ["", "Metrics: `train/evaluation/metrics.py` (every definition is written in its docstring). Subjects, "
            "not slices, are the statistical unit. The NLLS baseline (`nlls`) anchors its unknown gains to the "
            "tissue table (physics/voxel_fit.py) and needs all three contrasts. `oracle-prior` writes the tissue "
            "table's value at the *true* labels: what a network scores if it only segments (its error is the "
            "spread of the tissue values around the table).", ""]
    for scen, s in results["scenarios"].items():
        out += [f"## Scenario `{scen}`", "", f"Store `{s['store']}`, split `{s['split']}`, {s['n_samples']} slices.",
                "", format_scenario(results, scen, detail=True), "", "### Time per slice", "",
                "| model | seconds per slice |", "|---|---|"]
        for name, entry in s["models"].items():
            out.append(f"| {name} | {fmt(entry['seconds_per_slice'], 3)} |")
        out.append("")
        for png in figures.get(scen, []):
            out.append(f"![{png}]({png})")
        out.append("")
    return "\n".join(out)


def format_summary(results: Mapping[str, Any]) -> str:
    """One line per scenario: the model with the lowest parenchyma MPE (mean over subjects) of each map, the
    segmentation-only baseline's value beside it, and the models that skipped slices."""
    lines = ["Summary (lowest parenchyma MPE per scenario and map, mean over subjects; oracle-prior = tissue table "
             "at the true labels):"]
    for scen, s in results["scenarios"].items():
        parts = []
        for mp in ("t1", "t2", "pd_csf"):
            scores = {}
            for name, e in s["models"].items():
                v = (((((e.get("metrics") or {}).get("parenchyma") or {}).get(mp) or {}).get("subjects") or {})
                     .get("mpe_pct") or {}).get("mean")
                if fmt(v) != "–":
                    scores[name] = v
            learned = {k: v for k, v in scores.items() if k != ORACLE_NAME}
            if learned:
                best = min(learned, key=learned.get)
                ref = f" (oracle-prior {scores[ORACLE_NAME]:.1f} %)" if ORACLE_NAME in scores else ""
                parts.append(f"{MAP_LABELS[mp]} {best} {learned[best]:.1f} %{ref}")
        skipped = {n: e["n_skipped"] for n, e in s["models"].items() if e["n_skipped"]}
        note = f"; skipped (missing contrast or no fit): {skipped}" if skipped else ""
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
                metric = CURVE_METRIC_LABELS.get(next(iter(curves.values())).get("metric"), "metric")
                curves_png(tmp / fname, curves, title=f"{scen}: {metric} vs acquisition")
                names.append(fname)
            figures[scen] = names
        (tmp / "results.json").write_text(json.dumps(res, indent=1, allow_nan=False))
        (tmp / "results.md").write_text(_markdown(res, figures))
    return Path(out_dir)
