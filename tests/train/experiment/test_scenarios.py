"""The value-shift scenarios of the experiment, ``relaxomap experiment scenarios`` (loadable stores whose tissue
values really moved by the drawn factors), the floors beside the targets (``physics.bounds`` of the documented
exam) and ``relaxomap experiment shipped``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.synth.store.dataset import SynthDataset
from relaxomap.synth.value_shift import ValueShiftConfig, value_factors
from relaxomap.train.cli import main
from relaxomap.train.experiment.config import (
    N_SCENARIOS,
    OEDEMA_PD_FACTOR,
    ExperimentConfig,
    estimate_seconds,
    scenarios,
    training_synth_config,
)
from relaxomap.train.experiment.floors import FloorConfig, compute_floors, row_floor
from relaxomap.train.experiment.stats import HELD_OUT_SCENARIOS, check_targets
from relaxomap.train.experiment.stores import write_one_store, write_scenario_stores

_OLD = ("internal_test", "lesions", "out_of_range", "snr_5_12", "snr_80_150", "real_subject47", "missing_flair")
_NEW = ("shifted_values", "shifted_subject47", "oedema_pd")


def test_value_shift_scenarios_follow_the_old_ones_with_the_next_seeds() -> None:
    config = ExperimentConfig()
    scens = scenarios(config, training_synth_config(config)[0])
    assert tuple(s.name for s in scens) == _OLD + _NEW and len(scens) == N_SCENARIOS
    # the old scenarios keep their seeds (7102 ... 7108 at the default synth_seed 7001), the new get k = 7, 8, 9
    assert [s.synth.seed for s in scens if s.synth is not None] == [7001 + 101 + k for k in range(10)]
    by = {s.name: s.synth for s in scens}
    assert all(by[n].source.value_shift is None for n in _OLD)
    assert by["shifted_values"].source.value_shift == ValueShiftConfig()
    assert by["shifted_values"].source.kind == "phantom" and by["shifted_values"].source.healthy_only
    s47 = by["shifted_subject47"].source
    assert s47.kind == "real" and s47.paths == by["real_subject47"].source.paths and s47.value_shift == ValueShiftConfig()
    assert by["oedema_pd"].source.value_shift == ValueShiftConfig(parenchyma_pd=OEDEMA_PD_FACTOR)
    assert OEDEMA_PD_FACTOR == (1.10, 1.15)
    assert set(HELD_OUT_SCENARIOS) == {"shifted_values", "shifted_subject47"}


def test_shifted_subject47_is_skipped_with_a_reason_without_its_file() -> None:
    config = ExperimentConfig.quick().replace(subject47="no/such/subject47.npz")
    by = {s.name: s for s in scenarios(config, training_synth_config(config)[0])}
    for name in ("real_subject47", "shifted_subject47"):
        assert by[name].synth is None and by[name].note == "skipped: no/such/subject47.npz not found"


def test_estimate_counts_every_scenario() -> None:
    """Stores: (train + val) × 0.033 s + 10 scenarios × n_scenario × 0.081 s (256² px); evaluation: 10 × 32 slices
    × (4 networks × 0.16 + NLLS 0.61 s) + 10 × (3 montages + curves) × 2 s — the rates in config.py."""
    est = estimate_seconds(ExperimentConfig())
    assert_allclose(est["stores"], (2048 + 128) * 0.033 + 10 * 64 * 0.081, rtol=1e-12)
    assert_allclose(est["evaluation"], 10 * 32 * (4 * 0.16 + 0.61) + 10 * 4 * 2.0, rtol=1e-12)


@pytest.fixture(scope="module")
def quick_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``experiment scenarios --quick`` for the two value-shift scenarios of phantoms; and, at the default
    (1 mm, 256² px) size with one 8-slice head each, the same two stores and their twins with the shift turned
    off (``plain_<name>.h5``; same seed: same heads, slices and noise). At the quick size's 3.5 mm voxels
    most grey matter is partial volume, which re-mixes the factors of neighbouring tissues."""
    out = tmp_path_factory.mktemp("scenarios")
    res = CliRunner().invoke(main, ["experiment", "scenarios", "--quick", "--out", str(out / "quick"), "--only",
                                    "shifted_values", "--only", "oedema_pd", "--quiet"])
    config = ExperimentConfig(n_scenario=8, synth_workers=1)
    scens, _ = write_scenario_stores(config, out / "full", ("shifted_values", "oedema_pd"), progress=False,
                                     echo=lambda _: None)
    by = {s.name: s.synth for s in scens}
    for name, synth in by.items():
        plain = synth.replace(source=dataclasses.replace(synth.source, value_shift=None))
        write_one_store(config, plain, out / "full" / f"plain_{name}.h5", config.n_scenario, name, False)
    return {"out": out, "result": res, "by": by}


def test_scenarios_command_writes_loadable_stores(quick_stores: dict[str, Any]) -> None:
    res, out = quick_stores["result"], quick_stores["out"] / "quick"
    assert res.exit_code == 0, res.output
    assert "Wrote 2 stores" in res.output
    assert sorted(p.name for p in out.glob("*.h5")) == ["oedema_pd.h5", "shifted_values.h5"]
    quick = ExperimentConfig.quick()
    seeds = {s.name: s.synth.seed for s in scenarios(quick, training_synth_config(quick)[0]) if s.synth}
    for name in ("shifted_values", "oedema_pd"):
        ds = SynthDataset(out / f"{name}.h5")
        assert len(ds) == quick.n_scenario == 8
        sample = ds[0]
        assert sample["targets"].shape == (3, 64, 64) and bool(np.isfinite(sample["targets"].numpy()).all())
        assert ds.config["source"]["value_shift"]["t1"] == [0.75, 1.25]
        assert ds.config["seed"] == seeds[name]
    assert SynthDataset(out / "oedema_pd.h5").config["source"]["value_shift"]["parenchyma_pd"] == [1.1, 1.15]


def test_scenarios_command_refuses_an_unknown_name(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["experiment", "scenarios", "--quick", "--out", str(tmp_path), "--only", "nope"])
    assert res.exit_code == 1 and "unknown scenario(s) nope" in res.output and "shifted_values" in res.output
    assert not list(tmp_path.iterdir())


def _label_ratios(shifted: Path, plain: Path, lab: int) -> list[tuple[str, np.ndarray]]:
    """Per sample: (subject id, median over the label's voxels of shifted / plain T1, T2, PD)."""
    a, b = SynthDataset(shifted), SynthDataset(plain)
    out = []
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        assert np.array_equal(sa["labels"].numpy(), sb["labels"].numpy())  # same anatomy
        sel = sa["labels"].numpy() == lab
        if sel.sum() < 20:
            continue
        ratio = sa["targets"].numpy()[:, sel] / sb["targets"].numpy()[:, sel]
        out.append((a.subject_ids[i], np.median(ratio, axis=1)))
    return out


@pytest.mark.parametrize("scenario", ["shifted_values", "oedema_pd"])
def test_store_values_moved_by_the_drawn_factors(quick_stores: dict[str, Any], scenario: str) -> None:
    """Each slice's GM and WM T1, T2 and PD (median of the voxel ratios to the unshifted twin) moved by the
    factors drawn for its subject from ``[seed, 0x5817]`` (synth.sources.draw_subject). Pure voxels move
    exactly; textured and partial-volume voxels re-mix a little (tests/synth/test_value_shift.py): measured
    within 2.5 % (GM T2), tolerance 3 %."""
    out = quick_stores["out"] / "full"
    cfg = quick_stores["by"][scenario].source.value_shift
    for lab in (2, 3):  # GM, WM
        rows = _label_ratios(out / f"{scenario}.h5", out / f"plain_{scenario}.h5", lab)
        assert len(rows) >= 4
        for sid, med in rows:
            k = value_factors(np.random.default_rng([int(sid.split("-")[1]), 0x5817]), cfg)
            assert_allclose(med, k[lab], rtol=0.03, err_msg=f"{sid} label {lab}")
            if scenario == "oedema_pd":  # PD beyond the physiological spread: 0.95 × 1.10 at least
                assert med[2] >= 0.95 * 1.10 * 0.97


# ------------------------------------------------------------------------------------------------ floors
def test_floors_are_the_bounds_of_the_documented_exam() -> None:
    """The floor of every target row is ``bounds()``'s tissue-mean bound for the 3 T default presets at SNR 30
    (exactly), parenchyma the unweighted mean of WM, GM and deep GM; the numbers are those of docs/bounds.md
    (printed to 0.01 %)."""
    from relaxomap.physics.bounds import BoundsConfig, bounds
    from relaxomap.physics.protocol import PRESETS

    floors = compute_floors()
    assert floors["config"] == {"presets": ["t1w_tse_3t", "t2w_tse_3t", "flair_3t"], "snr": 30.0, "n_voxels": 1000}
    ref = bounds([PRESETS[n] for n in ("t1w_tse_3t", "t2w_tse_3t", "flair_3t")],
                 BoundsConfig(tissues=("WM", "GM", "deep GM", "CSF", "MS lesion"), snr=30.0))
    mean = {t.tissue: t.mean_pct for t in ref.tissues}
    rows = {(r["scenario"], r["target"]): r for r in check_targets({})}
    cases = {("shifted_values", "WM signed bias T2 [%]"): mean["WM"]["t2"],
             ("shifted_subject47", "deep_GM signed bias PD (CSF = 1) [%]"): mean["deep GM"]["pd"],
             ("shifted_values", "CSF MPE T1 [%]"): mean["CSF"]["t1"],
             ("shifted_values", "CSF MPE T2 [%]"): mean["CSF"]["t2"],
             ("lesions", "lesion MPE T2 [%]"): mean["MS lesion"]["t2"],
             ("shifted_values", "parenchyma MPE T1 [%]"): np.mean([mean[t]["t1"] for t in ("WM", "GM", "deep GM")]),
             ("oedema_pd", "parenchyma MPE PD (CSF = 1) [%]"): np.mean([mean[t]["pd"]
                                                                       for t in ("WM", "GM", "deep GM")])}
    for key, want in cases.items():
        assert_allclose(row_floor(floors, rows[key]), want, rtol=1e-12, err_msg=str(key))
    assert_allclose([mean["WM"]["t1"], mean["GM"]["t2"], mean["CSF"]["t2"]], [8.88, 4.99, 24.33], atol=0.006)
    assert floors["limited_by"]["CSF"]["t2"] == "prior"  # not identifiable: the floor is its prior
    assert "tissue-mean" in floors["note"] and "not identifiable" in floors["note"]
    assert compute_floors() is not compute_floors()  # a fresh copy per call (computed once)


@pytest.mark.parametrize("changes, message", [({"presets": ("nope",)}, "unknown protocol preset 'nope'"),
                                              ({"snr": 0.0}, r"FloorConfig\.snr"),
                                              ({"n_voxels": 0}, r"FloorConfig\.n_voxels")])
def test_floor_config_names_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FloorConfig(**changes)


def test_target_rows_check_shifted_values_and_report_the_rest() -> None:
    rows = check_targets({})
    checked = {r["scenario"] for r in rows if r["checked"]}
    assert checked == {"shifted_values", "shifted_subject47", "lesions"}
    assert len(rows) == 4 * 14 + 2 + 4
    reported = [r for r in rows if r["scenario"] in ("internal_test", "real_subject47") and r["op"]]
    assert reported and all(not r["checked"] and "not checked" in r["note"] for r in reported)
    oedema = [r for r in rows if r["scenario"] == "oedema_pd"]
    assert {r["map"] for r in oedema} == {"pd_csf"} and all(r["op"] is None and "bound" in r["note"] for r in oedema)


# ------------------------------------------------------------------------------------------------ shipped
@pytest.mark.slow
def test_shipped_command_writes_the_page_with_targets_and_floors(tmp_path: Path) -> None:
    page = tmp_path / "page" / "results.md"
    res = CliRunner().invoke(main, ["experiment", "shipped", "--quick", "--out", str(tmp_path / "work"),
                                    "--results", str(page), "--max-samples", "2", "--examples", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads(page.with_suffix(".json").read_text())
    assert report["reference"] == "default-model" and report["floors"]["config"]["snr"] == 30.0
    assert set(report["scenarios"]) == set(_OLD + _NEW)
    assert all(s["n_evaluated"] == 2 for s in report["scenarios"].values())
    floors = compute_floors()
    for row in report["targets"]:
        assert row["floor"] == pytest.approx(row_floor(floors, row), rel=1e-12)
    md = page.read_text()
    for needle in ("## Targets", "| floor [%] |", "**not** an unseen-lesion test", "tissue-mean", "## Reproduce",
                   "relaxomap experiment shipped", "### `shifted_subject47`"):
        assert needle in md, needle
    # a second call reuses the stores and evaluations
    again = CliRunner().invoke(main, ["experiment", "shipped", "--quick", "--out", str(tmp_path / "work"),
                                      "--results", str(page), "--max-samples", "2", "--examples", "0", "--quiet"])
    assert again.exit_code == 0 and "evaluate" not in again.output
