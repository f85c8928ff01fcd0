"""``relaxomap experiment ablation``: the --quick run end to end (interrupted, resumed, resumed again), the
paired-test and aggregation helpers against SciPy / NumPy, the targets, and the experiment's configurations."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.train.cli import main
from relaxomap.train.experiment.config import (
    NLLS,
    ORACLE,
    REFERENCE,
    VARIANTS,
    ExperimentConfig,
    scenarios,
    training_synth_config,
    variant_train_config,
)
from relaxomap.train.experiment.stats import (
    best_by_validation,
    check_targets,
    compare_subjects,
    paired_subjects,
    paired_test,
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SCENARIOS = ("internal_test", "lesions", "out_of_range", "snr_5_12", "snr_80_150", "real_subject47",
              "missing_flair", "shifted_values", "shifted_subject47", "oedema_pd")


class _Interrupted(Exception):
    """Stands in for a kill during training."""


def _mtimes(out: Path) -> dict[str, int]:
    """Modification times [ns] of every stage output (stores, runs, evaluations)."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for sub in ("stores", "runs", "eval")
            for p in sorted((out / sub).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``experiment ablation --quick`` killed after 2 training steps of the first variant, then resumed.

    ``train.trainer.train`` is wrapped so that its first call stops after 2 steps (writing ``last.pt``) and
    raises; every call's ``(out, resume)`` is recorded.
    """
    import relaxomap.train.trainer as trainer

    out = tmp_path_factory.mktemp("ablation") / "work"
    page = out.parent / "page" / "results.md"
    args = ["experiment", "ablation", "--quick", "--out", str(out), "--results", str(page), "--device", "cpu"]
    real_train, calls = trainer.train, []

    def flaky_train(config: Any, resume: bool = False, **kw: Any) -> Any:
        calls.append((Path(config.out).name, resume))
        if len(calls) == 1:
            real_train(config, resume, stop_after=2)
            raise _Interrupted("killed during training")
        return real_train(config, resume, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "train", flaky_train)
        first = CliRunner().invoke(main, args)
        stores_after_kill = _mtimes(out)
        second = CliRunner().invoke(main, args + ["--resume"])
    return {"out": out, "page": page, "args": args, "first": first, "second": second, "calls": calls,
            "stores_after_kill": stores_after_kill}


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_quick_run_resumes_after_a_kill_during_training(quick_run: dict[str, Any]) -> None:
    first, second, calls, out = quick_run["first"], quick_run["second"], quick_run["calls"], quick_run["out"]
    assert isinstance(first.exception, _Interrupted), first.output
    assert second.exit_code == 0, second.output
    # the killed variant continued from its last.pt; the others started fresh, once each
    assert calls[0] == (VARIANTS[0].name, False) and calls[1] == (VARIANTS[0].name, True)
    assert calls[2:] == [(v.name, False) for v in VARIANTS[1:]]
    for v in VARIANTS:
        assert json.loads((out / "runs" / v.name / "summary.json").read_text())["step"] == 5
    # stores finished before the kill were not rewritten
    stores = {k: t for k, t in quick_run["stores_after_kill"].items() if k.startswith("stores/")}  # + their parts
    names = [k for k in stores if k.count("/") == 1 and k.endswith(".h5")]
    assert len(names) == 2 + len(_SCENARIOS) - (0 if (out / "stores" / "real_subject47.h5").exists() else 1)
    now = _mtimes(out)
    assert {k: now[k] for k in stores} == stores


@pytest.mark.slow
def test_quick_run_writes_page_json_and_figures(quick_run: dict[str, Any]) -> None:
    page = quick_run["page"]
    md = page.read_text()
    report = json.loads(page.with_suffix(".json").read_text())
    assert report["format"] == "relaxomap-ablation" and report["format_version"] == 2
    names = [v.name for v in VARIANTS] + [NLLS, ORACLE]
    assert list(report["scenarios"]) == list(_SCENARIOS)
    for scen, entry in report["scenarios"].items():
        if "metrics" not in entry:  # only the real subject may be absent (../shared/data missing)
            assert scen == "real_subject47" and entry["note"].startswith("skipped"), entry
            assert "**Not evaluated**" in md
            continue
        assert list(entry["metrics"]) == names, scen
        ref = entry["metrics"][REFERENCE]
        assert ref["n_slices"] == 8 and ref["n_subjects"] == 2 == entry["n_subjects"]
        par = ref["parenchyma"]["t1"]
        assert par["subjects"]["mpe_pct"]["n"] == 2 and math.isfinite(par["mpe_pct"])
        assert list(report["paired_tests"][scen]) == names[1:]
        for v in names[1:] if scen != "missing_flair" else [n for n in names[1:] if n != NLLS]:
            comp = report["paired_tests"][scen][v]["t2"]["parenchyma/mpe_pct"]
            # two subjects: a difference of subject means with its sd, never a p-value
            assert comp["n"] == 2 and comp["p_value"] is None and comp["test"] is None
        assert f"### `{scen}`" in md
    # the NLLS baseline cannot run without FLAIR: every slice skipped, and the page says why
    skipped = report["scenarios"]["missing_flair"]["skipped"][NLLS]
    assert skipped == {"n": 8, "of": 8, "reasons": ["needs all three contrasts"]}
    assert report["paired_tests"]["missing_flair"][NLLS]["t1"]["parenchyma/mpe_pct"]["n"] == 0
    assert "NLLS fit: 8 of 8 slices not evaluated (needs all three contrasts)" in md
    # sections: subject-level comparisons, targets (answered unless there is no target or no such tissue),
    # per-tissue rows including the oracle prior, the whole mask labelled
    assert "## Paired comparisons (subjects)" in md and "Wilcoxon signed-rank" in md
    assert "## Targets" in md and len(report["targets"]) == 62
    for t in report["targets"]:
        assert (t["met"] is None) == (not t["checked"] or t["value"] is None), t  # reported rows: never judged
        assert t["checked"] == (t["op"] is not None and t["scenario"] not in ("internal_test", "real_subject47"))
    assert "says nothing about in-vivo accuracy" in md and "masked PSNR" not in md
    assert "| PE-UNet + physics | lesion |" in md and "| oracle prior | WM |" in md
    assert "Whole brain mask (peak = CSF maximum)" in md
    # the best variant is the one with the lowest validation loss, and the page names it
    vals = {k: v["best_val"] for k, v in report["variants"].items()}
    assert report["best_variant"] == min(vals, key=vals.get)
    assert "**Best variant** by the selection criterion" in md and f"(`{report['best_variant']}`" in md
    # every linked figure exists beside the page and is a PNG; montages and curves are both there
    links = [line[line.index("](") + 2:-1] for line in md.splitlines() if line.startswith("![")]
    assert any("montage_" in s for s in links) and any("curves_" in s for s in links)
    for link in links:
        assert (page.parent / link).read_bytes()[:8] == _PNG_MAGIC


@pytest.mark.slow
def test_resume_skips_finished_stages(quick_run: dict[str, Any]) -> None:
    out, args = quick_run["out"], quick_run["args"]
    before = _mtimes(out)
    res = CliRunner().invoke(main, args + ["--resume"])
    assert res.exit_code == 0, res.output
    assert _mtimes(out) == before  # no store, checkpoint or evaluation rewritten
    n_scen = len([s for s in _SCENARIOS if (out / "stores" / f"{s}.h5").exists()])
    assert res.output.count("skipped (output exists)") == 2 + len(VARIANTS) + 2 * n_scen
    # the page of a call that skipped everything still reports each stage's time from the call that did it
    times = json.loads((out / "stage_times.json").read_text())
    report = json.loads(quick_run["page"].with_suffix(".json").read_text())
    assert set(times) == {k for k in report["stages"] if k != "report"}
    for name, st in report["stages"].items():
        if name != "report":
            assert st["status"].startswith("skipped") and st["earlier_seconds"] == times[name]["seconds"] > 0
    # an evaluation removed (as if killed before its atomic rename) is redone, and only it
    import shutil

    shutil.rmtree(out / "eval" / "lesions")
    res = CliRunner().invoke(main, args + ["--resume"])
    assert res.exit_code == 0, res.output
    now = _mtimes(out)
    assert {k: t for k, t in now.items() if not k.startswith("eval/lesions/")} == \
        {k: t for k, t in before.items() if not k.startswith("eval/lesions/")}
    assert (out / "eval" / "lesions" / "results.json").is_file()
    assert "evaluate lesions: done" in res.output


@pytest.mark.slow
def test_refuses_non_empty_folder_and_changed_config(quick_run: dict[str, Any]) -> None:
    args = quick_run["args"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and "--resume" in res.output
    res = CliRunner().invoke(main, args + ["--resume", "--steps", "6"])
    assert res.exit_code != 0 and "steps" in res.output and "different experiment configuration" in res.output


# ------------------------------------------------------------------------------------------------ statistics
def test_paired_test_equals_scipy_wilcoxon() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(30.0, 2.0, 12)
    b = a - rng.normal(0.4, 1.0, 12)
    got = paired_test(a, b)
    ref = scipy.stats.wilcoxon(a, b)
    # same computation path: equal to float rounding
    assert_allclose([got["statistic"], got["p_value"]], [ref.statistic, ref.pvalue], rtol=1e-12)
    assert_allclose(got["median_diff"], np.median(a - b), rtol=1e-12)
    assert got["n"] == 12


def test_paired_test_exact_closed_form() -> None:
    """All 8 differences positive and distinct: W = 0 and the exact two-sided p is 2 / 2^8."""
    a = np.arange(1.0, 9.0) + 0.5
    b = np.zeros(8)
    got = paired_test(a, b)
    assert got["statistic"] == 0.0
    assert_allclose(got["p_value"], 2.0 / 2**8, rtol=1e-12)  # exact distribution: only rounding
    assert_allclose(got["median_diff"], 5.0, rtol=0)


def test_paired_test_undefined_cases() -> None:
    empty = paired_test(np.zeros(0), np.zeros(0))
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("median_diff", "statistic", "p_value"))
    same = paired_test(np.ones(5), np.ones(5))
    assert same["n"] == 5 and same["median_diff"] == 0.0 and math.isnan(same["p_value"])
    with pytest.raises(ValueError, match="one length"):
        paired_test(np.ones(3), np.ones(4))


def _subjects(values: dict[str, float | None]) -> dict[str, Any]:
    """An accumulator-shaped result whose per-subject parenchyma T1 MPE is ``values``."""
    return {"per_subject": {k: {"parenchyma": {"t1": {"mpe_pct": v}}} for k, v in values.items()}}


def test_paired_subjects_keep_subjects_both_have() -> None:
    a = _subjects({"s1": 30.0, "s2": 27.0, "s3": math.nan, "s4": 20.0})
    b = _subjects({"s1": 29.0, "s2": 24.0, "s3": 25.0, "s5": 1.0})
    ids, va, vb = paired_subjects(a, b, "parenchyma", "t1", "mpe_pct")
    assert ids == ["s1", "s2"]
    assert_allclose(va, [30.0, 27.0], rtol=0)
    assert_allclose(vb, [29.0, 24.0], rtol=0)


def test_compare_subjects_gives_a_p_value_only_with_enough_subjects() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(10.0, 2.0, 7)
    b = a - rng.normal(1.0, 0.5, 7)
    got = compare_subjects(a, b)
    d = a - b
    assert got["n"] == 7 and got["test"] == "wilcoxon"
    assert_allclose([got["mean_diff"], got["sd_diff"], got["median_diff"]], [d.mean(), d.std(ddof=1), np.median(d)],
                    rtol=1e-12)
    assert_allclose(got["p_value"], scipy.stats.wilcoxon(a, b).pvalue, rtol=1e-12)
    five = compare_subjects(a[:5], b[:5])  # smallest exact two-sided p with 5 subjects: 2 / 2^5 > 0.05
    assert five["test"] is None and five["p_value"] is None and five["n"] == 5
    assert_allclose(five["mean_diff"], d[:5].mean(), rtol=1e-12)
    assert math.isnan(compare_subjects(a[:1], b[:1])["sd_diff"])


def _target_metrics(par: dict[str, float], tissue: dict[str, dict[str, float]]) -> dict[str, Any]:
    """An accumulator-shaped result: parenchyma MPE and tissue bias / MPE means over subjects."""
    return {"parenchyma": {mp: {"subjects": {"mpe_pct": {"mean": v}}} for mp, v in par.items()},
            "tissue": {t: {mp: {"subjects": {k: {"mean": v} for k in ("bias_pct", "mpe_pct")}}
                           for mp, v in per.items()} for t, per in tissue.items()}}


def test_check_targets_thresholds() -> None:
    ref = _target_metrics({"t1": 6.0, "t2": 5.01, "pd_csf": 2.9},
                          {"WM": {"t1": -3.0, "t2": 3.01, "pd_csf": 0.0}, "CSF": {"t1": 4.0, "t2": 80.0}})
    scen = {"shifted_values": {"metrics": {REFERENCE: ref}}, "internal_test": {"metrics": {REFERENCE: ref}},
            "lesions": {"metrics": {REFERENCE: _target_metrics({}, {"lesion": {"t1": 9.99, "t2": 10.0}})}}}
    rows = check_targets(scen)
    got = {(t["scenario"], t["target"]): t for t in rows}
    met = {k: t["met"] for k, t in got.items()}
    assert met[("shifted_values", "parenchyma MPE T1 [%]")] is True  # <= 6 holds at equality
    assert met[("shifted_values", "parenchyma MPE T2 [%]")] is False
    assert met[("shifted_values", "parenchyma MPE PD (CSF = 1) [%]")] is True
    assert met[("shifted_values", "WM signed bias T1 [%]")] is True  # |−3| <= 3
    assert met[("shifted_values", "WM signed bias T2 [%]")] is False
    assert got[("shifted_values", "WM signed bias T1 [%]")]["value"] == -3.0  # the sign is kept
    assert met[("shifted_values", "GM signed bias T1 [%]")] is None  # no GM in this result
    assert met[("shifted_values", "CSF MPE T1 [%]")] is True
    # the same rows on internal_test (tissue values from training) are reported, not checked
    assert got[("internal_test", "parenchyma MPE T2 [%]")]["value"] == 5.01
    assert got[("internal_test", "parenchyma MPE T2 [%]")]["met"] is None
    csf_t2 = got[("shifted_values", "CSF MPE T2 [%]")]
    assert csf_t2["met"] is None and csf_t2["value"] == 80.0 and "not identifiable" in csf_t2["note"]
    assert met[("lesions", "lesion MPE T1 [%]")] is True
    assert met[("lesions", "lesion MPE T2 [%]")] is False  # < 10 is strict
    assert not any("PSNR" in t["target"] or "SSIM" in t["target"] for t in rows)
    missing = check_targets({})
    assert len(missing) == 62 and all(t["met"] is None and t["value"] is None for t in missing)


# ------------------------------------------------------------------------------------------------ configs
def test_missed_target_reasons_state_measured_facts() -> None:
    from relaxomap.train.experiment.report import _specific_reason
    from relaxomap.train.experiment.stats import oracle_value

    def res(mpe: float, bias: float) -> dict[str, Any]:
        entry = {"mean_true": 850.0, "mean_pred": 935.0, "subjects": {"mpe_pct": {"mean": mpe},
                                                                       "bias_pct": {"mean": bias}}}
        return {"parenchyma": {"t1": entry}, "tissue": {"WM": {"t1": entry}}}

    scen = {"internal_test": {"metrics": {REFERENCE: res(12.0, 10.0), ORACLE: res(8.0, -4.0)}}}
    report = {"scenarios": scen}
    row = {"kind": "mpe", "scenario": "internal_test", "region": "parenchyma", "map": "t1", "value": 12.0}
    text = _specific_reason(row, report)
    assert "oracle prior (tissue table at the true labels) has MPE 8.0 %, and the reference does not beat it" in text
    assert "mean truth 850 ms, mean prediction 935 ms" in text and "signed bias +10.0 %" in text
    row = {"kind": "bias", "scenario": "internal_test", "region": "WM", "map": "t1", "value": 10.0}
    assert oracle_value(scen, row) == -4.0
    assert "has signed bias -4.0 %, and the reference does not beat it" in _specific_reason(row, report)


def test_best_by_validation_skips_failed_and_non_finite() -> None:
    variants = {"a": {"best_val": 0.12}, "b": {"best_val": 0.10, "error": "diverged"},
                "c": {"best_val": float("nan")}, "d": {"best_val": 0.11}, "e": {"best_val": None}}
    assert best_by_validation(variants) == "d"
    assert best_by_validation({"a": {"best_val": 0.1}, "b": {"best_val": 0.1}}) == "a"  # tie: first wins
    assert best_by_validation({"a": {"best_val": None}}) is None


def test_scenarios_change_one_factor_each_with_distinct_seeds() -> None:
    config = ExperimentConfig.quick()
    train_synth, _ = training_synth_config(config)
    assert train_synth.source.healthy_only and train_synth.forward == "epg"
    assert train_synth.source.fields_t == (1.5, 3.0)
    scens = {s.name: s for s in scenarios(config, train_synth)}
    assert tuple(scens) == _SCENARIOS
    built = {k: s.synth for k, s in scens.items() if s.synth is not None}
    seeds = [s.seed for s in built.values()] + [train_synth.seed, config.synth_seed + 1]
    assert len(set(seeds)) == len(seeds)
    les = built["lesions"].source
    assert not les.healthy_only and (les.lesions.p_ms, les.lesions.p_tumour, les.lesions.p_infarct) == (1.0, 0.7, 0.5)
    assert all(s.source.healthy_only for k, s in built.items() if k != "lesions")
    assert built["snr_5_12"].artefacts.snr == (5.0, 12.0) and built["snr_80_150"].artefacts.snr == (80.0, 150.0)
    assert built["missing_flair"].missing_probability == (0.0, 0.0, 1.0)
    oor = json.loads((Path(__file__).resolve().parents[3] / "docs/evaluation/scenarios/out_of_range.json")
                     .read_text())["protocols"]
    assert built["out_of_range"].protocols.to_dict() == built["out_of_range"].protocols.from_dict(oor).to_dict()
    assert built["internal_test"].protocols == train_synth.protocols


def test_variants_share_everything_but_arch_and_physics(tmp_path: Path) -> None:
    config = ExperimentConfig()
    dicts = []
    for v in VARIANTS:
        d = variant_train_config(config, v, tmp_path / "t.h5", tmp_path / "v.h5", tmp_path / "run").to_dict()
        assert d["loss"]["physics"] == (0.1 if v.physics else 0.0) and d["model"]["arch"] == v.arch
        d["model"].pop("arch")
        d["loss"].pop("physics")
        dicts.append(d)
    assert all(d == dicts[0] for d in dicts)
    assert dicts[0]["steps"] == 1500 and dicts[0]["batch_size"] == 8 and dicts[0]["patch"] == 128
    assert dicts[0]["physics_ramp_steps"] == 750 and dicts[0]["warmup_steps"] == 150


def test_experiment_config_validation_and_round_trip() -> None:
    quick = ExperimentConfig.quick()
    assert ExperimentConfig.from_dict(json.loads(json.dumps(quick.to_dict()))) == quick
    with pytest.raises(ValueError, match="head_shape"):
        ExperimentConfig(head_shape=(64, 64, 16))
    with pytest.raises(ValueError, match="patch"):
        ExperimentConfig(image_size=64, patch=128)
    with pytest.raises(ValueError, match="unknown field"):
        ExperimentConfig.from_dict({"stepz": 3})


def test_evaluation_is_redone_when_a_checkpoint_changes(tmp_path: Path) -> None:
    import hashlib

    from relaxomap.train.experiment.ablation import _evaluation_current

    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"weights v1")
    results = tmp_path / "results.json"
    models = {"a": str(ckpt), NLLS: NLLS, ORACLE: ORACLE}
    assert not _evaluation_current(results, models)
    sha = hashlib.sha256(b"weights v1").hexdigest()
    done = {"format_version": 2, "models": {"a": {"sha256": sha}, NLLS: {"kind": "nlls"},
                                            ORACLE: {"kind": "oracle-prior"}}}
    results.write_text(json.dumps(done))
    assert _evaluation_current(results, models)
    results.write_text(json.dumps(dict(done, format_version=1)))  # an evaluation of the old results format
    assert not _evaluation_current(results, models)
    results.write_text(json.dumps(done))
    assert not _evaluation_current(results, {"a": str(ckpt), NLLS: NLLS})  # another model set
    ckpt.write_bytes(b"weights v2")  # retrained
    assert not _evaluation_current(results, models)
