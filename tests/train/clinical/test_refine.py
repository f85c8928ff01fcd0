"""relaxomap predict --refine: the refined maps, residuals, fitted exam and ROI tables written for a simulated
exam (the demo's held-out phantom, BIDS sidecars that carry the full protocol), and its refusals."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from relaxomap.train.clinical.demo import _write_case, make_case
from relaxomap.train.clinical.predict import run_predict
from relaxomap.train.clinical.refine import exam_protocols, roi_csv, roi_table


@pytest.fixture(scope="module")
def exam(tmp_path_factory) -> tuple[dict, dict[str, Path], Path]:
    case = make_case(3, n_slices=6)
    out = tmp_path_factory.mktemp("exam")
    paths, mask = _write_case(out, case)
    labels = out / "truth" / "labels.nii.gz"
    assert labels.is_file()
    return case, paths, mask


@pytest.mark.slow
def test_predict_refine_writes_everything(exam, tmp_path: Path) -> None:
    """All outputs exist on the input grid; residuals are finite percentages whose median magnitude is below
    the inputs' noise (SNR 20–40 → 2.5–5 %) plus the 2 % model error; the network's maps are kept; the ROI
    table's regions come from the labels; refine.json holds every fitted parameter with a posterior sd."""
    case, paths, mask = exam
    labels = mask.parent / "labels.nii.gz"
    out = tmp_path / "maps"
    from relaxomap.physics.refine import RefineConfig

    prov = run_predict(paths, out, mask_path=mask, progress=False, refine=True, labels_path=labels,
                       refine_config=RefineConfig(n_exam_voxels=2000))
    shape = case["maps"].shape
    for name in ("T1_ms.nii.gz", "network/T1_ms.nii.gz", "residual_t1w_pct.nii.gz", "residual_flair_pct.nii.gz",
                 "B1_fitted.nii.gz", "FLAIR_branch.nii.gz"):
        assert nib.load(out / name).shape == shape, name
    ex = json.loads((out / "refine.json").read_text())
    assert {"log_gain_t1w", "b1_0", "inversion_efficiency"} <= set(ex["parameters"])
    assert all(np.isfinite(v["sd"]) for v in ex["parameters"].values())
    assert all(v < 7.0 for v in ex["median_abs_residual_pct"].values()), ex["median_abs_residual_pct"]
    assert prov["refine"]["n_voxels"] == ex["n_voxels"] and ex["config"]["n_exam_voxels"] == 2000
    rows = list(csv.DictReader((out / "roi.csv").read_text().splitlines()))
    assert {r["region"] for r in rows} >= {"NAWM", "cortex", "CSF"}
    nawm = next(r for r in rows if r["region"] == "NAWM")
    m = case["maps"]
    true_wm = float(m.t1_ms[(m.labels == 3) & m.mask].mean())
    assert abs(float(nawm["t1_ms_mean"]) / true_wm - 1) < 0.3  # a sanity bound, not an accuracy target


def test_refine_needs_all_three_contrasts(exam, tmp_path: Path) -> None:
    _, paths, mask = exam
    with pytest.raises(ValueError, match="--refine needs all three contrasts"):
        run_predict({"t1w": paths["t1w"], "t2w": paths["t2w"]}, tmp_path / "o", mask_path=mask, progress=False,
                    refine=True)
    assert not (tmp_path / "o").exists()


def test_exam_protocols_read_the_sidecars(exam) -> None:
    """Sidecars written by relaxomap carry the full protocol: read exactly, refocusing angle known."""
    case, paths, _ = exam
    from relaxomap.train.clinical.predict import _read_inputs

    vols, params = _read_inputs(paths, {}, [])
    prots, known, normalised = exam_protocols(vols, params, {c: case["protocols"][c].kind for c in paths})
    assert [p.to_dict() for p in prots] == [case["protocols"][c].with_(name=prots[i].name).to_dict()
                                            for i, c in enumerate(("t1w", "t2w", "flair"))]
    assert known == [True, True, True] and normalised == [False, False, False]


def test_roi_table_values_and_csv() -> None:
    """Means and sample sds per labelled region against NumPy, the lesion carved out of the other regions."""
    rng = np.random.default_rng(0)
    labels = rng.choice([1, 2, 3, 13], size=(8, 8, 4))
    maps = {k: rng.uniform(1, 2, labels.shape) for k in ("t1_ms", "t2_ms", "pd")}
    lesion = np.zeros(labels.shape, bool)
    lesion[:2, :2, :2] = True
    rows = {r["region"]: r for r in roi_table(maps, np.ones(labels.shape, bool), labels, lesion)}
    sel = (labels == 3) & ~lesion
    assert rows["NAWM"]["n_voxels"] == sel.sum()
    assert rows["NAWM"]["t1_ms_mean"] == pytest.approx(maps["t1_ms"][sel].mean(), rel=1e-12)
    assert rows["lesion"]["t2_ms_sd"] == pytest.approx(maps["t2_ms"][lesion].std(ddof=1), rel=1e-12)
    text = roi_csv(list(rows.values()))
    assert text.splitlines()[0].startswith("region,n_voxels,t1_ms_mean")


def test_b1_map_units_and_refusal(tmp_path: Path) -> None:
    """A B1 map in percent (median ~ 90) is divided by 100 with a warning; one in neither unit is refused
    with its file named; voxels without a value become 1 (nominal)."""
    from relaxomap.train.clinical.nifti import load_nifti, save_nifti
    from relaxomap.train.clinical.predict import _aux_on_grid

    aff = np.diag([1.0, 1.0, 3.0, 1.0])
    ref_path = tmp_path / "ref.nii.gz"
    save_nifti(ref_path, np.ones((6, 5, 4), np.float32), aff)
    ref = load_nifti(ref_path, "reference")
    b1 = np.full((6, 5, 4), 90.0, np.float32)
    b1[0, 0, 0] = 0.0
    save_nifti(tmp_path / "b1pct.nii.gz", b1, aff)
    warnings: list[str] = []
    got = _aux_on_grid(tmp_path / "b1pct.nii.gz", ref, "B1 map", True, 1, warnings)
    assert got[1, 1, 1] == pytest.approx(0.9) and got[0, 0, 0] == 1.0
    assert any("percent" in w for w in warnings)
    save_nifti(tmp_path / "b1bad.nii.gz", np.full((6, 5, 4), 5000.0, np.float32), aff)
    with pytest.raises(ValueError, match="b1bad.nii.gz: median 5000"):
        _aux_on_grid(tmp_path / "b1bad.nii.gz", ref, "B1 map", True, 1, [])


def test_refine_refuses_a_gradient_echo_without_its_protocol() -> None:
    from relaxomap.train.clinical.refine import _protocol_from_params

    with pytest.raises(ValueError, match="t1w series dicom/T1 is a 'spgr' sequence"):
        _protocol_from_params("t1w", "spgr", 20.0, 4.0, 0.0, "dicom/T1")
    p = _protocol_from_params("flair", "ir_tse", 9000.0, 120.0, 2500.0, "x")
    assert (p.kind, p.esp_ms, p.etl, p.ti_ms) == ("ir_tse", 10.0, 16, 2500.0)


def test_refine_config_file_errors_name_the_file_and_field(tmp_path: Path) -> None:
    """--refine-config: an unknown field or a bad value is refused before anything runs, naming the file,
    the field and what is allowed."""
    from click.testing import CliRunner

    from relaxomap.train.cli import main

    bad = tmp_path / "refine.json"
    for content, expected in (('{"pd_sd": 0.05}', "unknown field(s) ['pd_sd']"),
                              ('{"pd_rel_sd": 5}', "RefineConfig.pd_rel_sd"), ("{", "refine.json")):
        bad.write_text(content)
        r = CliRunner().invoke(main, ["predict", "--t1w", "a.nii.gz", "--out", str(tmp_path / "o"), "--refine",
                                      "--refine-config", str(bad)])
        assert r.exit_code == 2 and expected in r.output and "refine.json" in r.output, r.output
        assert not (tmp_path / "o").exists()
