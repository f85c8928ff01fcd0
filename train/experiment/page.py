"""The ablation's results page: the markdown rendering (:func:`render_page`) of the report built by
:func:`train.experiment.report.build_report`, the files written beside it (:func:`write_report`: page,
``<stem>.json``, ``<stem>_figures/``, each written atomically) and the terminal summary (:func:`format_summary`).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from relaxomap.atomic import atomic_output_dir, atomic_write_text
from relaxomap.train.evaluation.metrics import MAP_LABELS, MAP_NAMES
from relaxomap.train.evaluation.report import format_tissue_table
from relaxomap.train.experiment.config import NLLS
from relaxomap.train.experiment.stats import is_finite_number

__all__ = ["render_page", "write_report", "copy_figures", "format_summary"]


def copy_figures(folders: dict[str, Path], dest: Path) -> dict[str, list[str]]:
    """Copy each evaluation folder's PNGs (montages, curves) into ``dest``; returns ``{scenario: [file names]}``."""
    names: dict[str, list[str]] = {}
    dest.mkdir(parents=True, exist_ok=True)
    for scen, folder in folders.items():
        names[scen] = []
        for png in sorted(Path(folder).glob("*.png")):
            shutil.copy2(png, dest / png.name)
            names[scen].append(png.name)
    return names


# ------------------------------------------------------------------------------------------------ page
def _f(v: Any, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if is_finite_number(v) else "–"


def _pm(s: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not s or not is_finite_number(s.get("mean")):
        return "–"
    return _f(s["mean"], digits) + (f" ± {_f(s['std'], digits)}" if is_finite_number(s.get("std")) else "")


def _p(v: Any) -> str:
    return "–" if not is_finite_number(v) else (f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}")


def _hours(seconds: Any) -> str:
    if not is_finite_number(seconds):
        return "–"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def _names(report: Mapping[str, Any]) -> dict[str, str]:
    return {**{k: v["label"] for k, v in report["variants"].items()}, NLLS: "NLLS fit"}


def _scenario_section(name: str, s: Mapping[str, Any], names: Mapping[str, str], figures: Sequence[str],
                      fig_dir: str) -> list[str]:
    out = [f"### `{name}`", "", s["description"] + ".", ""]
    if "summary" not in s:
        return out + [f"**Not evaluated** — {s.get('note') or 'no store'}.", ""]
    n_sub = max((e["t1"]["psnr_db"]["n_subjects"] for e in s["summary"].values()), default=0)
    out += [f"{s['n_evaluated']} of {s['n_store']} slices evaluated, {n_sub} subjects; mean ± std over subjects.",
            "", "| model | map | PSNR [dB] | SSIM | MAE | MPE [%] | PSNR no CSF [dB] | MPE no CSF [%] | "
            "PSNR whole [dB] | SSIM whole |", "|" + "---|" * 10]
    for m, maps in s["summary"].items():
        for mp in MAP_NAMES:
            e = maps[mp]
            unit = " ms" if mp != "pd" else ""
            mae = _pm(e["mae"], 1 if unit else 3) + (unit if is_finite_number(e["mae"]["mean"]) else "")
            out.append(f"| {names.get(m, m)} | {MAP_LABELS[mp]} | {_pm(e['psnr_db'])} | {_pm(e['ssim'], 3)} | {mae} "
                       f"| {_pm(e['mpe_pct'], 1)} | {_pm(e['psnr_no_csf_db'])} | {_pm(e['mpe_no_csf_pct'], 1)} | "
                       f"{_pm(e['psnr_whole_db'])} | {_f(s['whole_ssim'][m][mp], 3)} |")
    for m, sk in s.get("skipped", {}).items():
        why = "; ".join(sk["reasons"]) or "no reason recorded"
        out += ["", f"{names.get(m, m)}: {sk['n']} of {sk['of']} slices not evaluated ({why})."]
    by_label = {names.get(m, m): {"metrics": {"tissue": t}} for m, t in s["tissue"].items()}
    fake = {"scenarios": {name: {"models": by_label}}}  # the layout format_tissue_table reads
    out += ["", "Per tissue (pooled over the voxels of all evaluated slices):", "",
            format_tissue_table(fake, name), ""]
    out += [f"![{png}]({fig_dir}/{png})" for png in figures] + [""]
    return out


def _header_lines(report: Mapping[str, Any], quick: bool) -> list[str]:
    lines = ["# relaxomap ablation: physics loss, parameter embedding and baselines", ""]
    if quick:
        lines += ["> **Smoke-size run (`--quick`)**: tiny stores, a tiny network and a few steps. It checks that the "
                  "pipeline runs; its numbers mean nothing.", ""]
    est = report["estimate_seconds"].get("total")
    used = sorted({v["device"] for v in report["variants"].values() if v.get("device")})
    device = report["device"] + (f" ({', '.join(used)})" if used and used != [report["device"]] else "")
    whole = _stage_seconds(report)
    resumed = any(v["status"] != "done" for k, v in report["stages"].items() if k != "report")
    return lines + [
        f"Created {report['created']} by relaxomap {report['package_version']} with `{report['command']}` "
        f"on device `{device}`; this call took {_hours(report['seconds'])}"
        + (f", the whole experiment over all its calls {_hours(whole)}" if resumed and whole is not None else "")
        + ("" if quick else f" (estimate for the whole experiment on a 2-core CPU from rates measured there: "
                            f"{_hours(est)})") + f". Work folder: `{report['work_folder']}`.",
        "", "## Set-up", ""]


def _setup_lines(report: Mapping[str, Any]) -> list[str]:
    cfg = report["config"]
    patch = f"crops of {cfg['patch']}² px" if cfg["patch"] else "whole slices"
    return [
        f"- **Training data** (one store for every variant): {cfg['n_train']} axial slices of "
        f"{cfg['image_size']}² px, "
        f"{cfg['train_slices_per_subject']} per head, seed {report['seeds']['train']}; the shipped model's recipe "
        "(`train/clinical/default_model/synth_train.json`: EPG forward model, fields 1.5 and 3 T, clinical "
        "protocol ranges, FLAIR missing in 10 %) with **healthy heads only**; heads: "
        + report["training_source"] + ".",
        f"- **Validation** (checkpoint selection only): a second store of {cfg['n_val']} slices from the same "
        f"recipe, seed {report['seeds']['val']}. Test stores are never used for selection or tuning.",
        f"- **Budget** (same for every variant): {cfg['steps']} steps × {cfg['batch_size']} {patch}, AdamW peak lr "
        f"{cfg['lr']:g} (linear warm-up over {100 * cfg['warmup_fraction']:g} % of the steps, cosine decay), EMA "
        f"{cfg['ema_decay']:g}, training seed {report['seeds']['training']}; physics-consistency weight "
        f"{cfg['physics_weight']:g} reached after {100 * cfg['physics_ramp_fraction']:g} % of the steps. "
        "Evaluated: the EMA weights of `best.pt` (lowest validation loss).",
        f"- **Evaluation**: {cfg['max_eval_slices']} evenly spaced whole slices of each {cfg['n_scenario']}-slice "
        "scenario store (`train.evaluation.evaluate`). Masked = brain mask; PSNR peak = maximum of the truth in "
        "the region; MPE = mean |error| / truth; 'whole' = the unmasked slice (MAE / MPE are masked only: the "
        "background truth is 0). Table values are the mean ± sample std over test subjects of each subject's mean "
        "over its slices (SSIM whole: mean over slices).", ""]


def _variant_and_scenario_tables(report: Mapping[str, Any]) -> list[str]:
    lines = ["| variant | architecture | physics weight | parameters | steps | s / step | best validation L1 "
             "| status |",
             "|---|---|---|---|---|---|---|---|"]
    for k, v in report["variants"].items():
        status = f"failed: {v['error']}" if v.get("error") else "trained"
        params = f"{v['parameters']:,}" if v.get("parameters") else "–"
        lines.append(f"| {v['label']} (`{k}`) | `{v['arch']}` | {v['physics_weight']:g} | {params} | "
                     f"{v.get('step') or '–'} | {_f(v.get('seconds_per_step'))} | {_f(v.get('best_val'), 4)} | "
                     f"{status} |")
    lines += ["| NLLS fit (`nlls`): voxel-wise least squares, `physics/voxel_fit.py` "
              "| – | – | – | – | – | – | needs all three contrasts |",
              "", "| scenario | what it tests | seed | slices | evaluated |", "|---|---|---|---|---|"]
    for k, s in report["scenarios"].items():
        lines.append(f"| `{k}` | {s['description']}{' — ' + s['note'] if s.get('note') else ''} | "
                     f"{s['seed'] if s['seed'] is not None else '–'} | {s['n_store'] or '–'} | "
                     f"{s.get('n_evaluated', '–')} |")
    return lines


def _target_lines(report: Mapping[str, Any]) -> list[str]:
    lines = ["", "## Targets", "",
             f"Checked on the reference (`{report['reference']}`); thresholds fixed in advance, nothing tuned on "
             "test stores.", "", "| scenario | target | value | threshold | met |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        met = "–" if t["met"] is None else ("**yes**" if t["met"] else "**no**")
        lines.append(f"| `{t['scenario']}` | {t['target']} | {_f(t['value'])} | {t['op']} {t['threshold']:g} | {met} |")
    if report["why_missed"]:
        lines += ["", "Why targets were missed — this run's facts:", ""]
        lines += [f"- {text}." for text in report["why_missed"]]
        lines += [f"- `{t['scenario']}` {t['target']}: {t['why']}." for t in report["targets"] if t.get("why")]
    return lines


def _timing_lines(report: Mapping[str, Any]) -> list[str]:
    lines = ["## Timing", "", "| stage | this call | seconds (this call) | seconds (when done) |", "|---|---|---|---|"]
    for k, v in report["stages"].items():
        when = v["seconds"] if v["status"] == "done" else v.get("earlier_seconds")
        lines.append(f"| {k} | {v['status']} | {v['seconds']:.1f} | {_f(when, 1)} |")
    est = report["estimate_seconds"]
    groups = (("stores", "store "), ("training", "train "), ("evaluation", "evaluate "))
    whole = {k: _stage_seconds(report, prefix) for k, prefix in groups}
    per_group = ", ".join(f"{k} {_hours(whole[k])} / {_hours(_stage_seconds(report, prefix, this_call=True))} / "
                          f"{_hours(est.get(k))}" for k, prefix in groups)
    return lines + [
        "", "'When done' is the time of the call that did the stage (kept in the work folder's "
        "`stage_times.json`, so a resumed run still reports the whole experiment; – where that record is "
        "missing). Whole experiment / this call / estimate for a whole run on a 2-core CPU: " + per_group + ".",
        "", "## Reproduce", "", "From nothing (add `--resume` to continue an interrupted run):", "",
        "```bash", " ".join(w for w in report["command"].split() if w != "--resume"), "```", ""]


def render_page(report: Mapping[str, Any], figures: Mapping[str, Sequence[str]], fig_dir: str) -> str:
    """The markdown results page of a report (figures linked from ``fig_dir``, relative to the page)."""
    names = _names(report)
    lines = _header_lines(report, report["config"]["label"].startswith("quick"))
    lines += _setup_lines(report) + _variant_and_scenario_tables(report)
    lines += _best_variant_lines(report, names) + _target_lines(report)
    lines += ["", "## Results per scenario", ""]
    fig_names = dict(figures)
    for k, s in report["scenarios"].items():
        lines += _scenario_section(k, s, names, fig_names.get(k, []), fig_dir)
    lines += _paired_section(report, names) + _timing_lines(report)
    return "\n".join(lines)


def _stage_seconds(report: Mapping[str, Any], prefix: str = "", this_call: bool = False) -> float | None:
    """Summed wall time [s] of the pipeline stages named ``prefix...``: each from the call that did it (None if
    one is unknown) or, with ``this_call``, only the stages this call did."""
    vals = [v["seconds"] if v["status"] == "done" else (None if this_call else v.get("earlier_seconds"))
            for k, v in report["stages"].items() if k != "report" and k.startswith(prefix)]
    if this_call:
        return float(sum(x for x in vals if x is not None))
    return None if any(x is None for x in vals) else float(sum(vals))


def _best_variant_lines(report: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    """Which variant the validation loss selects, and whether it is the reference (the shipped model's recipe)."""
    best, ref = report.get("best_variant"), report["reference"]
    if best is None:
        return ["", "**Best variant**: none (no variant finished training with a finite validation loss)."]
    vals = {k: v.get("best_val") for k, v in report["variants"].items()}
    text = (f"**Best variant** by the selection criterion fixed in advance — lowest validation masked L1, on the "
            f"validation store, never a test store: {names.get(best, best)} (`{best}`, {_f(vals[best], 4)}).")
    if best == ref:
        text += " It is the reference, the recipe of the shipped default model (`train/clinical/default_model/`)."
    else:
        text += (f" The reference {names.get(ref, ref)}, the recipe of the shipped default model, has "
                 f"{_f(vals.get(ref), 4)} ({100 * (vals[ref] / vals[best] - 1):+.1f} %); the paired tests below say "
                 "whether the test-set differences between the two are beyond chance.")
    return ["", text]


def _paired_section(report: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    tests = report["paired_tests"]
    k = sum(1 for per in tests.values() for maps in per.values() for mets in maps.values() for t in mets.values()
            if is_finite_number(t["p_value"]))
    ref = names.get(report["reference"], report["reference"])
    out = ["## Paired comparisons", "",
           f"Each variant against the reference ({ref}), paired by slice: two-sided **Wilcoxon signed-rank test** "
           "(`scipy.stats.wilcoxon` defaults: zero differences dropped; exact null distribution for small samples "
           "without ties, else the normal approximation) on the per-slice masked PSNR and MPE. Δ = reference − "
           "other, median over the paired slices (positive ΔPSNR and negative ΔMPE favour the reference). "
           f"p-values are not corrected for the {k} tests on this page (Bonferroni level: 0.05 / {max(k, 1)} = "
           f"{0.05 / max(k, 1):.2g}); with n slices no two-sided exact p-value falls below 2 / 2ⁿ.", "",
           "| scenario | other | map | n | median ΔPSNR [dB] | p | median ΔMPE [%] | p |",
           "|---|---|---|---|---|---|---|---|"]
    for scen, per in tests.items():
        for other, maps in per.items():
            for mp, mets in maps.items():
                a, b = mets["psnr_db"], mets["mpe_pct"]
                out.append(f"| `{scen}` | {names.get(other, other)} | {MAP_LABELS[mp]} | {a['n']} | "
                           f"{_f(a['median_diff'])} | {_p(a['p_value'])} | {_f(b['median_diff'])} | "
                           f"{_p(b['p_value'])} |")
    return out + [""]


def write_report(report: Mapping[str, Any], results: str | os.PathLike,
                 eval_folders: Mapping[str, Path]) -> Path:
    """Write the page ``results``, its JSON twin ``<stem>.json`` and the figures folder ``<stem>_figures/``.

    Each is replaced atomically (the figures folder by renaming a complete temporary one), figures first so
    the page never links to a missing file.
    """
    results = Path(results)
    fig_dir = results.with_name(f"{results.stem}_figures")
    with atomic_output_dir(fig_dir, overwrite=True) as tmp:
        figures = copy_figures(dict(eval_folders), tmp)
    atomic_write_text(results.with_suffix(".json"), json.dumps(report, indent=1, allow_nan=False) + "\n")
    atomic_write_text(results, render_page(report, figures, fig_dir.name))
    return results


def format_summary(report: Mapping[str, Any]) -> str:
    """Terminal summary of a report: the reference's masked PSNR per scenario, then every target and whether it
    was met."""
    lines = []
    ref_name = report["reference"]
    for scen, s in report["scenarios"].items():
        ref = (s.get("summary") or {}).get(ref_name)
        if ref is None:
            lines.append(f"  {scen}: not evaluated ({s.get('note') or 'no store'})")
            continue
        psnr = " / ".join(f"{ref[m]['psnr_db']['mean']:.1f}" if ref[m]["psnr_db"]["mean"] is not None else "–"
                          for m in MAP_NAMES)
        lines.append(f"  {scen}: {ref_name} masked PSNR T1 / T2 / PD {psnr} dB")
    targets = report["targets"]
    met = [t for t in targets if t["met"]]
    missed = [t for t in targets if t["met"] is False]
    lines.append(f"Targets: {len(met)} met, {len(missed)} missed, {len(targets) - len(met) - len(missed)} not checked")
    for t in targets:
        state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        value = "–" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"  {t['scenario']}: {t['target']} = {value} ({t['op']} {t['threshold']:g}): {state}")
    return "\n".join(lines)
