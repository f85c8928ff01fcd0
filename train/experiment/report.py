"""The ablation's JSON-able report (:func:`build_report`): configuration, variants with their training logs,
per-scenario metrics of every model (the accumulator results of the evaluations: per tissue, per subject),
subject-level paired comparisons against the reference, the targets and, for a missed target, what this run
measured about it. The markdown page is rendered from it by :mod:`train.experiment.page`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap import __version__
from relaxomap.train.evaluation.metrics import MAP_UNITS
from relaxomap.train.evaluation.results import json_safe
from relaxomap.train.experiment.config import NLLS, ORACLE, REFERENCE, VARIANTS, ExperimentConfig, Scenario
from relaxomap.train.experiment.floors import compute_floors, row_floor
from relaxomap.train.experiment.stats import (
    PAIRED_COMPARISONS,
    PAIRED_MAPS,
    best_by_validation,
    check_targets,
    compare_subjects,
    is_finite_number,
    nested_get,
    oracle_value,
    paired_subjects,
    subject_mean,
)

__all__ = ["build_report", "scenario_entries", "target_rows"]


#: The shipped default model (train/clinical/default_model/MODEL_CARD.md): crops seen in training, quoted on the
#: page to put a short budget in perspective.
_SHIPPED_SAMPLES = 3817 * 24


def _training_log(run: Path) -> dict[str, Any]:
    """Median seconds per step and the validation curve of a run (from its ``metrics.jsonl``)."""
    rates, vals = [], []
    log = run / "metrics.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            rec = json.loads(line) if line.strip() else {}
            if rec.get("kind") == "train" and is_finite_number(rec.get("samples_per_s")):
                rates.append(float(rec["samples_per_s"]))
            elif rec.get("kind") == "val" and is_finite_number(rec.get("val_masked_l1")):
                vals.append((int(rec["step"]), float(rec["val_masked_l1"])))
    return {"samples_per_s": float(np.median(rates)) if rates else None, "val_curve": vals}


def _val_trend(curve: Sequence[tuple[int, float]]) -> float | None:
    """Relative change of the validation loss over the second half of the run (negative: still falling)."""
    if len(curve) < 2:
        return None
    last_step = curve[-1][0]
    mid = min(curve, key=lambda sv: abs(sv[0] - last_step / 2))
    return None if mid[0] == last_step or mid[1] == 0 else (curve[-1][1] - mid[1]) / mid[1]


def build_report(config: ExperimentConfig, scens: Sequence[Scenario], summaries: Mapping[str, Mapping[str, Any]],
                 evaluations: Mapping[str, Mapping[str, Any]], *, out: Path, source_note: str,
                 stages: Mapping[str, Any], device: str, estimate: Mapping[str, float], seconds: float,
                 command: str = "") -> dict[str, Any]:
    """The JSON-able report: configuration, variants, per-scenario summaries, paired tests, targets, timing."""
    variants = {}
    for v in VARIANTS:
        s = dict(summaries.get(v.name) or {})
        log = _training_log(out / "runs" / v.name)
        rate = log["samples_per_s"]
        variants[v.name] = {
            "label": v.label, "arch": v.arch, "physics_weight": config.physics_weight if v.physics else 0.0,
            "parameters": s.get("parameters"), "step": s.get("step"), "best_val": s.get("best_val"),
            "last_val": s.get("last_val"), "seconds_last_call": s.get("seconds"), "error": s.get("error"),
            "seconds_per_step": config.batch_size / rate if rate else None, "val_curve": log["val_curve"],
            "val_trend_second_half": _val_trend(log["val_curve"]), "device": s.get("device")}
    models = [v.name for v in VARIANTS] + [NLLS, ORACLE]
    scen_out = scenario_entries(config, scens, evaluations, models)
    tests = {name: _paired(e["metrics"], models) for name, e in scen_out.items() if "metrics" in e}
    report = {
        "format": "relaxomap-ablation", "format_version": 2,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": __version__,
        "command": command, "device": device, "config": config.to_dict(), "training_source": source_note,
        "seeds": {"train": config.synth_seed, "val": config.synth_seed + 1, "training": config.seed},
        "reference": REFERENCE, "variants": variants, "scenarios": scen_out, "paired_tests": tests,
        "stages": dict(stages), "estimate_seconds": dict(estimate), "seconds": seconds, "work_folder": str(out),
    }
    report["best_variant"] = best_by_validation(variants)
    report["floors"] = compute_floors()
    report["targets"] = target_rows(scen_out, REFERENCE, report["floors"])
    missed = any(row["met"] is False for row in report["targets"])
    report["why_missed"] = _common_reasons(report, config) if missed else []
    return json_safe(report)


def scenario_entries(config: ExperimentConfig, scens: Sequence[Scenario], evaluations: Mapping[str, Mapping[str, Any]],
                     models: Sequence[str]) -> dict[str, Any]:
    """Per scenario: description, note, seed, store size and, when evaluated (``evaluations[name]``: an
    evaluation's results holding that scenario), the models' accumulator results (``metrics``), the numbers
    of slices and subjects and the slices each model skipped, with the reasons."""
    scen_out: dict[str, Any] = {}
    for sc in scens:
        entry: dict[str, Any] = {"description": sc.description, "note": sc.note,
                                 "seed": None if sc.synth is None else sc.synth.seed,
                                 "n_store": config.n_scenario if sc.synth is not None else 0}
        ev = evaluations.get(sc.name)
        scen_out[sc.name] = entry
        if ev is None:
            continue
        res = ev["scenarios"][sc.name]
        records = ev["samples"][sc.name]
        entry.update(store=res["store"], n_evaluated=res["n_samples"], n_subjects=res.get("n_subjects"),
                     metrics={}, skipped={})
        for m in models:
            if m not in res["models"]:
                continue
            r = res["models"][m]
            entry["metrics"][m] = r["metrics"]
            if r["n_skipped"]:
                reasons = sorted({rec.get("skipped", {}).get(m, "") for rec in records} - {""})
                entry["skipped"][m] = {"n": r["n_skipped"], "of": res["n_samples"], "reasons": reasons}
    return scen_out


def target_rows(scen: Mapping[str, Any], reference: str, floors: Mapping[str, Any],
                healthy_only_training: bool = True) -> list[dict[str, Any]]:
    """The target rows of :func:`~train.experiment.stats.check_targets` on model ``reference``, each with the
    oracle prior's value of the same quantity (``oracle``), the floor the inputs allow (``floor``, from
    :func:`train.experiment.floors.compute_floors` output ``floors``) and, for a missed target, what the run
    measured about it (``why``; ``healthy_only_training``: the reference never saw lesions)."""
    rows = check_targets(scen, reference)
    context = {"scenarios": scen, "reference": reference, "healthy_only_training": healthy_only_training}
    for row in rows:
        row["oracle"] = oracle_value(scen, row)
        row["floor"] = row_floor(floors, row)
        row["why"] = None if row["met"] is not False else _specific_reason(row, context)
    return rows


def _paired(metrics: Mapping[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """Subject-level comparisons of every other model with the reference on one scenario:
    ``{other: {map: {"region/metric": compare_subjects(...) + {"subjects": [...]}}}}``."""
    out: dict[str, Any] = {}
    ref = metrics.get(REFERENCE)
    if ref is None:
        return out
    for m in models:
        if m == REFERENCE or m not in metrics:
            continue
        out[m] = {}
        for mp in PAIRED_MAPS:
            out[m][mp] = {}
            for region, metric in PAIRED_COMPARISONS:
                ids, a, b = paired_subjects(ref, metrics[m], region, mp, metric)
                out[m][mp][f"{region}/{metric}"] = dict(compare_subjects(a, b), subjects=ids)
    return out


def _common_reasons(report: Mapping[str, Any], config: ExperimentConfig) -> list[str]:
    """Facts of this run that bear on every missed target: size, training budget, validation trend."""
    seen = config.steps * config.batch_size
    parts = []
    if config.label.startswith("quick"):
        parts.append("smoke size (--quick): a tiny network trained for a few steps; no target is expected")
    parts.append(f"training budget: {config.steps} steps × {config.batch_size} crops"
                 + (f" of {config.patch}² px" if config.patch else "") + f" = {seen:,} samples per variant, "
                 f"{100 * seen / _SHIPPED_SAMPLES:.0f} % of the shipped default model's 3817 × 24 (MODEL_CARD.md)")
    trend = report["variants"][REFERENCE].get("val_trend_second_half")
    if trend is not None:
        parts.append(f"the reference's validation loss changed by {100 * trend:+.1f} % over the second half of "
                     "training" + (" — still falling, so more steps should help" if trend < -0.02 else
                                   " — nearly flat, so more steps alone are unlikely to close the gap"))
    return parts


def _specific_reason(row: Mapping[str, Any], report: Mapping[str, Any]) -> str | None:
    """What this run measured about one missed target beyond the common reasons: the segmentation-only baseline's
    value of the same quantity (a network that does not beat it has not measured the tissue) and the
    reference's mean truth and prediction there."""
    scen = report["scenarios"]
    ref = nested_get(scen, row["scenario"], "metrics", report.get("reference", REFERENCE))
    oracle = oracle_value(scen, row)
    region, mp = row["region"], row["map"]
    path = (region,) if region == "parenchyma" else ("tissue", region)
    true, pred = (nested_get(ref, *path, mp, k) for k in ("mean_true", "mean_pred"))
    parts = []
    if is_finite_number(oracle):
        if row["kind"] == "bias":
            what, beat = f"signed bias {oracle:+.1f} %", abs(row["value"]) < abs(oracle)
        else:
            what, beat = f"MPE {oracle:.1f} %", row["value"] < oracle
        parts.append(f"the oracle prior (tissue table at the true labels) has {what}, and the reference "
                     + ("beats it" if beat else "does not beat it"))
    if is_finite_number(true) and is_finite_number(pred):
        unit = MAP_UNITS[mp].split(" ")[0]
        unit = "" if unit == "1" else f" {unit}"
        parts.append(f"mean truth {true:.4g}{unit}, mean prediction {pred:.4g}{unit} (pooled over voxels)")
    bias = subject_mean(ref, region, mp, "bias_pct")
    if row["kind"] != "bias" and is_finite_number(bias):
        parts.append(f"signed bias {bias:+.1f} %")
    if row["kind"] == "lesion" and report.get("healthy_only_training", True):
        parts.insert(0, "lesions are absent from the healthy-only training data (the point of this scenario)")
    return "; ".join(parts) or None
