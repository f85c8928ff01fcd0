"""The ablation's JSON-able report (:func:`build_report`): configuration, variants with their training logs,
per-scenario summaries over subjects, paired tests against the reference, the targets and, for a missed
target, what this run measured about it. The markdown page is rendered from it by :mod:`train.experiment.page`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap import __version__
from relaxomap.train.evaluation.metrics import MAP_NAMES
from relaxomap.train.evaluation.records import RECORD_METRICS
from relaxomap.train.evaluation.results import json_safe
from relaxomap.train.experiment.config import NLLS, REFERENCE, VARIANTS, ExperimentConfig, Scenario
from relaxomap.train.experiment.stats import (
    PAIRED_METRICS,
    best_by_validation,
    check_targets,
    is_finite_number,
    nested_get,
    paired_test,
    paired_values,
    subject_summary,
)

__all__ = ["build_report"]


#: The shipped default model (train/clinical/default_model/MODEL_CARD.md): crops seen in training and its masked
#: internal-test PSNR [dB] (T1, T2, PD), quoted on the page to put a short budget in perspective.
_SHIPPED_SAMPLES = 3817 * 24
_SHIPPED_PSNR_DB = (30.3, 23.7, 29.6)


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
    models = [v.name for v in VARIANTS] + [NLLS]
    scen_out: dict[str, Any] = {}
    tests: dict[str, Any] = {}
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
        entry.update(store=res["store"], n_evaluated=res["n_samples"], summary={}, whole_ssim={}, tissue={},
                     skipped={})
        for m in models:
            if m not in res["models"]:
                continue
            r = res["models"][m]
            entry["summary"][m] = {mp: {k: subject_summary(records, m, mp, k) for k in RECORD_METRICS}
                                   for mp in MAP_NAMES}
            entry["whole_ssim"][m] = {mp: nested_get(r, "metrics", "whole_slice", mp, "ssim") for mp in MAP_NAMES}
            entry["tissue"][m] = nested_get(r, "metrics", "tissue") or {}
            if r["n_skipped"]:
                reasons = sorted({rec.get("skipped", {}).get(m, "") for rec in records} - {""})
                entry["skipped"][m] = {"n": r["n_skipped"], "of": res["n_samples"], "reasons": reasons}
        tests[sc.name] = {}
        for m in models[1:]:
            if m not in res["models"] or REFERENCE not in res["models"]:
                continue
            tests[sc.name][m] = {mp: {k: paired_test(*paired_values(records, REFERENCE, m, mp, k))
                                      for k in PAIRED_METRICS} for mp in MAP_NAMES}
    report = {
        "format": "relaxomap-ablation", "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": __version__,
        "command": command, "device": device, "config": config.to_dict(), "training_source": source_note,
        "seeds": {"train": config.synth_seed, "val": config.synth_seed + 1, "training": config.seed},
        "reference": REFERENCE, "variants": variants, "scenarios": scen_out, "paired_tests": tests,
        "stages": dict(stages), "estimate_seconds": dict(estimate), "seconds": seconds, "work_folder": str(out),
    }
    report["best_variant"] = best_by_validation(variants)
    report["targets"] = check_targets(scen_out)
    for row in report["targets"]:
        row["why"] = None if row["met"] is not False else _specific_reason(row, report)
    missed = any(row["met"] is False for row in report["targets"])
    report["why_missed"] = _common_reasons(report, config) if missed else []
    return json_safe(report)


def _common_reasons(report: Mapping[str, Any], config: ExperimentConfig) -> list[str]:
    """Facts of this run that bear on every missed target: size, training budget, validation trend."""
    seen = config.steps * config.batch_size
    parts = []
    if config.label.startswith("quick"):
        parts.append("smoke size (--quick): a tiny network trained for a few steps; no target is expected")
    parts.append(f"training budget: {config.steps} steps × {config.batch_size} crops"
                 + (f" of {config.patch}² px" if config.patch else "") + f" = {seen:,} samples per variant, "
                 f"{100 * seen / _SHIPPED_SAMPLES:.0f} % of the shipped default model's 3817 × 24 — and that model "
                 f"reaches {' / '.join(f'{v:g}' for v in _SHIPPED_PSNR_DB)} dB masked T1 / T2 / PD PSNR on its own "
                 "internal test (MODEL_CARD.md)")
    trend = report["variants"][REFERENCE].get("val_trend_second_half")
    if trend is not None:
        parts.append(f"the reference's validation loss changed by {100 * trend:+.1f} % over the second half of "
                     "training" + (" — still falling, so more steps should help" if trend < -0.02 else
                                   " — nearly flat, so more steps alone are unlikely to close the gap"))
    return parts


def _specific_reason(row: Mapping[str, Any], report: Mapping[str, Any]) -> str | None:
    """What this run measured about one missed target beyond the common reasons."""
    scen = report["scenarios"]
    mp = row["map"]

    def psnr(scenario: str, model: str) -> Any:
        return nested_get(scen, scenario, "summary", model, mp, "psnr_db", "mean")

    if row["kind"] == "psnr" and is_finite_number(row["value"]):
        # PSNR = 20 log10(peak / RMSE): a PSNR target is an RMS error relative to the region's peak.
        need, got = 100 * 10 ** (-row["threshold"] / 20), 100 * 10 ** (-row["value"] / 20)
        mpe = nested_get(scen, row["scenario"], "summary", REFERENCE, mp, "mpe_pct", "mean")
        mpe_nc = nested_get(scen, row["scenario"], "summary", REFERENCE, mp, "mpe_no_csf_pct", "mean")
        text = (f"{row['threshold']:g} dB means an RMS error of {need:.2f} % of the brain's peak value (in CSF); "
                f"this run's is {got:.1f} %")
        if is_finite_number(mpe) and is_finite_number(mpe_nc):
            text += f" (mean error {mpe:.1f} % of the truth, {mpe_nc:.1f} % without CSF)"
        return text
    if row["kind"] == "lesion":
        bias = nested_get(scen, "lesions", "tissue", REFERENCE, "lesion", mp, "bias")
        return ("lesions are absent from the healthy-only training data (the point of this scenario)"
                + (f"; mean signed error in lesions {bias:+.1f} ms" if is_finite_number(bias) else ""))
    if row["kind"] == "oor":
        ref_in, ref_out = psnr("internal_test", REFERENCE), psnr("out_of_range", REFERENCE)
        unet_in, unet_out = psnr("internal_test", "unet"), psnr("out_of_range", "unet")
        if not all(is_finite_number(v) for v in (ref_in, ref_out, unet_in, unet_out)):
            return "every protocol of this scenario lies outside the training ranges"
        outs = {v.name: psnr("out_of_range", v.name) for v in VARIANTS}
        best = max((k for k, v in outs.items() if is_finite_number(v)), key=lambda k: outs[k])
        return (f"from the internal test to these protocols (all outside the training ranges) the reference falls "
                f"{ref_in - ref_out:.1f} dB ({ref_in:.1f} → {ref_out:.1f}) and the plain U-Net, which never sees "
                f"TR / TE / TI, {unet_in - unet_out:.1f} dB; the embedding maps TR / TE / TI through an MLP fitted "
                "only inside the training ranges, so nothing makes it extrapolate; best here: "
                f"`{best}` ({outs[best]:.1f} dB)")
    return None
