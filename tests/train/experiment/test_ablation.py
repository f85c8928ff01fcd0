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
    paired_test,
    paired_values,
    subject_summary,
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SCENARIOS = ("internal_test", "lesions", "out_of_range", "snr_5_12", "snr_80_150", "real_subject47",
              "missing_flair")


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
    assert report["format"] == "relaxomap-ablation"
    names = [v.name for v in VARIANTS] + [NLLS]
    assert list(report["scenarios"]) == list(_SCENARIOS)
    for scen, entry in report["scenarios"].items():
        if "summary" not in entry:  # only the real subject may be absent (../shared/data missing)
            assert scen == "real_subject47" and entry["note"].startswith("skipped"), entry
            assert "**Not evaluated**" in md
            continue
        assert list(entry["summary"]) == names, scen
        ref = entry["summary"][REFERENCE]["t1"]["psnr_db"]
        assert ref["n_slices"] == 8 and ref["n_subjects"] == 2 and math.isfinite(ref["mean"])
        assert list(report["paired_tests"][scen]) == names[1:]
        for v in names[1:] if scen != "missing_flair" else names[1:-1]:
            assert report["paired_tests"][scen][v]["t2"]["psnr_db"]["n"] == 8
        assert f"### `{scen}`" in md
    # the NLLS baseline cannot run without FLAIR: every slice skipped, and the page says why
    skipped = report["scenarios"]["missing_flair"]["skipped"][NLLS]
    assert skipped == {"n": 8, "of": 8, "reasons": ["needs all three contrasts"]}
    assert report["paired_tests"]["missing_flair"][NLLS]["t1"]["psnr_db"]["n"] == 0
    assert "NLLS fit: 8 of 8 slices not evaluated (needs all three contrasts)" in md
    # sections: paired tests (with the test named), targets (every target answered), per-tissue lesion rows
    assert "## Paired comparisons" in md and "Wilcoxon signed-rank" in md and "scipy.stats.wilcoxon" in md
    assert "## Targets" in md and len(report["targets"]) == 11
    assert all(t["met"] is not None for t in report["targets"])
    assert "| PE-UNet + physics | lesion |" in md
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


def _rec(subject: str, **per_model: float | None) -> dict[str, Any]:
    return {"subject_id": subject, "metrics": {m: (None if v is None else {"t1": {"psnr_db": v}})
                                               for m, v in per_model.items()}}


def test_subject_summary_groups_by_subject() -> None:
    recs = [_rec("s1", x=30.0, y=29.0), _rec("s1", x=32.0, y=None), _rec("s2", x=25.0, y=26.0),
            _rec("s2", x=27.0, y=24.0), _rec("s2", x=math.nan, y=25.0), _rec("s3", x=None, y=20.0)]
    got = subject_summary(recs, "x", "t1", "psnr_db")
    means = np.array([31.0, 26.0])  # s1: (30 + 32) / 2; s2: (25 + 27) / 2 (NaN dropped); s3 has no x
    assert got["n_subjects"] == 2 and got["n_slices"] == 4
    assert_allclose([got["mean"], got["std"]], [means.mean(), means.std(ddof=1)], rtol=1e-12)
    one = subject_summary(recs[:2], "x", "t1", "psnr_db")
    assert one["n_subjects"] == 1 and one["mean"] == 31.0 and math.isnan(one["std"])


def test_paired_values_keep_slices_where_both_are_finite() -> None:
    recs = [_rec("s1", x=30.0, y=29.0), _rec("s1", x=32.0, y=None), _rec("s2", x=math.nan, y=26.0),
            _rec("s2", x=27.0, y=24.0)]
    a, b = paired_values(recs, "x", "y", "t1", "psnr_db")
    assert_allclose(a, [30.0, 27.0], rtol=0)
    assert_allclose(b, [29.0, 24.0], rtol=0)
    ref = scipy.stats.wilcoxon(a, b)
    assert_allclose(paired_test(a, b)["p_value"], ref.pvalue, rtol=1e-12)


def _summary(psnr: float, ssim: float) -> dict[str, Any]:
    return {mp: {"psnr_db": {"mean": psnr}, "ssim": {"mean": ssim}} for mp in ("t1", "t2", "pd")}


def test_check_targets_thresholds() -> None:
    scen = {
        "internal_test": {"summary": {REFERENCE: {**_summary(38.0, 0.97), "pd": {"psnr_db": {"mean": 37.9},
                                                                                  "ssim": {"mean": 0.99}}}}},
        "lesions": {"tissue": {REFERENCE: {"lesion": {"t1": {"mpe_pct": 9.99}, "t2": {"mpe_pct": 10.0}}}}},
        "out_of_range": {"summary": {REFERENCE: _summary(30.0, 0.9), "unet": _summary(27.0, 0.9)}},
    }
    got = {(t["scenario"], t["target"]): t for t in check_targets(scen)}
    met = {k: t["met"] for k, t in got.items()}
    assert met[("internal_test", "masked PSNR T1 [dB]")] is True  # >= 38 holds at equality
    assert met[("internal_test", "masked PSNR PD [dB]")] is False
    assert met[("internal_test", "masked SSIM T2")] is True
    assert met[("lesions", "MPE in lesions T1 [%]")] is True
    assert met[("lesions", "MPE in lesions T2 [%]")] is False  # < 10 is strict
    oor = got[("out_of_range", "masked PSNR T1 gain over plain U-Net [dB]")]
    assert oor["met"] is True and oor["value"] == 3.0
    missing = check_targets({})
    assert len(missing) == 11 and all(t["met"] is None and t["value"] is None for t in missing)


# ------------------------------------------------------------------------------------------------ configs
def test_missed_target_reasons_state_measured_facts() -> None:
    from relaxomap.train.experiment.report import _specific_reason

    def summ(psnr: float, mpe: float = 9.0) -> dict[str, Any]:
        return {mp: {"psnr_db": {"mean": psnr}, "mpe_pct": {"mean": mpe}, "mpe_no_csf_pct": {"mean": mpe - 1}}
                for mp in ("t1", "t2", "pd")}

    scen = {"internal_test": {"summary": {v.name: summ(29.0) for v in VARIANTS}},
            "out_of_range": {"summary": {**{v.name: summ(25.0) for v in VARIANTS}, "channels": summ(26.5)}}}
    report = {"scenarios": scen}
    row = {"kind": "psnr", "scenario": "internal_test", "map": "t1", "value": 29.0, "threshold": 38.0}
    text = _specific_reason(row, report)
    # PSNR = 20 log10(peak / RMSE): 38 dB is an RMS error of 10^(-1.9) = 1.259 % of the peak, 29 dB one of
    # 10^(-1.45) = 3.548 % (worked by hand, not by the code under test)
    assert "1.26 % of the brain's peak" in text
    assert "this run's is 3.5 %" in text and "9.0 % of the truth, 8.0 % without CSF" in text
    row = {"kind": "oor", "scenario": "out_of_range", "map": "t2", "value": 0.0, "threshold": 3.0}
    text = _specific_reason(row, report)
    assert "falls 4.0 dB (29.0 → 25.0)" in text and "best here: `channels` (26.5 dB)" in text


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
    assert not _evaluation_current(results, {"a": str(ckpt), NLLS: NLLS})
    sha = hashlib.sha256(b"weights v1").hexdigest()
    results.write_text(json.dumps({"models": {"a": {"sha256": sha}, NLLS: {"kind": "nlls"}}}))
    assert _evaluation_current(results, {"a": str(ckpt), NLLS: NLLS})
    assert not _evaluation_current(results, {"a": str(ckpt), "b": str(ckpt), NLLS: NLLS})  # another model set
    ckpt.write_bytes(b"weights v2")  # retrained
    assert not _evaluation_current(results, {"a": str(ckpt), NLLS: NLLS})
